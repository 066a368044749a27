// tests/support/io_uring_listener.cpp
// A Catch2 listener that skips each test case (exit 77) when io_uring is unavailable.
//
// conch_test(... NEEDS_IO_URING) compiles this file into the test binary, so
// no test case has to ask: before each one starts, the listener calls
// conch::test::require_io_uring(), which probes once per process. CTest runs
// every discovered case in its own process and maps 77 to "skipped"
// (SKIP_RETURN_CODE); a hand-run binary stops at its first case the same way.
#include <catch2/catch.hpp>

#include "tests/support/test_support.hpp"

namespace {

struct io_uring_listener : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;
  void testCaseStarting(const Catch::TestCaseInfo& info) override {
    (void)info;
    conch::test::require_io_uring();
  }
};

}  // namespace

CATCH_REGISTER_LISTENER(io_uring_listener)
