// conch/chan/transform.hpp
// Channels computed from a channel: map, filter, remove, mapcat, take, partition, partition_by, unique.
//
//   conch::chan<int> nums = conch::to_chan(std::vector{1, 2, 3, 4, 5});
//   conch::chan<int> odd = conch::filter([](int x) { return x % 2 == 1; }, nums);
//   conch::chan<int> sq = conch::map([](int x) { return x * x; }, odd);   // 1 9 25
//
// Each function starts one go block and returns its output channel; the
// rules they share (closing, stopping, exceptions, buffers) are in
// conch/chan/ops.hpp.
#pragma once

#include <cstddef>
#include <ranges>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "conch/chan/buffer.hpp"
#include "conch/chan/chan.hpp"
#include "conch/chan/detail/transform_loops.hpp"
#include "conch/chan/go.hpp"
#include "conch/core/check.hpp"

namespace conch {

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
/// `in` closes (core.async filter<). pred may return anything a condition
/// accepts (bool, int, a pointer), as with std::find_if. A throwing pred
/// skips the value.
/// Starts a go block: call on a runtime thread.
template <class P, class T>
  requires detail::predicate_on<P, T>
chan<T> filter(P pred, chan<T> in, buffer out_buf = buffer::fixed(0)) {
  chan<T> out(out_buf);
  go(detail::filter_loop<P, T>(std::move(pred), std::move(in), out, true));
  return out;
}

/// A channel of the values v of `in` for which pred(v) is false, closed when
/// `in` closes (core.async remove<). Starts a go block: call on a runtime
/// thread.
template <class P, class T>
  requires detail::predicate_on<P, T>
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

}  // namespace conch
