// tests/ops/pub_test.cpp
// pub/sub: routing by topic, topics nobody subscribes, unsub, unsub_all, per-topic buffers, close flags.
#include <catch2/catch.hpp>

#include <stdexcept>
#include <string>

#include "tests/ops/ops_test_support.hpp"

using namespace std::chrono_literals;
using conch::chan;
using conch::task;
using conch::unit;
using conch::ops_test::drain;
using conch::test::recv_within;
using conch::test::run_on;
using conch::ops_test::stays_silent;

namespace {

struct msg {
  std::string topic;
  int n;
  bool operator==(const msg&) const = default;
};

// Messages are built inside these helpers, never as a braced temporary in a
// co_await expression: GCC 12 destroys such a temporary twice.

/// Sends msg{topic, n} on `ch`, or gives up after `limit`; true if it was sent.
task<bool> send_within(chan<msg> ch, std::string topic, int n, std::chrono::nanoseconds limit = 2s) {
  msg v{std::move(topic), n};
  auto r = co_await conch::select(conch::send(ch, std::move(v)), conch::recv(conch::timeout(limit)));
  co_return r.index() == 0 && std::get<0>(r);
}

/// The next message on `ch` as "topic:n", or "timeout" / "closed".
task<std::string> next(chan<msg> ch) {
  auto g = co_await recv_within(ch);
  if (g.timed_out) co_return "timeout";
  if (!g.value) co_return "closed";
  co_return g.value->topic + ":" + std::to_string(g.value->n);
}

std::string topic_of(const msg& m) { return m.topic; }

}  // namespace

TEST_CASE("pub routes each value to the subscribers of its topic", "[ops][pub]") {
  run_on(2, []() -> task<void> {
    chan<msg> src;
    conch::pub p{src, topic_of};  // pub<msg, std::string>
    chan<msg> a1(8), a2(8), b(8), both(8);
    CHECK(p.sub("a", a1) == a1);
    p.sub("a", a2);
    p.sub("b", b);
    p.sub("a", both);
    p.sub("b", both);
    CHECK(co_await send_within(src, "a", 1));
    CHECK(co_await send_within(src, "b", 2));
    CHECK(co_await send_within(src, "a", 3));
    CHECK(co_await send_within(src, "c", 4));
    src.close();
    auto d1 = co_await drain(a1);
    auto d2 = co_await drain(a2);
    auto db = co_await drain(b);
    auto dboth = co_await drain(both);
    CHECK(d1.closed);
    CHECK(db.closed);
    CHECK(dboth.closed);
    CHECK(d1.values == std::vector<msg>{{"a", 1}, {"a", 3}});
    CHECK(d2.values == d1.values);
    CHECK(db.values == std::vector<msg>{{"b", 2}});
    // Each topic is delivered by its own go block, so a channel subscribed to
    // two topics sees each topic in order, the two interleaved either way.
    std::vector<msg> both_a, both_b;
    for (auto& m : dboth.values) (m.topic == "a" ? both_a : both_b).push_back(m);
    CHECK(both_a == std::vector<msg>{{"a", 1}, {"a", 3}});
    CHECK(both_b == std::vector<msg>{{"b", 2}});
  }());
}

TEST_CASE("values of a topic nobody subscribes are dropped and nothing blocks", "[ops][pub]") {
  run_on(2, []() -> task<void> {
    chan<msg> src;  // unbuffered: a pub that stopped reading would make send time out
    conch::pub p{src, topic_of};
    chan<msg> a;    // unbuffered subscriber, read below
    p.sub("a", a);
    for (int i = 0; i < 200; ++i) REQUIRE(co_await send_within(src, "nobody", i));
    CHECK(co_await send_within(src, "a", 1));
    CHECK(co_await next(a) == "a:1");
    // A topic whose only subscriber left: dropped as well.
    p.unsub("a", a);
    for (int i = 0; i < 50; ++i) REQUIRE(co_await send_within(src, "a", i));
    CHECK(co_await stays_silent(a));
    CHECK_FALSE(a.closed());
  }());
}

