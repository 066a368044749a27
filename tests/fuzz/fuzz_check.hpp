// tests/fuzz/fuzz_check.hpp
// FUZZ_CHECK: the oracle's assertion in a fuzz target, active in every build type; fuzz_rng.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

/// A small deterministic generator (splitmix64) for split points and the
/// like: the same input replays the same choices.
struct fuzz_rng {
  std::uint64_t s;
  std::uint64_t next() noexcept {
    std::uint64_t z = (s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
  }
  /// 0..n-1 (0 when n is 0).
  std::size_t below(std::size_t n) noexcept { return n == 0 ? 0 : static_cast<std::size_t>(next() % n); }
};

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
