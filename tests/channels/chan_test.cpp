// tests/channels/chan_test.cpp
// chan<T>: send/recv/try/blocking operations for every buffer kind, FIFO
// order, direct handoff, promise channels, resumption thread, handles.
#include <catch2/catch.hpp>

#include <memory>
#include <set>
#include <string>
#include <thread>

#include "tests/support/test_support.hpp"

using namespace std::chrono_literals;
using conch::chan;
using conch::task;

TEST_CASE("an unbuffered channel is a rendezvous", "[chan]") {
  chan<int> ch;
  CHECK_FALSE(ch.try_send(1));  // nobody waiting
  CHECK_FALSE(ch.try_recv().has_value());
  CHECK(ch.size() == 0);
  auto got = conch::test::run_on(1, [](chan<int> c) -> task<std::vector<int>> {
    auto producer = conch::go([](chan<int> cc) -> task<void> {
      for (int i = 0; i < 100; ++i) co_await cc.send(i);
      cc.close();
    }, c);
    std::vector<int> out;
    while (auto v = co_await c.recv()) out.push_back(*v);
    co_return out;
  }(ch));
  REQUIRE(got.size() == 100);
  for (int i = 0; i < 100; ++i) CHECK(got[i] == i);
}

TEST_CASE("a fixed buffer holds n values, then send parks", "[chan]") {
  chan<int> ch(3);
  CHECK(ch.try_send(1));
  CHECK(ch.try_send(2));
  CHECK(ch.try_send(3));
  CHECK_FALSE(ch.try_send(4));
  CHECK(ch.size() == 3);
  auto order = conch::test::run_on(1, [](chan<int> c) -> task<std::vector<int>> {
    // A parked sender's value goes in behind the buffered ones.
    conch::test::arrivals parked;  // one loop: counted means parked
    auto sender = conch::go([](chan<int> cc, conch::test::arrivals p) -> task<bool> {
      p.arrive();
      co_return co_await cc.send(4);
    }, c, parked);
    bool sender_parked = co_await conch::test::arrived(parked, 1);
    CHECK(sender_parked);
    std::vector<int> out;
    for (int i = 0; i < 4; ++i) out.push_back(*co_await c.recv());
    CHECK(*(co_await sender.recv()));
    co_return out;
  }(ch));
  CHECK(order == std::vector<int>{1, 2, 3, 4});
}

TEST_CASE("dropping and sliding buffers never park senders", "[chan]") {
  chan<int> drop(conch::buffer::dropping(2));
  chan<int> slide(conch::buffer::sliding(2));
  conch::test::run_on(1, [](chan<int> d, chan<int> s) -> task<void> {
    for (int i = 1; i <= 5; ++i) {
      CHECK(co_await d.send(i));
      CHECK(co_await s.send(i));
    }
    CHECK(*co_await d.recv() == 1);
    CHECK(*co_await d.recv() == 2);
    CHECK(*co_await s.recv() == 4);
    CHECK(*co_await s.recv() == 5);
  }(drop, slide));
  CHECK(drop.size() == 0);
  CHECK(slide.size() == 0);
}

TEST_CASE("a sender meeting a parked receiver hands the value over directly", "[chan]") {
  chan<std::unique_ptr<int>> ch(4);  // buffered, but the receiver is already waiting
  auto v = conch::test::run_on(1, [](chan<std::unique_ptr<int>> c) -> task<int> {
    conch::test::arrivals parked;  // one loop: counted means parked
    auto r = conch::go([](chan<std::unique_ptr<int>> cc, conch::test::arrivals a) -> task<int> {
      a.arrive();
      auto p = co_await cc.recv();
      co_return **p;
    }, c, parked);
    bool receiver_parked = co_await conch::test::arrived(parked, 1);
    CHECK(receiver_parked);
    CHECK(co_await c.send(std::make_unique<int>(77)));
    CHECK(c.size() == 0);  // never went through the buffer
    co_return *(co_await r.recv());
  }(ch));
  CHECK(v == 77);
}

