// tests/channels/go_test.cpp
// go (all overloads), thread, timeout, error reporting, and the GCC 12
// capturing-lambda pitfall (LANDSCAPE.md §3.8).
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "tests/support/test_support.hpp"

using namespace std::chrono_literals;
using conch::chan;
using conch::task;
using conch::unit;

namespace {
task<int> square(int x) { co_return x * x; }
task<void> nothing() { co_return; }
}  // namespace

TEST_CASE("go returns a channel that yields the result once, then closes", "[go]") {
  conch::test::run_on(1, []() -> task<void> {
    chan<int> r = conch::go(square(9));
    CHECK(co_await r.recv() == 81);
    CHECK_FALSE((co_await r.recv()).has_value());
    CHECK(r.closed());
    chan<unit> done = conch::go(nothing());
    CHECK((co_await done.recv()).has_value());
    CHECK_FALSE((co_await done.recv()).has_value());
  }());
}

TEST_CASE("go(f, args...) keeps a capturing lambda and its arguments alive", "[go][lifetime]") {
  auto v = conch::test::run_on(1, []() -> task<std::string> {
    chan<std::string> r;
    {
      std::string prefix(100, 'p');  // heap-allocated: ASan catches a dangling capture
      auto f = [prefix](std::string suffix) -> task<std::string> {
        co_await conch::sleep(2ms);  // suspends: the caller's scope is gone by now
        co_return prefix.substr(0, 3) + suffix;
      };
      r = conch::go(f, std::string(50, 's'));
    }
    co_return *(co_await r.recv());
  }());
  CHECK(v == "ppp" + std::string(50, 's'));
}

TEST_CASE("a capturing lambda built next to co_await is safe when built first", "[go][gcc12]") {
  // GCC 12 double-frees when a capturing lambda is created inside the co_await
  // expression itself; conch's own code builds lambdas first, and go() copies
  // them into the frame. This pattern must work and be ASan-clean.
  auto v = conch::test::run_on(1, []() -> task<int> {
    int base = 40;
    auto f = [base](int d) -> task<int> { co_return base + d; };
    auto ch = conch::go(f, 2);
    co_return *(co_await ch.recv());
  }());
  CHECK(v == 42);
}

TEST_CASE("an exception escaping a go block is reported and the channel closes empty", "[go][errors]") {
  std::mutex mu;
  std::vector<std::string> reported;
  conch::runtime rt({.threads = 2, .on_error = [&](std::exception_ptr e) {
                       try {
                         std::rethrow_exception(e);
                       } catch (const std::exception& ex) {
                         std::lock_guard lk(mu);
                         reported.push_back(ex.what());
                       }
                     }});
  bool closed_empty = rt.block_on([]() -> task<bool> {
    auto r = conch::go([]() -> task<int> {
      co_await conch::sleep(1ms);
      throw std::runtime_error("escaped");
    });
    co_return !(co_await r.recv()).has_value();
  }());
  CHECK(closed_empty);
  std::lock_guard lk(mu);
  REQUIRE(reported.size() == 1);
  CHECK(reported[0] == "escaped");
}

TEST_CASE("thread runs blocking work off the loops and delivers its result", "[go][thread]") {
  auto r = conch::test::run_on(1, []() -> task<std::pair<bool, int>> {
    auto loop_thread = std::this_thread::get_id();
    auto ch = conch::thread([loop_thread] {
      std::this_thread::sleep_for(10ms);  // would stall the loop if run there
      return std::this_thread::get_id() != loop_thread ? 5 : -1;
    });
    // The loop keeps running other coroutines meanwhile.
    co_await conch::sleep(1ms);
    auto v = co_await ch.recv();
    auto vd = co_await conch::thread([] {}).recv();
    co_return std::pair{vd.has_value(), *v};
  }());
  CHECK(r.first);
  CHECK(r.second == 5);
}

