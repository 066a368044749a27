// tests/core/runtime_test.cpp
// runtime: block_on, sleep, threads, teardown.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <thread>

#include "conch/conch.hpp"

using namespace std::chrono_literals;
using conch::task;

TEST_CASE("block_on runs a task on a loop thread, not the caller", "[runtime]") {
  conch::runtime rt({.threads = 2});
  CHECK(rt.threads() == 2);
  auto caller = std::this_thread::get_id();
  auto id = rt.block_on([]() -> task<std::thread::id> { co_return std::this_thread::get_id(); }());
  CHECK(id != caller);
  // The runtime can be used again.
  CHECK(rt.block_on([]() -> task<int> { co_return 3; }()) == 3);
}

TEST_CASE("sleep waits at least its duration and resumes on the same thread", "[runtime][timer]") {
  conch::run(
      []() -> task<void> {
        auto id = std::this_thread::get_id();
        auto t0 = std::chrono::steady_clock::now();
        co_await conch::sleep(20ms);
        CHECK(std::chrono::steady_clock::now() - t0 >= 20ms);
        CHECK(std::this_thread::get_id() == id);
        co_await conch::sleep(0ms);  // a yield
      }(),
      {.threads = 2});
}
