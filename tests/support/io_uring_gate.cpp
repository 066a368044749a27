// tests/support/io_uring_gate.cpp
// Runs a test command only if io_uring is usable; otherwise exits 77 (skipped) with the reason.
//
//   conch_io_uring_gate <program> [args...]
//
// For CTest commands that are not conch test binaries and would abort
// without io_uring: the stock lua5.4 loading conch.so, say. The probe is
// conch::test::require_io_uring(), the one the Catch suites use.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "tests/support/test_support.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s <program> [args...]\n", argv[0]);
    return 2;
  }
  conch::test::require_io_uring();
  ::execvp(argv[1], argv + 1);
  std::fprintf(stderr, "%s: cannot run %s: %s\n", argv[0], argv[1], std::strerror(errno));
  return 127;
}
