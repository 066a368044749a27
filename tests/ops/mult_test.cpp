// tests/ops/mult_test.cpp
// mult: copies to every tap, close flags, untap while values flow, slow taps, closed taps, no taps.
#include <catch2/catch.hpp>

#include <string>

#include "tests/ops/ops_test_support.hpp"

using namespace std::chrono_literals;
using conch::chan;
using conch::task;
using conch::unit;
using conch::ops_test::drain;
using conch::ops_test::iota;
using conch::test::recv_within;
using conch::test::run_on;
using conch::ops_test::send_within;
using conch::ops_test::stays_silent;

namespace {

task<void> produce(chan<int> ch, int n) {
  for (int i = 0; i < n; ++i)
    if (!co_await ch.send(i)) break;
  ch.close();
}

}  // namespace

TEST_CASE("mult copies every value to every tap and closes the close=true taps", "[ops][mult][close]") {
  run_on(2, []() -> task<void> {
    chan<std::string> src;
    conch::mult m{src};
    chan<std::string> a(16), b(16), keep(16);
    CHECK(m.tap(a) == a);
    m.tap(b);
    m.tap(keep, false);
    CHECK(m.tap_count() == 3);
    for (const char* s : {"x", "y", "z"}) REQUIRE(co_await send_within(src, std::string(s)));
    src.close();
    auto da = co_await drain(a);
    auto db = co_await drain(b);
    CHECK(da.closed);
    CHECK(db.closed);
    CHECK(da.values == std::vector<std::string>{"x", "y", "z"});
    CHECK(db.values == da.values);
    CHECK((co_await recv_within(m.done())).value.has_value());  // distribution is over
    for (const char* s : {"x", "y", "z"}) CHECK((co_await recv_within(keep)).value == s);
    CHECK(co_await stays_silent(keep));
    CHECK_FALSE(keep.closed());
    // Tapping after the source closed: closed at once, unless close=false.
    chan<std::string> late, late_open;
    m.tap(late);
    m.tap(late_open, false);
    CHECK(late.closed());
    CHECK_FALSE(late_open.closed());
  }());
}

TEST_CASE("mult offers each value to all taps at once (no tap order deadlock)", "[ops][mult]") {
  run_on(2, []() -> task<void> {
    chan<int> src;
    conch::mult m{src};
    chan<int> t1, t2;  // unbuffered
    m.tap(t1);
    m.tap(t2);
    conch::go(produce(src, 50));
    // Read the taps in the opposite order to tapping: a mult sending to its
    // taps one after the other would deadlock here.
    for (int i = 0; i < 50; ++i) {
      auto b = co_await recv_within(t2);
      auto a = co_await recv_within(t1);
      REQUIRE(b.value == i);
      REQUIRE(a.value == i);
    }
    CHECK_FALSE((co_await recv_within(t1)).value.has_value());
  }());
}

TEST_CASE("a tap untapped while values flow stops receiving and does not stall the others",
          "[ops][mult][untap]") {
  run_on(2, []() -> task<void> {
    chan<int> src(8);
    conch::mult m{src};
    chan<int> stays, leaves;  // unbuffered: the mult waits for each
    m.tap(stays);
    m.tap(leaves);
    conch::go(produce(src, 1000));
    // Both taps read 100 values, then `leaves` is untapped and no longer read.
    for (int i = 0; i < 100; ++i) {
      auto r = co_await conch::select(conch::recv(stays), conch::recv(conch::timeout(5s)));
      REQUIRE(r.index() == 0);
      REQUIRE(std::get<0>(r) == i);
      REQUIRE((co_await recv_within(leaves)).value == i);
    }
    m.untap(leaves);
    CHECK(m.tap_count() == 1);
    // The mult may have been waiting for `leaves` to take value 100: untap
    // releases it, and `stays` gets everything else.
    auto d = co_await drain(stays);
    CHECK(d.closed);
    std::vector<int> rest = iota(1000);
    rest.erase(rest.begin(), rest.begin() + 100);
    CHECK(d.values == rest);
    CHECK_FALSE(leaves.closed());  // untap never closes
    CHECK(leaves.try_recv() == std::nullopt);
  }());
}

TEST_CASE("a slow tap slows the mult (backpressure)", "[ops][mult][backpressure]") {
  run_on(2, []() -> task<void> {
    chan<int> src(100);
    conch::mult m{src};
    chan<int> fast, slow;  // unbuffered
    m.tap(fast);
    m.tap(slow);
    for (int i = 0; i < 5; ++i) co_await src.send(i);
    CHECK((co_await recv_within(fast)).value == 0);
    // `slow` has not taken 0, so `fast` gets nothing more.
    CHECK(co_await stays_silent(fast));
    CHECK((co_await recv_within(slow)).value == 0);
    CHECK((co_await recv_within(fast)).value == 1);
    CHECK((co_await recv_within(slow)).value == 1);
    m.untap_all();
    CHECK(m.tap_count() == 0);
    src.close();
    CHECK(co_await stays_silent(fast));  // untapped: not closed
    CHECK(co_await stays_silent(slow));
  }());
}

TEST_CASE("a mult with no taps drops values, a closed tap is removed", "[ops][mult][close]") {
  run_on(2, []() -> task<void> {
    chan<int> src;
    conch::mult m{src};
    // No taps: every send completes, the values go nowhere.
    for (int i = 0; i < 10; ++i) {
      auto r = co_await conch::select(conch::send(src, i), conch::recv(conch::timeout(5s)));
      REQUIRE(r.index() == 0);
    }
    chan<int> closed_tap, live(4);
    closed_tap.close();
    m.tap(closed_tap);
    m.tap(live);
    CHECK(m.tap_count() == 2);
    REQUIRE(co_await send_within(src, 10));
    // The mult may have taken value 9 from src before the taps were added
    // and looked at its taps after: then 9 is delivered too (as in core.async).
    auto first = co_await recv_within(live);
    if (first.value == 9) first = co_await recv_within(live);
    CHECK(first.value == 10);
    CHECK(m.tap_count() == 1);  // the closed tap was found closed and removed
    // A tap closed by its consumer while the mult waits on it is removed too.
    chan<int> quitter;
    m.tap(quitter);
    REQUIRE(co_await send_within(src, 11));
    CHECK((co_await recv_within(live)).value == 11);
    quitter.close();
    REQUIRE(co_await send_within(src, 12));
    CHECK((co_await recv_within(live)).value == 12);
    CHECK(m.tap_count() == 1);
    src.close();
    CHECK((co_await drain(live)).closed);
  }());
}

TEST_CASE("tapping twice updates the close flag", "[ops][mult][close]") {
  run_on(2, []() -> task<void> {
    chan<int> src;
    conch::mult m{src};
    chan<int> t(4);
    m.tap(t);
    m.tap(t, false);
    CHECK(m.tap_count() == 1);
    REQUIRE(co_await send_within(src, 1));
    src.close();
    CHECK((co_await recv_within(t)).value == 1);
    CHECK(co_await stays_silent(t));
    CHECK_FALSE(t.closed());
  }());
}
