// tests/stress/stress_test.cpp
// Cross-thread stress for the channel core and select (run under TSan in CI):
// nothing lost, nothing duplicated, exactly one commit per select, no lost
// wakeups. Sizes are chosen to finish in seconds on 2 cores, even under TSan.
#include <catch2/catch.hpp>

#include <atomic>
#include <numeric>
#include <thread>

#include "tests/support/test_support.hpp"

using namespace std::chrono_literals;
using conch::chan;
using conch::task;

namespace {
#if defined(__SANITIZE_THREAD__)
constexpr int kScale = 1;
#else
constexpr int kScale = 4;
#endif
}  // namespace

TEST_CASE("many producers and consumers on two threads lose and duplicate nothing", "[stress][chan]") {
  constexpr int producers = 6, consumers = 6, per_producer = 5000 * kScale;
  for (std::size_t cap : {std::size_t{0}, std::size_t{1}, std::size_t{64}}) {
    INFO("capacity " << cap);
    auto seen = conch::test::run_on(2, [](std::size_t c) -> task<std::vector<int>> {
      chan<int> ch(c);
      chan<int> done(producers);
      std::vector<chan<std::vector<int>>> got;
      for (int p = 0; p < producers; ++p)
        conch::go([](chan<int> out, chan<int> d, int base) -> task<void> {
          for (int i = 0; i < per_producer; ++i) co_await out.send(base + i);
          co_await d.send(1);
        }, ch, done, p * per_producer);
      for (int k = 0; k < consumers; ++k)
        got.push_back(conch::go([](chan<int> in) -> task<std::vector<int>> {
          std::vector<int> mine;
          while (auto v = co_await in.recv()) mine.push_back(*v);
          co_return mine;
        }, ch));
      for (int p = 0; p < producers; ++p) co_await done.recv();
      ch.close();
      std::vector<int> all;
      for (auto& g : got) {
        auto part = *(co_await g.recv());
        // Each consumer sees each producer's values in order.
        all.insert(all.end(), part.begin(), part.end());
      }
      co_return all;
    }(cap));
    REQUIRE(seen.size() == static_cast<std::size_t>(producers * per_producer));
    std::sort(seen.begin(), seen.end());
    for (int i = 0; i < producers * per_producer; ++i) REQUIRE(seen[i] == i);
  }
}

TEST_CASE("selects contending from several threads commit exactly once each", "[stress][select]") {
  // Two runtimes (3 loop threads) and plain threads all select over the same
  // channels; every value sent is received exactly once, every select commits
  // exactly one case.
  constexpr int values = 4000 * kScale;
  chan<int> a, b(4), c(1);
  std::atomic<long> received_sum{0};
  std::atomic<int> received{0};
  std::thread plain([&] {
    for (int i = 0; i < values / 4; ++i) {
      int v = values + i;
      // A plain thread has no select; it alternates blocking sends.
      (i % 2 ? a : b).send_blocking(v);
    }
  });
  conch::runtime other({.threads = 1});
  std::thread other_driver([&] {
    other.block_on([](chan<int> x, chan<int> y, chan<int> z) -> task<void> {
      for (int i = 0; i < values / 2; ++i) {
        auto r = co_await conch::select(conch::send(x, i), conch::send(y, i), conch::send(z, i));
        CHECK(std::visit([](bool ok) { return ok; }, r));
      }
    }(a, b, c));
  });
  conch::test::run_on(2, [](chan<int> x, chan<int> y, chan<int> z, std::atomic<long>* sum,
                            std::atomic<int>* count) -> task<void> {
    // The rest is sent from this runtime, while four selecting receivers run.
    auto sender = conch::go([](chan<int> xx, chan<int> yy) -> task<void> {
      for (int i = values / 2; i < values * 3 / 4; ++i) {
        auto r = co_await conch::select(conch::send(xx, i), conch::send(yy, i));
        (void)r;
      }
    }, x, y);
    std::vector<chan<conch::unit>> rs;
    for (int k = 0; k < 4; ++k)
      rs.push_back(conch::go([](chan<int> xx, chan<int> yy, chan<int> zz, std::atomic<long>* s,
                                std::atomic<int>* n) -> task<void> {
        for (;;) {
          auto r = co_await conch::select(conch::recv(xx), conch::recv(yy), conch::recv(zz),
                                          conch::recv(conch::timeout(500ms)));
          if (r.index() == 3) co_return;  // quiet for a while: all done
          std::optional<int> v = r.index() == 0 ? std::get<0>(r) : r.index() == 1 ? std::get<1>(r) : std::get<2>(r);
          if (!v) co_return;
          s->fetch_add(*v);
          n->fetch_add(1);
        }
      }, x, y, z, sum, count));
    co_await sender.recv();
    for (auto& r : rs) co_await r.recv();
  }(a, b, c, &received_sum, &received));
  plain.join();
  other_driver.join();
  long expected = 0;
  for (int i = 0; i < values * 3 / 4; ++i) expected += i;
  for (int i = 0; i < values / 4; ++i) expected += values + i;
  CHECK(received == values);
  CHECK(received_sum == expected);
}

TEST_CASE("no wakeup is lost between two threads ping-ponging", "[stress][wakeup]") {
  // Unbuffered ping-pong across loops parks on every step: a lost wakeup
  // would hang (bounded by the select timeout below and the CTest timeout).
  constexpr int rounds = 20000 * kScale;
  auto n = conch::test::run_on(2, []() -> task<int> {
    co_await conch::sleep(2ms);
    chan<int> ping, pong;
    // Spawned while this loop is busy, so the idle loop steals one of them.
    auto echo = conch::go([](chan<int> in, chan<int> out) -> task<void> {
      while (auto v = co_await in.recv()) co_await out.send(*v);
      out.close();
    }, ping, pong);
    int ok = 0;
    for (int i = 0; i < rounds; ++i) {
      co_await ping.send(i);
      auto r = co_await conch::select(conch::recv(pong), conch::recv(conch::timeout(5s)));
      if (r.index() != 0 || std::get<0>(r) != i) break;
      ++ok;
    }
    ping.close();
    co_await echo.recv();
    co_return ok;
  }());
  CHECK(n == rounds);
}

TEST_CASE("close racing with senders and receivers from many threads", "[stress][close]") {
  for (int iter = 0; iter < 50 * kScale; ++iter) {
    chan<int> ch(iter % 3);
    std::atomic<int> sent{0}, got{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 3; ++t)
      ts.emplace_back([&] {
        for (int i = 0; i < 100; ++i)
          if (ch.send_blocking(i)) ++sent;
      });
    ts.emplace_back([&] {
      while (ch.recv_blocking()) ++got;
    });
    conch::test::run_on(2, [](chan<int> c, std::atomic<int>* g) -> task<void> {
      auto r = conch::go([](chan<int> cc, std::atomic<int>* gg) -> task<void> {
        while (co_await cc.recv()) ++*gg;
      }, c, g);
      co_await conch::sleep(std::chrono::microseconds(200));
      c.close();
      co_await r.recv();
    }(ch, &got));
    for (auto& t : ts) t.join();
    // Every successful send was received exactly once (buffered ones drained).
    CHECK(sent.load() == got.load());
  }
}
