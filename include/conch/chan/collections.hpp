// conch/chan/collections.hpp
// Between channels and collections: onto_chan, to_chan, reduce, into.
//
//   conch::chan<int> nums = conch::to_chan(std::vector{1, 2, 3});
//   int sum = co_await conch::reduce(std::plus<>(), 0, nums);            // 6
//   conch::chan<int> more = conch::to_chan(std::vector{4, 5});
//   std::vector<int> v = co_await conch::into(std::vector<int>(), more);  // {4, 5}
//
// onto_chan and to_chan start a go block (call them on a runtime thread);
// reduce and into are lazy tasks that read the channel when awaited.
#pragma once

#include <algorithm>
#include <cstddef>
#include <functional>
#include <optional>
#include <ranges>
#include <type_traits>
#include <utility>

#include "conch/chan/chan.hpp"
#include "conch/chan/go.hpp"
#include "conch/core/task.hpp"

namespace conch {

namespace detail {

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

}  // namespace detail

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

}  // namespace conch