TEST_CASE("a promise channel gives its first value to every receiver", "[chan][promise]") {
  auto p = conch::promise_chan<std::string>();
  auto n = conch::test::run_on(2, [](chan<std::string> pc) -> task<int> {
    std::vector<chan<std::string>> rs;
    conch::test::arrivals parking;
    for (int i = 0; i < 10; ++i)
      rs.push_back(conch::go([](chan<std::string> c, conch::test::arrivals a) -> task<std::string> {
        a.arrive();
        co_return *(co_await c.recv());
      }, pc, parking));
    // Parked, or about to (then they find the promise kept: same value).
    bool all_there = co_await conch::test::arrived(parking, 10);
    CHECK(all_there);
    CHECK(co_await pc.send("done"));
    CHECK(co_await pc.send("ignored"));
    int ok = 0;
    for (auto& r : rs) ok += *(co_await r.recv()) == "done";
    co_return ok;
  }(p));
  CHECK(n == 10);
  CHECK(p.try_recv() == std::string("done"));
  CHECK(p.size() == 1);
}

TEST_CASE("blocking operations from plain threads meet coroutines", "[chan][blocking]") {
  chan<int> to_co;
  chan<int> from_co;
  std::thread producer([&] {
    for (int i = 0; i < 1000; ++i) REQUIRE(to_co.send_blocking(i));
    to_co.close();
  });
  std::thread consumer([&] {
    long sum = 0;
    while (auto v = from_co.recv_blocking()) sum += *v;
    CHECK(sum == 999L * 1000 / 2 * 2);
  });
  conch::test::run_on(2, [](chan<int> in, chan<int> out) -> task<void> {
    while (auto v = co_await in.recv()) co_await out.send(*v * 2);
    out.close();
  }(to_co, from_co));
  producer.join();
  consumer.join();
}

TEST_CASE("a parked coroutine resumes on the thread it parked on", "[chan][threads]") {
  chan<int> ch;
  int mismatches = conch::test::run_on(2, [](chan<int> c) -> task<int> {
    std::vector<chan<int>> rs;
    for (int i = 0; i < 16; ++i)
      rs.push_back(conch::go([](chan<int> cc) -> task<int> {
        int bad = 0;
        for (int k = 0; k < 50; ++k) {
          auto before = std::this_thread::get_id();
          co_await cc.recv();
          bad += std::this_thread::get_id() != before;
        }
        co_return bad;
      }, c));
    // Senders from a plain thread and from coroutines.
    std::thread t([c] {
      for (int k = 0; k < 400; ++k) c.send_blocking(k);
    });
    for (int k = 0; k < 400; ++k) co_await c.send(k);
    int bad = 0;
    for (auto& r : rs) bad += *(co_await r.recv());
    t.join();
    co_return bad;
  }(ch));
  CHECK(mismatches == 0);
}

TEST_CASE("channel handles share one channel and compare by identity", "[chan]") {
  chan<int> a(1);
  chan<int> b = a;
  chan<int> c(1);
  CHECK(a == b);
  CHECK_FALSE(a == c);
  CHECK(b.try_send(5));
  CHECK(a.try_recv() == 5);
  std::set<std::size_t> hashes{std::hash<chan<int>>()(a), std::hash<chan<int>>()(b)};
  CHECK(hashes.size() == 1);
  chan<int> moved = std::move(b);
  CHECK(moved == a);
}

TEST_CASE("buffered values are destroyed with the channel", "[chan]") {
  auto token = std::make_shared<int>(1);
  {
    chan<std::shared_ptr<int>> ch(4);
    ch.try_send(token);
    ch.try_send(token);
    CHECK(token.use_count() == 3);
  }
  CHECK(token.use_count() == 1);
}

TEST_CASE("two runtimes can share a channel", "[chan][threads]") {
  chan<int> ch(8);
  conch::runtime a({.threads = 1});
  long sum = 0;
  std::thread other([&] {
    a.block_on([](chan<int> c) -> task<void> {
      for (int i = 1; i <= 10000; ++i) co_await c.send(i);
      c.close();
    }(ch));
  });
  sum = conch::test::run_on(1, [](chan<int> c) -> task<long> {
    long s = 0;
    while (auto v = co_await c.recv()) s += *v;
    co_return s;
  }(ch));
  other.join();
  CHECK(sum == 10000L * 10001 / 2);
}
