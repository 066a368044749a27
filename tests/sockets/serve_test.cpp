// tests/sockets/serve_test.cpp
// server::serve: connections spread over the runtime's threads, each handled on its socket's thread.
#include <catch2/catch.hpp>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "tests/sockets/net_test_support.hpp"

namespace net = conch::net;
using namespace conch::net::test;
using conch::test::recv_within;
using conch::task;

namespace {

struct seen_threads {
  std::mutex mu;
  std::set<std::thread::id> ids;
  void add() {
    std::lock_guard lk(mu);
    ids.insert(std::this_thread::get_id());
  }
  std::size_t count() {
    std::lock_guard lk(mu);
    return ids.size();
  }
};

// Echoes lines; notes the thread it runs on after every frame (it must stay put).
task<void> noting_echo(net::socket s, seen_threads* seen) {
  seen->add();
  while (auto f = co_await s.in.recv()) {
    seen->add();
    if (!co_await s.out.send(std::move(*f))) break;
  }
  s.out.close();
}

task<bool> one_client(std::string addr, int id) {
  auto c = co_await net::connect(addr, {.frame = net::framing::lines()});
  if (!c.ok()) co_return false;
  for (int i = 0; i < 5; ++i) {
    std::string m = std::to_string(id) + ":" + std::to_string(i);
    if (!co_await c->out.send(m)) co_return false;
    auto r = co_await recv_within(c->in, 10s);
    if (!r || !*r || **r != m) co_return false;
  }
  c->out.close();
  auto end = co_await recv_within(c->in, 10s);
  co_return end.has_value() && !end->has_value();
}

}  // namespace

TEST_CASE("serve spreads connections over the runtime's threads", "[sockets][serve]") {
  seen_threads seen;
  conch::run(
      [](seen_threads* threads) -> task<void> {
        auto srv = net::listen("127.0.0.1:0", {.frame = net::framing::lines()});
        REQUIRE(srv.ok());
        auto handler = [threads](net::socket s) { return noting_echo(std::move(s), threads); };
        conch::chan<conch::unit> served = conch::go(srv->serve(handler));
        const std::string addr = srv->local().to_string();
        // The clients run on a runtime of their own (on a blocking-pool
        // thread), as a foreign peer would: their go blocks do not weigh on
        // the server's loops, which take connections by least load.
        auto clients = [addr] {
          return conch::run([](std::string a) -> task<int> {
            std::vector<conch::chan<bool>> each;
            for (int i = 0; i < 40; ++i) each.push_back(conch::go(one_client(a, i)));
            int ok = 0;
            for (auto& c : each) {
              auto r = co_await recv_within(c, 30s);
              if (r && *r && **r) ++ok;
            }
            co_return ok;
          }(addr), {.threads = 1});
        };
        conch::chan<int> ok = conch::thread(clients);
        auto got = co_await recv_within(ok, 60s);
        CHECK(got.value == std::optional<int>(40));
        srv->close();  // serve() completes once the server is closed
        auto done = co_await recv_within(served, 10s);
        CHECK(done.has_value());
      }(&seen),
      {.threads = 2});
  // Least busy of two loops: both threads served connections. A handler
  // noting a second thread would make three or more.
  CHECK(seen.count() == 2);
}

TEST_CASE("a handler that throws ends only its connection", "[sockets][serve]") {
  conch::run(
      []() -> task<void> {
        auto srv = net::listen("127.0.0.1:0", {.frame = net::framing::lines()});
        REQUIRE(srv.ok());
        auto handler = [](net::socket s) -> task<void> {
          auto f = co_await s.in.recv();
          if (f && *f == "boom") throw std::runtime_error("handler failed on purpose");
          if (f) co_await s.out.send(std::move(*f));
          s.out.close();
        };
        conch::go(srv->serve(handler));
        const std::string addr = srv->local().to_string();
        auto bad = co_await net::connect(addr, {.frame = net::framing::lines()});
        REQUIRE(bad.ok());
        CHECK(co_await bad->out.send("boom"));
        auto good = co_await net::connect(addr, {.frame = net::framing::lines()});
        REQUIRE(good.ok());
        CHECK(co_await good->out.send("fine"));
        auto r = co_await recv_within(good->in, 10s);
        REQUIRE(r.has_value());
        CHECK((r->has_value() && **r == "fine"));
        srv->close();
      }(),
      {.threads = 2});
}

TEST_CASE("a runtime destroyed while served connections live releases them", "[sockets][serve][teardown]") {
  std::string addr;
  {
    conch::runtime rt({.threads = 2});
    rt.block_on([](std::string* out) -> task<void> {
      auto srv = net::listen("127.0.0.1:0", {.frame = net::framing::lines()});
      REQUIRE(srv.ok());
      auto handler = [](net::socket s) { return echo_conn(std::move(s)); };
      conch::go(srv->serve(handler));
      *out = srv->local().to_string();
      for (int i = 0; i < 6; ++i) {  // connected and parked on both loops, never closed
        auto c = co_await net::connect(*out, {.frame = net::framing::lines()});
        REQUIRE(c.ok());
        CHECK(co_await c->out.send("x"));
        auto r = co_await recv_within(c->in, 10s);
        CHECK((r.has_value() && r->has_value()));
      }
    }(&addr));
  }  // ASan/LSan: nothing leaks, no descriptor is used after close
  CHECK(!addr.empty());
}
