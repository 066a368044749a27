// tests/ipc/codec_test.cpp
// conch::ipc's node-ipc codec on hostile input, and conch server <-> conch client (JSON, malformed input, raw mode).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

#include "conch/conch.hpp"
#include "sockets/ipc/node_ipc_codec.hpp"
#include "tests/ipc/node_peer.hpp"
#include "tests/support/test_support.hpp"

using namespace std::chrono_literals;
using conch::task;
namespace ipc = conch::ipc;
namespace test = conch::test;

TEST_CASE("encode writes node-ipc's envelope, escaping a form feed inside strings", "[ipc][codec]") {
  auto d = ipc::parse(R"({"text":"a\fb","n":[1,2]})");
  REQUIRE(d.ok());
  std::string frame = ipc::detail::encode("message", *d);
  CHECK(frame == "{\"type\":\"message\",\"data\":{\"text\":\"a\\fb\",\"n\":[1,2]}}");
  CHECK(frame.find('\f') == std::string::npos);  // the socket's framing adds the delimiter
}

TEST_CASE("decode gives type and data, and reports every malformed frame without throwing", "[ipc][codec]") {
  ipc::limits bounds;
  auto ok = ipc::detail::decode(R"({"type":"t","data":{"id":"x","v":0}})", bounds);
  REQUIRE(ok.error.empty());
  CHECK(ok.type == "t");
  CHECK((*ok.data)["v"].GetInt() == 0);
  auto nodata = ipc::detail::decode(R"({"type":"t"})", bounds);
  REQUIRE(nodata.error.empty());
  CHECK(nodata.data->IsNull());
  for (const char* bad : {"", "{", "[]", "7", R"({"data":1})", R"({"type":3,"data":1})", R"({"type":"t"} x)",
                          "\xff\xfe", R"({"type":"t","data":[}])"}) {
    auto d = ipc::detail::decode(bad, bounds);
    CHECK_FALSE(d.error.empty());
    CHECK(d.data == nullptr);
  }
}

