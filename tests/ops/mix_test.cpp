// tests/ops/mix_test.cpp
// mix: admix/unmix, mute, pause, solo in both solo modes, the transitions between them, closed inputs, a closed out.
#include <catch2/catch.hpp>

#include <set>

#include "tests/ops/ops_test_support.hpp"

using namespace std::chrono_literals;
using conch::chan;
using conch::task;
using conch::test::recv_within;
using conch::test::run_on;
using conch::ops_test::stays_silent;

namespace {

/// What reaches `out`: `n` values (each within patience), then anything
/// more that arrives within test::quiet, as a set. The n values are the
/// positive control for the quiet wait: they came through the same mix.
task<std::multiset<int>> collect(chan<int> out, std::size_t n) {
  std::multiset<int> got;
  while (got.size() < n) {
    auto g = co_await recv_within(out);
    if (g.timed_out || !g.value) co_return got;
    got.insert(*g.value);
  }
  for (;;) {
    auto g = co_await recv_within(out, conch::test::quiet);
    if (g.timed_out || !g.value) co_return got;
    got.insert(*g.value);
  }
}

/// A multiset of the arguments (built without an initializer_list: GCC 12
/// rejects one in the same full-expression as a co_await, "array used as
/// initializer").
template <class... I>
std::multiset<int> values(I... xs) {
  std::multiset<int> m;
  (m.insert(xs), ...);
  return m;
}

/// Waits (test::patience at most) until `ch` is empty: the mix has read
/// everything in it.
task<bool> drained_by_mix(chan<int> ch) {
  auto empty = [ch] { return ch.size() == 0; };
  co_return co_await conch::test::eventually(empty);
}

}  // namespace

TEST_CASE("mix merges its inputs into out, unmix stops reading an input", "[ops][mix]") {
  run_on(2, []() -> task<void> {
    chan<int> out(16), a(8), b(8);
    conch::mix m{out};
    m.admix(a);
    m.admix(b);
    m.admix(a);  // already in: no change
    CHECK(m.input_count() == 2);
    co_await a.send(1);
    co_await b.send(2);
    co_await a.send(3);
    CHECK(co_await collect(out, 3) == values(1, 2, 3));
    m.unmix(a);
    co_await a.send(4);
    co_await b.send(5);
    CHECK(co_await collect(out, 1) == values(5));
    CHECK(a.size() == 1);  // not read
    m.unmix_all();
    co_await b.send(6);
    CHECK(co_await stays_silent(out));
    CHECK(b.size() == 1);
    CHECK_FALSE(a.closed());  // unmix never closes
  }());
}

TEST_CASE("mute consumes and drops, pause leaves values in the input", "[ops][mix][toggle]") {
  run_on(2, []() -> task<void> {
    chan<int> out(16), a(8), b(8);
    conch::mix m{out};
    m.admix(a);
    m.admix(b);
    m.toggle(a, {.mute = true});
    m.toggle(b, {.pause = true});
    for (int i = 0; i < 3; ++i) {
      co_await a.send(i);
      co_await b.send(10 + i);
    }
    CHECK(co_await drained_by_mix(a));  // muted: read...
    CHECK(co_await stays_silent(out));  // ...and dropped
    CHECK(b.size() == 3);               // paused: not read
    // Transitions: unmute a, unpause b.
    m.toggle(a, {.mute = false});
    m.toggle(b, {.pause = false});
    co_await a.send(7);
    CHECK(co_await collect(out, 4) == values(7, 10, 11, 12));
    // Setting one flag keeps the others: pause a, then mute it too, then unpause.
    m.toggle(a, {.pause = true});
    m.toggle(a, {.mute = true});
    co_await a.send(8);
    CHECK(co_await stays_silent(out));
    CHECK(a.size() == 1);
    m.toggle(a, {.pause = false});  // still muted
    CHECK(co_await drained_by_mix(a));
    CHECK(co_await stays_silent(out));
  }());
}

TEST_CASE("solo (solo_mode mute): only soloed inputs reach out, others are read and dropped",
          "[ops][mix][solo]") {
  run_on(2, []() -> task<void> {
    chan<int> out(16), a(8), b(8), c(8);
    conch::mix m{out};
    m.admix(a);
    m.admix(b);
    m.admix(c);
    // A soloed input ignores its own mute and pause flags.
    m.toggle(a, {.mute = true, .pause = true, .solo = true});
    m.toggle(c, {.pause = true});
    co_await a.send(1);
    co_await b.send(2);
    co_await c.send(3);
    CHECK(co_await collect(out, 1) == values(1));
    CHECK(co_await drained_by_mix(b));  // muted by the solo: read and dropped
    CHECK(c.size() == 1);               // paused on its own account: not read
    // Un-solo: a is muted and paused again; c still paused; b flows.
    m.toggle(a, {.solo = false});
    co_await a.send(4);
    co_await b.send(5);
    CHECK(co_await collect(out, 1) == values(5));
    CHECK(a.size() == 1);
    CHECK(c.size() == 1);
  }());
}

TEST_CASE("solo (solo_mode pause): inputs that are not soloed are not read", "[ops][mix][solo]") {
  run_on(2, []() -> task<void> {
    chan<int> out(16), a(8), b(8);
    conch::mix m{out};
    m.solo_mode(conch::solo_mode::pause);
    // toggle adds inputs it does not know yet, several at once.
    m.toggle({{a, {.solo = true}}, {b, {}}});
    CHECK(m.input_count() == 2);
    co_await a.send(1);
    co_await b.send(2);
    co_await b.send(3);
    CHECK(co_await collect(out, 1) == values(1));
    CHECK(b.size() == 2);  // paused by the solo: kept
    // Switching the mode to mute: b is read and dropped.
    m.solo_mode(conch::solo_mode::mute);
    CHECK(co_await drained_by_mix(b));
    CHECK(co_await stays_silent(out));
    // Back to pause, then the solo ends: b flows.
    m.solo_mode(conch::solo_mode::pause);
    co_await b.send(4);
    CHECK(co_await stays_silent(out));
    m.toggle(a, {.solo = false});
    CHECK(co_await collect(out, 1) == values(4));
  }());
}

TEST_CASE("a closed input is removed, the mix ends when out is closed", "[ops][mix][close]") {
  run_on(2, []() -> task<void> {
    chan<int> out(16), a(8), b(8);
    conch::mix m{out};
    m.admix(a);
    m.admix(b);
    co_await a.send(1);
    a.close();
    CHECK((co_await recv_within(out)).value == 1);  // buffered values still arrive
    auto a_removed = [&m] { return m.input_count() == 1; };
    CHECK(co_await conch::test::eventually(a_removed));
    CHECK_FALSE(out.closed());  // a mix never closes out
    out.close();
    co_await b.send(2);  // the mix takes it, fails to send it, and ends
    co_await b.send(3);
    auto took_2 = [&b] { return b.size() == 1; };
    REQUIRE(co_await conch::test::eventually(took_2));
    // 3 stays: a mix that went on would take it as it took 2 (the positive
    // control just seen), within test::quiet.
    auto took_3 = [&b] { return b.size() == 0; };
    CHECK_FALSE(co_await conch::test::eventually(took_3, conch::test::quiet));
  }());
}
