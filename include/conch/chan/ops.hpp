// conch/chan/ops.hpp
// The core.async combinators: pipe, map, filter, take, merge, split, pipeline, onto_chan, reduce, ... and mult, pub, mix.
//
//   conch::chan<int> nums = conch::to_chan(std::vector{1, 2, 3, 4});
//   conch::chan<int> odd = conch::filter([](int x) { return x % 2 == 1; }, nums);
//   conch::chan<int> sq(8);
//   conch::pipeline(4, sq, [](int x) { return x * x; }, odd);   // 4 workers, order kept
//   int sum = co_await conch::reduce(std::plus<>(), 0, sq);      // 1 + 9 = 10
//
// Design note
// -----------
// Every combinator is a go block (conch::go) looping over ordinary channel
// operations: recv, send, select. There is no second synchronization
// mechanism; mult, pub and mix keep their configuration (taps, topics,
// inputs) under a mutex and nudge their go block through a channel when it
// changes. Runtime-sized selects (mult offering a value to every waiting tap
// at once, mix reading its live inputs) use detail::dynamic_select, a thin
// driver over the same select engine as conch::select.
//
// Rules shared by all combinators (core.async's, made explicit):
//  - Functions that start go blocks must be called on a runtime thread, like
//    go(). The go blocks run on the runtime's loop threads. The channels they
//    return are ordinary channels: usable from any thread, and a coroutine
//    parked on one resumes on the loop thread it parked on.
//  - When a source closes, the output closes (for pipe/pipeline/mult/pub
//    taps: if the `close` flag, true by default, says so). Values in flight
//    are delivered first.
//  - When an output is closed by its consumer, the combinator stops reading
//    its source (split: once both outputs are closed; mult/pub: that tap is
//    removed instead). The source is not closed.
//  - Output channels are unbuffered unless a `buffer` argument says otherwise.
//  - An exception thrown by a user function (map's f, filter's pred, a
//    pipeline transform, a topic function) goes to the runtime's error handler,
//    as for a go block, and that value produces no output; the combinator
//    goes on. reduce and into instead rethrow it to whoever awaits them.
//  - Values are moved through, never copied, except where fan-out needs
//    copies (mult, pub, unique's memory of the last value).
//
// Where conch deliberately differs from core.async's code (not its docs):
//  - untap/unsub/unmix take effect at once, even for a value the mult is
//    still offering (core.async keeps waiting on the untapped channel).
//  - take, merge, map, filter stop reading once their output is closed
//    (core.async's go loops keep taking and dropping). split drops values
//    for a closed output and stops when both are closed (core.async stops at
//    the first refused value and leaves the other output open forever).
//  - tap/sub after the source has closed closes the channel at once (if its
//    close flag says so) instead of leaving it open forever. A channel
//    subscribed to several topics of a pub is closed once all of them have
//    delivered their last value, not by whichever topic finishes first.
//  - mix: a soloed input is read even if paused, as core.async's docstring
//    says (its code honours pause in solo_mode mute); admix of an input
//    already in the mix keeps its flags (core.async resets them).
//  - A throwing user function skips one value instead of killing the go
//    block (core.async's pipeline ex-handler default, applied everywhere).
//  - Transducers are C++ callables: a pipeline transform returns a U, an
//    optional (filter), a range (mapcat) or a task (asynchronous work).
//
// GCC 12 pitfalls avoided here (LANDSCAPE.md §3.8 and two more found while
// writing this file): no capturing lambda, braced aggregate temporary
// (`send(job{a, b})` destroyed the job twice) or std::initializer_list
// ("array used as initializer") inside a co_await expression; no structured
// binding of a co_await result. Build the value in a named variable first.
//
// Order: pipeline, pipeline_blocking and pipeline_async deliver outputs in
// input order whatever n is, with at most about 2n values in flight (the
// jobs and results queues of core.async's design, n each). A job's result
// travels on a one-slot channel that is recycled, so a steady-state pipeline
// allocates no channels.
#pragma once

#include <algorithm>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <ranges>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "conch/chan/buffer.hpp"
#include "conch/chan/chan.hpp"
#include "conch/chan/go.hpp"
#include "conch/chan/mix.hpp"
#include "conch/chan/mult.hpp"
#include "conch/chan/pub.hpp"
#include "conch/chan/select.hpp"
#include "conch/core/task.hpp"

