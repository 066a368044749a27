// tests/ipcio/interop_test.cpp
// conch's ipcIO server and client against each other and against the independent node peer (ipcio_peer.js).
#include <catch2/catch.hpp>

#include <atomic>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

#include "conch/net/ipcio.hpp"
#include "tests/support/socat_sink.hpp"
#include "tests/support/test_support.hpp"

using namespace std::chrono_literals;
using conch::chan;
using conch::task;
using conch::ipc::ipcio_client;
using conch::ipc::ipcio_event;
using conch::ipc::ipcio_options;
using conch::ipc::ipcio_server;
using conch::ipc::json;
using conch::ipc::json_parse;
using conch::ipc::json_text;

namespace {

// A domain no other test (or engineer) uses: the pid and a counter.
std::string unique_domain() {
  static std::atomic<int> n{0};
  return "conch-test-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
}

// The next event of `kind` (and `command`, if given) within `limit`; others are skipped.
task<std::optional<ipcio_event>> next_event(chan<ipcio_event> ev, std::string kind, std::string command = {},
                                            std::chrono::nanoseconds limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= 0ns) co_return std::nullopt;
    auto r = co_await conch::test::recv_within(ev, left);
    if (r.timed_out || !r.value) co_return std::nullopt;
    if (r.value->kind == kind && (command.empty() || r.value->command == command)) co_return std::move(*r.value);
  }
}

json text_value(const std::string& s) {
  json d;
  d.SetString(s.data(), static_cast<rapidjson::SizeType>(s.size()), d.GetAllocator());
  return d;
}

// The handlers the node peer's "clients" scenario expects of a server.
void install_server_handlers(ipcio_server srv) {
  auto ping = [srv](json data, std::string name) mutable -> task<json> {
    co_await srv.emit(name, "pong", data);
    co_return std::move(data);
  };
  auto add = [](json data, std::string) -> task<json> {
    json r;
    if (data.IsObject() && data.HasMember("a") && data.HasMember("b") && data["a"].IsNumber() && data["b"].IsNumber())
      r.SetDouble(data["a"].GetDouble() + data["b"].GetDouble());
    if (r.IsDouble() && r.GetDouble() == static_cast<double>(static_cast<long long>(r.GetDouble())))
      r.SetInt64(static_cast<long long>(r.GetDouble()));
    co_return r;
  };
  // Says which JSON value arrived (0, false and "" must not become null).
  auto kinds = [](json data, std::string) -> task<json> {
    std::string s = data.IsNull()     ? "null"
                    : data.IsBool()   ? (data.GetBool() ? "true" : "false")
                    : data.IsNumber() ? "number:" + json_text(data)
                    : data.IsString() ? "string:" + std::string(data.GetString(), data.GetStringLength())
                                      : "other";
    co_return text_value(s);
  };
  auto ask_broadcast = [srv](json data, std::string) mutable -> task<json> {
    co_await srv.broadcast("from_server", data);
    co_return json();
  };
  REQUIRE(srv.handle("ping", ping).ok());
  REQUIRE(srv.handle("add", add).ok());
  REQUIRE(srv.handle("kinds", kinds).ok());
  REQUIRE(srv.handle("ask_broadcast", ask_broadcast).ok());
}

bool have_node() { return conch::test::have_tool("node"); }

// Waits (plain thread) until something listens on `path`.
bool wait_listening(const std::string& path, std::chrono::seconds limit = 20s) {
  const auto give_up = std::chrono::steady_clock::now() + limit;
  while (!conch::test::listening(path, 0)) {
    if (std::chrono::steady_clock::now() >= give_up) return false;
    ::usleep(2000);  // nothing announces another process's listen: look every 2 ms
  }
  return true;
}

// The peer's server on `domain`, listening; -1 if it did not start.
pid_t start_peer_server(const std::string& domain) {
  pid_t pid = conch::test::spawn({"node", CONCH_IPCIO_PEER, "server", "/tmp/IPC.io", domain});
  if (pid > 0 && !wait_listening("/tmp/IPC.io." + domain)) {
    conch::test::wait_child(pid, 1ms);  // kills it
    return -1;
  }
  return pid;
}

