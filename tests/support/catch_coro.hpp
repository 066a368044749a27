// tests/support/catch_coro.hpp
// Makes Catch2 v2 assertions safe to use with co_await under GCC 12.
//
// Catch's INTERNAL_CATCH_TEST repeats the asserted expression twice more,
// unevaluated: inside __builtin_constant_p(...) and in the loop condition
// `while ((void)0, (false) && !!(expr))`. GCC 12 still lowers a co_await in
// those copies into suspension points, and the coroutine hangs at its first
// suspension (see tests/channels/regress_catch_co_await_test.cpp). Every
// test binary force-includes this header (tests/CMakeLists.txt), which
// redefines the macro with the expression written once, so
// `CHECK(co_await ch.recv() == 1)` works as it reads.
#pragma once

#include <catch2/catch.hpp>

#undef CATCH_INTERNAL_IGNORE_BUT_WARN
#define CATCH_INTERNAL_IGNORE_BUT_WARN(...)

#undef INTERNAL_CATCH_TEST
#define INTERNAL_CATCH_TEST(macroName, resultDisposition, ...)                          \
  do {                                                                                  \
    Catch::AssertionHandler catchAssertionHandler(macroName##_catch_sr, CATCH_INTERNAL_LINEINFO, \
                                                  CATCH_INTERNAL_STRINGIFY(__VA_ARGS__),  \
                                                  resultDisposition);                     \
    INTERNAL_CATCH_TRY {                                                                \
      CATCH_INTERNAL_START_WARNINGS_SUPPRESSION                                         \
      CATCH_INTERNAL_SUPPRESS_PARENTHESES_WARNINGS                                      \
      catchAssertionHandler.handleExpr(Catch::Decomposer() <= __VA_ARGS__);             \
      CATCH_INTERNAL_STOP_WARNINGS_SUPPRESSION                                          \
    }                                                                                   \
    INTERNAL_CATCH_CATCH(catchAssertionHandler)                                         \
    INTERNAL_CATCH_REACT(catchAssertionHandler)                                         \
  } while (false)
