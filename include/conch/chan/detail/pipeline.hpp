// conch/chan/detail/pipeline.hpp
// The reader, workers and collector behind conch/chan/pipeline.hpp (internal).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <ranges>
#include <type_traits>
#include <utility>
#include <vector>

#include "conch/chan/buffer.hpp"
#include "conch/chan/chan.hpp"
#include "conch/chan/detail/ops_support.hpp"
#include "conch/chan/go.hpp"
#include "conch/chan/select.hpp"
#include "conch/core/detail/timer.hpp"
#include "conch/core/placement.hpp"
#include "conch/core/task.hpp"

namespace conch::detail {

/// How a transform's result X reaches a chan<U>:
///   X converts to U         -> one value
///   std::optional<V>        -> none or one (a filtering transform)
///   a range of V            -> any number (like core.async's cat/mapcat)
template <class U, class X>
constexpr int out_kind() {
  if constexpr (std::is_convertible_v<X, U>)
    return 0;
  else if constexpr (is_optional<X>::value)
    return 1;
  else if constexpr (std::ranges::input_range<X>)
    return 2;
  else
    return -1;
}

/// What one job's transform produced, as it travels to the collector.
template <class U, class X>
using batch_t = std::conditional_t<out_kind<U, X>() == 2, std::vector<U>, std::optional<U>>;

template <class U, class X>
batch_t<U, X> make_batch(X&& x) {
  constexpr int kind = out_kind<U, std::decay_t<X>>();
  if constexpr (kind == 0) {
    return std::optional<U>(std::in_place, std::forward<X>(x));
  } else if constexpr (kind == 1) {
    if (!x) return std::nullopt;
    return std::optional<U>(std::in_place, std::move(*x));
  } else if constexpr (std::is_same_v<std::decay_t<X>, std::vector<U>>) {
    return std::move(x);
  } else {
    std::vector<U> out;
    for (auto&& e : x) {
      if constexpr (std::ranges::view<std::decay_t<X>>)
        out.emplace_back(e);
      else
        out.emplace_back(std::move(e));
    }
    return out;
  }
}

/// The value type a pipeline transform F yields for input T (a task's
/// value type if F returns a task).
template <class F, class T>
struct transform_result {
  using raw = std::decay_t<std::invoke_result_t<F&, T>>;
  using type = raw;
};
template <class F, class T>
  requires is_task<std::decay_t<std::invoke_result_t<F&, T>>>::value
struct transform_result<F, T> {
  using type = typename std::decay_t<std::invoke_result_t<F&, T>>::value_type;
};

/// How many values the reader puts into one job. A job costs hand-offs (the
/// jobs queue, a result slot, the collector's wake-up: a cross-CPU wakeup
/// when the worker runs on another loop) that cost as much as ~1 us of f;
/// paid per job rather than per value they stop mattering. Workers report
/// f's mean cost per value over their last job, and the reader sizes the
/// next job to about kJobTargetNs of f: a slow f (I/O, long computations,
/// a task that parks) keeps one value a job, so n workers still share the
/// values; a cheap one gets up to kMaxJobValues. The reader only takes
/// values already waiting in `from`: a job never waits to fill up.
/// (bench/NOTES.md "pipeline jobs of several values")
inline constexpr std::uint64_t kJobTargetNs = 20'000;
inline constexpr std::size_t kMaxJobValues = 32;

struct pipeline_pace {
  // f's mean ns per value over the last job; until a job has finished,
  // kJobTargetNs (one value a job). Written by the workers (loop threads
  // or blocking-pool threads), read by the reader: relaxed, a hint only.
  std::atomic<std::uint64_t> ns_per_value{kJobTargetNs};

