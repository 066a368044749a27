// conch/core/runtime.hpp
// runtime: N event-loop threads, each over its own io_uring ring.
//
//   conch::task<int> main_task() { co_await conch::sleep(1ms); co_return 7; }
//   int v = conch::run(main_task());                       // one-shot
//   conch::runtime rt({.threads = 2}); rt.block_on(main_task());   // reusable
//
// Scheduling model (src/README.md has the details):
//  - A coroutine always resumes on the loop thread it parked on.
//  - go() queues a new go block on the calling loop; an idle loop steals
//    queued go blocks that have not started yet ("idle threads take work").
//  - Cross-thread wakeups go through a per-loop queue plus an eventfd read
//    armed on the ring; an idle runtime sleeps in io_uring_enter, no polling.
//  - Timers live in a per-loop heap; the loop waits on its ring with the
//    earliest deadline as the wait timeout.
#pragma once

#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "conch/core/check.hpp"
#include "conch/core/task.hpp"

namespace conch {

/// Options for a runtime.
struct runtime_options {
  /// Event-loop threads; 0 = one per core.
  unsigned threads = 0;
  /// Called with every exception that escapes a go block. Runs on the loop
  /// thread where the block ended. Default: print to stderr.
  std::function<void(std::exception_ptr)> on_error;
  /// Upper bound on threads of the blocking pool used by conch::thread().
  unsigned max_blocking_threads = 256;
};

namespace detail {

class loop;
class runtime_impl;

// The loop of the current thread; null on threads that are not loop threads.
inline thread_local loop* tl_loop = nullptr;

/// The current thread's loop, or null off runtime threads.
inline loop* current_loop() noexcept { return tl_loop; }

/// Makes `h` runnable on `home` (any thread may call this). On home's own
/// thread it goes on the local ready queue; otherwise on home's remote queue,
/// waking the loop if it sleeps.
void schedule(loop* home, std::coroutine_handle<> h) noexcept;

/// Reports an exception that escaped a go block to the current runtime's
/// error handler (stderr if there is none).
void report_exception(std::exception_ptr e) noexcept;
/// Same, for the runtime that owns loop `l` (from a blocking-pool thread).
void report_exception_from(loop* l, std::exception_ptr e) noexcept;

// ---- root coroutines: the frames a runtime owns (go blocks, block_on) ----

/// Link in a loop's list of live root frames, so that destroying a runtime
/// can destroy every frame it still holds.
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

// ---- timers ----

/// An entry in a loop's timer heap. `fire` runs on the loop thread when the
/// deadline passes; `drop` (if set) is called instead when the runtime is
/// destroyed first, for nodes the heap owns.
struct timer_node {
  std::int64_t deadline_ns = 0;  // steady_clock, nanoseconds since epoch
  std::uint64_t seq = 0;         // FIFO among equal deadlines
  std::size_t heap_index = static_cast<std::size_t>(-1);
  void (*fire)(timer_node*) noexcept = nullptr;
  void (*drop)(timer_node*) noexcept = nullptr;
  bool armed() const noexcept { return heap_index != static_cast<std::size_t>(-1); }
};

/// Adds `t` to the current loop's heap. Loop thread only.
void timer_add(loop* l, timer_node* t) noexcept;
/// Removes `t` if still armed. Loop thread only (or a stopped runtime).
void timer_cancel(loop* l, timer_node* t) noexcept;
std::int64_t now_ns() noexcept;

/// Runs `job` on the current runtime's blocking pool. Off a runtime, aborts.
/// If the runtime is shutting down, `job` is destroyed without running.
void submit_blocking(absl::AnyInvocable<void() &&> job) noexcept;

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

void spawn_on_runtime(runtime_impl* rt, root r) noexcept;

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
inline root block_on_body_void(task<void>& t, std::exception_ptr& err,
                               completion_latch& done) {
  try {
    co_await t;
  } catch (...) {
    err = std::current_exception();
  }
  done.set();
}

}  // namespace detail

/// A set of event-loop threads that run coroutines.
///
/// Thread-safe to share by reference; not copyable or movable. Destroying a
/// runtime stops its loops after their current step, waits for running
/// conch::thread() jobs, and destroys every coroutine frame it still holds
/// (parked go blocks included), unlinking them from the channels they wait on.
class runtime {
 public:
  /// Starts the loop threads. Aborts with a message if the event loops cannot
  /// be set up (io_uring disabled by sysctl or seccomp, out of memory); use
  /// create() to get that as a Status instead.
  explicit runtime(runtime_options opts = {});
  /// Like the constructor, but reports a failure to start as a Status
  /// (kUnavailable when io_uring is not permitted) instead of aborting.
  static absl::StatusOr<std::unique_ptr<runtime>> create(runtime_options opts = {});
  ~runtime();
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  /// Runs `t` on the runtime's first loop and blocks the calling thread until
  /// it finishes; returns its value or rethrows its exception. Must not be
  /// called from one of this runtime's (or any runtime's) loop threads.
  template <class T>
  T block_on(task<T> t) {
    CONCH_CHECK(detail::current_loop() == nullptr,
                "block_on() called on a runtime thread; co_await the task instead");
    detail::completion_latch done;
    std::exception_ptr err;
    if constexpr (std::is_void_v<T>) {
      detail::spawn_on_runtime(impl_, detail::block_on_body_void(t, err, done));
      done.wait();
      if (err) std::rethrow_exception(err);
    } else {
      std::optional<T> out;
      detail::spawn_on_runtime(impl_, detail::block_on_body<T>(t, out, err, done));
      done.wait();
      if (err) std::rethrow_exception(err);
      return std::move(*out);
    }
  }

  /// Number of loop threads.
  unsigned threads() const noexcept;

 private:
  explicit runtime(detail::runtime_impl* impl) noexcept;
  detail::runtime_impl* impl_;
};

/// runtime{opts}.block_on(t).
template <class T>
T run(task<T> t, runtime_options opts = {}) {
  runtime rt(std::move(opts));
  return rt.block_on(std::move(t));
}

namespace detail {
struct sleep_awaiter : timer_node {
  loop* home = nullptr;
  std::coroutine_handle<> h;
  explicit sleep_awaiter(std::chrono::nanoseconds d) noexcept;
  ~sleep_awaiter();
  sleep_awaiter(const sleep_awaiter&) = delete;
  sleep_awaiter& operator=(const sleep_awaiter&) = delete;
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> awaiting) noexcept;
  void await_resume() const noexcept {}
};
inline task<void> sleep_task(std::chrono::nanoseconds d) { co_await sleep_awaiter(d); }
}  // namespace detail

/// Suspends the calling coroutine for at least `d`; it resumes on the same
/// loop thread. A zero or negative `d` yields to other ready coroutines.
/// Must be awaited on a runtime thread.
inline task<void> sleep(std::chrono::nanoseconds d) { return detail::sleep_task(d); }

}  // namespace conch