namespace conch {

namespace detail {

// ---- calling user functions ----

/// f(a...) as an optional; an exception goes to the runtime's error handler
/// and yields nullopt (the value is skipped).
template <class F, class... A>
auto invoke_reporting(F& f, A&&... a) -> std::optional<std::decay_t<std::invoke_result_t<F&, A...>>> {
  try {
    return std::invoke(f, std::forward<A>(a)...);
  } catch (...) {
    report_exception(std::current_exception());
    return std::nullopt;
  }
}

template <class X>
struct is_optional : std::false_type {};
template <class V>
struct is_optional<std::optional<V>> : std::true_type {};

// ---- simple go loops ----

template <class T>
task<void> pipe_loop(chan<T> from, chan<T> to, bool close) {
  for (;;) {
    std::optional<T> v = co_await from.recv();
    if (!v) break;
    if (!co_await to.send(std::move(*v))) co_return;  // to closed: stop consuming
  }
  if (close) to.close();
}

template <class F, class T, class R>
task<void> map_loop(F f, chan<T> in, chan<R> out) {
  for (;;) {
    std::optional<T> v = co_await in.recv();
    if (!v) break;
    std::optional<R> r = invoke_reporting(f, std::move(*v));
    if (!r) continue;
    if (!co_await out.send(std::move(*r))) co_return;
  }
  out.close();
}

/// Receives one value from each channel of `ins`, in order, into `vals`;
/// true if every one yielded a value.
template <std::size_t I, class Ins, class Vals>
task<bool> recv_each(Ins& ins, Vals& vals) {
  if constexpr (I == std::tuple_size_v<Ins>) {
    co_return true;
  } else {
    std::get<I>(vals) = co_await std::get<I>(ins).recv();
    const bool ok = std::get<I>(vals).has_value();
    const bool rest = co_await recv_each<I + 1>(ins, vals);
    co_return ok && rest;
  }
}

template <class F, class R, class... Ts>
task<void> map_n_loop(F f, chan<R> out, std::tuple<chan<Ts>...> ins) {
  std::tuple<std::optional<Ts>...> vals;
  for (;;) {
    if (!co_await recv_each<0>(ins, vals)) break;  // any source closed
    auto call = [&](auto&... v) { return invoke_reporting(f, std::move(*v)...); };
    std::optional<R> r = std::apply(call, vals);
    if (!r) continue;
    if (!co_await out.send(std::move(*r))) co_return;
  }
  out.close();
}

template <class P, class T>
task<void> filter_loop(P pred, chan<T> in, chan<T> out, bool keep) {
  for (;;) {
    std::optional<T> v = co_await in.recv();
    if (!v) break;
    std::optional<bool> k = invoke_reporting(pred, std::as_const(*v));
    if (!k || *k != keep) continue;
    if (!co_await out.send(std::move(*v))) co_return;
  }
  out.close();
}

template <class F, class T, class U>
task<void> mapcat_loop(F f, chan<T> in, chan<U> out) {
  using X = std::decay_t<std::invoke_result_t<F&, T>>;
  for (;;) {
    std::optional<T> v = co_await in.recv();
    if (!v) break;
    std::optional<X> xs = invoke_reporting(f, std::move(*v));
    if (!xs) continue;
    for (auto&& x : *xs) {
      std::optional<U> u;
      if constexpr (std::ranges::view<X>)
        u.emplace(x);  // a view may refer to data we do not own: copy
      else
        u.emplace(std::move(x));  // we own the container
      if (!co_await out.send(std::move(*u))) co_return;
    }
  }
  out.close();
}

template <class T>
task<void> take_loop(std::size_t n, chan<T> in, chan<T> out) {
  for (std::size_t i = 0; i < n; ++i) {
    std::optional<T> v = co_await in.recv();
    if (!v) break;
    if (!co_await out.send(std::move(*v))) break;
  }
  out.close();
}

template <class T>
task<void> merge_loop(std::vector<chan<T>> ins, chan<T> out) {
  while (!ins.empty()) {
    std::pair<std::size_t, std::optional<T>> r = co_await select(ins);
    if (!r.second) {  // that source closed: forget it (every copy of it)
      chan<T> gone = ins[r.first];
      std::erase(ins, gone);
      continue;
    }
    if (!co_await out.send(std::move(*r.second))) co_return;
  }
  out.close();
}

template <class P, class T>
task<void> split_loop(P pred, chan<T> in, chan<T> yes, chan<T> no) {
  for (;;) {
    if (yes.closed() && no.closed()) break;  // nobody listens: stop consuming
    std::optional<T> v = co_await in.recv();
    if (!v) break;
    std::optional<bool> k = invoke_reporting(pred, std::as_const(*v));
    if (!k) continue;
    chan<T>& o = *k ? yes : no;
    co_await o.send(std::move(*v));  // false: that output is closed; the value is dropped
  }
  yes.close();
  no.close();
}

template <class T>
task<void> partition_loop(std::size_t n, chan<T> in, chan<std::vector<T>> out) {
  std::vector<T> part;
  for (;;) {
    std::optional<T> v = co_await in.recv();
    if (!v) break;
    part.push_back(std::move(*v));
    if (part.size() == n) {
      std::vector<T> full = std::exchange(part, std::vector<T>());
      if (!co_await out.send(std::move(full))) co_return;
    }
  }
  if (!part.empty()) co_await out.send(std::move(part));
  out.close();
}

template <class F, class T>
task<void> partition_by_loop(F f, chan<T> in, chan<std::vector<T>> out) {
  using K = std::decay_t<std::invoke_result_t<F&, const T&>>;
  std::vector<T> part;
  std::optional<K> last;
  for (;;) {
    std::optional<T> v = co_await in.recv();
    if (!v) break;
    std::optional<K> k = invoke_reporting(f, std::as_const(*v));
    if (!k) continue;
    if (last && !(*last == *k)) {
      std::vector<T> run = std::exchange(part, std::vector<T>());
      if (!co_await out.send(std::move(run))) co_return;
    }
    last = std::move(k);
    part.push_back(std::move(*v));
  }
  if (!part.empty()) co_await out.send(std::move(part));
  out.close();
}

template <class T>
task<void> unique_loop(chan<T> in, chan<T> out) {
  std::optional<T> last;
  for (;;) {
    std::optional<T> v = co_await in.recv();
    if (!v) break;
    if (last && *last == *v) continue;
    last = *v;
    if (!co_await out.send(std::move(*v))) co_return;
  }
  out.close();
}

template <class T, class R>
task<void> onto_loop(chan<T> ch, R range, bool close) {
  for (auto&& x : range) {
    std::optional<T> item;
    if constexpr (std::ranges::view<R>)
      item.emplace(x);  // a view may refer to the caller's data: copy
    else
      item.emplace(std::move(x));  // our own copy of the container
    if (!co_await ch.send(std::move(*item))) break;
  }
  if (close) ch.close();
}

// ---- pipelines ----

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

template <class T, class B>
struct pipeline_job {
  T v;
  chan<B> p;  // one slot: the worker puts this job's batch here
};

// Reads `from`, hands each value to a worker with a result slot, and queues
// the slot for the collector in input order.
template <class T, class B>
task<void> pipeline_reader(chan<T> from, chan<pipeline_job<T, B>> jobs, chan<chan<B>> results,
                           chan<chan<B>> spare) {
  for (;;) {
    std::optional<T> v = co_await from.recv();
    if (!v) break;
    std::optional<chan<B>> p = spare.try_recv();
    if (!p) p.emplace(std::size_t{1});
    // Built before the co_await: GCC 12 destroys a braced aggregate temporary
    // inside a co_await expression twice (see the design note).
    pipeline_job<T, B> job{std::move(*v), *p};
    if (!co_await jobs.send(std::move(job))) break;
    if (!co_await results.send(std::move(*p))) break;  // the collector stopped: to is closed
  }
  // Every slot is queued before the close, so the collector sees them all.
  jobs.close();
  results.close();
}

// Runs the transform on the worker's loop thread (pipeline).
template <class U, class B, class F, class T>
task<void> pipeline_worker(std::shared_ptr<F> f, chan<pipeline_job<T, B>> jobs) {
  using X = typename transform_result<F, T>::type;
  for (;;) {
    std::optional<pipeline_job<T, B>> j = co_await jobs.recv();
    if (!j) co_return;
    B b{};
    try {
      if constexpr (is_task<std::decay_t<std::invoke_result_t<F&, T>>>::value) {
        X x = co_await (*f)(std::move(j->v));
        b = make_batch<U>(std::move(x));
      } else {
        b = make_batch<U>((*f)(std::move(j->v)));
      }
    } catch (...) {
      report_exception(std::current_exception());  // no output for this value
    }
    j->p.try_send(std::move(b));  // the slot is empty and has room: never refused
  }
}

// Runs the transform on the blocking pool, one job at a time (pipeline_blocking).
template <class U, class B, class F, class T>
task<void> pipeline_blocking_worker(std::shared_ptr<F> f, chan<pipeline_job<T, B>> jobs) {
  for (;;) {
    std::optional<pipeline_job<T, B>> j = co_await jobs.recv();
    if (!j) co_return;
    // Built before the co_await (GCC 12, LANDSCAPE.md §3.8); owns what it uses.
    auto work = [f, v = std::move(j->v)]() mutable { return make_batch<U>((*f)(std::move(v))); };
    chan<B> done = conch::thread(std::move(work));
    std::optional<B> b = co_await done.recv();  // nullopt: f threw (already reported)
    j->p.try_send(b ? std::move(*b) : B{});
  }
}

// Delivers each job's batch to `to`, in input order.
template <class U, class B>
task<void> pipeline_collector(chan<chan<B>> results, chan<chan<B>> spare, chan<U> to, bool close) {
  for (;;) {
    std::optional<chan<B>> p = co_await results.recv();
    if (!p) break;
    std::optional<B> b = co_await p->recv();
    bool open = true;
    if (b) {
      if constexpr (is_optional<B>::value) {
        if (*b) open = co_await to.send(std::move(**b));
      } else {
        for (U& u : *b) {
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

template <bool Blocking, class U, class F, class T>
chan<unit> start_pipeline(std::size_t n, chan<U> to, F f, chan<T> from, bool close) {
  using X = typename transform_result<F, T>::type;
  static_assert(out_kind<U, X>() >= 0,
                "pipeline: f(T) must return a U, a std::optional<U>, a range of U, or (pipeline "
                "only) a conch::task of one of these");
  using B = batch_t<U, X>;
  CONCH_CHECK(n > 0, "pipeline needs at least one worker");
  chan<pipeline_job<T, B>> jobs(n);
  chan<chan<B>> results(n);
  chan<chan<B>> spare(n + 2);  // at most n + 2 slots are ever alive
  auto fp = std::make_shared<F>(std::move(f));
  for (std::size_t i = 0; i < n; ++i) {
    if constexpr (Blocking)
      go(pipeline_blocking_worker<U, B, F, T>(fp, jobs));
    else
      go(pipeline_worker<U, B, F, T>(fp, jobs));
  }
  go(pipeline_reader<T, B>(std::move(from), jobs, results, spare));
  return go(pipeline_collector<U, B>(std::move(results), std::move(spare), std::move(to), close));
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

}  // namespace detail

// ---- moving values between channels ----

/// Takes every value from `from` and sends it to `to` (core.async pipe).
/// When `from` closes, `to` is closed if `close` (the default). If `to` is
/// closed, pipe stops taking from `from`. Returns `to`. Starts a go block:
/// call on a runtime thread.
template <class T>
chan<T> pipe(chan<T> from, chan<T> to, bool close = true) {
  go(detail::pipe_loop<T>(std::move(from), to, close));
  return to;
}

/// A channel of f(v) for every value v of `in`, closed when `in` closes
/// (core.async map with one channel). If f throws, that value is skipped
/// (the exception goes to the runtime's error handler). Stops reading `in`
/// if the result channel is closed. Output buffered by `out_buf`
/// (unbuffered by default). Starts a go block: call on a runtime thread.
template <class F, class T>
  requires std::is_invocable_v<F&, T>
auto map(F f, chan<T> in, buffer out_buf = buffer::fixed(0)) {
  using R = std::decay_t<std::invoke_result_t<F&, T>>;
  chan<R> out(out_buf);
  go(detail::map_loop<F, T, R>(std::move(f), std::move(in), out));
  return out;
}

/// A channel of f(a, b, c...) applied to the first values of each source,
/// then the second values, and so on (core.async map with several
/// channels). It closes as soon as any source closes; values taken from the
/// other sources in that round are dropped. Starts a go block: call on a
/// runtime thread.
template <class F, class A, class B, class... Cs>
  requires std::is_invocable_v<F&, A, B, Cs...>
auto map(F f, chan<A> a, chan<B> b, chan<Cs>... cs) {
  using R = std::decay_t<std::invoke_result_t<F&, A, B, Cs...>>;
  chan<R> out;
  go(detail::map_n_loop<F, R, A, B, Cs...>(std::move(f), out,
                                            std::tuple<chan<A>, chan<B>, chan<Cs>...>(a, b, cs...)));
  return out;
}

/// A channel of the values v of `in` for which pred(v) is true, closed when
/// `in` closes (core.async filter<). A throwing pred skips the value.
/// Starts a go block: call on a runtime thread.
template <class P, class T>
  requires std::is_invocable_r_v<bool, P&, const T&>
chan<T> filter(P pred, chan<T> in, buffer out_buf = buffer::fixed(0)) {
  chan<T> out(out_buf);
  go(detail::filter_loop<P, T>(std::move(pred), std::move(in), out, true));
  return out;
}

/// A channel of the values v of `in` for which pred(v) is false, closed when
/// `in` closes (core.async remove<). Starts a go block: call on a runtime
/// thread.
template <class P, class T>
  requires std::is_invocable_r_v<bool, P&, const T&>
chan<T> remove(P pred, chan<T> in, buffer out_buf = buffer::fixed(0)) {
  chan<T> out(out_buf);
  go(detail::filter_loop<P, T>(std::move(pred), std::move(in), out, false));
  return out;
}

/// A channel of every element of f(v), for each value v of `in`, in order;
/// f returns a range (core.async mapcat<). Closes when `in` closes. Starts a
/// go block: call on a runtime thread.
template <class F, class T>
  requires std::is_invocable_v<F&, T> && std::ranges::input_range<std::invoke_result_t<F&, T>>
auto mapcat(F f, chan<T> in, buffer out_buf = buffer::fixed(0)) {
  using U = std::ranges::range_value_t<std::decay_t<std::invoke_result_t<F&, T>>>;
  chan<U> out(out_buf);
  go(detail::mapcat_loop<F, T, U>(std::move(f), std::move(in), out));
  return out;
}

/// A channel of at most the first n values of `in` (core.async take). It
/// closes after n values or when `in` closes; `in` is never closed and
/// values after the first n stay in it. Starts a go block: call on a
/// runtime thread.
template <class T>
chan<T> take(std::size_t n, chan<T> in, buffer out_buf = buffer::fixed(0)) {
  chan<T> out(out_buf);
  go(detail::take_loop<T>(n, std::move(in), out));
  return out;
}

/// A channel of every value of every source, in the order they are taken
/// (random among sources ready together); it closes once all sources have
/// closed (core.async merge). With no sources it is closed at once. Starts a
/// go block: call on a runtime thread.
template <class T>
chan<T> merge(std::vector<chan<T>> ins, buffer out_buf = buffer::fixed(0)) {
  chan<T> out(out_buf);
  go(detail::merge_loop<T>(std::move(ins), out));
  return out;
}

/// Two channels: the values of `in` for which pred is true, and those for
/// which it is false (core.async split). Both close when `in` closes. If one
/// of them is closed by its consumer, its values are dropped; when both are,
/// split stops reading `in` (core.async stops at the first refused value and
/// leaves the other open). Starts a go block: call on a runtime thread.
template <class P, class T>
  requires std::is_invocable_r_v<bool, P&, const T&>
std::pair<chan<T>, chan<T>> split(P pred, chan<T> in, buffer true_buf = buffer::fixed(0),
                                  buffer false_buf = buffer::fixed(0)) {
  chan<T> yes(true_buf);
  chan<T> no(false_buf);
  go(detail::split_loop<P, T>(std::move(pred), std::move(in), yes, no));
  return {yes, no};
}

/// A channel of vectors of n consecutive values of `in`; the last one may be
/// shorter if `in` closes mid-way (core.async partition). n must be at
/// least 1. Starts a go block: call on a runtime thread.
template <class T>
chan<std::vector<T>> partition(std::size_t n, chan<T> in, buffer out_buf = buffer::fixed(0)) {
  CONCH_CHECK(n > 0, "partition needs n >= 1");
  chan<std::vector<T>> out(out_buf);
  go(detail::partition_loop<T>(n, std::move(in), out));
  return out;
}

/// A channel of vectors of consecutive values of `in` with equal f(v); a new
/// vector starts whenever f(v) differs from the previous value's
/// (core.async partition-by). Starts a go block: call on a runtime thread.
template <class F, class T>
  requires std::is_invocable_v<F&, const T&>
chan<std::vector<T>> partition_by(F f, chan<T> in, buffer out_buf = buffer::fixed(0)) {
  chan<std::vector<T>> out(out_buf);
  go(detail::partition_by_loop<F, T>(std::move(f), std::move(in), out));
  return out;
}

/// A channel of the values of `in` with consecutive duplicates dropped
/// (core.async unique). T must be copyable and equality-comparable. Starts a
/// go block: call on a runtime thread.
template <class T>
chan<T> unique(chan<T> in, buffer out_buf = buffer::fixed(0)) {
  chan<T> out(out_buf);
  go(detail::unique_loop<T>(std::move(in), out));
  return out;
}

// ---- collections and channels ----

/// Sends every element of `range` to `ch`, in order, then closes `ch` if
/// `close` (the default) (core.async onto-chan!). The range is copied (or
/// moved) into the go block; a view is iterated as is, so what it refers
/// to must outlive the copying. Stops early if `ch` is closed. Returns a
/// channel that gets unit{} and closes once the elements are sent. Starts a
/// go block: call on a runtime thread.
template <class T, std::ranges::input_range R>
chan<unit> onto_chan(chan<T> ch, R&& range, bool close = true) {
  return go(detail::onto_loop<T, std::decay_t<R>>(std::move(ch), std::forward<R>(range), close));
}

/// A channel holding the elements of `range`, closed after the last one
/// (core.async to-chan!). Its buffer holds up to 100 elements (the whole
/// range if smaller and sized). Starts a go block: call on a runtime thread.
template <std::ranges::input_range R>
auto to_chan(R&& range) {
  using T = std::ranges::range_value_t<std::decay_t<R>>;
  std::size_t cap = 0;
  if constexpr (std::ranges::sized_range<R>)
    cap = std::min<std::size_t>(100, static_cast<std::size_t>(std::ranges::size(range)));
  chan<T> ch(cap);
  onto_chan(ch, std::forward<R>(range), true);
  return ch;
}

/// co_await -> f(...f(f(init, v1), v2)..., vn) over every value of `ch`
/// until it closes; init if it closes with no values (f is not called)
/// (core.async reduce). An exception from f propagates to the awaiter (the
/// rest of `ch` is left unread). Lazy like every task: nothing is read until
/// it is awaited. The awaiter resumes on the loop thread it awaited on.
template <class F, class R, class T>
  requires std::is_invocable_r_v<R, F&, R, T>
task<R> reduce(F f, R init, chan<T> ch) {
  for (;;) {
    std::optional<T> v = co_await ch.recv();
    if (!v) break;
    init = std::invoke(f, std::move(init), std::move(*v));
  }
  co_return init;
}

/// co_await -> `c` with every value of `ch` appended (c.insert(c.end(), v))
/// once `ch` closes (core.async into). Works for vectors, deques, lists,
/// sets, strings. Lazy; the awaiter resumes on the loop thread it awaited on.
template <class C, class T>
task<C> into(C c, chan<T> ch) {
  for (;;) {
    std::optional<T> v = co_await ch.recv();
    if (!v) break;
    c.insert(c.end(), std::move(*v));
  }
  co_return c;
}

// ---- pipelines ----

/// Takes values from `from`, runs f on each with parallelism n, and sends
/// the results to `to` in input order (core.async pipeline). f(v) may return
/// a U (one output), a std::optional<U> (none or one), a range of U (any
/// number, like a mapcat transducer), or a conch::task of one of these (the
/// worker awaits it). f runs in n go blocks on the runtime's loop threads, so
/// it must be safe to call concurrently and must not block the thread (use
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

/// Like pipeline, for blocking transforms (I/O, long computations): each
/// call of f runs on the runtime's blocking pool (conch::thread), at most n
/// at a time, so the loop threads stay free. f must not return a task.
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
  for (std::size_t i = 0; i < n; ++i) go(detail::async_worker<T, U, F>(afp, jobs));
  go(detail::async_reader<T, U>(std::move(from), jobs, results));
  return go(detail::async_collector<U>(std::move(results), std::move(to), close));
}

}  // namespace conch
