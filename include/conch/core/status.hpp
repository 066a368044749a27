// conch/core/status.hpp
// Status helpers: early-return macros that Abseil 20220623 does not ship.
//
//   absl::StatusOr<server> open(std::string_view a) {
//     CONCH_ASSIGN_OR_RETURN(auto addr, parse_address(a));
//     CONCH_RETURN_IF_ERROR(bind_it(addr));
//     ...
//   }
#pragma once

#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace conch {

/// Converts a std::string_view to the absl::string_view this Abseil build
/// uses (Debian's Abseil does not alias it to std::string_view).
inline absl::string_view to_absl(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace conch

#define CONCH_STATUS_CONCAT_INNER_(a, b) a##b
#define CONCH_STATUS_CONCAT_(a, b) CONCH_STATUS_CONCAT_INNER_(a, b)

/// Returns the status from the enclosing function if `expr` is not OK.
#define CONCH_RETURN_IF_ERROR(expr)                        \
  do {                                                     \
    ::absl::Status conch_status_ = (expr);                 \
    if (!conch_status_.ok()) return conch_status_;         \
  } while (0)

/// Same, for coroutines: uses co_return.
#define CONCH_CO_RETURN_IF_ERROR(expr)                     \
  do {                                                     \
    ::absl::Status conch_status_ = (expr);                 \
    if (!conch_status_.ok()) co_return conch_status_;      \
  } while (0)

/// `CONCH_ASSIGN_OR_RETURN(auto x, f());` declares x from an OK StatusOr or
/// returns its status.
#define CONCH_ASSIGN_OR_RETURN(lhs, expr)                                      \
  CONCH_ASSIGN_OR_RETURN_IMPL_(CONCH_STATUS_CONCAT_(conch_sor_, __LINE__), lhs, \
                               expr, return)
#define CONCH_CO_ASSIGN_OR_RETURN(lhs, expr)                                   \
  CONCH_ASSIGN_OR_RETURN_IMPL_(CONCH_STATUS_CONCAT_(conch_sor_, __LINE__), lhs, \
                               expr, co_return)
#define CONCH_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr, ret) \
  auto tmp = (expr);                                     \
  if (!tmp.ok()) ret tmp.status();                       \
  lhs = std::move(tmp).value()
