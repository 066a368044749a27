// tests/channels/regress_catch_co_await_test.cpp
// Regression: CHECK(co_await ...) hung under GCC 12 because Catch repeats the
// expression in unevaluated contexts (tests/support/catch_coro.hpp). With the
// fix force-included, assertions around co_await behave.
#include <catch2/catch.hpp>

#include "tests/support/test_support.hpp"

TEST_CASE("assertions may contain co_await", "[regress][catch]") {
  conch::chan<int> s(conch::buffer::sliding(2));
  conch::test::run_on(1, [](conch::chan<int> c) -> conch::task<void> {
    for (int i = 1; i <= 5; ++i) CHECK(co_await c.send(i));
    CHECK(*co_await c.recv() == 4);
    REQUIRE(*co_await c.recv() == 5);
    CHECK_FALSE(c.try_recv().has_value());
  }(s));
}
