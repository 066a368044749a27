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
//    armed on the ring; an idle loop watches its queues briefly, then sleeps
//    in io_uring_enter, so an idle runtime uses no CPU.
//  - Timers live in a per-loop heap; the loop waits on its ring with the
//    earliest deadline as the wait timeout.
#pragma once

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <utility>

#include "absl/status/statusor.h"
#include "conch/core/check.hpp"
#include "conch/core/detail/root.hpp"
#include "conch/core/detail/scheduler.hpp"
#include "conch/core/detail/timer.hpp"
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
  /// How long destroying the runtime (and so conch::run returning) may wait
  /// for sockets to write what is still queued on their `out`, like a kernel
  /// socket's close(): each loop keeps running (go blocks included) while
  /// one of its sockets has frames queued or a send in flight, at most this
  /// long, then closes everything. A peer that never reads costs at most
  /// this much. Zero: drop unsent frames at once.
  std::chrono::milliseconds linger{3000};
};

/// A set of event-loop threads that run coroutines.
///
/// Thread-safe to share by reference; not copyable or movable. Destroying a
/// runtime waits for running conch::thread() jobs, lets each loop finish
/// writing what its sockets have queued (bounded by runtime_options::linger),
/// stops the loops, and destroys every coroutine frame it still holds (parked
/// go blocks included), unlinking them from the channels they wait on.
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

/// Suspends the calling coroutine for at least `d`; it resumes on the same
/// loop thread. A zero or negative `d` yields to other ready coroutines.
/// Must be awaited on a runtime thread.
inline task<void> sleep(std::chrono::nanoseconds d) { return detail::sleep_task(d); }

}  // namespace conch
