// tests/ops/pipeline_test.cpp
// pipeline, pipeline_blocking, pipeline_async: input order kept with n workers on two threads, result shapes, close flag, stopping, errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

#include "tests/ops/ops_test_support.hpp"

using namespace std::chrono_literals;
using conch::chan;
using conch::task;
using conch::unit;
using conch::ops_test::drain;
using conch::ops_test::iota;
using conch::test::recv_within;
using conch::test::run_on;

namespace {

/// A scrambled delay per value, so that later values often finish first.
std::chrono::microseconds jitter(int x) {
  return std::chrono::microseconds((static_cast<unsigned>(x) * 2654435761u >> 16) % 3000);
}

/// Tracks how many transforms run at once.
struct concurrency {
  std::atomic<int> now{0};
  std::atomic<int> peak{0};
  void enter() {
    int n = ++now;
    int p = peak.load();
    while (n > p && !peak.compare_exchange_weak(p, n)) {
    }
  }
  void leave() { --now; }
};

std::vector<int> times_ten(const std::vector<int>& v) {
  std::vector<int> out;
  for (int x : v) out.push_back(x * 10);
  return out;
}

}  // namespace

TEST_CASE("pipeline keeps input order with 8 workers on two threads", "[ops][pipeline][order]") {
  static concurrency c;
  static std::mutex mu;
  static std::set<std::thread::id> threads;
  run_on(2, []() -> task<void> {
    chan<int> out(4);
    // A task transform: it parks for a scrambled time, so workers finish out of order.
    auto f = [](int x) -> task<int> {
      c.enter();
      {
        std::lock_guard lk(mu);
        threads.insert(std::this_thread::get_id());
      }
      co_await conch::sleep(jitter(x));
      c.leave();
      co_return x * 10;
    };
    chan<unit> done = conch::pipeline(8, out, f, conch::to_chan(iota(300)));
    auto d = co_await drain(out, 20s);
    CHECK(d.closed);
    CHECK(d.values == times_ten(iota(300)));
    CHECK((co_await recv_within(done)).value.has_value());
  }());
  CHECK(c.peak > 1);  // the workers really overlapped
  INFO("loop threads that ran transforms: " << threads.size());
}

TEST_CASE("pipeline keeps input order with CPU-bound transforms of uneven cost", "[ops][pipeline][order]") {
  for (std::size_t n : {1, 2, 4}) {
    run_on(2, [](std::size_t workers) -> task<void> {
      chan<long> out(16);
      auto f = [](int x) {
        // Busy work of very different length per value.
        long acc = 0;
        for (int i = 0; i < (x % 7) * 2000; ++i) acc += i ^ x;
        return static_cast<long>(x) * 1000000 + (acc & 1);
      };
      conch::pipeline(workers, out, f, conch::to_chan(iota(3000)));
      auto d = co_await drain(out, 20s);
      CHECK(d.closed);
      REQUIRE(d.values.size() == 3000);
      bool ordered = true;
      for (std::size_t i = 0; i < d.values.size(); ++i)
        ordered = ordered && d.values[i] / 1000000 == static_cast<long>(i);
      CHECK(ordered);
    }(n));
  }
}

TEST_CASE("pipeline transforms may yield none, one or many outputs", "[ops][pipeline]") {
  run_on(2, []() -> task<void> {
    chan<int> odd_only(4);
    conch::pipeline(
        3, odd_only, [](int x) { return x % 2 ? std::optional<int>(x) : std::nullopt; },
        conch::to_chan(iota(10)));
    auto a = co_await drain(odd_only);
    CHECK(a.values == std::vector{1, 3, 5, 7, 9});

    chan<int> repeated(4);
    conch::pipeline(
        3, repeated, [](int x) { return std::vector<int>(static_cast<std::size_t>(x), x); },
        conch::to_chan(std::vector{2, 0, 3}));
    auto b = co_await drain(repeated);
    CHECK(b.closed);
    CHECK(b.values == std::vector{2, 2, 3, 3, 3});
  }());
}

TEST_CASE("a throwing pipeline transform drops that value only and is reported", "[ops][pipeline][errors]") {
  static std::atomic<int> reported{0};
  reported = 0;
  conch::runtime rt({.threads = 2, .on_error = [](std::exception_ptr) { ++reported; }});
  rt.block_on([]() -> task<void> {
    chan<int> out;
    auto f = [](int x) {
      if (x % 3 == 0) throw std::runtime_error("bad");
      return x;
    };
    conch::pipeline(4, out, f, conch::to_chan(iota(10)));
    auto d = co_await drain(out);
    CHECK(d.closed);
    CHECK(d.values == std::vector{1, 2, 4, 5, 7, 8});
  }());
  CHECK(reported == 4);
}

TEST_CASE("pipeline with close=false leaves `to` open, the returned channel says when it is done",
          "[ops][pipeline][close]") {
  run_on(2, []() -> task<void> {
    chan<int> out(32);
    chan<unit> done = conch::pipeline(2, out, [](int x) { return x + 1; }, conch::to_chan(iota(20)), false);
    CHECK((co_await recv_within(done)).value.has_value());
    CHECK(out.size() == 20);
    CHECK_FALSE(out.closed());
    // Two pipelines can feed one channel this way.
    chan<unit> done2 = conch::pipeline(2, out, [](int x) { return -x; }, conch::to_chan(iota(3)), false);
    CHECK((co_await recv_within(done2)).value.has_value());
    CHECK(out.size() == 23);
  }());
}