TEST_CASE("unsub_all forgets a topic without closing its subscribers", "[ops][pub][close]") {
  run_on(2, []() -> task<void> {
    chan<msg> src;
    conch::pub p{src, topic_of};
    chan<msg> a(8), b(8);
    p.sub("a", a);
    p.sub("b", b);
    CHECK(co_await send_within(src, "a", 1));
    CHECK(co_await next(a) == "a:1");
    p.unsub_all("a");
    CHECK(co_await send_within(src, "a", 2));
    CHECK(co_await stays_silent(a));
    CHECK_FALSE(a.closed());
    // The topic can be subscribed again.
    p.sub("a", a);
    CHECK(co_await send_within(src, "a", 3));
    CHECK(co_await next(a) == "a:3");
    p.unsub_all();
    CHECK(co_await send_within(src, "a", 4));
    CHECK(co_await send_within(src, "b", 5));
    CHECK(co_await stays_silent(a));
    CHECK(co_await stays_silent(b));
    // A witness subscribed with close=true is closed once the pub has
    // handled the source's close: by then a and b would have been closed too.
    chan<msg> witness(1);
    p.sub("c", witness);
    src.close();
    auto witness_closed = [witness] { return witness.closed(); };
    bool handled = co_await conch::test::eventually(witness_closed);
    CHECK(handled);
    CHECK_FALSE(a.closed());
    CHECK_FALSE(b.closed());
  }());
}

TEST_CASE("a buffer per topic keeps a slow topic from holding up the others", "[ops][pub][buffer]") {
  run_on(2, []() -> task<void> {
    chan<msg> src;
    // Topic "slow" gets a 5-slot channel; the others are unbuffered.
    conch::pub p{src, topic_of, [](const std::string& t) {
                   return t == "slow" ? conch::buffer::fixed(5) : conch::buffer::fixed(0);
                 }};
    chan<msg> slow, fast;  // `slow` is never read
    p.sub("slow", slow);
    p.sub("fast", fast);
    for (int i = 0; i < 4; ++i) REQUIRE(co_await send_within(src, "slow", i));
    CHECK(co_await send_within(src, "fast", 1));
    CHECK(co_await next(fast) == "fast:1");
  }());
  run_on(2, []() -> task<void> {
    chan<msg> src;
    conch::pub p{src, topic_of};  // all topics unbuffered
    chan<msg> slow, fast;
    p.sub("slow", slow);
    p.sub("fast", fast);
    // The first "slow" value parks the topic's mult on `slow`; the second
    // parks the pub itself on the topic channel, so "fast" is stuck behind it.
    CHECK(co_await send_within(src, "slow", 0));
    CHECK(co_await send_within(src, "slow", 1));
    CHECK_FALSE(co_await send_within(src, "fast", 1, 100ms));
    CHECK(co_await stays_silent(fast));
    CHECK(co_await next(slow) == "slow:0");  // unblock everything
    CHECK(co_await next(slow) == "slow:1");
    src.close();
  }());
}

TEST_CASE("one buffer for every topic", "[ops][pub][buffer]") {
  run_on(2, []() -> task<void> {
    chan<msg> src;
    conch::pub p{src, topic_of, conch::buffer::fixed(3)};
    chan<msg> s;
    p.sub("t", s);
    for (int i = 0; i < 3; ++i) REQUIRE(co_await send_within(src, "t", i));
    for (int i = 0; i < 3; ++i) CHECK(co_await next(s) == "t:" + std::to_string(i));
  }());
}

TEST_CASE("closing the source closes close=true subscribers only", "[ops][pub][close]") {
  run_on(2, []() -> task<void> {
    chan<msg> src;
    conch::pub p{src, [](const msg& m) { return m.n % 2; }};  // pub<msg, int>
    chan<msg> odd(4), even(4);
    p.sub(1, odd);
    p.sub(0, even, false);
    CHECK(co_await send_within(src, "", 1));
    CHECK(co_await send_within(src, "", 2));
    src.close();
    auto d = co_await drain(odd);
    CHECK(d.closed);
    CHECK(d.values == std::vector<msg>{{"", 1}});
    CHECK(co_await next(even) == ":2");
    CHECK(co_await stays_silent(even));
    CHECK_FALSE(even.closed());
    chan<msg> late;
    p.sub(1, late);
    CHECK(late.closed());
  }());
}

TEST_CASE("a throwing topic function drops that value and the pub goes on", "[ops][pub][errors]") {
  static std::atomic<int> reported{0};
  reported = 0;
  conch::runtime rt({.threads = 2, .on_error = [](std::exception_ptr) { ++reported; }});
  rt.block_on([]() -> task<void> {
    chan<msg> src;
    conch::pub p{src, [](const msg& m) {
                   if (m.n < 0) throw std::runtime_error("negative");
                   return m.topic;
                 }};
    chan<msg> s(4);
    p.sub("t", s);
    CHECK(co_await send_within(src, "t", -1));
    CHECK(co_await send_within(src, "t", 1));
    CHECK(co_await next(s) == "t:1");
  }());
  CHECK(reported == 1);
}