  std::size_t job_values() const noexcept {
    const std::uint64_t per = std::max<std::uint64_t>(1, ns_per_value.load(std::memory_order_relaxed));
    return static_cast<std::size_t>(std::clamp<std::uint64_t>(kJobTargetNs / per, 1, kMaxJobValues));
  }
  void record(std::chrono::steady_clock::duration d, std::size_t values) noexcept {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
    ns_per_value.store(static_cast<std::uint64_t>(std::max<std::int64_t>(ns, 0)) / values,
                       std::memory_order_relaxed);
  }
};

template <class T, class B>
struct pipeline_job {
  std::vector<T> vs;           // consecutive input values, in order
  chan<std::vector<B>> p;      // one slot: the worker puts their batches here, in order
};

// Reads `from`, hands each run of waiting values to a worker with a result
// slot, and queues the slot for the collector in input order.
template <class T, class B>
task<void> pipeline_reader(chan<T> from, chan<pipeline_job<T, B>> jobs, chan<chan<std::vector<B>>> results,
                           chan<chan<std::vector<B>>> spare, std::shared_ptr<pipeline_pace> pace,
                           std::size_t workers) {
  for (;;) {
    std::optional<T> v = co_await from.recv();
    if (!v) break;
    std::vector<T> vs;
    vs.push_back(std::move(*v));
    // Only what is already there (an empty `from` sends the job as it is),
    // and no more than a worker's share of it: a burst shorter than the job
    // size still goes to all n workers.
    const std::size_t share = std::max<std::size_t>(1, (from.size() + 1) / workers);
    for (const std::size_t want = std::min(pace->job_values(), share); vs.size() < want;) {
      std::optional<T> more = from.try_recv();
      if (!more) break;
      vs.push_back(std::move(*more));
    }
    std::optional<chan<std::vector<B>>> p = spare.try_recv();
    if (!p) p.emplace(std::size_t{1});
    // Built before the co_await: GCC 12 destroys a braced aggregate temporary
    // inside a co_await expression twice (see the design note).
    pipeline_job<T, B> job{std::move(vs), *p};
    if (!co_await jobs.send(std::move(job))) break;
    if (!co_await results.send(std::move(*p))) break;  // the collector stopped: to is closed
  }
  // Every slot is queued before the close, so the collector sees them all.
  jobs.close();
  results.close();
}

// Runs the transform on the worker's loop thread (pipeline). `share` is
// true for a worker on the reader's loop while other workers run elsewhere:
// it yields after each job, or it would take job after job without letting
// the reader refill `jobs` (a receive that finds a value does not park), and
// the other loops' workers would wait for it, parked, each wakeup crossing
// CPUs (bench/NOTES.md "pipeline workers on the reader's loop").
template <class U, class B, class F, class T>
task<void> pipeline_worker(std::shared_ptr<F> f, chan<pipeline_job<T, B>> jobs, bool share,
                           std::shared_ptr<pipeline_pace> pace) {
  using X = typename transform_result<F, T>::type;
  for (;;) {
    std::optional<pipeline_job<T, B>> j = co_await jobs.recv();
    if (!j) co_return;
    std::vector<B> bs;
    bs.reserve(j->vs.size());
    const auto t0 = std::chrono::steady_clock::now();
    for (T& v : j->vs) {
      try {
        if constexpr (is_task<std::decay_t<std::invoke_result_t<F&, T>>>::value) {
          X x = co_await (*f)(std::move(v));
          bs.push_back(make_batch<U>(std::move(x)));
        } else {
          bs.push_back(make_batch<U>((*f)(std::move(v))));
        }
      } catch (...) {
        report_exception(std::current_exception());  // no output for this value
      }
    }
    pace->record(std::chrono::steady_clock::now() - t0, j->vs.size());
    j->p.try_send(std::move(bs));  // the slot is empty and has room: never refused
    if (share) {
      sleep_awaiter turn{std::chrono::nanoseconds{0}};  // named: GCC 12 (LANDSCAPE.md §3.8)
      co_await turn;  // the reader and the collector run before the next job
    }
  }
}

// Runs the transform on the blocking pool, one job at a time (pipeline_blocking).
template <class U, class B, class F, class T>
task<void> pipeline_blocking_worker(std::shared_ptr<F> f, chan<pipeline_job<T, B>> jobs,
                                    std::shared_ptr<pipeline_pace> pace) {
  for (;;) {
    std::optional<pipeline_job<T, B>> j = co_await jobs.recv();
    if (!j) co_return;
    // Built before the co_await (GCC 12, LANDSCAPE.md §3.8); owns what it uses.
    auto work = [f, pace, vs = std::move(j->vs), rt = current_loop()]() mutable {
      std::vector<B> bs;
      bs.reserve(vs.size());
      const auto t0 = std::chrono::steady_clock::now();
      for (T& v : vs) {
        try {
          bs.push_back(make_batch<U>((*f)(std::move(v))));
        } catch (...) {
          report_exception_from(rt, std::current_exception());  // no output for this value
        }
      }
      pace->record(std::chrono::steady_clock::now() - t0, vs.size());
      return bs;
    };
    chan<std::vector<B>> done = conch::thread(std::move(work));
    std::optional<std::vector<B>> bs = co_await done.recv();  // nullopt: only if the pool failed
    j->p.try_send(bs ? std::move(*bs) : std::vector<B>{});
  }
}

// Delivers each job's batches to `to`, in input order.
template <class U, class B>
task<void> pipeline_collector(chan<chan<std::vector<B>>> results, chan<chan<std::vector<B>>> spare, chan<U> to,
                              bool close) {
  for (;;) {
    std::optional<chan<std::vector<B>>> p = co_await results.recv();
    if (!p) break;
    std::optional<std::vector<B>> bs = co_await p->recv();
    bool open = true;
    for (std::size_t i = 0; bs && open && i < bs->size(); ++i) {
      B& b = (*bs)[i];
      if constexpr (is_optional<B>::value) {
        if (b) open = co_await to.send(std::move(*b));
      } else {
        for (U& u : b) {
          open = co_await to.send(std::move(u));
          if (!open) break;
        }
      }
    }
    if (!open) {  // to is closed: stop; the reader sees results closed and stops
      results.close();
      co_return;
    }
    spare.try_send(std::move(*p));  // recycle the slot
  }
  if (close) to.close();
}

/// Results in flight per worker (see start_pipeline).
inline constexpr std::size_t kResultWindow = 4;

/// The most values pipeline and pipeline_blocking take from `from` ahead of
/// what they have delivered to `to`: the results window, the job the
/// collector delivers and the one the reader holds, each of up to
/// kMaxJobValues values.
constexpr std::size_t pipeline_read_ahead(std::size_t n) noexcept {
  return (kResultWindow * n + 2) * kMaxJobValues;
}

/// Where pipeline worker i goes: loop home + i, so the first worker shares
/// the caller's loop (n = 1 costs no cross-CPU hop) and n workers cover
/// min(n, loops) CPUs.
inline placement worker_placement(unsigned home, std::size_t i) noexcept {
  return placement::loop(home + static_cast<unsigned>(i));  // modulo the loops
}

template <bool Blocking, class U, class F, class T>
chan<unit> start_pipeline(std::size_t n, chan<U> to, F f, chan<T> from, bool close) {
  using X = typename transform_result<F, T>::type;
  static_assert(out_kind<U, X>() >= 0,
                "pipeline: f(T) must return a U, a std::optional<U>, a range of U, or (pipeline "
                "only) a conch::task of one of these");
  using B = batch_t<U, X>;
  CONCH_CHECK(n > 0, "pipeline needs at least one worker");
  // Jobs queued for the workers: 2n, not core.async's n, so a worker on
  // another loop finds the next job queued while the reader's loop computes
  // one (with n, it emptied the queue and parked: a cross-CPU wakeup per job).
  chan<pipeline_job<T, B>> jobs(2 * n);
  // Results waiting for the collector: kResultWindow x n, not core.async's n.
  // The collector shares a loop with a worker; while that worker computes,
  // the others keep going only if the reader can run ahead of the collector.
  const std::size_t window = kResultWindow * n;
  chan<chan<std::vector<B>>> results(window);
  chan<chan<std::vector<B>>> spare(window + 2);  // at most window + 2 slots are ever alive
  auto fp = std::make_shared<F>(std::move(f));
  auto pace = std::make_shared<pipeline_pace>();
  const unsigned home = this_loop();
  const unsigned loops = loop_count();
  for (std::size_t i = 0; i < n; ++i) {
    if constexpr (Blocking) {  // f runs on the blocking pool: the worker only waits
      go(pipeline_blocking_worker<U, B, F, T>(fp, jobs, pace));
    } else {  // one worker per loop in turn, from this one: f runs side by side
      const bool share = n > 1 && loops > 1 && i % loops == 0;  // on the reader's loop
      go_on(worker_placement(home, i), pipeline_worker<U, B, F, T>(fp, jobs, share, pace));
    }
  }
  // The reader and the collector stay on this loop (placed, so never stolen):
  // they talk to each other and to the caller's go blocks for every value, and
  // split across loops each value would cost cross-CPU wakeups.
  go_on(placement::here(), pipeline_reader<T, B>(std::move(from), jobs, results, spare, std::move(pace), n));
  return go_on(placement::here(),
               pipeline_collector<U, B>(std::move(results), std::move(spare), std::move(to), close));
}

template <class T, class U>
struct async_job {
  T v;
  chan<U> res;
};

template <class T, class U>
task<void> async_reader(chan<T> from, chan<async_job<T, U>> jobs, chan<chan<U>> results) {
  for (;;) {
    std::optional<T> v = co_await from.recv();
    if (!v) break;
    chan<U> res(1);
    async_job<T, U> job{std::move(*v), res};  // not inside the co_await (GCC 12)
    if (!co_await jobs.send(std::move(job))) break;
    if (!co_await results.send(res)) {  // the collector stopped: to is closed
      res.close();                      // so af's sends fail rather than park
      break;
    }
  }
  jobs.close();
  results.close();
}

template <class T, class U, class F>
task<void> async_worker(std::shared_ptr<F> af, chan<async_job<T, U>> jobs) {
  for (;;) {
    std::optional<async_job<T, U>> j = co_await jobs.recv();
    if (!j) co_return;
    try {
      if constexpr (is_task<std::decay_t<std::invoke_result_t<F&, T, chan<U>>>>::value) {
        co_await (*af)(std::move(j->v), j->res);
        j->res.close();
      } else {
        (*af)(std::move(j->v), j->res);  // af closes res when its operation is done
      }
    } catch (...) {
      report_exception(std::current_exception());
      j->res.close();
    }
  }
}

template <class U>
task<void> async_collector(chan<chan<U>> results, chan<U> to, bool close) {
  for (;;) {
    std::optional<chan<U>> res = co_await results.recv();
    if (!res) break;
    bool open = true;
    for (;;) {
      std::optional<U> v = co_await res->recv();
      if (!v) break;
      open = co_await to.send(std::move(*v));
      if (!open) break;
    }
    if (!open) {
      // to is closed: stop, and close every pending result channel so that
      // no af is left parked on a send nobody will take.
      res->close();
      results.close();
      while (std::optional<chan<U>> r = results.try_recv()) r->close();
      co_return;
    }
  }
  if (close) to.close();
}

}  // namespace conch::detail
