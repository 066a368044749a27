// tests/sockets/address_test.cpp
// address parsing by lsocket's rules, formatting, resolve() and interfaces().
#include <net/if.h>
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

// Issue 19: std::stoul on an IPv6 zone threw out of the parser (aborting
// conch.listen from Lua, hanging connect and resolve), and a zone number
// over 32 bits was truncated into another interface's.
TEST_CASE("hostile address strings are statuses, never exceptions or truncations",
          "[sockets][address][hostile]") {
  using namespace std::string_literals;
  struct bad_case {
    std::string text;
    const char* fragment;
  };
  const std::vector<bad_case> cases = {
      {"[fe80::1%123456789012345678901234]:80", "out of range"},
      {"[fe80::1%4294967297]:80", "out of range"},  // was accepted as interface 1
      {"[fe80::1%18446744073709551617]:80", "out of range"},
      {"[fe80::1%0]:80", "out of range"},
      {"[fe80::1%]:80", "empty zone"},
      {"[fe80::1%no-such-if9]:80", "not a network interface"},
      {"[fe80::1%" + std::string(300, 'x') + "]:80", "not a network interface"},
      {"[fe80::1%lo%lo]:80", "not a network interface"},
      {"1.2.3.4\0junk:80"s, "NUL byte"},  // inet_pton would have read "1.2.3.4"
      {"[::1\0]:80"s, "NUL byte"},
      {"127.0.0.1:99999999999999999999999999", "out of range"},
      {"127.0.0.1:65536", "out of range"},
      {"127.0.0.1:-1", "not a number"},
      {"127.0.0.1:+80", "not a number"},
      {"127.0.0.1: 80", "not a number"},
      {"127.0.0.1:0x50", "not a number"},
      {"[::1]:", "empty port"},
      {"[]:80", "empty IPv6"},
      {"[::1]]:80", "':port'"},
      {"1.2.3.4%eth0:80", "neither an IP address nor a host name"},
      {"[1.2.3.4%lo]:80", "not an IPv6"},
      {std::string(1 << 20, 'a') + ":80", "longer than 253"},
      {"\x01\x02:80", "neither an IP address nor a host name"},  // never sent to a resolver
      {"exa mple.org:80", "neither an IP address nor a host name"},
  };
  for (const bad_case& c : cases) {
    INFO(c.text.substr(0, 80));
    auto a = net::address::parse(c.text);  // must not throw
    REQUIRE(!a.ok());
    CHECK(a.status().code() == absl::StatusCode::kInvalidArgument);
    const std::string msg(a.status().message());
    INFO(msg);
    CHECK(msg.find(c.fragment) != std::string::npos);
    CHECK(msg.size() < 400);  // a megabyte of input quotes 200 bytes of it
  }
}

TEST_CASE("IPv6 zones: interface names and 32-bit numbers", "[sockets][address][hostile]") {
  auto lo = net::address::parse("[fe80::1%lo]:80");
  REQUIRE(lo.ok());
  CHECK(lo->to_string() == "[fe80::1%lo]:80");
  auto* v6 = reinterpret_cast<const sockaddr_in6*>(lo->data());
  CHECK(v6->sin6_scope_id == if_nametoindex("lo"));
  // The largest index there can be: kept whole (no interface has it, so it
  // prints as a number).
  auto top = net::address::parse("[fe80::1%4294967295]:80");
  REQUIRE(top.ok());
  CHECK(reinterpret_cast<const sockaddr_in6*>(top->data())->sin6_scope_id == 4294967295u);
  CHECK(top->to_string() == "[fe80::1%4294967295]:80");
  CHECK(net::address::parse("127.0.0.1:00080")->port() == 80);
  CHECK(net::address::parse("127.0.0.1:65535")->port() == 65535);
}

TEST_CASE("every entry point that takes an address gives a bad one back as a status",
          "[sockets][address][hostile]") {
  conch::test::require_io_uring();
  const std::string zone = "[fe80::1%123456789012345678901234]:80";
  conch::run([&]() -> conch::task<void> {
    auto l = net::listen(zone);
    REQUIRE(!l.ok());
    CHECK(l.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(std::string(l.status().message()).find("out of range") != std::string::npos);
    auto u = net::bind_udp(zone);
    REQUIRE(!u.ok());
    CHECK(u.status().code() == absl::StatusCode::kInvalidArgument);
    auto c = co_await net::connect(zone);
    REQUIRE(!c.ok());
    CHECK(c.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(std::string(c.status().message()).find("out of range") != std::string::npos);
    // The resolve path takes a bare IPv6 address (no brackets, no port).
    auto r = co_await net::resolve("::%5115115115115115115115115115");
    REQUIRE(!r.ok());
    CHECK(r.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(std::string(r.status().message()).find("out of range") != std::string::npos);
    auto g = net::bind_udp("127.0.0.1:0");
    REQUIRE(g.ok());
    absl::Status j = g->join_multicast("ff02::1%99999999999999999999");
    CHECK(j.code() == absl::StatusCode::kInvalidArgument);
    CHECK(std::string(j.message()).find("out of range") != std::string::npos);
    using namespace std::string_literals;
    absl::Status k = g->join_multicast("239.1.2.3", "lo\0junk"s);
    CHECK(k.code() == absl::StatusCode::kInvalidArgument);
    CHECK(std::string(k.message()).find("no interface") != std::string::npos);
    g->close();
  }(), {.threads = 1});
}
