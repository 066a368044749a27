// conch/chan/go.hpp
// go, go_on, thread and timeout: the things that return channels.
//
//   conch::chan<int> r = conch::go(compute(7));            // a task
//   auto r2 = conch::go([x](int y) -> conch::task<int> {   // f(args...) -> task
//     co_return x + y; }, 5);                               // (captures are safe)
//   auto r3 = conch::thread([] { return blocking_read(); }); // blocking pool
//   auto r4 = conch::go_on(conch::placement::least_busy(), compute(8));  // side by side
//   co_await conch::select(conch::recv(r), conch::recv(conch::timeout(50ms)));
#pragma once

#include <chrono>
#include <exception>
#include <functional>
#include <type_traits>
#include <utility>

#include "conch/chan/chan.hpp"
#include "conch/chan/detail/go_body.hpp"
#include "conch/core/placement.hpp"
#include "conch/core/runtime.hpp"
#include "conch/core/task.hpp"

namespace conch {

/// Starts `t` as a go block on the current runtime thread's loop (an idle
/// loop may take it first) and returns a channel that receives its result
/// once, then closes (core.async go). If the task throws, the exception goes
/// to the runtime's error handler and the channel closes empty.
/// Must be called on a runtime thread.
template <class T>
chan<T> go(task<T> t) {
  chan<T> out(1);
  detail::spawn_here(detail::go_body<T>(std::move(t), out));
  return out;
}

/// A go block of a task<void>: the channel gets unit{} when the task
/// finishes normally, then closes; it closes empty if the task throws.
inline chan<unit> go(task<void> t) {
  chan<unit> out(1);
  detail::spawn_here(detail::go_body_void(std::move(t), out));
  return out;
}

/// go(f(a...)) where f returns a task<R>; f and a are moved into the go
/// block's frame and live until it ends, so a capturing lambda is safe.
///
/// GCC 12 caveat (a compiler bug, LANDSCAPE.md §3.8): a capturing lambda
/// written inside a co_await expression, as in
/// `co_await go([s](int) -> task<int> {...}, 1).recv()`, has its captures
/// destroyed twice. Name the lambda first (`auto f = [s](...)...;
/// auto r = go(f, 1); co_await r.recv();`). Clang 16 is not affected.
template <class F, class... A>
  requires(!detail::is_task<std::decay_t<F>>::value)
auto go(F&& f, A&&... a) {
  using task_t = detail::go_task_t<std::decay_t<F>&, std::decay_t<A>...>;
  static_assert(detail::is_task<task_t>::value, "go(f, args...) needs f(args...) to return a conch::task");
  using R = typename task_t::value_type;
  chan<std::conditional_t<std::is_void_v<R>, unit, R>> out(1);
  detail::spawn_here(detail::go_invoke_body<R, std::decay_t<F>, std::decay_t<A>...>(
      out, std::forward<F>(f), std::forward<A>(a)...));
  return out;
}

/// Starts `t` as a go block on the loop `where` names (conch/core/placement.hpp)
/// and returns a channel that receives its result once, then closes, as go()
/// does. The go block starts on that loop and stays there: use it for work
/// meant to run side by side (placement::least_busy()) or to keep a partner
/// on the caller's thread (placement::here()). Must be called on a runtime
/// thread.
template <class T>
chan<T> go_on(placement where, task<T> t) {
  chan<T> out(1);
  detail::spawn_placed(where, detail::go_body<T>(std::move(t), out));
  return out;
}

/// go_on of a task<void>: the channel gets unit{}, then closes.
inline chan<unit> go_on(placement where, task<void> t) {
  chan<unit> out(1);
  detail::spawn_placed(where, detail::go_body_void(std::move(t), out));
  return out;
}

/// go_on(where, f(a...)): f and a live in the go block's frame, as for go(f, a...).
template <class F, class... A>
  requires(!detail::is_task<std::decay_t<F>>::value)
auto go_on(placement where, F&& f, A&&... a) {
  using task_t = detail::go_task_t<std::decay_t<F>&, std::decay_t<A>...>;
  static_assert(detail::is_task<task_t>::value, "go_on(where, f, args...) needs f(args...) to return a conch::task");
  using R = typename task_t::value_type;
  chan<std::conditional_t<std::is_void_v<R>, unit, R>> out(1);
  detail::spawn_placed(where, detail::go_invoke_body<R, std::decay_t<F>, std::decay_t<A>...>(
                                  out, std::forward<F>(f), std::forward<A>(a)...));
  return out;
}

/// Runs the blocking callable `f` on the runtime's blocking pool and returns
/// a channel that receives its result once (unit{} for void), then closes.
/// If f throws, the exception goes to the runtime's error handler and the
/// channel closes empty. Must be called on a runtime thread.
template <class F>
auto thread(F&& f) {
  using R0 = std::invoke_result_t<std::decay_t<F>&>;
  using R = std::conditional_t<std::is_void_v<R0>, unit, R0>;
  chan<R> out(1);
  detail::submit_blocking([fn = std::forward<F>(f), out, rt = detail::current_loop()]() mutable {
    try {
      if constexpr (std::is_void_v<R0>) {
        fn();
        out.try_send(unit{});
      } else {
        out.try_send(fn());
      }
    } catch (...) {
      detail::report_exception_from(rt, std::current_exception());
    }
    out.close();
  });
  return out;
}

/// A channel that closes after `d` (core.async timeout): receiving from it
/// parks until then and yields nullopt. Each call makes a new, private
/// channel (never shared between callers, unlike core.async's). Must be
/// called on a runtime thread; the timer runs on that thread's loop.
chan<unit> timeout(std::chrono::nanoseconds d);

}  // namespace conch
