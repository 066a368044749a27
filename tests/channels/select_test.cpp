// tests/channels/select_test.cpp
// select / select_in_order / try_select: recv and send cases, timeouts,
// fairness, priority, exactly-once commit, losers withdrawn at once.
#include <catch2/catch.hpp>

#include <memory>

#include "tests/support/test_support.hpp"

using namespace std::chrono_literals;
using conch::chan;
using conch::recv;
using conch::send;
using conch::task;

TEST_CASE("select takes the ready receive case", "[select]") {
  chan<int> a(1), b(1);
  REQUIRE(b.try_send(7));
  auto r = conch::test::run_on(1, [](chan<int> x, chan<int> y) -> task<std::variant<std::optional<int>, std::optional<int>>> {
    co_return co_await conch::select(recv(x), recv(y));
  }(a, b));
  REQUIRE(r.index() == 1);
  CHECK(std::get<1>(r) == 7);
}

TEST_CASE("select with a send case delivers to a waiting receiver", "[select]") {
  chan<std::string> out;
  chan<int> never;
  auto got = conch::test::run_on(1, [](chan<std::string> o, chan<int> n) -> task<std::string> {
    auto receiver = conch::go([](chan<std::string> c) -> task<std::string> { co_return *(co_await c.recv()); }, o);
    auto r = co_await conch::select(recv(n), send(o, std::string("hello")));
    CHECK(r.index() == 1);
    CHECK(std::get<1>(r));
    co_return *(co_await receiver.recv());
  }(out, never));
  CHECK(got == "hello");
}

TEST_CASE("select with a timeout case fires the timeout when nothing else is ready", "[select][timer]") {
  auto idx = conch::test::run_on(1, []() -> task<std::size_t> {
    chan<int> never;
    auto t0 = std::chrono::steady_clock::now();
    auto r = co_await conch::select(recv(never), recv(conch::timeout(30ms)));
    CHECK(std::chrono::steady_clock::now() - t0 >= 30ms);
    CHECK_FALSE(std::get<1>(r).has_value());
    co_return r.index();
  }());
  CHECK(idx == 1);
}

TEST_CASE("select is fair among ready cases", "[select][fairness]") {
  // Two channels that are always ready: over many rounds each wins about half.
  constexpr int rounds = 20000;
  int first = conch::test::run_on(1, []() -> task<int> {
    chan<int> a(1), b(1);
    int wins_a = 0;
    for (int i = 0; i < rounds; ++i) {
      a.try_send(1);
      b.try_send(2);
      auto r = co_await conch::select(recv(a), recv(b));
      wins_a += r.index() == 0;
      a.try_recv();
      b.try_recv();
    }
    co_return wins_a;
  }());
  // Binomial(20000, 0.5): sd ~ 71; 45%..55% is > 14 sd away from failing by chance.
  CHECK(first > rounds * 45 / 100);
  CHECK(first < rounds * 55 / 100);
}

TEST_CASE("fairness holds for three cases and for the span form", "[select][fairness]") {
  constexpr int rounds = 30000;
  auto counts = conch::test::run_on(1, []() -> task<std::vector<int>> {
    std::vector<chan<int>> cs{chan<int>(1), chan<int>(1), chan<int>(1)};
    std::vector<int> wins(3);
    for (int i = 0; i < rounds; ++i) {
      for (auto& c : cs) c.try_send(i);
      auto [idx, v] = co_await conch::select(cs);
      CHECK(v == i);
      ++wins[idx];
      for (auto& c : cs) c.try_recv();
    }
    co_return wins;
  }());
  for (int w : counts) {
    CHECK(w > rounds * 30 / 100);
    CHECK(w < rounds * 37 / 100);
  }
}

TEST_CASE("select_in_order prefers the earliest ready case", "[select][priority]") {
  auto wins = conch::test::run_on(1, []() -> task<int> {
    chan<int> a(1), b(1);
    int first = 0;
    for (int i = 0; i < 1000; ++i) {
      a.try_send(1);
      b.try_send(2);
      auto r = co_await conch::select_in_order(recv(a), recv(b));
      first += r.index() == 0;
      b.try_recv();
    }
    co_return first;
  }());
  CHECK(wins == 1000);
}

TEST_CASE("try_select returns nullopt when nothing is ready, else commits one", "[select][default]") {
  chan<int> a, b(1);
  CHECK_FALSE(conch::try_select(recv(a), recv(b)).has_value());
  CHECK_FALSE(conch::try_select(send(a, 1)).has_value());  // nobody receiving
  auto s = conch::try_select(recv(a), send(b, 5));
  REQUIRE(s.has_value());
  CHECK(s->index() == 1);
  CHECK(std::get<1>(*s));
  CHECK(b.try_recv() == 5);
  std::vector<chan<int>> v{chan<int>(1), chan<int>(1)};
  CHECK_FALSE(conch::try_select(v).has_value());
  v[1].try_send(9);
  auto r = conch::try_select(v);
  REQUIRE(r.has_value());
  CHECK(r->first == 1);
  CHECK(r->second == 9);
}

