// tests/core/task_test.cpp
// task<T>: laziness, values, exceptions, move-only ownership, deep chains.
#include <catch2/catch.hpp>

#include <memory>
#include <stdexcept>
#include <string>

#include "conch/conch.hpp"

using conch::task;

namespace {
task<int> leaf(int v) { co_return v; }
task<int> sum_loop(int n) {
  long s = 0;
  for (int i = 0; i < n; ++i) s += co_await leaf(1);
  co_return static_cast<int>(s);
}
task<int> nested(int depth) {
  if (depth == 0) co_return 0;
  co_return 1 + co_await nested(depth - 1);
}
task<void> thrower() {
  throw std::runtime_error("boom");
  co_return;
}
task<int> catcher() {
  try {
    co_await thrower();
  } catch (const std::runtime_error& e) {
    co_return std::string(e.what()) == "boom" ? 1 : 2;
  }
  co_return 0;
}
}  // namespace

TEST_CASE("a task runs only when awaited, and yields its value", "[task]") {
  bool ran = false;
  // A parameter, not a capture: the closure of an immediately invoked lambda
  // coroutine is gone before the coroutine first runs.
  auto t = [](bool& r) -> task<int> {
    r = true;
    co_return 5;
  }(ran);
  CHECK_FALSE(ran);
  CHECK(conch::run(std::move(t), {.threads = 1}) == 5);
  CHECK(ran);
}

TEST_CASE("exceptions propagate through co_await and block_on", "[task]") {
  CHECK(conch::run(catcher(), {.threads = 1}) == 1);
  CHECK_THROWS_WITH(conch::run(thrower(), {.threads = 1}), "boom");
}

TEST_CASE("a task can return a move-only value", "[task]") {
  auto t = []() -> task<std::unique_ptr<int>> { co_return std::make_unique<int>(9); };
  auto p = conch::run(t(), {.threads = 1});
  REQUIRE(p);
  CHECK(*p == 9);
}

TEST_CASE("a million synchronously completing awaits do not grow the stack", "[task][stack]") {
  CHECK(conch::run(sum_loop(1'000'000), {.threads = 1}) == 1'000'000);
}

TEST_CASE("a million-deep chain of nested awaits does not overflow the stack", "[task][stack]") {
  CHECK(conch::run(nested(1'000'000), {.threads = 1}) == 1'000'000);
}

TEST_CASE("destroying an unstarted task frees its frame without running it", "[task]") {
  auto flag = std::make_shared<int>(0);
  {
    auto t = [](std::shared_ptr<int> f) -> task<void> {
      *f = 1;
      co_return;
    }(flag);
    CHECK(flag.use_count() == 2);
  }
  CHECK(flag.use_count() == 1);
  CHECK(*flag == 0);
}