// Waits for child `pid` on the blocking pool: its exit code, -1 if killed.
task<int> child_exit(pid_t pid, std::chrono::milliseconds limit) {
  auto wait = [pid, limit] { return conch::test::wait_child(pid, limit); };  // named: GCC 12
  chan<int> done = conch::thread(wait);
  std::optional<int> code = co_await done.recv();
  co_return code.value_or(-1);
}

}  // namespace

TEST_CASE("a conch ipcIO server serves the node peer's clients", "[ipcio][interop][node]") {
  if (!have_node()) conch::test::skip("node is not installed");
  int code = conch::test::run_on(2, [](std::string domain) -> task<int> {
    auto srv = ipcio_server::listen({.domain = domain});
    REQUIRE(srv.ok());
    install_server_handlers(*srv);
    const pid_t pid = conch::test::spawn({"node", CONCH_IPCIO_PEER, "clients", "/tmp/IPC.io", domain});
    REQUIRE(pid > 0);
    const int exit = co_await child_exit(pid, 90s);
    CHECK(srv->malformed() == 0);
    srv->close();
    co_return exit;
  }(unique_domain()));
  CHECK(code == 0);
}

TEST_CASE("conch ipcIO clients work with the node peer's server, and reconnect when it restarts",
          "[ipcio][interop][node]") {
  if (!have_node()) conch::test::skip("node is not installed");
  const std::string dom = unique_domain();
  const pid_t pid1 = start_peer_server(dom);
  REQUIRE(pid1 > 0);
  pid_t pid2 = -1;
  conch::test::run_on(2, [](std::string domain, pid_t first, pid_t* second) -> task<int> {
    ipcio_options o{.domain = domain};
    auto alpha = co_await ipcio_client::connect("alpha", o);
    REQUIRE(alpha.ok());
    auto dup = co_await ipcio_client::connect("alpha", o);
    CHECK(dup.status().code() == absl::StatusCode::kAlreadyExists);

    json seq1 = json_parse(R"({"seq":1,"text":"hello"})");
    CHECK(co_await alpha->send("ping", seq1));
    auto pong = co_await next_event(alpha->events(), "command", "pong");
    REQUIRE(pong);
    CHECK(json_text(pong->data) == R"({"seq":1,"text":"hello"})");

    json ab = json_parse(R"({"a":2,"b":3})");
    auto sum = co_await alpha->deliver("add", ab);
    REQUIRE(sum.ok());
    CHECK(json_text(*sum) == "5");

    auto beta = co_await ipcio_client::connect("beta", o);
    REQUIRE(beta.ok());
    auto twice = [](json d, std::string) -> task<json> {
      json r;
      r.SetInt64(d.IsNumber() ? d.GetInt64() * 2 : -1);
      co_return r;
    };
    REQUIRE(beta->handle("double", twice).ok());
    // The peer's server (like ipcio's) drops an emit to a client whose own socket it has not
    // accepted yet: a round trip first proves beta is in.
    json seq0 = json_parse(R"({"seq":0})");
    CHECK(co_await beta->send("ping", seq0));
    CHECK(co_await next_event(beta->events(), "command", "pong"));
    json hello = json_parse(R"({"from":"alpha"})");
    CHECK(co_await alpha->emit("beta", "hello", hello));
    auto got = co_await next_event(beta->events(), "command", "hello");
    REQUIRE(got);
    CHECK(json_text(got->data) == R"({"from":"alpha"})");
    json n21 = json_parse("21");
    auto doubled = co_await alpha->deliver_to("beta", "double", n21);
    REQUIRE(doubled.ok());
    CHECK(json_text(*doubled) == "42");

    json list = json_parse("[1,2,3]");
    CHECK(co_await alpha->broadcast("news", list));
    auto na = co_await next_event(alpha->events(), "command", "news");
    auto nb = co_await next_event(beta->events(), "command", "news");
    REQUIRE(na);
    REQUIRE(nb);
    CHECK(json_text(nb->data) == "[1,2,3]");

    auto d = co_await alpha->discover();
    REQUIRE(d.ok());
    std::sort(d->clients.begin(), d->clients.end());
    CHECK(d->clients == std::vector<std::string>{"alpha", "beta"});
    CHECK(std::count(d->command_handlers.begin(), d->command_handlers.end(), "add") == 1);

    // Reconnect: the server quits; what alpha sends meanwhile is queued; a new server gets it.
    const json null_value;
    CHECK(co_await alpha->send("quit", null_value));
    CHECK(co_await child_exit(first, 30s) == 0);
    auto gone = co_await next_event(alpha->events(), "disconnect");
    CHECK(gone.has_value());
    json seq2 = json_parse(R"({"seq":2})");
    CHECK(co_await alpha->send("ping", seq2));  // queued while disconnected
    auto restart = [domain] { return start_peer_server(domain); };  // named: GCC 12
    chan<pid_t> started = conch::thread(restart);
    *second = (co_await started.recv()).value_or(-1);
    REQUIRE(*second > 0);
    auto back = co_await next_event(alpha->events(), "connect", {}, 20s);
    CHECK(back.has_value());
    auto pong2 = co_await next_event(alpha->events(), "command", "pong", 20s);
    REQUIRE(pong2);
    CHECK(json_text(pong2->data) == R"({"seq":2})");
    // A delivery, not a send: the peer answers before it shuts down, so the
    // answer proves "quit" arrived over the new session.
    auto quit_ack = co_await alpha->deliver("quit", null_value);
    CHECK(quit_ack.ok());
    alpha->close();  // sends what is queued ("quit"), then ends the session: `events` closes
    bool ended = false;
    for (;;) {
      auto r = co_await conch::test::recv_within(alpha->events(), 20s);
      if (r.timed_out) break;
      if (!r.value) {
        ended = true;
        break;
      }
    }
    CHECK(ended);
    beta->close();
    co_return 0;
  }(dom, pid1, &pid2));
  if (pid2 > 0) CHECK(conch::test::wait_child(pid2, 30s) == 0);
}

