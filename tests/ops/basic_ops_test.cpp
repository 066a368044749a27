// tests/ops/basic_ops_test.cpp
// pipe, map, filter, remove, mapcat, take, merge, split, partition(_by), unique, onto_chan, to_chan, reduce, into.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <list>
#include <set>
#include <stdexcept>
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
using conch::ops_test::within;

TEST_CASE("pipe moves every value and closes `to` when `from` closes", "[ops][pipe]") {
  run_on(2, []() -> task<void> {
    chan<int> from = conch::to_chan(iota(50));
    chan<int> to(4);
    CHECK(conch::pipe(from, to) == to);
    auto d = co_await drain(to);
    CHECK(d.closed);
    CHECK(d.values == iota(50));
  }());
}

TEST_CASE("pipe with close=false leaves `to` open", "[ops][pipe][close]") {
  run_on(2, []() -> task<void> {
    chan<int> from = conch::to_chan(iota(3));
    chan<int> to(8);
    conch::pipe(from, to, false);
    for (int i = 0; i < 3; ++i) CHECK((co_await recv_within(to)).value == i);
    CHECK(co_await conch::ops_test::stays_silent(to));
    CHECK_FALSE(to.closed());
  }());
}

TEST_CASE("pipe stops consuming `from` once `to` is closed", "[ops][pipe][close]") {
  run_on(2, []() -> task<void> {
    chan<int> from(8);
    chan<int> to;
    conch::pipe(from, to);
    co_await from.send(1);
    CHECK((co_await recv_within(to)).value == 1);
    to.close();
    co_await from.send(2);  // taken by pipe, refused by `to`, then pipe ends
    co_await from.send(3);
    auto took_2 = [&from] { return from.size() == 1; };
    REQUIRE(co_await conch::test::eventually(took_2));
    // 3 stays: a pipe that went on would take it as it took 2 (the positive
    // control just seen), within test::quiet.
    auto took_3 = [&from] { return from.size() == 0; };
    CHECK_FALSE(co_await conch::test::eventually(took_3, conch::test::quiet));
    CHECK(from.try_recv() == 3);
    CHECK_FALSE(from.closed());
  }());
}

TEST_CASE("map applies f to each value and closes with its source", "[ops][map]") {
  run_on(2, []() -> task<void> {
    chan<std::string> out =
        conch::map([](int x) { return std::to_string(x * 10); }, conch::to_chan(iota(4)));
    auto d = co_await drain(out);
    CHECK(d.closed);
    CHECK(d.values == std::vector<std::string>{"0", "10", "20", "30"});
  }());
}

TEST_CASE("map over several channels zips them and closes with the shortest", "[ops][map]") {
  run_on(2, []() -> task<void> {
    chan<int> a = conch::to_chan(std::vector{1, 2, 3, 4});
    chan<std::string> b = conch::to_chan(std::vector<std::string>{"a", "b", "c"});
    chan<double> c = conch::to_chan(std::vector{0.5, 0.5, 0.5, 0.5, 0.5});
    auto out = conch::map(
        [](int x, std::string s, double d) { return s + std::to_string(static_cast<int>(x * d * 2)); },
        a, b, c);
    auto d = co_await drain(out);
    CHECK(d.closed);
    CHECK(d.values == std::vector<std::string>{"a1", "b2", "c3"});
  }());
}

TEST_CASE("a throwing map function skips that value and reports it", "[ops][map][errors]") {
  static std::atomic<int> reported{0};
  reported = 0;
  conch::runtime rt({.threads = 2, .on_error = [](std::exception_ptr) { ++reported; }});
  rt.block_on([]() -> task<void> {
    auto out = conch::map(
        [](int x) {
          if (x == 2) throw std::runtime_error("two");
          return x;
        },
        conch::to_chan(iota(4)));
    auto d = co_await drain(out);
    CHECK(d.closed);
    CHECK(d.values == std::vector{0, 1, 3});
  }());
  CHECK(reported == 1);
}

