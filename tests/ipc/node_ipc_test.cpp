// tests/ipc/node_ipc_test.cpp
// conch::ipc against real node-ipc 9.2.1 processes (both directions, Unix and TCP) and against itself.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <map>
#include <mutex>
#include <string>

#include "conch/conch.hpp"
#include "sockets/ipc/node_ipc_codec.hpp"
#include "tests/ipc/node_peer.hpp"
#include "tests/support/test_support.hpp"

using namespace std::chrono_literals;
using conch::chan;
using conch::task;
namespace ipc = conch::ipc;
namespace test = conch::test;

namespace {

constexpr int kEvents = 10000;  // each way, per client

std::string temp_path(const char* tag) {
  return "/tmp/conch-ipc-" + std::string(tag) + "-" + std::to_string(::getpid());
}

ipc::json object_with(std::initializer_list<std::pair<const char*, int>> ints, const char* id = nullptr) {
  ipc::json d(rapidjson::kObjectType);
  auto& a = d.GetAllocator();
  if (id) d.AddMember("id", ipc::json_value(id, a), a);
  for (auto& [k, v] : ints) d.AddMember(rapidjson::StringRef(k), v, a);
  return d;
}

int int_member(const ipc::json_value& v, const char* key) {
  if (!v.IsObject()) return -1;
  auto it = v.FindMember(key);
  return it != v.MemberEnd() && it->value.IsInt() ? it->value.GetInt() : -1;
}

std::string string_member(const ipc::json_value& v, const char* key) {
  if (!v.IsObject()) return {};
  auto it = v.FindMember(key);
  return it != v.MemberEnd() && it->value.IsString() ? it->value.GetString() : std::string();
}

/// peer.js's server side of the exchange, played by a conch server, with
/// two node-ipc clients. `listen_at` is a path or "127.0.0.1:0".
task<void> conch_server_with_node_clients(std::string listen_at) {
  const std::string modules = test::require_node_ipc();
  auto srv = ipc::server::listen(listen_at.find('/') != std::string::npos
                                     ? ipc::server_options{.path = listen_at}
                                     : ipc::server_options{.address = listen_at});
  REQUIRE(srv.ok());
  ipc::server s = *srv;
  const std::string where = s.local().to_string();

  // "seq" by a handler: order checked per sender, echoed to the sender.
  auto mu = std::make_shared<std::mutex>();
  auto next = std::make_shared<std::map<std::string, int>>();
  auto out_of_order = std::make_shared<int>(0);
  s.on("seq", [s, mu, next, out_of_order](ipc::event e) mutable -> task<void> {
    {
      std::lock_guard l(*mu);  // std::mutex: TSan cannot see Debian absl::Mutex's ordering
      int& want = (*next)[string_member(*e.data, "id")];
      if (int_member(*e.data, "seq") != want) ++*out_of_order;
      ++want;
    }
    co_await s.emit(*e.from, "seq", *e.data);
  });

  test::node_peer c1({"client", modules, where, std::to_string(kEvents), "c1"});
  test::node_peer c2({"client", modules, where, std::to_string(kEvents), "c2"});
  REQUIRE(c1.started());
  REQUIRE(c2.started());

  int done = 0, connects = 0;
  std::vector<std::string> named;
  while (done < 2) {
    auto e = co_await test::recv_within(s.events, 60s);
    REQUIRE(e.has_value());
    REQUIRE(e->has_value());
    ipc::event ev = std::move(**e);
    if (ev.type == "connect") ++connects;
    if (ev.type != "done") continue;
    ++done;
    const std::string id = ev.from->id();  // learnt from data.id
    named.push_back(id);
    CHECK(id == string_member(*ev.data, "id"));
    ipc::json who;
    who.SetString(id.c_str(), static_cast<rapidjson::SizeType>(id.size()), who.GetAllocator());
    CHECK(co_await s.emit(*ev.from, "whoami", who));
    for (int i = 0; i < kEvents; ++i) {
      ipc::json d = object_with({{"seq", i}});
      REQUIRE(co_await s.emit(*ev.from, "down", d));
    }
    ipc::json b = object_with({{"clients", done}});
    CHECK(co_await s.broadcast("bcast", b) >= 1);
    ipc::json empty(rapidjson::kObjectType);
    CHECK(co_await s.emit(*ev.from, "end", empty));
  }
  CHECK(co_await c1.exit_code() == 0);
  CHECK(co_await c2.exit_code() == 0);
  CHECK(connects == 2);
  CHECK(*out_of_order == 0);
  CHECK((*next)["c1"] == kEvents);
  CHECK((*next)["c2"] == kEvents);
  std::sort(named.begin(), named.end());
  CHECK(named == std::vector<std::string>{"c1", "c2"});
  CHECK(s.malformed() == 0);
  s.close();
  if (listen_at.find('/') != std::string::npos) CHECK(co_await test::unix_path_gone(listen_at));
}

/// peer.js's client side, played by a conch client, against a node-ipc server.
task<void> conch_client_with_node_server(bool tcp) {
  const std::string modules = test::require_node_ipc();
  std::string where;
  if (tcp) {
    // A free port: bind one, note it, let it go (node binds it next).
    auto probe = conch::net::listen("127.0.0.1:0");
    REQUIRE(probe.ok());
    where = "127.0.0.1:" + std::to_string(probe->local().port());
    probe->close();
  } else {
    where = temp_path("node-srv");
  }
  test::remove_at_exit cleanup{tcp ? std::string() : where};
  test::node_peer server({"server", modules, where, std::to_string(kEvents)});
  REQUIRE(server.started());
  auto cli = ipc::client::connect(tcp ? ipc::client_options{.id = "conch", .address = where, .retry = 50ms}
                                      : ipc::client_options{.id = "conch", .path = where, .retry = 50ms});
  REQUIRE(cli.ok());
  ipc::client c = *cli;
  // Emitted before the server is even up: queued, then sent in order.
  for (int i = 0; i < kEvents; ++i) {
    ipc::json d = object_with({{"seq", i}}, "conch");
    REQUIRE(co_await c.emit("seq", d));
  }
  ipc::json done = object_with({}, "conch");
  REQUIRE(co_await c.emit("done", done));

  int up = 0, down = 0, bcasts = 0, disorder = 0;
  std::string whoami;
  bool ended = false;
  while (!ended) {
    auto e = co_await test::recv_within(c.events, 60s);
    REQUIRE(e.has_value());
    REQUIRE(e->has_value());
    ipc::event ev = std::move(**e);
    if (ev.type == "seq") {
      if (int_member(*ev.data, "seq") != up) ++disorder;
      ++up;
    } else if (ev.type == "down") {
      if (int_member(*ev.data, "seq") != down) ++disorder;
      ++down;
    } else if (ev.type == "whoami") {
      whoami = ev.data->IsString() ? ev.data->GetString() : "(not a string)";
    } else if (ev.type == "bcast") {
      ++bcasts;
    } else if (ev.type == "end") {
      ended = true;
    }
  }
  CHECK(up == kEvents);
  CHECK(down == kEvents);
  CHECK(disorder == 0);
  CHECK(whoami == "conch");  // the node server named us from data.id
  CHECK(bcasts == 1);
  CHECK(c.malformed() == 0);
  c.close();
}

}  // namespace

