// tests/channels/chan_close_test.cpp
// The close matrix (LANDSCAPE.md §2.2, §3.3), for every buffer kind:
// close is idempotent, sends after close fail, buffered values survive close,
// and close wakes every parked sender, receiver, select and blocked thread.
#include <catch2/catch.hpp>

#include <atomic>
#include <string>
#include <thread>

#include "tests/support/test_support.hpp"

using namespace std::chrono_literals;
using conch::chan;
using conch::task;
using conch::test::all_kinds;

TEST_CASE("close is idempotent and closed() reports it", "[chan][close]") {
  for (const auto& k : all_kinds()) {
    INFO(k.name);
    auto ch = k.make<int>();
    CHECK_FALSE(ch.closed());
    ch.close();
    CHECK(ch.closed());
    ch.close();
    CHECK(ch.closed());
  }
}

TEST_CASE("sends on a closed channel fail and do not take the value", "[chan][close]") {
  for (const auto& k : all_kinds()) {
    INFO(k.name);
    auto ch = k.make<std::string>();
    ch.close();
    CHECK_FALSE(ch.try_send("x"));
    CHECK_FALSE(ch.send_blocking("y"));
    bool sent = conch::test::run_on(1, [](chan<std::string> c) -> task<bool> {
      co_return co_await c.send("z");
    }(ch));
    CHECK_FALSE(sent);
    CHECK(ch.size() == 0);
    CHECK_FALSE(ch.try_recv().has_value());
  }
}

TEST_CASE("receiving from a closed, drained channel yields nullopt", "[chan][close]") {
  for (const auto& k : all_kinds()) {
    INFO(k.name);
    auto ch = k.make<int>();
    ch.close();
    CHECK_FALSE(ch.try_recv().has_value());
    CHECK_FALSE(ch.recv_blocking().has_value());
    auto got = conch::test::run_on(1, [](chan<int> c) -> task<std::optional<int>> {
      co_return co_await c.recv();
    }(ch));
    CHECK_FALSE(got.has_value());
  }
}

TEST_CASE("values buffered before close are still delivered, then nullopt", "[chan][close]") {
  SECTION("fixed") {
    chan<int> ch(3);
    REQUIRE(ch.try_send(1));
    REQUIRE(ch.try_send(2));
    ch.close();
    CHECK(ch.size() == 2);
    CHECK(ch.try_recv() == 1);
    CHECK(ch.recv_blocking() == 2);
    CHECK_FALSE(ch.try_recv().has_value());
  }
  SECTION("dropping keeps the first values") {
    chan<int> ch(conch::buffer::dropping(2));
    for (int i = 1; i <= 4; ++i) REQUIRE(ch.try_send(i));
    ch.close();
    CHECK(ch.try_recv() == 1);
    CHECK(ch.try_recv() == 2);
    CHECK_FALSE(ch.try_recv().has_value());
  }
  SECTION("sliding keeps the last values") {
    chan<int> ch(conch::buffer::sliding(2));
    for (int i = 1; i <= 4; ++i) REQUIRE(ch.try_send(i));
    ch.close();
    CHECK(ch.try_recv() == 3);
    CHECK(ch.try_recv() == 4);
    CHECK_FALSE(ch.try_recv().has_value());
  }
  SECTION("promise keeps its value forever") {
    auto ch = conch::promise_chan<std::string>();
    REQUIRE(ch.try_send("first"));
    CHECK(ch.try_send("second"));  // succeeds, dropped
    ch.close();
    for (int i = 0; i < 3; ++i) CHECK(ch.try_recv() == std::string("first"));
    CHECK(ch.recv_blocking() == std::string("first"));
  }
}

TEST_CASE("close wakes every parked receiver with nullopt", "[chan][close]") {
  for (const auto& k : all_kinds()) {
    INFO(k.name);
    auto ch = k.make<int>();
    int woken = conch::test::run_on(2, [](chan<int> c) -> task<int> {
      std::vector<chan<int>> results;
      conch::test::arrivals parking;
      for (int i = 0; i < 8; ++i)
        results.push_back(conch::go([](chan<int> cc, conch::test::arrivals p) -> task<int> {
          p.arrive();
          auto v = co_await cc.recv();
          co_return v.has_value() ? 1 : 0;
        }, c, parking));
      // Close once all eight are parked (or, on the other loop, about to:
      // a receiver that parks after the close sees it at once, same result).
      bool all_there = co_await conch::test::arrived(parking, 8);
      CHECK(all_there);
      c.close();
      int closed_seen = 0;
      for (auto& r : results) closed_seen += (co_await r.recv()) == 0 ? 1 : 0;
      co_return closed_seen;
    }(ch));
    CHECK(woken == 8);
  }
}

TEST_CASE("close wakes every parked sender with false", "[chan][close]") {
  for (const auto& k : all_kinds()) {
    if (!k.parks_senders) continue;
    INFO(k.name);
    auto ch = k.make<int>();
    if (k.name == "fixed") {
      REQUIRE(ch.try_send(100));
      REQUIRE(ch.try_send(101));
    }
    int failed = conch::test::run_on(2, [](chan<int> c) -> task<int> {
      std::vector<chan<bool>> results;
      conch::test::arrivals parking;
      for (int i = 0; i < 8; ++i)
        results.push_back(conch::go([](chan<int> cc, int v, conch::test::arrivals p) -> task<bool> {
          p.arrive();
          co_return co_await cc.send(v);
        }, c, i, parking));
      bool all_there = co_await conch::test::arrived(parking, 8);  // parked, or about to
      CHECK(all_there);
      c.close();
      int n = 0;
      for (auto& r : results) n += *(co_await r.recv()) ? 0 : 1;
      co_return n;
    }(ch));
    CHECK(failed == 8);
    if (k.name == "fixed") {  // what was buffered before close survives
      CHECK(ch.try_recv() == 100);
      CHECK(ch.try_recv() == 101);
    }
    CHECK_FALSE(ch.try_recv().has_value());
  }
}

TEST_CASE("close wakes a parked select and a blocked plain thread", "[chan][close][select]") {
  for (const auto& k : all_kinds()) {
    INFO(k.name);
    auto ch = k.make<int>();
    std::atomic<int> thread_result{-1};
    std::thread blocked([&] { thread_result = ch.recv_blocking().has_value() ? 1 : 0; });
    int index = conch::test::run_on(1, [](chan<int> c) -> task<int> {
      chan<int> never;
      conch::test::arrivals parking;
      auto r = conch::go([](chan<int> a, chan<int> b, conch::test::arrivals p) -> task<int> {
        p.arrive();
        auto s = co_await conch::select(conch::recv(b), conch::recv(a));
        co_return std::get<1>(s).has_value() ? 100 : static_cast<int>(s.index());
      }, c, never, parking);
      // One loop: once the select counted itself, it ran on until it parked.
      bool parked = co_await conch::test::arrived(parking, 1);
      CHECK(parked);
      c.close();
      co_return *(co_await r.recv());
    }(ch));
    blocked.join();
    CHECK(index == 1);
    CHECK(thread_result == 0);
  }
}