TEST_CASE("filter keeps and remove drops the values pred accepts", "[ops][filter]") {
  run_on(2, []() -> task<void> {
    auto even = [](int x) { return x % 2 == 0; };
    auto f = co_await drain(conch::filter(even, conch::to_chan(iota(10)), conch::buffer::fixed(2)));
    auto r = co_await drain(conch::remove(even, conch::to_chan(iota(10))));
    CHECK(f.closed);
    CHECK(r.closed);
    CHECK(f.values == std::vector{0, 2, 4, 6, 8});
    CHECK(r.values == std::vector{1, 3, 5, 7, 9});
  }());
}

// Issue 19: an int-returning pred passed filter's `requires` and then did
// not compile inside the go loop. This file compiling is half the test.
TEST_CASE("filter, remove and split take any pred a condition accepts (int, pointer)",
          "[ops][filter]") {
  run_on(2, []() -> task<void> {
    auto odd = [](int x) -> int { return x % 2; };
    auto f = co_await drain(conch::filter(odd, conch::to_chan(iota(6))));
    auto r = co_await drain(conch::remove(odd, conch::to_chan(iota(6))));
    CHECK(f.values == std::vector{1, 3, 5});
    CHECK(r.values == std::vector{0, 2, 4});
    static const int mark = 0;
    auto nonzero = [](int x) -> const int* { return x != 0 ? &mark : nullptr; };
    auto [yes, no] = conch::split(nonzero, conch::to_chan(iota(3)), conch::buffer::fixed(4),
                                  conch::buffer::fixed(4));
    auto y = co_await drain(yes);
    auto n = co_await drain(no);
    CHECK(y.values == std::vector{1, 2});
    CHECK(n.values == std::vector{0});
  }());
}

TEST_CASE("mapcat flattens the ranges f returns", "[ops][mapcat]") {
  run_on(2, []() -> task<void> {
    auto out = conch::mapcat([](int n) { return std::vector<int>(static_cast<std::size_t>(n), n); },
                             conch::to_chan(std::vector{1, 0, 3, 2}));
    auto d = co_await drain(out);
    CHECK(d.closed);
    CHECK(d.values == std::vector{1, 3, 3, 3, 2, 2});
  }());
}

TEST_CASE("take yields at most n values, leaves the rest, and closes", "[ops][take]") {
  run_on(2, []() -> task<void> {
    chan<int> src(10);
    for (int i = 0; i < 5; ++i) co_await src.send(i);
    auto d = co_await drain(conch::take(3, src));
    CHECK(d.closed);
    CHECK(d.values == std::vector{0, 1, 2});
    // take never reads past n (positive control: it read the first 3).
    auto read_on = [&src] { return src.size() < 2; };
    CHECK_FALSE(co_await conch::test::eventually(read_on, conch::test::quiet));
    CHECK(src.size() == 2);
    CHECK_FALSE(src.closed());

    // A source that closes early closes the result early.
    auto e = co_await drain(conch::take(100, conch::to_chan(iota(4))));
    CHECK(e.closed);
    CHECK(e.values == iota(4));
    // take(0) closes at once.
    CHECK((co_await drain(conch::take(0, src))).closed);
    CHECK(src.size() == 2);
  }());
}

TEST_CASE("merge delivers every value and closes only after the last source closes",
          "[ops][merge][close]") {
  run_on(2, []() -> task<void> {
    chan<int> a, b, c;
    std::vector<chan<int>> sources{a, b, c};  // not inside the co_await expression (GCC 12)
    chan<int> merged = conch::merge(sources);
    // a and b deliver everything and close while c stays open.
    conch::onto_chan(a, std::vector<int>{1, 2});
    conch::onto_chan(b, std::vector<int>{10, 11, 12, 13});
    std::vector<int> first;
    for (int i = 0; i < 6; ++i) {
      auto g = co_await recv_within(merged);
      if (g.timed_out || !g.value) break;
      first.push_back(*g.value);
    }
    CHECK(first.size() == 6);
    CHECK(co_await conch::ops_test::stays_silent(merged));  // c is still open: no close
    CHECK_FALSE(merged.closed());
    // The last source delivers and closes: then merged closes.
    conch::onto_chan(c, std::vector<int>{100, 101, 102, 103});
    auto d = co_await drain(merged);
    CHECK(d.closed);
    d.values.insert(d.values.begin(), first.begin(), first.end());
    REQUIRE(d.values.size() == 10);
    // Each source's values keep their order (sources: [0,10), [10,100), [100,1000)).
    for (int lo : {0, 10, 100}) {
      const int hi = lo == 0 ? 10 : lo * 10;
      std::vector<int> part;
      std::copy_if(d.values.begin(), d.values.end(), std::back_inserter(part),
                   [lo, hi](int v) { return v >= lo && v < hi; });
      CHECK(std::is_sorted(part.begin(), part.end()));
    }
    std::multiset<int> all(d.values.begin(), d.values.end());
    CHECK(all == std::multiset<int>{1, 2, 10, 11, 12, 13, 100, 101, 102, 103});
  }());
}

