// src/loop.hpp
// loop: one event loop thread over its own io_uring ring (private to conch::core).
//
// Only src/ includes this header; the layers that drive the ring see the
// narrow part of a loop through src/io.hpp.
//
// Invariants:
//  - ready_, timers_ and the ring belong to the loop thread alone.
//  - remote_ is guarded by remote_mu_; sleeping_ too. A thread that pushes
//    to remote_ while sleeping_ is set clears it and writes the eventfd, so a
//    wakeup is never lost: the loop sets sleeping_ under remote_mu_ only
//    after seeing remote_ empty. The write happens under remote_mu_ as well:
//    once a pusher unlocks it, it never touches the loop again (the runtime
//    may be destroyed as soon as the woken coroutine finishes).
//  - spawns_ (go blocks not started yet) is guarded by spawn_mu_; the owner
//    pushes and pops, idle loops steal from it.
//  - A go block is never stranded behind a busy owner: a sleeping loop either
//    wakes every kStrandedCheckNs to look (while another loop is awake), or
//    is deep_ (every loop was asleep) and counted in deep_sleepers, which
//    push_spawn reads under spawn_mu_ and a deep sleeper increments before
//    it reads spawns_ under the same lock: one of the two sees the other.
//  - live_ lists every root frame that runs on this loop (a stolen go block
//    moves to the thief's list before it starts); guarded by live_mu_
//    because a frame may be registered from another thread (start_on).
//  - Stopping lingers: once stop_ is seen, the loop runs one more turn, then
//    keeps running turns while an extension wants_linger() (queued socket
//    output), until runtime_options::linger has passed since stop_ was seen.
//  - exts_ (per-loop state of higher layers, e.g. the sockets reactor) is
//    touched by the loop thread only, and destroyed by ~loop after
//    io_uring_queue_exit, so memory the kernel may reference (buffer rings,
//    operation records) outlives the ring.
// Lock order: a channel lock may be held while taking remote_mu_ (waking a
// waiter); remote_mu_, spawn_mu_ and live_mu_ are leaves.
#pragma once

#include <liburing.h>

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "conch/core/runtime.hpp"
#include "conch/core/detail/spin_mutex.hpp"
#include "src/io.hpp"

namespace conch::detail {

/// FIFO of coroutine handles, grows by doubling, never shrinks (so the steady
/// state allocates nothing).
class handle_queue {
 public:
  handle_queue();
  ~handle_queue();
  handle_queue(const handle_queue&) = delete;
  handle_queue& operator=(const handle_queue&) = delete;
  bool empty() const noexcept { return head_ == tail_; }
  std::size_t size() const noexcept { return tail_ - head_; }
  void push(std::coroutine_handle<> h) {
    if (tail_ - head_ == mask_ + 1) grow();
    buf_[tail_++ & mask_] = h.address();
  }
  std::coroutine_handle<> pop() noexcept {
    return std::coroutine_handle<>::from_address(buf_[head_++ & mask_]);
  }
  void clear() noexcept { head_ = tail_ = 0; }

 private:
  void grow();
  void** buf_;
  std::size_t mask_;
  std::size_t head_ = 0, tail_ = 0;
};

class loop {
 public:
  loop(runtime_impl* rt, unsigned index);
  ~loop();
  loop(const loop&) = delete;
  loop& operator=(const loop&) = delete;

  /// The loop thread's body: sets up the ring, stores the outcome in
  /// `*status` and counts itself in `*started` (then notifies it), then runs
  /// until request_stop().
  void thread_main(std::atomic<int>* started, absl::Status* status);
  void request_stop() noexcept;

  // ---- scheduling ----
  void push_ready(std::coroutine_handle<> h) { ready_.push(h); }  // loop thread
  void push_remote(std::coroutine_handle<> h) noexcept;          // any thread
  void push_spawn(std::coroutine_handle<> h) noexcept;           // loop thread
  /// Moves up to half of this loop's unstarted go blocks to `thief`. On
  /// success `*epoch_after` is spawn_epoch_ as this steal left it.
  bool steal_into(loop& thief, std::uint32_t* epoch_after) noexcept;
  /// Wakes the loop if it sleeps, so it looks for work. Returns true if it was
  /// asleep.
  bool wake_if_sleeping() noexcept;
  /// Wakes the loop if it sleeps deep_ (no tick), to watch for a lone go block.
  bool wake_if_deep() noexcept;

  // ---- live root frames ----
  void register_root(root_link* r) noexcept;
  void unregister_root(root_link* r) noexcept;
  /// Root frames on live_ plus residents (add_resident): the load
  /// placement::least_busy() compares. A hint; any thread.
  std::size_t load() const noexcept {
    return live_count_.load(std::memory_order_relaxed) + residents_.load(std::memory_order_relaxed);
  }
  void add_resident(int delta) noexcept { residents_.fetch_add(delta, std::memory_order_relaxed); }
  /// Teardown, after the thread has stopped: destroys every live frame.
  void destroy_all() noexcept;

  // ---- timers (loop thread) ----
  void timer_add(timer_node* t) noexcept;
  void timer_cancel(timer_node* t) noexcept;

