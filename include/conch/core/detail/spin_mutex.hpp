// conch/core/detail/spin_mutex.hpp
// spin_mutex: a test-and-test-and-set lock for critical sections of a few
// dozen instructions (channel state, run queues).
//
// It spins briefly with a CPU pause, then yields the CPU: on a 2-core VM a
// preempted lock holder must be allowed to run, so pure spinning is wrong.
// Nothing that can block or resume a coroutine may run while it is held.
#pragma once

#include <atomic>

namespace conch::detail {

class spin_mutex {
 public:
  void lock() noexcept {
    // acquire: pairs with unlock()'s release, ordering the critical sections.
    if (!locked_.exchange(true, std::memory_order_acquire)) return;
    lock_slow();
  }
  bool try_lock() noexcept {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  void lock_slow() noexcept;
  std::atomic<bool> locked_{false};
};

}  // namespace conch::detail
