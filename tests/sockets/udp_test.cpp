// tests/sockets/udp_test.cpp
// UDP: datagrams both ways on IPv4 and IPv6 loopback; bursts and backpressure; multicast on lo (skipped where the host cannot).
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>

#include <cerrno>
#include <cstring>

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

// Whether this host delivers multicast on lo at all, asked of plain sockets
// (no conch): join `group` on lo, send to it from the same socket, wait 2 s.
// "" if it does, else why not.
std::string host_multicast_on_lo(bool v6, const std::string& group) {
  const int fam = v6 ? AF_INET6 : AF_INET;
  int fd = ::socket(fam, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::string("socket: ") + std::strerror(errno);
  std::string why;
  const unsigned lo = ::if_nametoindex("lo");
  sockaddr_storage ss{};
  socklen_t len = 0;
  int fail = 0;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    len = sizeof *a;
    fail |= ::bind(fd, reinterpret_cast<sockaddr*>(a), len);
    ipv6_mreq m{};
    ::inet_pton(AF_INET6, group.c_str(), &m.ipv6mr_multiaddr);
    m.ipv6mr_interface = lo;
    fail |= ::setsockopt(fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, &m, sizeof m);
    fail |= ::setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &lo, sizeof lo);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(a), &len);
    a->sin6_addr = m.ipv6mr_multiaddr;
    a->sin6_scope_id = lo;
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    len = sizeof *a;
    fail |= ::bind(fd, reinterpret_cast<sockaddr*>(a), len);
    ip_mreqn m{};
    ::inet_pton(AF_INET, group.c_str(), &m.imr_multiaddr);
    m.imr_ifindex = static_cast<int>(lo);
    fail |= ::setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &m, sizeof m);
    fail |= ::setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &m, sizeof m);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(a), &len);
    a->sin_addr = m.imr_multiaddr;
  }
  if (fail != 0) why = std::string("cannot join ") + group + " on lo: " + std::strerror(errno);
  else if (::sendto(fd, "probe", 5, 0, reinterpret_cast<sockaddr*>(&ss), len) != 5)
    why = std::string("cannot send to ") + group + " on lo: " + std::strerror(errno);
  else {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 2000) != 1) why = "nothing came back from " + group + " on lo within 2 s";
  }
  ::close(fd);
  return why;
}

// Joins `group` on lo and sends to it from the same socket (multicast loop):
// it must come back. Skips the test if the host itself cannot do it.
void multicast_round_trip(const std::string& bind_to, const std::string& group) {
  const bool v6 = group.find(':') != std::string::npos;
  const std::string why = host_multicast_on_lo(v6, group);
  if (!why.empty()) conch::test::skip("this host has no multicast on lo (" + why + ")");
  conch::run([](std::string bind_addr, std::string grp, bool ipv6) -> task<void> {
    auto m = net::bind_udp(bind_addr);
    REQUIRE(m.ok());
    absl::Status st = m->join_multicast(grp, "lo");
    INFO(st.ToString());
    REQUIRE(st.ok());
    std::string dest_text = ipv6 ? "[" + grp + "%lo]:" + std::to_string(m->local().port())
                                 : grp + ":" + std::to_string(m->local().port());
    auto dest = net::address::parse(dest_text);
    REQUIRE(dest.ok());
    net::datagram d{"to the group", *dest};
    REQUIRE(co_await m->out.send(d));
    auto got = co_await recv_within(m->in);
    INFO("last error: " << m->last_error().ToString());
    REQUIRE(got.has_value());
    REQUIRE(got->has_value());
    CHECK((*got)->data == "to the group");
    CHECK(m->leave_multicast(grp, "lo").ok());
    m->close();
  }(bind_to, group, v6), {.threads = 1});
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

TEST_CASE("UDP multicast on loopback, IPv4", "[sockets][udp][multicast]") {
  multicast_round_trip("0.0.0.0:0", "239.255.42.99");
}

TEST_CASE("UDP multicast on loopback, IPv6", "[sockets][udp][multicast]") {
  multicast_round_trip("[::]:0", "ff12::4299");
}

// include/conch/net/udp.hpp's usage example, as written there.
TEST_CASE("the udp.hpp usage example runs", "[sockets][udp]") {
  conch::run([]() -> task<void> {
    auto other = conch::net::bind_udp("127.0.0.1:0");
    REQUIRE(other.ok());
    const conch::net::address peer = other->local();
    auto u = conch::net::bind_udp("127.0.0.1:0");
    conch::net::datagram ping{"ping", peer};  // named: see the header
    co_await u->out.send(ping);               // one datagram to peer
    auto d = co_await recv_within(other->in);
    REQUIRE(d.has_value());
    REQUIRE(d->has_value());
    CHECK((*d)->data == "ping");
    CHECK((*d)->peer == u->local());
    u->close();
    other->close();
  }(), {.threads = 1});
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
    // Nobody reads: `in` fills, the rest waits in the kernel.
    auto full = [&u] { return u->in.size() == 2; };
    REQUIRE(co_await conch::test::eventually(full));
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
      auto full = [&u] { return u->in.size() == 1; };  // the pump parks with the rest
      REQUIRE(co_await conch::test::eventually(full));
      // Return with the socket open: the runtime must clean up.
    }());
  }
  CHECK(count_fds() == before);
}
