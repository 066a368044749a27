// tests/sockets/socket_test.cpp
// Stream sockets: echo over TCP v4/v6, Unix paths and abstract names; listen/connect errors; close paths.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <thread>
#include <vector>

#include "tests/sockets/net_test_support.hpp"

namespace net = conch::net;
using namespace conch::net::test;
using conch::test::recv_within;
using conch::task;

namespace {

// Listens on `addr`, connects, sends three lines and expects them back.
task<void> echo_round_trip(std::string addr) {
  auto srv = net::listen(addr, {.frame = net::framing::lines()});
  REQUIRE(srv.ok());
  conch::go(echo_server(*srv));
  auto c = co_await net::connect(srv->local().to_string(), {.frame = net::framing::lines()});
  REQUIRE(c.ok());
  // A named vector: GCC 12 mishandles braced lists across suspension points.
  const std::vector<std::string> msgs = {"hello", "", "world"};
  for (const std::string& m : msgs) REQUIRE(co_await c->out.send(m));
  for (const std::string& m : msgs) {
    auto r = co_await recv_within(c->in, 5s);
    REQUIRE(r.has_value());
    REQUIRE(r->has_value());
    CHECK(**r == m);
  }
  c->out.close();  // half-close: the server sees EOF, finishes, closes its side
  auto end = co_await recv_within(c->in, 5s);
  REQUIRE(end.has_value());
  CHECK(!end->has_value());
  CHECK(c->status().ok());
  auto finished = co_await recv_within(c->done(), 5s);  // both directions over
  CHECK((finished.has_value() && !finished->has_value()));
  srv->close();
}

}  // namespace

TEST_CASE("echo over TCP IPv4 with port 0", "[sockets][echo]") {
  conch::run(echo_round_trip("127.0.0.1:0"), {.threads = 1});
}

TEST_CASE("echo over TCP IPv6", "[sockets][echo]") {
  conch::run(echo_round_trip("[::1]:0"), {.threads = 2});
}

TEST_CASE("echo over a Unix socket path", "[sockets][echo]") {
  std::string path = temp_socket_path("echo");
  conch::run(echo_round_trip(path), {.threads = 2});
  struct stat st {};
  CHECK(::stat(path.c_str(), &st) != 0);  // server close removed the file
}

TEST_CASE("echo over a Linux abstract socket", "[sockets][echo]") {
  conch::run(echo_round_trip("@conch-test-" + std::to_string(::getpid())), {.threads = 1});
}

TEST_CASE("a stale Unix socket file is replaced, a live one refused, other files untouched",
          "[sockets][unix]") {
  std::string path = temp_socket_path("stale");
  ::unlink(path.c_str());
  {  // leave a stale socket file behind, as a crashed process would
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    auto a = net::address::parse(path);
    REQUIRE(::bind(fd, a->data(), a->size()) == 0);
    ::close(fd);
  }
  conch::run([path]() -> task<void> {
    auto srv = net::listen(path);
    REQUIRE(srv.ok());  // stale file replaced
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);  // owner-only by default
    auto again = net::listen(path);
    REQUIRE(!again.ok());
    CHECK(again.status().code() == absl::StatusCode::kAlreadyExists);
    CHECK(std::string(again.status().message()).find("listening") != std::string::npos);
    srv->close();
    auto wide = net::listen(path, {.unix_mode = 0666});
    REQUIRE(wide.ok());
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0666);
    wide->close();
    co_return;
  }(), {.threads = 1});
  std::string plain = temp_socket_path("plainfile");
  FILE* f = std::fopen(plain.c_str(), "w");
  std::fputs("keep me", f);
  std::fclose(f);
  conch::run([plain]() -> task<void> {
    auto srv = net::listen(plain);
    REQUIRE(!srv.ok());
    CHECK(std::string(srv.status().message()).find("not a socket") != std::string::npos);
    co_return;
  }(), {.threads = 1});
  struct stat st {};
  CHECK(::stat(plain.c_str(), &st) == 0);
  ::unlink(plain.c_str());
}