TEST_CASE("pipeline stops reading `from` once `to` is closed", "[ops][pipeline][close]") {
  run_on(2, []() -> task<void> {
    chan<int> from(1000);
    for (int i = 0; i < 1000; ++i) co_await from.send(i);
    chan<int> out;
    chan<unit> done = conch::pipeline(2, out, [](int x) { return x; }, from);
    CHECK((co_await recv_within(out)).value == 0);
    out.close();
    auto g = co_await recv_within(done);
    CHECK_FALSE(g.timed_out);  // the pipeline finished
    // and read no more than its documented read-ahead past the close
    CHECK(from.size() >= 1000 - conch::detail::pipeline_read_ahead(2));
    CHECK(from.size() > 0);
    CHECK_FALSE(from.closed());
  }());
}

TEST_CASE("pipeline_blocking runs f off the loop threads and keeps order", "[ops][pipeline_blocking][order]") {
  static concurrency c;
  static std::atomic<int> on_loop{0};
  run_on(2, []() -> task<void> {
    chan<int> out(8);
    auto f = [](int x) {
      c.enter();
      if (conch::detail::current_loop() != nullptr) ++on_loop;
      std::this_thread::sleep_for(jitter(x));
      c.leave();
      return x * 10;
    };
    conch::pipeline_blocking(4, out, f, conch::to_chan(iota(60)));
    auto d = co_await drain(out, 20s);
    CHECK(d.closed);
    CHECK(d.values == times_ten(iota(60)));
  }());
  CHECK(on_loop == 0);
  CHECK(c.peak > 1);
  CHECK(c.peak <= 4);
}

TEST_CASE("pipeline_blocking reports a throwing f and goes on", "[ops][pipeline_blocking][errors]") {
  static std::atomic<int> reported{0};
  reported = 0;
  conch::runtime rt({.threads = 2, .on_error = [](std::exception_ptr) { ++reported; }});
  rt.block_on([]() -> task<void> {
    chan<int> out;
    auto f = [](int x) {
      if (x == 1) throw std::runtime_error("one");
      return x;
    };
    conch::pipeline_blocking(2, out, f, conch::to_chan(iota(4)));
    auto d = co_await drain(out);
    CHECK(d.values == std::vector{0, 2, 3});
  }());
  CHECK(reported == 1);
}

namespace {

/// An asynchronous operation: after a scrambled delay, sends x and x+1000
/// to res, then closes it.
task<void> slow_pair(int x, chan<int> res) {
  co_await conch::sleep(jitter(x));
  co_await res.send(x);
  co_await res.send(x + 1000);
  res.close();
}

}  // namespace

TEST_CASE("pipeline_async keeps order across asynchronous operations", "[ops][pipeline_async][order]") {
  run_on(2, []() -> task<void> {
    chan<int> out(4);
    // af starts the operation and returns at once (core.async style).
    auto af = [](int x, chan<int> res) { conch::go(slow_pair(x, res)); };
    conch::pipeline_async(4, out, af, conch::to_chan(iota(100)));
    auto d = co_await drain(out, 20s);
    CHECK(d.closed);
    std::vector<int> want;
    for (int x : iota(100)) {
      want.push_back(x);
      want.push_back(x + 1000);
    }
    CHECK(d.values == want);
  }());
}

TEST_CASE("pipeline_async with a task-returning af closes each result channel for it",
          "[ops][pipeline_async]") {
  run_on(2, []() -> task<void> {
    chan<int> out(4);
    auto af = [](int x, chan<int> res) -> task<void> {
      co_await conch::sleep(jitter(x));
      co_await res.send(x * 2);  // no close: the worker closes res after the task
    };
    chan<unit> done = conch::pipeline_async(3, out, af, conch::to_chan(iota(30)), false);
    std::vector<int> got;
    for (int i = 0; i < 30; ++i) got.push_back(*(co_await recv_within(out)).value);
    std::vector<int> want;
    for (int x : iota(30)) want.push_back(x * 2);
    CHECK(got == want);
    CHECK((co_await recv_within(done)).value.has_value());
    CHECK_FALSE(out.closed());
  }());
}

TEST_CASE("pipeline_async stops when `to` closes and releases parked operations",
          "[ops][pipeline_async][close]") {
  run_on(2, []() -> task<void> {
    chan<int> from(100);
    for (int i = 0; i < 100; ++i) co_await from.send(i);
    chan<int> out;
    auto af = [](int x, chan<int> res) { conch::go(slow_pair(x, res)); };
    chan<unit> done = conch::pipeline_async(2, out, af, from);
    CHECK((co_await recv_within(out)).value == 0);
    out.close();
    CHECK_FALSE((co_await recv_within(done)).timed_out);
    CHECK(from.size() > 90);
  }());
}