  // ---- io_uring (loop thread; higher layers go through src/io.hpp) ----
  io_uring* ring() noexcept { return &ring_; }
  /// Completions are posted, or the kernel has work for us to run (deferred
  /// task work, an overflowed CQ): reap_completions would find something.
  bool io_ready() noexcept {
    return io_uring_cq_ready(&ring_) != 0 ||
           (IO_URING_READ_ONCE(*ring_.sq.kflags) & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)) != 0;
  }
  /// An SQE, submitting queued ones first if the submission queue is full.
  io_uring_sqe* get_sqe() noexcept;

  // ---- per-loop state of higher layers (loop thread; src/io.hpp) ----
  /// The extension registered under `key`, or null.
  loop_extension* find_ext(const void* key) const noexcept {
    for (const auto& e : exts_)
      if (e.first == key) return e.second.get();
    return nullptr;
  }
  /// Registers `e` under `key`; the loop owns it from now on.
  loop_extension* add_ext(const void* key, std::unique_ptr<loop_extension> e) {
    exts_.emplace_back(key, std::move(e));
    return exts_.back().second.get();
  }

  runtime_impl* rt() const noexcept { return rt_; }
  unsigned index() const noexcept { return index_; }

 private:
  void run();
  bool take_spawns() noexcept;
  bool move_spawns(loop& into, bool all, std::uint32_t* epoch_after) noexcept;
  bool left_waiting(loop& victim) noexcept;
  void drain_remote() noexcept;
  void reap_completions() noexcept;
  bool keep_lingering() noexcept;
  void linger_wait() noexcept;
  void fire_timers(std::int64_t now) noexcept;
  enum class woke { work, tick, nudge };
  woke sleep_until_work() noexcept;
  bool spin_for_work() noexcept;
  void wake_locked() noexcept;
  void arm_eventfd() noexcept;
  void signal_eventfd() noexcept;
  void heap_up(std::size_t i) noexcept;
  void heap_down(std::size_t i) noexcept;
  void heap_remove(std::size_t i) noexcept;

  runtime_impl* rt_;
  unsigned index_;
  io_uring ring_{};
  bool ring_ok_ = false;
  int event_fd_ = -1;

  // loop thread only
  handle_queue ready_;
  std::vector<timer_node*> timers_;
  std::uint64_t timer_seq_ = 0;
  std::uint64_t event_buf_ = 0;
  io_op event_op_;
  std::vector<std::pair<const void*, std::unique_ptr<loop_extension>>> exts_;
  // Stopping: 0 until stop_ is first seen, then the linger deadline (now_ns
  // clock), or -1 when there is nothing to linger for.
  std::int64_t linger_until_ = 0;
  bool last_turn_ = false;  // lingering: the extra turn for a just-woken writer was granted
  struct seen_spawns {  // another loop's queue of unstarted go blocks, as last seen
    std::uint32_t epoch = 0;
    std::int64_t since = 0;
    bool valid = false;
  };
  std::vector<seen_spawns> seen_;  // by loop index (left_waiting)

  // remote queue
  std::mutex remote_mu_;
  std::vector<void*> remote_;
  std::vector<void*> remote_spare_;
  bool sleeping_ = false;                 // guarded by remote_mu_
  bool deep_ = false;   // guarded by remote_mu_: asleep with no stranded-spawn tick
  bool nudged_ = false;  // guarded by remote_mu_: woken by wake_if_deep
  std::atomic<bool> remote_pending_{false};
  std::atomic<bool> stop_{false};

  // unstarted go blocks
  spin_mutex spawn_mu_;
  handle_queue spawns_;
  std::atomic<std::size_t> spawn_count_{0};
  // Bumped under spawn_mu_ when the owner takes its queue, runs some of it
  // inline (a runaway spawner: push_spawn) or a thief steals.
  std::atomic<std::uint32_t> spawn_epoch_{0};

  // live root frames
  spin_mutex live_mu_;
  root_link live_head_;  // sentinel of a circular list
  std::atomic<std::size_t> live_count_{0};  // written under live_mu_
  std::atomic<std::size_t> residents_{0};   // Lua states homed here
};

class blocking_pool;

class runtime_impl {
 public:
  explicit runtime_impl(runtime_options opts);
  ~runtime_impl();

  std::vector<loop*> loops;
  runtime_options opts;
  absl::Status start_status;  // the first loop that failed to start, if any
  std::atomic<int> sleepers{0};
  std::atomic<int> deep_sleepers{0};  // sleepers with no stranded-spawn tick
  blocking_pool* pool = nullptr;
  std::atomic<unsigned> next_placement{0};  // round robin among equally busy loops

  /// The loop `where` names, seen from loop `from` of this runtime.
  loop* pick(loop* from, placement where) noexcept;

  /// After a go block was queued on `from`: wake one sleeping loop to steal.
  void wake_idle(loop* from) noexcept;
  /// After a lone go block was queued on `from` while loops sleep deep: wake
  /// one, which leaves it to its owner for a tick before taking it.
  void wake_deep(loop* from) noexcept;

 private:
  std::vector<std::thread*> threads_;
};

}  // namespace conch::detail