TEST_CASE("merge keeps going while one source is closed and another is still open",
          "[ops][merge][close]") {
  run_on(2, []() -> task<void> {
    chan<int> early(4), late(4);
    std::vector<chan<int>> sources{early, late};
    auto out = conch::merge(sources);
    co_await early.send(1);
    early.close();
    CHECK((co_await recv_within(out)).value == 1);
    CHECK(co_await conch::ops_test::stays_silent(out));  // late is still open
    co_await late.send(2);
    CHECK((co_await recv_within(out)).value == 2);
    late.close();
    auto g = co_await recv_within(out);
    CHECK_FALSE(g.timed_out);
    CHECK_FALSE(g.value.has_value());
    // No sources at all: closed at once.
    chan<int> none = conch::merge(std::vector<chan<int>>());
    CHECK((co_await drain(none)).closed);
  }());
}

TEST_CASE("split routes by predicate and closes both outputs with the source", "[ops][split]") {
  run_on(2, []() -> task<void> {
    auto [small, big] = conch::split([](int x) { return x < 5; }, conch::to_chan(iota(10)),
                                     conch::buffer::fixed(10), conch::buffer::fixed(10));
    auto s = co_await drain(small);
    auto b = co_await drain(big);
    CHECK(s.closed);
    CHECK(b.closed);
    CHECK(s.values == std::vector{0, 1, 2, 3, 4});
    CHECK(b.values == std::vector{5, 6, 7, 8, 9});
  }());
}

TEST_CASE("split drops values for a closed output and stops when both are closed",
          "[ops][split][close]") {
  run_on(2, []() -> task<void> {
    chan<int> src(16);
    auto [even, odd] = conch::split([](int x) { return x % 2 == 0; }, src);
    odd.close();
    for (int i = 0; i < 6; ++i) co_await src.send(i);
    std::vector<int> got;
    for (int i = 0; i < 3; ++i) got.push_back(*(co_await recv_within(even)).value);
    CHECK(got == std::vector{0, 2, 4});
    even.close();
    co_await src.send(6);  // taken (the loop was waiting), refused by even
    co_await src.send(7);
    co_await src.send(8);
    // split stopped reading: 7 and 8 stay. Positive control: it took 6.
    auto emptied = [&src] { return src.size() == 0; };
    CHECK_FALSE(co_await conch::test::eventually(emptied, conch::test::quiet));
    CHECK(src.size() >= 1);
  }());
}

TEST_CASE("partition, partition_by and unique group values like core.async", "[ops][partition]") {
  run_on(2, []() -> task<void> {
    auto p = co_await drain(conch::partition(3, conch::to_chan(iota(8))));
    CHECK(p.closed);
    CHECK(p.values == std::vector<std::vector<int>>{{0, 1, 2}, {3, 4, 5}, {6, 7}});

    std::vector<int> in1{1, 2, 11, 12, 13, 3, 25};
    auto pb = co_await drain(conch::partition_by([](int x) { return x / 10; }, conch::to_chan(in1)));
    CHECK(pb.closed);
    CHECK(pb.values == std::vector<std::vector<int>>{{1, 2}, {11, 12, 13}, {3}, {25}});

    std::vector<int> in2{1, 1, 2, 2, 2, 1, 3, 3};
    auto u = co_await drain(conch::unique(conch::to_chan(in2)));
    CHECK(u.closed);
    CHECK(u.values == std::vector{1, 2, 1, 3});
  }());
}

