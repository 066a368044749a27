// tests/support/assertions_listener.cpp
// A Catch2 listener that fails a test case which checked nothing (Catch's --warn NoAssertions).
//
// Catch2 v2 takes one --warn per command line, and conch_test's already says
// NoTests (a mangled test name must fail, not match nothing), so every
// conch_test binary links this instead: a test case that ends without a
// single assertion is reported and the process exits 1. A skipped case
// (conch::test::skip) never gets here: it has exited 77.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <iostream>

namespace {

struct assertions_listener : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;
  void testCaseEnded(const Catch::TestCaseStats& stats) override {
    if (stats.aborting || stats.totals.assertions.total() != 0) return;
    std::cout.flush();
    std::fprintf(stderr, "FAILED: test case \"%s\" made no assertion (it cannot fail)\n",
                 stats.testInfo.name.c_str());
    std::fflush(nullptr);
    std::_Exit(1);
  }
};

}  // namespace

CATCH_REGISTER_LISTENER(assertions_listener)
