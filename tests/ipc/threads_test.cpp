// tests/ipc/threads_test.cpp
// conch::ipc::server's members called at once from go blocks on both loops and from a plain thread while clients come and go.
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <string>
#include <thread>

#include "conch/conch.hpp"
#include "tests/ipc/node_peer.hpp"
#include "tests/support/test_support.hpp"

using namespace std::chrono_literals;
using conch::task;
namespace ipc = conch::ipc;
namespace test = conch::test;

namespace {

constexpr int kRounds = 15;   // clients each churner connects and closes, one after another
constexpr int kPings = 5;     // events each of those clients sends and gets back
constexpr int kHandlers = 60; // handlers each caller adds

/// Connects, sends kPings "ping"s, checks the "pong"s come back in order,
/// closes; kRounds times. Returns how many rounds got every pong in order
/// (no Catch assertions here: Catch2 v2 is not thread-safe and this runs
/// beside the test's own go block).
task<int> churn(std::string path, std::string tag) {
  int whole = 0;
  for (int round = 0; round < kRounds; ++round) {
    auto cli = ipc::client::connect({.id = tag, .path = path, .retry = 10ms});
    if (!cli.ok()) co_return whole;
    ipc::client c = *cli;
    bool sent = true;
    for (int k = 0; k < kPings && sent; ++k) {
      auto d = ipc::parse("{\"id\":\"" + tag + "\",\"n\":" + std::to_string(k) + "}");
      sent = co_await c.emit("ping", *d);
    }
    int next = 0;
    while (sent && next < kPings) {
      auto e = co_await test::recv_within(c.events, 30s);
      if (!e.has_value() || !e->has_value()) break;
      if ((*e)->type != "pong") continue;  // "connect", and "news"/"direct" from the callers
      if ((*(*e)->data)["n"].GetInt() != next) break;
      ++next;
    }
    c.close();
    if (next != kPings) co_return whole;
    ++whole;
  }
  co_return whole;
}

/// on(), connections(), emit() and broadcast() as fast as they go, from a
/// go block on one loop.
task<void> call_from_loop(ipc::server s, std::string tag, std::shared_ptr<std::atomic<int>> hits) {
  for (int i = 0; i < kHandlers; ++i) {
    s.on(tag + std::to_string(i), [hits](ipc::event) -> task<void> {
      hits->fetch_add(1);
      co_return;
    });
    auto d = ipc::parse("{\"from\":\"" + tag + "\"}");
    for (ipc::connection c : s.connections()) {
      (void)c.id();
      co_await s.emit(c, "direct", *d);  // false if it has just gone: allowed
    }
    co_await s.broadcast("news", *d);
  }
}

}  // namespace

TEST_CASE("ipc::server: on, emit and broadcast from both loops and a plain thread while clients come and go",
          "[ipc][threads]") {
  test::run_on(2, []() -> task<void> {
    const std::string path = "/tmp/conch-ipc-threads-" + std::to_string(::getpid());
    auto srv = ipc::server::listen({.path = path});
    REQUIRE(srv.ok());
    ipc::server s = *srv;
    s.on("ping", [s](ipc::event e) mutable -> task<void> {
      ipc::json d;
      d.CopyFrom(*e.data, d.GetAllocator());
      co_await s.emit(*e.from, "pong", d);
    });
    auto hits = std::make_shared<std::atomic<int>>(0);

    // A plain thread: on() and connections() directly; emit() and
    // broadcast() called here, their tasks awaited on a runtime of its own.
    std::atomic<bool> plain_done{false};
    std::thread plain([s, hits, &plain_done]() mutable {
      conch::runtime rt({.threads = 1});
      for (int i = 0; i < kHandlers; ++i) {
        s.on("p" + std::to_string(i), [hits](ipc::event) -> task<void> {
          hits->fetch_add(1);
          co_return;
        });
        auto d = ipc::parse(R"({"from":"plain"})");
        for (ipc::connection c : s.connections()) rt.block_on(s.emit(c, "direct", *d));
        rt.block_on(s.broadcast("news", *d));
      }
      plain_done.store(true);
    });

    auto churn0 = conch::go_on(conch::placement::loop(0), churn(path, "c0"));
    auto churn1 = conch::go_on(conch::placement::loop(1), churn(path, "c1"));
    auto call0 = conch::go_on(conch::placement::loop(0), call_from_loop(s, "a", hits));
    auto call1 = conch::go_on(conch::placement::loop(1), call_from_loop(s, "b", hits));
    auto r0 = co_await churn0.recv();
    auto r1 = co_await churn1.recv();
    CHECK(r0 == kRounds);  // every client got all its pongs, in order
    CHECK(r1 == kRounds);
    co_await call0.recv();
    co_await call1.recv();
    auto plain_finished = [&plain_done] { return plain_done.load(); };
    const bool joined = co_await test::eventually(plain_finished, 60s);
    REQUIRE(joined);
    plain.join();

    // Every handler added from the three places is in force: one event of each type.
    auto cli = ipc::client::connect({.id = "last", .path = path, .retry = 10ms});
    REQUIRE(cli.ok());
    ipc::json empty(rapidjson::kObjectType);
    for (const char* tag : {"a", "b", "p"})
      for (int i = 0; i < kHandlers; ++i) {
        const bool queued = co_await cli->emit(tag + std::to_string(i), empty);
        REQUIRE(queued);
      }
    auto all_hit = [hits] { return hits->load() == 3 * kHandlers; };
    const bool all = co_await test::eventually(all_hit, 60s);
    CHECK(all);
    CHECK(hits->load() == 3 * kHandlers);
    // Only the last client is left once the churners' are gone.
    auto last_only = [s] { return s.connections().size() == 1; };
    const bool one_left = co_await test::eventually(last_only, 30s);
    CHECK(one_left);
    CHECK(co_await s.broadcast("news", empty) == 1);
    cli->close();
    s.close();
    CHECK(co_await test::unix_path_gone(path));
  }());
}
