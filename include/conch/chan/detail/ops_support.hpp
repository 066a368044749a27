// conch/chan/detail/ops_support.hpp
// What every combinator's go loop shares: calling user functions (internal).
//
// GCC 12 pitfalls avoided here (LANDSCAPE.md §3.8 and two more found while
// writing this file): no capturing lambda, braced aggregate temporary
// (`send(job{a, b})` destroyed the job twice) or std::initializer_list
// ("array used as initializer") inside a co_await expression; no structured
// binding of a co_await result. Build the value in a named variable first.
//
#pragma once

#include <exception>
#include <functional>
#include <optional>
#include <type_traits>
#include <utility>

#include "conch/core/detail/scheduler.hpp"

namespace conch::detail {

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

/// A predicate on T's values: callable with a const T& and returning
/// anything a condition accepts (bool, int, a pointer, a type with an
/// explicit operator bool), as std::find_if's predicates are.
template <class P, class T>
concept predicate_on = std::is_invocable_v<P&, const T&> &&
                       std::is_constructible_v<bool, std::invoke_result_t<P&, const T&>>;

/// pred(v) as a bool; an exception goes to the runtime's error handler and
/// yields nullopt (the value is skipped).
template <class P, class T>
std::optional<bool> test_reporting(P& pred, const T& v) {
  try {
    return static_cast<bool>(std::invoke(pred, v));
  } catch (...) {
    report_exception(std::current_exception());
    return std::nullopt;
  }
}

template <class X>
struct is_optional : std::false_type {};
template <class V>
struct is_optional<std::optional<V>> : std::true_type {};

}  // namespace conch::detail
