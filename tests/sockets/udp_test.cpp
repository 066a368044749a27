// tests/sockets/udp_test.cpp
// UDP: datagrams both ways on IPv4 and IPv6 loopback; multicast on lo (skipped if not routable here).
#include <catch2/catch.hpp>

#include "tests/sockets/net_test_support.hpp"

namespace net = conch::net;
using namespace conch::net::test;
using conch::task;

namespace {

task<void> ping_pong(std::string bind_a, std::string bind_b) {
  auto a = net::bind_udp(bind_a);
  auto b = net::bind_udp(bind_b);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(a->local().port() != 0);
  net::datagram ping{"ping", b->local()};
  REQUIRE(co_await a->out.send(ping));
  auto got = co_await recv_within(b->in, 5s);
  REQUIRE(got.has_value());
  REQUIRE(got->has_value());
  CHECK((*got)->data == "ping");
  CHECK((*got)->peer == a->local());
  net::datagram pong{std::string(60000, 'p'), (*got)->peer};  // a large datagram
  REQUIRE(co_await b->out.send(pong));
  auto back = co_await recv_within(a->in, 5s);
  REQUIRE(back.has_value());
  REQUIRE(back->has_value());
  CHECK((*back)->data.size() == 60000);
  CHECK((*back)->peer == b->local());
  a->close();
  b->close();
  auto closed = co_await recv_within(a->in, 5s);
  REQUIRE(closed.has_value());
  CHECK(!closed->has_value());
  CHECK(!co_await a->out.send(ping));
}

// Joins `group` on lo and sends to it from the same socket (multicast loop).
// Returns false (after printing why) when this sandbox cannot route it.
task<bool> multicast_round_trip(std::string bind_to, std::string group) {
  auto m = net::bind_udp(bind_to);
  REQUIRE(m.ok());
  absl::Status st = m->join_multicast(group, "lo");
  if (!st.ok()) {
    WARN("multicast skipped: cannot join " << group << " on lo here: " << st.ToString());
    co_return false;
  }
  std::string dest_text = group.find(':') != std::string::npos
                              ? "[" + group + "%lo]:" + std::to_string(m->local().port())
                              : group + ":" + std::to_string(m->local().port());
  auto dest = net::address::parse(dest_text);
  REQUIRE(dest.ok());
  net::datagram d{"to the group", *dest};
  co_await m->out.send(d);
  auto got = co_await recv_within(m->in, 1s);
  if (!got.has_value()) {
    WARN("multicast skipped: nothing came back from " << dest_text << " on lo (last error: "
                                                      << m->last_error().ToString() << ")");
    co_return false;
  }
  REQUIRE(got->has_value());
  CHECK((*got)->data == "to the group");
  CHECK(m->leave_multicast(group, "lo").ok());
  m->close();
  co_return true;
}

}  // namespace

TEST_CASE("UDP datagrams over IPv4 loopback", "[sockets][udp]") {
  conch::run(ping_pong("127.0.0.1:0", "127.0.0.1:0"), {.threads = 1});
}

TEST_CASE("UDP datagrams over IPv6 loopback", "[sockets][udp]") {
  conch::run(ping_pong("[::1]:0", "[::1]:0"), {.threads = 2});
}

TEST_CASE("UDP errors: bad addresses and groups", "[sockets][udp]") {
  conch::run([]() -> task<void> {
    CHECK(net::bind_udp("/tmp/x.sock").status().code() == absl::StatusCode::kInvalidArgument);
    auto u = net::bind_udp("127.0.0.1:0");
    REQUIRE(u.ok());
    CHECK(u->join_multicast("10.0.0.1").code() == absl::StatusCode::kInvalidArgument);
    CHECK(u->join_multicast("239.1.1.1", "no-such-if0").code() ==
          absl::StatusCode::kInvalidArgument);
    CHECK(u->join_multicast("not-an-address").code() == absl::StatusCode::kInvalidArgument);
    u->close();
    co_return;
  }(), {.threads = 1});
}

TEST_CASE("UDP multicast on loopback, IPv4 and IPv6", "[sockets][udp][multicast]") {
  bool v4 = conch::run(multicast_round_trip("0.0.0.0:0", "239.255.42.99"), {.threads = 1});
  bool v6 = conch::run(multicast_round_trip("[::]:0", "ff12::4299"), {.threads = 1});
  if (v4 && v6) SUCCEED("multicast round trips on lo for IPv4 and IPv6");
}