TEST_CASE("conch ipcIO clients and server: handlers, emit, delivery, broadcast, discover, data as sent",
          "[ipcio][conch]") {
  conch::test::run_on(2, [](std::string domain) -> task<int> {
    ipcio_options o{.domain = domain};
    auto srv = ipcio_server::listen(o);
    REQUIRE(srv.ok());
    install_server_handlers(*srv);
    CHECK(srv->handle("deliver", conch::ipc::ipcio_handler()).code() == absl::StatusCode::kInvalidArgument);
    auto a = co_await ipcio_client::connect("a", o);
    auto b = co_await ipcio_client::connect("b", o);
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    auto c = co_await ipcio_client::connect("b", o);
    CHECK(c.status().code() == absl::StatusCode::kAlreadyExists);

    // 0, false, "" and "}{" arrive as sent (the real library would give null, or break on "}{").
    for (const char* v : {"0", "false", "\"\"", "\"}{ }{\"", "null"}) {
      json data = json_parse(v);
      auto r = co_await a->deliver("kinds", data);
      REQUIRE(r.ok());
      const std::string want = std::string(v) == "0"       ? "number:0"
                               : std::string(v) == "false" ? "false"
                               : std::string(v) == "null"  ? "null"
                               : std::string(v) == "\"\""  ? "string:"
                                                           : "string:}{ }{";
      CHECK(r->GetString() == want);
    }
    // The server emits to a client by name (once its own socket is accepted); an unknown name is false.
    auto both = [s = *srv] { return s.clients().size() == 2; };
    CHECK(co_await conch::test::eventually(both));
    json x = json_parse(R"({"k":[1,"}{"]})");
    CHECK(co_await srv->emit("b", "direct", x));
    CHECK_FALSE(co_await srv->emit("nobody", "direct", x));
    auto direct = co_await next_event(b->events(), "command", "direct");
    REQUIRE(direct);
    CHECK(json_text(direct->data) == R"({"k":[1,"}{"]})");
    // Client to client, with a delivery answered by b's handler.
    auto echo = [](json d, std::string) -> task<json> { co_return std::move(d); };
    REQUIRE(b->handle("echo", echo).ok());
    json payload = json_parse(R"({"deep":{"er":[true,false,0,""]}})");
    auto back = co_await a->deliver_to("b", "echo", payload);
    REQUIRE(back.ok());
    CHECK(json_text(*back) == R"({"deep":{"er":[true,false,0,""]}})");
    // Broadcasts from a client and from the server reach both.
    json hi = json_parse("\"hi\"");
    CHECK(co_await a->broadcast("all", hi));
    CHECK(co_await srv->broadcast("all2", hi) == 2);
    for (auto* cli : {&*a, &*b}) {  // the two may arrive in either order
      auto e1 = co_await next_event(cli->events(), "command");
      auto e2 = co_await next_event(cli->events(), "command");
      REQUIRE(e1);
      REQUIRE(e2);
      CHECK(e1->command + "," + e2->command == (e1->command == "all" ? "all,all2" : "all2,all"));
    }
    auto d = co_await b->discover();
    REQUIRE(d.ok());
    CHECK(d->clients == std::vector<std::string>{"a", "b"});
    CHECK(d->command_handlers == std::vector<std::string>{"add", "ask_broadcast", "kinds", "ping"});
    CHECK(srv->clients() == std::vector<std::string>{"a", "b"});
    // A command nobody handles is a server event; a delivery of it is answered with null.
    json one = json_parse("1");
    auto unhandled = co_await a->deliver("nobody_handles", one);
    REQUIRE(unhandled.ok());
    CHECK(unhandled->IsNull());
    auto ev = co_await next_event(srv->events(), "command", "nobody_handles");
    REQUIRE(ev);
    CHECK(ev->name == "a");
    a->close();
    auto left = co_await next_event(srv->events(), "disconnect");
    REQUIRE(left);
    CHECK(left->name == "a");
    CHECK(srv->clients() == std::vector<std::string>{"b"});
    b->close();
    srv->close();
    co_return 0;
  }(unique_domain()));
}