TEST_CASE("exactly one send case commits when several are ready", "[select]") {
  for (int i = 0; i < 200; ++i) {
    chan<int> a(1), b(1);
    auto r = conch::try_select(send(a, 1), send(b, 2));
    REQUIRE(r.has_value());
    CHECK(a.size() + b.size() == 1);
  }
}

TEST_CASE("losing cases are withdrawn before select returns", "[select]") {
  // After a select on {recv a, recv b} is won by b, a has no parked receiver,
  // so a try_send on the unbuffered a must fail.
  conch::test::run_on(1, []() -> task<void> {
    chan<int> a, b;
    // One loop: a select that counted itself ran on until it parked.
    conch::test::arrivals parked;
    auto sel = conch::go([](chan<int> x, chan<int> y, conch::test::arrivals p) -> task<std::size_t> {
      p.arrive();
      auto r = co_await conch::select(recv(x), recv(y));
      co_return r.index();
    }, a, b, parked);
    bool first_parked = co_await conch::test::arrived(parked, 1);
    CHECK(first_parked);
    CHECK(co_await b.send(1));
    CHECK(*(co_await sel.recv()) == 1);
    CHECK_FALSE(a.try_send(2));
    // Likewise a losing send case keeps its value: nobody receives it later.
    auto sel2 = conch::go([](chan<int> x, chan<int> y, conch::test::arrivals p) -> task<std::size_t> {
      p.arrive();
      auto r = co_await conch::select(send(x, 10), recv(y));
      co_return r.index();
    }, a, b, parked);
    bool second_parked = co_await conch::test::arrived(parked, 2);
    CHECK(second_parked);
    CHECK(co_await b.send(3));
    CHECK(*(co_await sel2.recv()) == 1);
    CHECK_FALSE(a.try_recv().has_value());
  }());
}

TEST_CASE("a send case whose value is not taken destroys it", "[select]") {
  auto token = std::make_shared<int>(0);
  chan<std::shared_ptr<int>> full(1);
  REQUIRE(full.try_send(nullptr));
  chan<int> ready(1);
  REQUIRE(ready.try_send(1));
  auto r = conch::try_select(send(full, token), recv(ready));
  REQUIRE(r.has_value());
  CHECK(r->index() == 1);
  CHECK(token.use_count() == 1);
}

TEST_CASE("two selects meet on the same unbuffered channel", "[select]") {
  auto v = conch::test::run_on(2, []() -> task<int> {
    chan<int> x, never1, never2;
    auto receiver = conch::go([](chan<int> c, chan<int> n) -> task<int> {
      auto r = co_await conch::select(recv(n), recv(c));
      co_return *std::get<1>(r);
    }, x, never1);
    auto sender = conch::go([](chan<int> c, chan<int> n) -> task<bool> {
      auto r = co_await conch::select(recv(n), send(c, 42));
      co_return std::get<1>(r);
    }, x, never2);
    CHECK(*(co_await sender.recv()));
    co_return *(co_await receiver.recv());
  }());
  CHECK(v == 42);
}

TEST_CASE("the same channel may appear in several cases", "[select]") {
  auto r = conch::test::run_on(1, []() -> task<int> {
    chan<int> a(2);
    a.try_send(1);
    auto s = co_await conch::select(recv(a), recv(a), send(a, 5));
    (void)s;
    co_return static_cast<int>(a.size());
  }());
  // Either a recv took the 1 (size 0) or the send added 5 (size 2).
  CHECK((r == 0 || r == 2));
}

TEST_CASE("select on a closed channel reports the close", "[select][close]") {
  chan<int> a, b;
  a.close();
  auto s = conch::try_select(recv(a), recv(b));
  REQUIRE(s.has_value());
  CHECK(s->index() == 0);
  CHECK_FALSE(std::get<0>(*s).has_value());
  auto t = conch::try_select(send(a, 1));
  REQUIRE(t.has_value());
  CHECK_FALSE(std::get<0>(*t));
}

TEST_CASE("a select parked on many channels wakes for any one of them", "[select]") {
  auto got = conch::test::run_on(2, []() -> task<std::vector<std::size_t>> {
    std::vector<chan<int>> cs(20);
    std::vector<std::size_t> fired;
    for (std::size_t k : {3u, 17u, 0u, 19u}) {
      conch::test::arrivals parking;
      auto r = conch::go([](std::vector<chan<int>> v, conch::test::arrivals p) -> task<std::size_t> {
        p.arrive();
        auto [idx, val] = co_await conch::select(v);
        CHECK(val == static_cast<int>(idx));
        co_return idx;
      }, cs, parking);
      // Parked (or, on the other loop, about to: then it finds the value
      // ready instead, same index).
      bool there = co_await conch::test::arrived(parking, 1);
      CHECK(there);
      CHECK(co_await cs[k].send(static_cast<int>(k)));
      fired.push_back(*(co_await r.recv()));
    }
    co_return fired;
  }());
  CHECK(got == std::vector<std::size_t>{3, 17, 0, 19});
}