TEST_CASE("decode refuses nesting past max_depth, counting brackets outside strings only", "[ipc][codec]") {
  ipc::limits bounds{.max_depth = 3};
  CHECK(ipc::detail::decode(R"({"type":"t","data":[[1]]})", bounds).error.empty());
  CHECK_FALSE(ipc::detail::decode(R"({"type":"t","data":[[[1]]]})", bounds).error.empty());
  CHECK(ipc::detail::decode(R"({"type":"t","data":"[[[[[\"{{{{"})", bounds).error.empty());
  std::string deep = R"({"type":"t","data":)" + std::string(100000, '[') + std::string(100000, ']') + "}";
  CHECK_FALSE(ipc::detail::decode(deep, ipc::limits{}).error.empty());
}

TEST_CASE("data_id follows node-ipc's truthiness", "[ipc][codec]") {
  auto id_of = [](const char* text) { return ipc::detail::data_id(*ipc::parse(text)); };
  CHECK(id_of(R"({"id":"hello"})") == "hello");
  CHECK(id_of(R"({"id":7})") == "7");
  CHECK(id_of(R"({"id":""})").empty());
  CHECK(id_of(R"({"id":0})").empty());
  CHECK(id_of(R"({"id":false})").empty());
  CHECK(id_of(R"({"id":null})").empty());
  CHECK(id_of(R"("hello")").empty());
}

TEST_CASE("options that name no socket are refused with a clear error", "[ipc]") {
  test::run_on(1, []() -> task<void> {
    auto s = ipc::server::listen({});
    CHECK(s.status().code() == absl::StatusCode::kInvalidArgument);
    auto c = ipc::client::connect({.id = "me"});
    CHECK(c.status().code() == absl::StatusCode::kInvalidArgument);
    co_return;
  }());
}

TEST_CASE("a malformed message is one error event and a count, and the connection goes on", "[ipc][errors]") {
  test::run_on(2, []() -> task<void> {
    const std::string path = "/tmp/conch-ipc-malformed-" + std::to_string(::getpid());
    auto srv = ipc::server::listen({.path = path, .bounds = {.max_depth = 8}});
    REQUIRE(srv.ok());
    auto sock = co_await conch::net::connect(path);
    REQUIRE(sock.ok());
    std::string wire = "{\"type\":\"a\",\"data\":1}\fnot json\f{\"type\":\"b\",\"data\":" + std::string(20, '[') +
                       std::string(20, ']') + "}\f\f{\"type\":\"c\",\"data\":{\"id\":\"raw\"}}\f";
    REQUIRE(co_await sock->out.send(std::move(wire)));
    std::vector<std::string> types;
    while (types.size() < 6) {
      auto e = co_await test::recv_within(srv->events);
      REQUIRE(e.has_value());
      REQUIRE(e->has_value());
      types.push_back((*e)->type);
      if ((*e)->type == "error") CHECK((*(*e)->data)["message"].IsString());
      if ((*e)->type == "c") CHECK((*e)->from->id() == "raw");
    }
    CHECK(types == std::vector<std::string>{"connect", "a", "error", "error", "error", "c"});
    CHECK(srv->malformed() == 3);  // bad JSON, too deep, and the empty frame
    sock->close();
    auto gone = co_await test::recv_within(srv->events);
    REQUIRE(gone.has_value());
    REQUIRE(gone->has_value());
    CHECK((*gone)->type == "socket.disconnected");
    CHECK((*(*gone)->data) == "raw");
    srv->close();
    CHECK(co_await test::unix_path_gone(path));
  }());
}

TEST_CASE("conch client and server: handlers added any time, emit, broadcast, events in order", "[ipc][conch]") {
  test::run_on(2, []() -> task<void> {
    const std::string id = "conch-self-" + std::to_string(::getpid());
    auto srv = ipc::server::listen({.id = id});  // default path /tmp/app.<id>
    REQUIRE(srv.ok());
    CHECK(srv->local().to_string() == "/tmp/app." + id);
    ipc::server s = *srv;
    s.on("ask", [s](ipc::event e) mutable -> task<void> {
      ipc::json d;
      d.CopyFrom(*e.data, d.GetAllocator());
      co_await s.emit(*e.from, "answer", d);
    });
    auto cli = ipc::client::connect({.id = "me", .server = id});
    REQUIRE(cli.ok());
    ipc::client c = *cli;
    auto answers = std::make_shared<conch::chan<int>>(conch::buffer::fixed(2000));
    c.on("answer", [answers](ipc::event e) -> task<void> { co_await answers->send((*e.data)["n"].GetInt()); });
    for (int i = 0; i < 1000; ++i) {
      auto d = ipc::parse("{\"id\":\"me\",\"n\":" + std::to_string(i) + "}");
      REQUIRE(co_await c.emit("ask", *d));
    }
    for (int i = 0; i < 1000; ++i) {
      auto got = co_await test::recv_within(*answers);
      REQUIRE(got.has_value());
      REQUIRE(got->has_value());
      REQUIRE(**got == i);
    }
    auto all = ipc::parse(R"({"to":"all"})");
    CHECK(co_await s.broadcast("news", *all) == 1);
    for (;;) {
      auto e = co_await test::recv_within(c.events);
      REQUIRE(e.has_value());
      REQUIRE(e->has_value());
      if ((*e)->type == "connect") continue;
      CHECK((*e)->type == "news");
      CHECK((*(*e)->data)["to"] == "all");
      break;
    }
    CHECK(s.connections().size() == 1);
    CHECK(s.connections()[0].id() == "me");
    c.close();
    s.close();
    const std::string default_path = "/tmp/app." + id;
    CHECK(co_await test::unix_path_gone(default_path));  // close() removes the default path
  }());
}

TEST_CASE("raw mode carries bytes both ways with no JSON and no delimiter", "[ipc][raw]") {
  test::run_on(2, []() -> task<void> {
    auto srv = ipc::server::listen({.address = "127.0.0.1:0", .raw = true});
    REQUIRE(srv.ok());
    auto cli = ipc::client::connect({.address = srv->local().to_string(), .raw = true});
    REQUIRE(cli.ok());
    ipc::json nothing;
    CHECK_FALSE(co_await cli->emit("x", nothing));  // JSON emit is refused in raw mode
    std::string sent(5000, 'z');
    sent += "\f{not json}";
    REQUIRE(co_await cli->emit_raw(sent));
    std::string got;
    std::optional<ipc::connection> from;
    while (got.size() < sent.size()) {
      auto e = co_await test::recv_within(srv->events);
      REQUIRE(e.has_value());
      REQUIRE(e->has_value());
      if ((*e)->type == "connect") continue;
      REQUIRE((*e)->type == "data");
      got += (*e)->bytes;
      from = (*e)->from;
    }
    CHECK(got == sent);
    std::string back_bytes = "back\f";
    REQUIRE(co_await srv->emit_raw(*from, std::move(back_bytes)));
    std::string back;
    while (back.size() < 5) {
      auto e = co_await test::recv_within(cli->events);
      REQUIRE(e.has_value());
      REQUIRE(e->has_value());
      if ((*e)->type == "data") back += (*e)->bytes;
    }
    CHECK(back == "back\f");
    CHECK(srv->malformed() == 0);
    cli->close();
    srv->close();
  }());
}