TEST_CASE("garbage, a message split across writes and }{ in strings end nothing else", "[ipcio][conch]") {
  conch::test::run_on(1, [](std::string domain) -> task<int> {
    ipcio_options o{.domain = domain};
    auto srv = ipcio_server::listen(o);
    REQUIRE(srv.ok());
    chan<std::string> got(16);
    auto record = [got](json d, std::string) mutable -> task<json> {
      co_await got.send(json_text(d));
      co_return json();
    };
    REQUIRE(srv->handle("rec", record).ok());
    // A hand-made client: handshake on the domain socket, then raw writes on its own socket.
    auto dom = co_await conch::net::connect(srv->path());
    REQUIRE(dom.ok());
    co_await dom->out.send(R"({"id":null,"command":"handshake","data":"raw","delivery":null})");
    auto answer = co_await conch::test::recv_within(dom->in);
    REQUIRE(answer.value);
    json h = json_parse(*answer.value);
    REQUIRE(h.IsObject());
    REQUIRE(h["data"].IsString());
    auto own = co_await conch::net::connect(srv->path() + "." + h["data"].GetString());
    REQUIRE(own.ok());
    const std::string m1 = R"({"id":null,"command":"rec","data":"a }{ b","delivery":null})";
    const std::string m2 = R"({"id":null,"command":"rec","data":{"n":2},"delivery":null})";
    co_await own->out.send("not json at all" + m1 + m2.substr(0, 9));
    auto first = co_await conch::test::recv_within(got);
    REQUIRE(first.value);
    CHECK(*first.value == R"("a }{ b")");
    co_await own->out.send(m2.substr(9) + R"({"id":null,"command":"rec","data":tru})");
    co_await own->out.send(R"({"id":null,"command":"rec","data":3,"delivery":null})");
    auto second = co_await conch::test::recv_within(got);
    auto third = co_await conch::test::recv_within(got);
    REQUIRE(second.value);
    REQUIRE(third.value);
    CHECK(*second.value == R"({"n":2})");
    CHECK(*third.value == "3");
    CHECK(srv->malformed() == 2);  // the garbage and the broken object, nothing else
    CHECK(srv->clients() == std::vector<std::string>{"raw"});
    dom->close();
    own->close();
    srv->close();
    co_return 0;
  }(unique_domain()));
}

