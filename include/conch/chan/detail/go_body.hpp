// conch/chan/detail/go_body.hpp
// The root frames behind go() (internal; not for users).
#pragma once

#include <chrono>
#include <exception>
#include <functional>
#include <type_traits>
#include <utility>

#include "conch/chan/chan.hpp"
#include "conch/core/runtime.hpp"
#include "conch/core/task.hpp"

namespace conch {

namespace detail {

template <class T>
root go_body(task<T> t, chan<T> out) {
  try {
    out.try_send(co_await t);  // capacity 1 and only sender: never refused
  } catch (...) {
    report_exception(std::current_exception());
  }
  out.close();
}

inline root go_body_void(task<void> t, chan<unit> out) {
  try {
    co_await t;
    out.try_send(unit{});
  } catch (...) {
    report_exception(std::current_exception());
  }
  out.close();
}

/// The go block of go(f, args...): f and its arguments are parameters, so
/// they live in this root frame for as long as the task f returns runs (the
/// task may refer to them, e.g. a lambda's captures).
template <class R, class F, class... A>
root go_invoke_body(chan<std::conditional_t<std::is_void_v<R>, unit, R>> out, F f, A... a) {
  try {
    if constexpr (std::is_void_v<R>) {
      co_await std::invoke(f, std::move(a)...);
      out.try_send(unit{});
    } else {
      out.try_send(co_await std::invoke(f, std::move(a)...));
    }
  } catch (...) {
    report_exception(std::current_exception());
  }
  out.close();
}

template <class Fn, class... Args>
using go_task_t = std::invoke_result_t<Fn, Args...>;

}  // namespace detail
}  // namespace conch