TEST_CASE("node-ipc clients exchange 10,000 events each way with a conch server over a Unix path",
          "[ipc][node-ipc][unix]") {
  const std::string path = temp_path("srv");
  test::run_on(2, conch_server_with_node_clients(path));
}

TEST_CASE("node-ipc clients exchange 10,000 events each way with a conch server over TCP", "[ipc][node-ipc][tcp]") {
  test::run_on(2, conch_server_with_node_clients("127.0.0.1:0"));
}

TEST_CASE("a conch client exchanges 10,000 events each way with a node-ipc server over a Unix path",
          "[ipc][node-ipc][unix]") {
  test::run_on(2, conch_client_with_node_server(false));
}

TEST_CASE("a conch client exchanges 10,000 events each way with a node-ipc server over TCP", "[ipc][node-ipc][tcp]") {
  test::run_on(2, conch_client_with_node_server(true));
}

TEST_CASE("a conch client reconnects after the node-ipc server restarts", "[ipc][node-ipc][reconnect]") {
  test::run_on(2, []() -> task<void> {
    const std::string modules = test::require_node_ipc();
    const std::string path = temp_path("restart-node");
    test::remove_at_exit cleanup{path};
    auto peer = std::make_unique<test::node_peer>(std::vector<std::string>{"echo-server", modules, path});
    auto cli = ipc::client::connect({.id = "conch", .path = path, .retry = 50ms});
    REQUIRE(cli.ok());
    ipc::client c = *cli;
    auto next_of = [&c](const char* type) -> task<std::optional<ipc::event>> {
      for (;;) {
        auto e = co_await test::recv_within(c.events, 30s);
        if (!e.has_value() || !e->has_value()) co_return std::nullopt;
        if ((*e)->type == type) co_return std::move(**e);
      }
    };
    for (int round = 1; round <= 2; ++round) {
      REQUIRE((co_await next_of("connect")).has_value());
      ipc::json d = object_with({{"round", round}}, "conch");
      REQUIRE(co_await c.emit("ping", d));
      auto pong = co_await next_of("pong");
      REQUIRE(pong.has_value());
      CHECK(int_member(*pong->data, "round") == round);
      if (round == 1) {
        peer->kill();
        REQUIRE((co_await next_of("disconnect")).has_value());
        CHECK_FALSE(c.connected());
        peer = std::make_unique<test::node_peer>(std::vector<std::string>{"echo-server", modules, path});
      }
    }
    c.close();
  }());
}

TEST_CASE("a node-ipc client reconnects after the conch server restarts", "[ipc][node-ipc][reconnect]") {
  test::run_on(2, []() -> task<void> {
    const std::string modules = test::require_node_ipc();
    const std::string path = temp_path("restart-conch");
    test::node_peer peer({"echo-client", modules, path, "", "n1", "2"});
    for (int round = 1; round <= 2; ++round) {
      auto srv = ipc::server::listen({.path = path});
      REQUIRE(srv.ok());
      ipc::server s = *srv;
      for (;;) {
        auto e = co_await test::recv_within(s.events, 30s);
        REQUIRE(e.has_value());
        REQUIRE(e->has_value());
        if ((*e)->type != "hello") continue;
        CHECK(int_member(*(*e)->data, "connects") == round);
        CHECK((*e)->from->id() == "n1");
        ipc::json empty(rapidjson::kObjectType);
        CHECK(co_await s.emit(*(*e)->from, "bye", empty));
        break;
      }
      if (round == 2) CHECK(co_await peer.exit_code() == 0);
      s.close();
      CHECK(co_await test::unix_path_gone(path));  // the server removes its own path
    }
  }());
}
