// tests/sockets/udp_test.cpp
// UDP: datagrams both ways on IPv4 and IPv6 loopback; bursts and backpressure; multicast on lo (skipped if not routable here).
#include <netinet/in.h>

#include <catch2/catch.hpp>

#include "tests/sockets/net_test_support.hpp"

namespace net = conch::net;
using namespace conch::net::test;
using conch::test::recv_within;
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

namespace {

// A plain UDP socket on 127.0.0.1 (the sending side, no conch), and its address.
struct raw_udp {
  int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  net::address local;
  raw_udp() {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin);
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0)
      local = net::address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
  }
  ~raw_udp() { ::close(fd); }
  raw_udp(const raw_udp&) = delete;
  raw_udp& operator=(const raw_udp&) = delete;
  // Sends "dgram <i>" for i in [from, to) to `to_addr`; false on a send error.
  bool send_range(int from, int to, const net::address& to_addr) const {
    for (int i = from; i < to; ++i) {
      std::string m = "dgram " + std::to_string(i);
      if (::sendto(fd, m.data(), m.size(), 0, to_addr.data(), to_addr.size()) !=
          static_cast<ssize_t>(m.size()))
        return false;
    }
    return true;
  }
};

// Receives "dgram <i>" for i in [from, to) from `u.in`, each from `peer`.
task<void> expect_range(net::udp_socket u, int from, int to, net::address peer) {
  for (int i = from; i < to; ++i) {
    auto got = co_await recv_within(u.in, 5s);
    REQUIRE(got.has_value());
    REQUIRE(got->has_value());
    CHECK((*got)->data == "dgram " + std::to_string(i));
    CHECK((*got)->peer == peer);
  }
}

}  // namespace

TEST_CASE("UDP: a burst larger than the loop's receive buffers arrives whole, in order",
          "[sockets][udp]") {
  conch::run([]() -> task<void> {
    auto u = net::bind_udp("127.0.0.1:0", {.in_capacity = 256});
    REQUIRE(u.ok());
    raw_udp sender;
    // Sent before the loop looks again: all 64 wait in the socket, more than
    // the 16 ring buffers, so the multishot recvmsg runs dry and is re-armed.
    REQUIRE(sender.send_range(0, 64, u->local()));
    co_await expect_range(*u, 0, 64, sender.local);
    u->close();
  }(), {.threads = 1});
}

TEST_CASE("UDP backpressure: a full `in` stops receiving, nothing is lost, receiving resumes",
          "[sockets][udp][backpressure]") {
  conch::run([]() -> task<void> {
    auto u = net::bind_udp("127.0.0.1:0", {.in_capacity = 2});
    REQUIRE(u.ok());
    raw_udp sender;
    REQUIRE(sender.send_range(0, 40, u->local()));
    co_await conch::sleep(100ms);  // nobody reads: `in` fills, the rest waits
    CHECK(u->in.size() == 2);
    co_await expect_range(*u, 0, 40, sender.local);
    REQUIRE(sender.send_range(40, 45, u->local()));  // re-armed after the drain
    co_await expect_range(*u, 40, 45, sender.local);
    u->close();
    auto end = co_await recv_within(u->in, 5s);
    REQUIRE(end.has_value());
    CHECK(!end->has_value());
  }(), {.threads = 1});
}

TEST_CASE("UDP: a runtime destroyed while datagrams wait for room releases everything",
          "[sockets][udp][teardown]") {
  const int before = count_fds();
  {
    conch::runtime rt({.threads = 1});
    rt.block_on([]() -> task<void> {
      auto u = net::bind_udp("127.0.0.1:0", {.in_capacity = 1});
      REQUIRE(u.ok());
      raw_udp sender;
      REQUIRE(sender.send_range(0, 20, u->local()));
      co_await conch::sleep(50ms);  // `in` full, the pump parked with the rest
      CHECK(u->in.size() == 1);
      // Return with the socket open: the runtime must clean up.
    }());
  }
  CHECK(count_fds() == before);
}
