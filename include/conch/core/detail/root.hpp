// conch/core/detail/root.hpp
// Root coroutines: the frames a runtime owns (go blocks, block_on bodies) (internal).
//
// A root frame is detached: nobody awaits it. From spawn until it ends it is
// on exactly one loop's live list, so destroying a runtime can destroy every
// frame it still holds (src/README.md, "Teardown").
#pragma once

#include <coroutine>
#include <cstddef>
#include <exception>
#include <optional>

#include "conch/core/detail/scheduler.hpp"
#include "conch/core/placement.hpp"
#include "conch/core/task.hpp"

namespace conch::detail {

/// Link in a loop's list of live root frames.
struct root_link {
  root_link* prev = nullptr;
  root_link* next = nullptr;
  loop* owner = nullptr;  // whose live list holds this link; null = none
};

struct root_promise : root_link {
  struct root get_return_object() noexcept;
  std::suspend_always initial_suspend() const noexcept { return {}; }
  std::suspend_never final_suspend() const noexcept { return {}; }
  void return_void() const noexcept {}
  void unhandled_exception() const noexcept { std::terminate(); }  // bodies catch all
  ~root_promise();

  static void* operator new(std::size_t n) { return frame_alloc(n); }
  static void operator delete(void* p, std::size_t n) noexcept { frame_free(p, n); }
};

/// A detached coroutine owned by a runtime once spawned. Its body must not
/// let exceptions escape.
struct root {
  using promise_type = root_promise;
  std::coroutine_handle<root_promise> h;
};
inline root root_promise::get_return_object() noexcept {
  return root{std::coroutine_handle<root_promise>::from_promise(*this)};
}

/// Starts `r` later on the current loop (the go path). Aborts off a runtime.
void spawn_here(root r) noexcept;

/// Starts `r` on the first loop of `rt` (the block_on path; any thread).
void spawn_on_runtime(runtime_impl* rt, root r) noexcept;

/// Starts `r` on the loop `where` names, pinned there (the go_on path).
/// Aborts off a runtime.
void spawn_placed(placement where, root r) noexcept;

// ---- block_on ----

/// Completion latch used by block_on: a plain thread waits, a loop signals.
class completion_latch {
 public:
  completion_latch();
  ~completion_latch();
  void set() noexcept;
  void wait() noexcept;

 private:
  struct state;
  state* s_;
};

/// The root frame block_on runs: awaits `t`, stores its value or exception,
/// then releases the waiting thread.
template <class T>
root block_on_body(task<T>& t, std::optional<T>& out, std::exception_ptr& err,
                   completion_latch& done) {
  try {
    out.emplace(co_await t);
  } catch (...) {
    err = std::current_exception();
  }
  done.set();
}
inline root block_on_body_void(task<void>& t, std::exception_ptr& err, completion_latch& done) {
  try {
    co_await t;
  } catch (...) {
    err = std::current_exception();
  }
  done.set();
}

}  // namespace conch::detail
