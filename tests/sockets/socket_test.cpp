// tests/sockets/socket_test.cpp
// Stream sockets: echo over TCP v4/v6, Unix paths and abstract names; listen/connect errors; close paths.
#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "tests/sockets/net_test_support.hpp"

namespace net = conch::net;
using namespace conch::net::test;
using conch::task;

namespace {

// Listens on `addr`, connects, sends three lines and expects them back.
task<void> echo_round_trip(std::string addr) {
  auto srv = net::listen(addr, {.frame = net::framing::lines()});
  REQUIRE(srv.ok());
  conch::go(echo_server(*srv));
  auto c = co_await net::connect(srv->local().to_string(), {.frame = net::framing::lines()});
  REQUIRE(c.ok());
  for (std::string m : {"hello", "", "world"}) REQUIRE(co_await c->out.send(m));
  for (std::string m : {"hello", "", "world"}) {
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