TEST_CASE("a conch client reconnects when the conch server restarts and sends what was queued",
          "[ipcio][conch][reconnect]") {
  conch::test::run_on(2, [](std::string domain) -> task<int> {
    ipcio_options o{.domain = domain, .reconnect_interval = 200ms};
    auto srv = ipcio_server::listen(o);
    REQUIRE(srv.ok());
    auto cli = co_await ipcio_client::connect("r", o);
    REQUIRE(cli.ok());
    CHECK(co_await next_event(cli->events(), "connect"));
    srv->close();
    CHECK(co_await next_event(cli->events(), "disconnect"));
    CHECK_FALSE(cli->connected());
    for (int i = 0; i < 3; ++i) {
      json v;
      v.SetInt(i);
      CHECK(co_await cli->send("queued", v));  // queued while no server is there
    }
    auto srv2 = ipcio_server::listen(o);
    REQUIRE(srv2.ok());
    for (int i = 0; i < 3; ++i) {
      auto ev = co_await next_event(srv2->events(), "command", "queued");
      REQUIRE(ev);
      CHECK(ev->name == "r");
      CHECK(ev->data.GetInt() == i);
    }
    CHECK(cli->connected());
    cli->close();
    srv2->close();
    co_return 0;
  }(unique_domain()));
}

TEST_CASE("10,000 events each way between conch peers arrive in order", "[ipcio][conch][scale]") {
  conch::test::run_on(2, [](std::string domain) -> task<int> {
    ipcio_options o{.domain = domain};
    auto srv = ipcio_server::listen(o);
    REQUIRE(srv.ok());
    auto cli = co_await ipcio_client::connect("many", o);
    REQUIRE(cli.ok());
    constexpr int n = 10000;
    // Senders and receivers run side by side: events are bounded, so a reader waits for its consumer.
    auto send_up = [](ipcio_client c) -> task<void> {
      for (int i = 0; i < n; ++i) {
        json v;
        v.SetInt(i);
        co_await c.send("up", v);
      }
    };
    auto send_down = [](ipcio_server s) -> task<void> {
      for (int i = 0; i < n; ++i) {
        json v;
        v.SetInt(i);
        co_await s.emit("many", "down", v);
      }
    };
    // Counts `command` events in order: how many came before a gap, a reorder or a timeout.
    auto count = [](chan<ipcio_event> ev, std::string command) -> task<int> {
      int k = 0;
      while (k < n) {
        auto e = co_await next_event(ev, "command", command);
        if (!e || e->data.GetInt() != k) break;
        ++k;
      }
      co_return k;
    };
    auto joined = [s = *srv] { return s.clients().size() == 1; };  // emit needs the accepted client
    CHECK(co_await conch::test::eventually(joined));
    conch::go(send_up, *cli);
    conch::go(send_down, *srv);
    chan<int> down_done = conch::go(count, cli->events(), std::string("down"));
    const int up = co_await count(srv->events(), "up");
    const int down = (co_await down_done.recv()).value_or(-1);
    CHECK(up == n);
    CHECK(down == n);
    cli->close();
    srv->close();
    co_return 0;
  }(unique_domain()));
}

TEST_CASE("what a client sends right before close() reaches the server, 100 times over", "[ipcio][conch][close]") {
  conch::test::run_on(2, []() -> task<int> {
    int whole = 0, left_behind = 0;
    for (int round = 0; round < 100; ++round) {
      ipcio_options o{.domain = unique_domain()};
      auto srv = ipcio_server::listen(o);
      REQUIRE(srv.ok());
      auto cli = co_await ipcio_client::connect("last", o);
      REQUIRE(cli.ok());
      for (int i = 0; i < 3; ++i) {
        json v;
        v.SetInt(i);
        const bool queued = co_await cli->send("m", v);
        REQUIRE(queued);
      }
      cli->close();  // at once: the three must still arrive, in order
      int got = 0;
      while (got < 3) {
        auto ev = co_await next_event(srv->events(), "command", "m", 10s);
        if (!ev || ev->data.GetInt() != got) break;
        ++got;
      }
      if (got == 3) ++whole;
      const std::string path = srv->path();
      srv->close();
      auto gone = [path] {
        struct stat st {};
        return ::lstat(path.c_str(), &st) != 0;
      };
      if (!co_await conch::test::eventually(gone, 10s)) ++left_behind;  // close() removes the domain socket
    }
    CHECK(whole == 100);
    CHECK(left_behind == 0);
    co_return 0;
  }());
}
