// tests/core/teardown_test.cpp
// Destroying a runtime frees everything it holds (LANDSCAPE.md §3.7): parked
// go blocks, never-started go blocks, sleeping coroutines, pending timeouts,
// selects, and values handed to a coroutine that never resumed. Run under
// ASan in CI, where a leak or use-after-free fails the test.
#include <catch2/catch.hpp>

#include <atomic>
#include <memory>
#include <thread>

#include "tests/support/test_support.hpp"

using namespace std::chrono_literals;
using conch::chan;
using conch::task;

namespace {
struct tracker {
  std::shared_ptr<int> token;
};
}  // namespace

TEST_CASE("destroying a runtime destroys parked and unstarted coroutines", "[runtime][teardown]") {
  using counter = std::shared_ptr<std::atomic<int>>;
  auto token = std::make_shared<std::atomic<int>>(0);
  chan<int> shared_ch;  // outlives the runtime; waiters must be unlinked from it
  {
    conch::runtime rt({.threads = 2});
    rt.block_on([](counter tok, chan<int> sc) -> task<void> {
      for (int i = 0; i < 100; ++i) {
        conch::go([](counter t, chan<int> c) -> task<void> {
          co_await c.recv();  // parks forever
          *t += 1;
        }, tok, sc);
        conch::go([](counter t) -> task<void> {
          co_await conch::sleep(1h);
          *t += 1;
        }, tok);
        conch::go([](counter t, chan<int> c) -> task<void> {
          chan<int> never_read;  // its send case parks too
          auto r = co_await conch::select(conch::recv(c), conch::send(never_read, 5),
                                          conch::recv(conch::timeout(1h)));
          (void)r;
          *t += 1;
        }, tok, sc);
        chan<std::shared_ptr<int>> own(0);
        conch::go([](chan<std::shared_ptr<int>> c) -> task<void> { co_await c.send(nullptr); }, own);
      }
      co_await conch::sleep(10ms);
      for (int i = 0; i < 10; ++i)  // queued at the very end: may never start
        conch::go([](counter t) -> task<void> {
          *t += 1;
          co_return;
        }, tok);
    }(token, shared_ch));
    CHECK(token.use_count() > 1);
  }
  // Every frame holding a copy of the token is gone.
  CHECK(token.use_count() == 1);
  CHECK(*token <= 10);
  // The channel has no waiters left: nobody receives, so try_send fails.
  CHECK_FALSE(shared_ch.try_send(1));
}

TEST_CASE("a value handed to a coroutine that never resumes is destroyed", "[runtime][teardown]") {
  auto token = std::make_shared<int>(0);
  chan<std::shared_ptr<int>> ch;
  {
    conch::runtime rt({.threads = 1});
    rt.block_on([](chan<std::shared_ptr<int>> c) -> task<void> {
      conch::go([](chan<std::shared_ptr<int>> cc) -> task<void> {
        auto v = co_await cc.recv();
        co_await conch::sleep(1h);  // holds v while parked
      }, c);
      co_return;
    }(ch));
    // A plain thread hands the value over; the receiver is queued to resume,
    // but the runtime may be destroyed first.
    ch.send_blocking(token);
  }
  CHECK(token.use_count() == 1);
}

TEST_CASE("a runtime can be created and destroyed many times", "[runtime][teardown]") {
  for (int i = 0; i < 50; ++i) {
    conch::runtime rt({.threads = 2});
    int v = rt.block_on([](int k) -> task<int> {
      auto r = conch::go([](int x) -> task<int> { co_return x + 1; }, k);
      co_return *(co_await r.recv());
    }(i));
    CHECK(v == i + 1);
  }
}

TEST_CASE("an idle runtime sleeps instead of spinning", "[runtime]") {
  conch::runtime rt({.threads = 2});
  rt.block_on([]() -> task<void> { co_return; }());
  std::clock_t c0 = std::clock();  // process CPU time
  std::this_thread::sleep_for(300ms);
  double cpu_ms = 1000.0 * static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
  CHECK(cpu_ms < 100.0);  // two spinning threads would burn ~600 ms
}
