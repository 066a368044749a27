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

template <class X>
struct is_optional : std::false_type {};
template <class V>
struct is_optional<std::optional<V>> : std::true_type {};

}  // namespace conch::detail