TEST_CASE("onto_chan copies a range, honours the close flag, and signals completion",
          "[ops][onto_chan][close]") {
  run_on(2, []() -> task<void> {
    std::vector<std::string> words{"a", "b", "c"};
    chan<std::string> ch(8);
    chan<unit> done = conch::onto_chan(ch, words, false);
    CHECK((co_await recv_within(done)).value.has_value());  // unit{}: all sent
    CHECK(words.size() == 3);                               // an lvalue range is copied
    CHECK(words[0] == "a");
    CHECK(ch.size() == 3);
    CHECK_FALSE(ch.closed());

    std::vector<std::string> more{"d"};
    CHECK((co_await recv_within(conch::onto_chan(ch, std::move(more)))).value.has_value());
    auto d = co_await drain(ch);
    CHECK(d.closed);
    CHECK(d.values == std::vector<std::string>{"a", "b", "c", "d"});

    // Onto a closed channel: stops at once, completion still signalled.
    chan<int> shut;
    shut.close();
    CHECK((co_await recv_within(conch::onto_chan(shut, iota(1000)))).value.has_value());
    // A view over the caller's data.
    auto v = iota(5);
    auto evens = co_await drain(conch::to_chan(v | std::views::filter([](int x) { return x % 2 == 0; })));
    CHECK(evens.values == std::vector{0, 2, 4});
  }());
}

TEST_CASE("to_chan holds the whole collection and closes", "[ops][to_chan]") {
  run_on(2, []() -> task<void> {
    chan<int> ch = conch::to_chan(iota(5));
    auto all_in = [&ch] { return ch.size() == 5; };  // buffered: the whole collection
    CHECK(co_await conch::test::eventually(all_in));
    auto d = co_await drain(ch);
    CHECK(d.closed);
    CHECK(d.values == iota(5));
  }());
}

TEST_CASE("reduce folds until the channel closes, init without calling f if empty",
          "[ops][reduce]") {
  run_on(2, []() -> task<void> {
    int sum = co_await within(conch::reduce(std::plus<>(), 0, conch::to_chan(iota(101))));
    CHECK(sum == 5050);
    bool called = false;
    chan<int> empty;
    empty.close();
    auto f = [&called](int acc, int x) {
      called = true;
      return acc + x;
    };
    CHECK(co_await within(conch::reduce(f, 42, empty)) == 42);
    CHECK_FALSE(called);
    std::vector<std::string> xy{"x", "y"};
    auto concat = [](std::string acc, std::string s) { return acc + s; };
    std::string joined = co_await within(conch::reduce(concat, std::string(">"), conch::to_chan(xy)));
    CHECK(joined == ">xy");
  }());
}

TEST_CASE("reduce rethrows an exception from f to its awaiter", "[ops][reduce][errors]") {
  run_on(2, []() -> task<void> {
    auto bad = [](int, int x) -> int {
      if (x == 3) throw std::runtime_error("three");
      return x;
    };
    // The awaiting task sees the exception; it runs in a go block so the
    // test is bounded in time.
    auto attempt = [](auto f) -> task<int> {
      try {
        co_await conch::reduce(f, 0, conch::to_chan(iota(5)));
      } catch (const std::runtime_error& e) {
        co_return std::string(e.what()) == "three" ? 1 : 2;
      }
      co_return 0;
    };
    CHECK(co_await within(attempt(bad)) == 1);
  }());
}

TEST_CASE("into appends every value to the given container", "[ops][into]") {
  run_on(2, []() -> task<void> {
    std::vector<int> start{-1};
    auto v = co_await within(conch::into(start, conch::to_chan(iota(3))));
    CHECK(v == std::vector{-1, 0, 1, 2});
    std::vector<int> dups{3, 1, 3, 2};
    auto s = co_await within(conch::into(std::set<int>(), conch::to_chan(dups)));
    CHECK(s == std::set<int>{1, 2, 3});
    std::vector<std::string> words{"p"};
    auto l = co_await within(conch::into(std::list<std::string>(), conch::to_chan(words)));
    CHECK(l.front() == "p");
    auto str = co_await within(conch::into(std::string("ab"), conch::to_chan(std::string("cd"))));
    CHECK(str == "abcd");
  }());
}
