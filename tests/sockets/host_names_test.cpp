// tests/sockets/host_names_test.cpp
// listen() and bind_udp() with host names: "localhost", this machine's own name, an unknown name.
#include <netdb.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <string>

#include "tests/sockets/net_test_support.hpp"

namespace net = conch::net;
using namespace conch::net::test;
using conch::test::recv_within;
using conch::task;

namespace {

// This machine's name, if getaddrinfo knows it (through /etc/hosts, usually);
// otherwise the test is skipped, saying why.
std::string resolvable_hostname() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0')
    conch::test::skip(std::string("gethostname failed: ") + std::strerror(errno));
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(name, nullptr, &hints, &res) != 0)
    conch::test::skip("this machine's name '" + std::string(name) + "' does not resolve");
  ::freeaddrinfo(res);
  return name;
}

// Sends one line through `srv` (which echoes) from a client connected to its
// numeric address, and expects it back.
task<void> expect_echo(net::server srv) {
  conch::go(echo_server(srv));
  auto c = co_await net::connect(srv.local().to_string(), {.frame = net::framing::lines()});
  REQUIRE(c.ok());
  bool sent = co_await c->out.send("by name");
  REQUIRE(sent);
  auto r = co_await recv_within(c->in, 5s);
  REQUIRE(r.has_value());
  CHECK(r->value_or("?") == "by name");
  c->close();
  srv.close();
}

// One datagram from a numeric socket to `u`, which must see it.
task<void> expect_datagram(net::udp_socket u) {
  auto from = net::bind_udp(u.local().family() == AF_INET6 ? "[::1]:0" : "127.0.0.1:0");
  REQUIRE(from.ok());
  net::datagram d{"to a named socket", u.local()};
  bool sent = co_await from->out.send(d);
  REQUIRE(sent);
  auto got = co_await recv_within(u.in, 5s);
  REQUIRE(got.has_value());
  REQUIRE(got->has_value());
  CHECK((*got)->data == "to a named socket");
  from->close();
  u.close();
}

// `s` is what `call` ("listen('no-such-host.invalid:1')") gave.
void check_unknown_name(const absl::Status& s, const std::string& call) {
  INFO(s.ToString());
  CHECK(s.code() == absl::StatusCode::kNotFound);
  CHECK(std::string(s.message()).find(call) != std::string::npos);
  CHECK(std::string(s.message()).find("cannot resolve 'no-such-host.invalid'") != std::string::npos);
}

}  // namespace

TEST_CASE("listen on localhost:0 binds 127.0.0.1 and serves", "[sockets][names]") {
  conch::run([]() -> task<void> {
    auto srv = net::listen("localhost:0", {.frame = net::framing::lines()});
    REQUIRE(srv.ok());
    CHECK(srv->local().host() == "127.0.0.1");
    CHECK(srv->local().port() != 0);
    co_await expect_echo(*srv);
  }(), {.threads = 1});
}

TEST_CASE("listen and bind_udp look up the machine's own host name", "[sockets][names]") {
  const std::string own_name = resolvable_hostname();
  conch::run([](std::string host) -> task<void> {
    auto srv = net::listen(host + ":0", {.frame = net::framing::lines()});
    INFO(srv.status().ToString());
    REQUIRE(srv.ok());
    CHECK(srv->local().is_ip());
    CHECK(srv->local().port() != 0);
    // The port is taken now: a second listen on the name fails, and the
    // error names both the address tried and the text given.
    const std::string taken = host + ":" + std::to_string(srv->local().port());
    auto dup = net::listen(taken);
    REQUIRE(!dup.ok());
    INFO(dup.status().ToString());
    CHECK(std::string(dup.status().message()).find(std::strerror(EADDRINUSE)) != std::string::npos);
    CHECK(std::string(dup.status().message()).find("'" + taken + "'") != std::string::npos);
    CHECK(std::string(dup.status().message()).find(srv->local().to_string()) != std::string::npos);
    co_await expect_echo(*srv);

    auto u = net::bind_udp(host + ":0");
    INFO(u.status().ToString());
    REQUIRE(u.ok());
    CHECK(u->local().is_ip());
    co_await expect_datagram(*u);
  }(own_name), {.threads = 1});
}

TEST_CASE("listen and bind_udp on an unknown name say which name", "[sockets][names][errors]") {
  conch::run([]() -> task<void> {
    const std::string bad = "no-such-host.invalid:1";
    check_unknown_name(net::listen(bad).status(), "listen('" + bad + "')");
    check_unknown_name(net::bind_udp(bad).status(), "bind_udp('" + bad + "')");
    co_return;
  }(), {.threads = 1});
}