TEST_CASE("thread jobs submitted together all run at once, also when a pool thread is idle", "[go][thread]") {
  // Each round's four jobs wait for one another: they finish only if the
  // pool gives each its own thread. A fresh runtime per round whose pool has
  // one idle thread (from a first job) when the four arrive: the pool once
  // counted that one waking thread for every later submission and started
  // no others, so the round hung.
  constexpr int kJobs = 4, kRounds = 50;
  int done = 0;
  for (int round = 0; round < kRounds; ++round) {
    bool all = conch::test::run_on(1, []() -> task<bool> {
      co_await conch::thread([] {}).recv();  // the pool now has one idle thread
      auto arrived = std::make_shared<std::atomic<int>>(0);
      std::vector<chan<bool>> results;
      for (int i = 0; i < kJobs; ++i) {
        results.push_back(conch::thread([arrived] {
          ++*arrived;
          auto give_up = std::chrono::steady_clock::now() + 10s;
          while (arrived->load() < kJobs && std::chrono::steady_clock::now() < give_up) {
            std::this_thread::sleep_for(50us);
          }
          return arrived->load() == kJobs;
        }));
      }
      bool ok = true;
      for (auto& r : results) ok = (co_await r.recv()).value_or(false) && ok;
      co_return ok;
    }());
    if (!all) break;
    ++done;
  }
  CHECK(done == kRounds);
}

TEST_CASE("an exception in a thread job closes its channel empty", "[go][thread][errors]") {
  std::atomic<int> reports{0};
  conch::runtime rt({.threads = 1, .on_error = [&](std::exception_ptr) { ++reports; }});
  bool empty = rt.block_on([]() -> task<bool> {
    auto ch = conch::thread([]() -> int { throw std::logic_error("no"); });
    co_return !(co_await ch.recv()).has_value();
  }());
  CHECK(empty);
  CHECK(reports == 1);
}

TEST_CASE("timeout channels close after their duration, each one private", "[timer]") {
  conch::test::run_on(1, []() -> task<void> {
    auto t0 = std::chrono::steady_clock::now();
    auto a = conch::timeout(20ms);
    auto b = conch::timeout(40ms);
    CHECK_FALSE(a == b);
    CHECK_FALSE((co_await a.recv()).has_value());
    CHECK(std::chrono::steady_clock::now() - t0 >= 20ms);
    CHECK_FALSE(b.closed());
    co_await b.recv();
    CHECK(std::chrono::steady_clock::now() - t0 >= 40ms);
  }());
}

TEST_CASE("ten thousand concurrent timers all fire, in deadline order per loop", "[timer]") {
  auto fired = conch::test::run_on(2, []() -> task<int> {
    chan<int> done(10000);
    for (int i = 0; i < 10000; ++i)
      conch::go([](chan<int> d, int k) -> task<void> {
        co_await conch::sleep(std::chrono::milliseconds(1 + k % 20));
        co_await d.send(k);
      }, done, i);
    int n = 0;
    while (n < 10000) {
      auto r = co_await conch::select(conch::recv(done), conch::recv(conch::timeout(10s)));
      if (r.index() == 1) break;
      ++n;
    }
    co_return n;
  }());
  CHECK(fired == 10000);
}

TEST_CASE("a lone go block behind a busy owner is started by an idle loop", "[go][threads]") {
  // One go block wakes no one (its owner usually takes it at once); when the
  // owner never yields, a sleeping loop must still find it.
  auto result = conch::test::run_on(2, []() -> task<bool> {
    co_await conch::sleep(5ms);  // the other loop is asleep now
    auto home = std::this_thread::get_id();
    chan<std::thread::id> ran(1);
    conch::go([](chan<std::thread::id> r) -> task<void> {
      co_await r.send(std::this_thread::get_id());
    }, ran);
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (ran.size() < 1 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::yield();  // busy: this loop does not run its queue
    auto id = ran.try_recv();
    co_return id.has_value() && *id != home;
  }());
  CHECK(result);
}

TEST_CASE("an idle loop takes go blocks that have not started", "[go][threads]") {
  // The spawning loop stays busy (it never yields), so the go blocks it queued
  // can only run if the other, idle loop takes them.
  auto result = conch::test::run_on(2, []() -> task<std::pair<int, bool>> {
    co_await conch::sleep(5ms);  // the other loop is asleep now
    auto home = std::this_thread::get_id();
    chan<std::thread::id> ran(4);
    for (int i = 0; i < 4; ++i)
      conch::go([](chan<std::thread::id> r) -> task<void> {
        co_await r.send(std::this_thread::get_id());
      }, ran);
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (ran.size() < 4 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::yield();  // busy: this loop does not run its queue
    int elsewhere = 0;
    while (auto id = ran.try_recv()) elsewhere += *id != home;
    co_return std::pair{elsewhere, true};
  }());
  CHECK(result.first == 4);
}
