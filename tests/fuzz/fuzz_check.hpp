// tests/fuzz/fuzz_check.hpp
// FUZZ_CHECK: the oracle's assertion in a fuzz target, active in every build type.
#pragma once

#include <cstdio>
#include <cstdlib>

/// Aborts with the failed condition and a message when `cond` is false: a
/// finding under libFuzzer (which saves the input), a failed CTest in the
/// replay driver. Unlike assert, not compiled out under NDEBUG.
#define FUZZ_CHECK(cond, msg)                                                        \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed: %s\n", __FILE__, __LINE__, \
                   #cond, msg);                                                      \
      std::abort();                                                                  \
    }                                                                                \
  } while (0)