TEST_CASE("listen and connect errors are clear statuses", "[sockets][errors]") {
  auto off = net::listen("127.0.0.1:0");  // not on a runtime thread
  CHECK(off.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(std::string(off.status().message()).find("listen()") != std::string::npos);
  auto off_udp = net::bind_udp("127.0.0.1:0");
  CHECK(off_udp.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(std::string(off_udp.status().message()).find("bind_udp()") != std::string::npos);
  conch::run([]() -> task<void> {
    auto named = net::listen("no-such-host.invalid:80");  // names are looked up (host_names_test)
    CHECK(named.status().code() == absl::StatusCode::kNotFound);
    auto srv = net::listen("127.0.0.1:0");
    REQUIRE(srv.ok());
    auto dup = net::listen(srv->local().to_string());
    CHECK(!dup.ok());
    CHECK(std::string(dup.status().message()).find(srv->local().to_string()) != std::string::npos);
    std::string where = srv->local().to_string();
    net::address gone = srv->local();
    srv->close();
    auto closed = [gone] { return refuses_connections(gone); };
    bool listener_gone = co_await conch::test::eventually(closed);
    CHECK(listener_gone);
    auto refused = co_await net::connect(where);
    REQUIRE(!refused.ok());
    CHECK(refused.status().code() == absl::StatusCode::kUnavailable);
    CHECK(std::string(refused.status().message()).find(where) != std::string::npos);
    auto nofile = co_await net::connect("/tmp/conch-no-such-dir/x.sock");
    CHECK(nofile.status().code() == absl::StatusCode::kNotFound);
    auto noname = co_await net::connect("no-such-host.invalid:80");
    CHECK(noname.status().code() == absl::StatusCode::kNotFound);
    auto bad = co_await net::connect("1.2.3.4");
    CHECK(bad.status().code() == absl::StatusCode::kInvalidArgument);
  }(), {.threads = 1});
}

TEST_CASE("connect resolves names on the blocking pool", "[sockets][echo]") {
  conch::run([]() -> task<void> {
    auto srv = net::listen("localhost:0", {.frame = net::framing::lines()});
    REQUIRE(srv.ok());
    conch::go(echo_server(*srv));
    auto c = co_await net::connect("localhost:" + std::to_string(srv->local().port()),
                                   {.frame = net::framing::lines()});
    REQUIRE(c.ok());
    co_await c->out.send("by name");
    auto r = co_await recv_within(c->in, 5s);
    REQUIRE(r.has_value());
    CHECK(r->value_or("?") == "by name");
    c->close();
    srv->close();
  }(), {.threads = 2});
}

TEST_CASE("half-close: closing out flushes and shuts the write side, in keeps reading",
          "[sockets][halfclose]") {
  conch::run([]() -> task<void> {
    net::options o{.frame = net::framing::lines()};
    auto srv = net::listen("127.0.0.1:0", o);
    REQUIRE(srv.ok());
    // Server: count lines until EOF, then answer and close its side.
    conch::go([](net::server sv) -> task<void> {
      auto s = co_await sv.connections.recv();
      int n = 0;
      while (auto line = co_await s->in.recv()) ++n;
      co_await s->out.send("count=" + std::to_string(n));
      s->out.close();
    }, *srv);
    auto c = co_await net::connect(srv->local().to_string(), o);
    REQUIRE(c.ok());
    for (int i = 0; i < 100; ++i) co_await c->out.send("l" + std::to_string(i));
    c->out.close();  // the 100 lines are flushed, then FIN
    CHECK(!co_await c->out.send("late"));  // closed: refused
    auto answer = co_await recv_within(c->in, 5s);
    REQUIRE(answer.has_value());
    CHECK(answer->value_or("?") == "count=100");
    auto end = co_await recv_within(c->in, 5s);
    REQUIRE(end.has_value());
    CHECK(!end->has_value());
    CHECK(c->status().ok());
    srv->close();
  }(), {.threads = 2});
}

TEST_CASE("a peer reset ends only that connection, with the error in status()",
          "[sockets][errors]") {
  conch::run([]() -> task<void> {
    auto srv = net::listen("127.0.0.1:0", {.frame = net::framing::lines()});
    REQUIRE(srv.ok());
    net::address a = srv->local();
    conch::chan<int> read_first(1);  // the server has read the line: now reset
    auto peer = conch::thread([a, read_first] {
      int fd = raw_connect(a);
      write_all(fd, "before reset\n");
      (void)read_first.recv_blocking();
      linger l{1, 0};  // close with RST
      ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
      ::close(fd);
      return 0;
    });
    auto s = co_await srv->connections.recv();
    REQUIRE(s.has_value());
    auto first = co_await recv_within(s->in, 5s);
    REQUIRE(first.has_value());
    CHECK(first->value_or("?") == "before reset");
    read_first.try_send(1);
    auto end = co_await recv_within(s->in, 5s);
    REQUIRE(end.has_value());
    CHECK(!end->has_value());
    CHECK(s->status().code() == absl::StatusCode::kUnavailable);
    INFO(s->status().ToString());
    CHECK(std::string(s->status().message()).find("reset") != std::string::npos);
    CHECK(!co_await s->out.send("to nobody"));  // out closed by the failure
    co_await peer.recv();
    // The server still accepts and serves.
    conch::go(echo_server(*srv));
    auto c = co_await net::connect(a.to_string(), {.frame = net::framing::lines()});
    REQUIRE(c.ok());
    co_await c->out.send("after");
    auto r = co_await recv_within(c->in, 5s);
    REQUIRE(r.has_value());
    CHECK(r->value_or("?") == "after");
    srv->close();
  }(), {.threads = 1});
}

TEST_CASE("close() from another thread ends both directions", "[sockets][close]") {
  conch::run([]() -> task<void> {
    auto srv = net::listen("127.0.0.1:0");
    REQUIRE(srv.ok());
    net::address a = srv->local();
    auto c = co_await net::connect(a.to_string());
    REQUIRE(c.ok());
    auto s = co_await srv->connections.recv();
    REQUIRE(s.has_value());
    net::socket victim = *s;
    // GCC 12: build a capturing lambda before the co_await expression (LANDSCAPE.md §3.8).
    auto close_victim = [victim]() mutable { victim.close(); };
    auto closed_elsewhere = conch::thread(std::move(close_victim));
    co_await closed_elsewhere.recv();
    CHECK(s->status().code() == absl::StatusCode::kCancelled);
    auto end = co_await recv_within(s->in, 5s);
    REQUIRE(end.has_value());
    CHECK(!end->has_value());
    CHECK(!co_await s->out.send("x"));
    auto peer_end = co_await recv_within(c->in, 5s);  // the client sees EOF
    REQUIRE(peer_end.has_value());
    CHECK(!peer_end->has_value());
    c->close();
    // Closing the server from another thread stops accepting and closes connections.
    net::server sv = *srv;
    auto close_server = [sv]() mutable { sv.close(); };
    auto server_closed = conch::thread(std::move(close_server));
    co_await server_closed.recv();
    auto none = co_await recv_within(srv->connections, 5s);
    REQUIRE(none.has_value());
    CHECK(!none->has_value());
    auto closed = [a] { return refuses_connections(a); };
    bool listener_gone = co_await conch::test::eventually(closed);
    CHECK(listener_gone);
    auto refused = co_await net::connect(a.to_string());
    CHECK(!refused.ok());
  }(), {.threads = 2});
}

TEST_CASE("destroying a runtime with live sockets releases everything", "[sockets][teardown]") {
  int before = count_fds();
  std::string path = temp_socket_path("teardown");
  for (int round = 0; round < 3; ++round) {
    conch::runtime rt({.threads = 2});
    rt.block_on([](std::string upath) -> task<void> {
      auto srv = net::listen("127.0.0.1:0", {.in_capacity = 2});
      REQUIRE(srv.ok());
      auto usrv = net::listen(upath);
      REQUIRE(usrv.ok());
      conch::go(echo_server(*usrv));
      std::vector<net::socket> keep;
      for (int i = 0; i < 8; ++i) {
        // Named first: GCC 12 double-frees a ternary's temporary inside co_await.
        std::string where = i % 2 ? srv->local().to_string() : upath;
        auto c = co_await net::connect(where);
        REQUIRE(c.ok());
        // Traffic in flight, parked writers, a full `in` with a parked pump.
        for (int k = 0; k < 4; ++k) c->out.try_send(std::string(100000, 'q'));
        keep.push_back(*c);
      }
      auto u = net::bind_udp("127.0.0.1:0");
      REQUIRE(u.ok());
      co_await conch::sleep(50ms);
      // Return with everything open: the runtime must clean up.
    }(path));
  }
  struct stat st {};
  CHECK(::stat(path.c_str(), &st) != 0);  // the socket file was removed
  CHECK(count_fds() == before);
}
