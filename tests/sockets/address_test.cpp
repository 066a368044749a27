// tests/sockets/address_test.cpp
// address parsing by lsocket's rules, formatting, resolve() and interfaces().
#include <netinet/in.h>

#include <catch2/catch.hpp>

#include "tests/sockets/net_test_support.hpp"

namespace net = conch::net;

TEST_CASE("numeric addresses parse and print back", "[sockets][address]") {
  auto a = net::address::parse("127.0.0.1:9000");
  REQUIRE(a.ok());
  CHECK(a->family() == AF_INET);
  CHECK(a->port() == 9000);
  CHECK(a->to_string() == "127.0.0.1:9000");
  auto b = net::address::parse("[::1]:80");
  REQUIRE(b.ok());
  CHECK(b->family() == AF_INET6);
  CHECK(b->to_string() == "[::1]:80");
  CHECK(b->host() == "::1");
  auto p = net::address::parse("/tmp/x.sock");
  REQUIRE(p.ok());
  CHECK(p->is_unix());
  CHECK(!p->is_abstract());
  CHECK(p->to_string() == "/tmp/x.sock");
  auto n = net::address::parse("@name");
  REQUIRE(n.ok());
  CHECK(n->is_abstract());
  CHECK(n->to_string() == "@name");
  auto w = net::address::parse("*:0");
  REQUIRE(w.ok());
  CHECK(w->to_string() == "0.0.0.0:0");
  CHECK(net::address::parse(":7")->to_string() == "0.0.0.0:7");
  CHECK(net::address() == net::address());
  CHECK(net::address().to_string().empty());
  CHECK(*net::address::parse("1.2.3.4:5") == *net::address::parse("1.2.3.4:5"));
}

TEST_CASE("bad addresses get a status that says what is wrong", "[sockets][address]") {
  auto check = [](const char* text, const char* fragment) {
    auto a = net::address::parse(text);
    INFO(text);
    REQUIRE(!a.ok());
    CHECK(a.status().code() == absl::StatusCode::kInvalidArgument);
    INFO(std::string(a.status().message()));
    CHECK(std::string(a.status().message()).find(fragment) != std::string::npos);
  };
  check("", "empty");
  check("127.0.0.1", "missing port");
  check("127.0.0.1:", "empty port");
  check("127.0.0.1:http", "not a number");
  check("127.0.0.1:70000", "out of range");
  check("::1:80", "brackets");
  check("[::1", "closing ']'");
  check("[::1]80", "':port'");
  check("[1.2.3.4]:80", "not an IPv6");
  check("@", "needs a name");
  check("localhost:80", "resolve");
  check(("/" + std::string(200, 'x')).c_str(), "limit is 107");
}

TEST_CASE("resolve looks names up off the loop and passes numbers through", "[sockets][address]") {
  conch::run([]() -> conch::task<void> {
    auto r = co_await net::resolve("localhost:8080");
    REQUIRE(r.ok());
    REQUIRE(!r->empty());
    for (const net::address& a : *r) {
      CHECK(a.port() == 8080);
      CHECK((a.host() == "127.0.0.1" || a.host() == "::1"));
    }
    auto n = co_await net::resolve("10.1.2.3");
    REQUIRE(n.ok());
    REQUIRE(n->size() == 1);
    CHECK((*n)[0].to_string() == "10.1.2.3:0");
    auto bad = co_await net::resolve("no-such-host.invalid");
    REQUIRE(!bad.ok());
    CHECK(std::string(bad.status().message()).find("no-such-host.invalid") != std::string::npos);
  }(), {.threads = 1});
}

TEST_CASE("interfaces lists the loopback interface", "[sockets][address]") {
  auto ifs = net::interfaces();
  REQUIRE(ifs.ok());
  bool lo = false;
  for (const auto& i : *ifs)
    if (i.name == "lo" && i.family == AF_INET) {
      lo = true;
      CHECK(i.addr.host() == "127.0.0.1");
      CHECK(i.netmask.host() == "255.0.0.0");
      CHECK(i.loopback);
      CHECK(i.index > 0);
    }
  CHECK(lo);
}
