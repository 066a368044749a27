// conch/core/check.hpp
// CONCH_CHECK: abort with file:line and a message when a contract is violated.
//
// Contract violations (select with no cases, recv_blocking on a runtime
// thread, go() outside a runtime) are programming errors, not outcomes a
// caller can handle, so they abort loudly instead of returning a Status.
#pragma once

namespace conch::detail {
[[noreturn]] void check_failed(const char* file, int line, const char* cond,
                               const char* message) noexcept;
}  // namespace conch::detail

/// Aborts the process with `file:line: check failed: cond: message` unless
/// `cond` holds. Always on (these checks guard memory safety), cheap.
#define CONCH_CHECK(cond, message)                                        \
  do {                                                                    \
    if (__builtin_expect(!(cond), 0))                                     \
      ::conch::detail::check_failed(__FILE__, __LINE__, #cond, message);  \
  } while (0)
