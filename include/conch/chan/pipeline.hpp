// conch/chan/pipeline.hpp
// Parallel transforms in input order: pipeline, pipeline_blocking, pipeline_async.
//
//   conch::chan<int> squares(8);
//   conch::chan<conch::unit> done =
//       conch::pipeline(4, squares, [](int x) { return x * x; }, conch::to_chan(std::vector{1, 2, 3}));
//   // squares receives 1, 4, 9 (in input order), then closes; done closes after the last one
//
// Order: pipeline, pipeline_blocking and pipeline_async deliver outputs in
// input order whatever n is, with a bounded number in flight: for pipeline
// and pipeline_blocking a jobs queue of 2n and a results queue of 4n
// (pipeline_async: core.async's n and n), so workers on other loops keep
// going while the caller's loop, which runs the reader and the collector,
// computes. The reader and the collector stay on the caller's loop.
//
// Jobs of several values (pipeline, pipeline_blocking): a job carries the
// values already waiting in `from` (never waiting for more), as many as
// make about 20 us of f by f's measured cost, at most 32; a slow f gets one
// value a job. So the per-job hand-offs, cross-CPU for workers on other
// loops, are not paid per value, and the pipeline reads at most
// (4n + 2) x 32 values ahead of `to`. A job's results travel on a one-slot
// channel that is recycled, so a steady-state pipeline allocates no channels.
//
// The rules all combinators share are in conch/chan/ops.hpp.
#pragma once

#include <cstddef>
#include <memory>
#include <type_traits>
#include <utility>

#include "conch/chan/chan.hpp"
#include "conch/chan/detail/pipeline.hpp"
#include "conch/chan/go.hpp"
#include "conch/core/check.hpp"
#include "conch/core/placement.hpp"
#include "conch/core/task.hpp"

namespace conch {

/// Takes values from `from`, runs f on each with parallelism n, and sends
/// the results to `to` in input order (core.async pipeline). f(v) may return
/// a U (one output), a std::optional<U> (none or one), a range of U (any
/// number, like a mapcat transducer), or a conch::task of one of these (the
/// worker awaits it). f runs in n go blocks placed on the runtime's loops in
/// turn, starting with the caller's (conch/core/placement.hpp), so with n >= 2
/// a CPU-bound f runs on several cores at once; it must be safe to call concurrently and must not block the thread (use
/// pipeline_blocking for that). A throwing f produces no output for that
/// value (the exception goes to the runtime's error handler).
///
/// When `from` closes, `to` is closed after the last result if `close` (the
/// default). If `to` is closed, the pipeline stops reading `from`. Returns a
/// channel that gets unit{} and closes once the last result has been
/// delivered. Starts go blocks: call on a runtime thread.
template <class U, class F, class T>
chan<unit> pipeline(std::size_t n, chan<U> to, F f, chan<T> from, bool close = true) {
  return detail::start_pipeline<false>(n, std::move(to), std::move(f), std::move(from), close);
}

/// Like pipeline, for blocking transforms (I/O, long computations): f runs
/// on the runtime's blocking pool (conch::thread), at most n jobs at a time
/// (a job's values one after another, on one pool thread; a slow f gets one
/// value a job), so the loop threads stay free. f must not return a task.
template <class U, class F, class T>
chan<unit> pipeline_blocking(std::size_t n, chan<U> to, F f, chan<T> from, bool close = true) {
  static_assert(!detail::is_task<std::decay_t<std::invoke_result_t<F&, T>>>::value,
                "pipeline_blocking runs f on a plain thread: f must not return a task; use pipeline");
  return detail::start_pipeline<true>(n, std::move(to), std::move(f), std::move(from), close);
}

/// Like pipeline, for asynchronous transforms (core.async pipeline-async):
/// af(v, res) is given a fresh chan<U> res with one slot, must start an
/// operation that sends its results (any number) to res and closes res when
/// done, and return at once. If af returns a task instead, a worker awaits
/// it (at most n run at once) and closes res when it finishes. Results go to
/// `to` in input order: the pipeline waits for each res to close before
/// moving on, so an af that never closes res stalls it. A throwing af closes
/// its res (the exception goes to the runtime's error handler).
/// Close flag, stopping and the returned channel as for pipeline.
template <class U, class F, class T>
  requires std::is_invocable_v<F&, T, chan<U>>
chan<unit> pipeline_async(std::size_t n, chan<U> to, F af, chan<T> from, bool close = true) {
  CONCH_CHECK(n > 0, "pipeline_async needs at least one worker");
  chan<detail::async_job<T, U>> jobs(n);
  chan<chan<U>> results(n);
  auto afp = std::make_shared<F>(std::move(af));
  const unsigned home = this_loop();
  for (std::size_t i = 0; i < n; ++i)
    go_on(detail::worker_placement(home, i), detail::async_worker<T, U, F>(afp, jobs));
  // The reader and the collector stay on the caller's loop (placed: an idle
  // loop never steals them), as pipeline's do: split across loops, every
  // value would cost them cross-CPU wakeups.
  go_on(placement::here(), detail::async_reader<T, U>(std::move(from), jobs, results));
  return go_on(placement::here(), detail::async_collector<U>(std::move(results), std::move(to), close));
}

}  // namespace conch
