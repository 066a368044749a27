// tests/sockets/connect_timeout_test.cpp
// options::connect_timeout: a connect nobody answers ends with kDeadlineExceeded; others are unaffected.
#include <netinet/in.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "tests/sockets/net_test_support.hpp"

namespace net = conch::net;
using namespace conch::net::test;
using conch::test::recv_within;
using conch::task;

namespace {

// A loopback TCP address whose connects hang: a listener with backlog 0 that
// never accepts, its accept queue filled by connections made here, so the
// kernel drops further SYNs (tcp_abort_on_overflow=0, the default) and a new
// connect waits for SYN retransmits. Plain sockets, no conch.
struct black_hole {
  int listen_fd = -1;
  std::vector<int> fillers;
  net::address addr;
  bool ok = false;  // a probe connect was seen hanging

  black_hole() {
    listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (listen_fd < 0 || ::bind(listen_fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0 ||
        ::listen(listen_fd, 0) != 0)
      return;
    socklen_t len = sizeof sin;
    ::getsockname(listen_fd, reinterpret_cast<sockaddr*>(&sin), &len);
    addr = net::address::from_sockaddr(reinterpret_cast<sockaddr*>(&sin), len);
    // Connect until one does not complete within 300 ms: the queue is full.
    for (int i = 0; i < 16 && !ok; ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) return;
      fillers.push_back(fd);
      if (::connect(fd, addr.data(), addr.size()) == 0) continue;
      if (errno != EINPROGRESS) return;
      pollfd p{fd, POLLOUT, 0};
      ok = ::poll(&p, 1, 300) == 0;
    }
  }
  ~black_hole() {
    for (int fd : fillers) ::close(fd);
    if (listen_fd >= 0) ::close(listen_fd);
  }
  black_hole(const black_hole&) = delete;
  black_hole& operator=(const black_hole&) = delete;
};

// True if a plain connect to `a` is refused (nobody listens there).
bool refuses(const net::address& a) {
  int fd = ::socket(a.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  const bool refused = ::connect(fd, a.data(), a.size()) != 0 && errno == ECONNREFUSED;
  ::close(fd);
  return refused;
}

// Connects to `where` with connect_timeout = `limit` from a go block, and
// waits at most `guard` for the outcome (so a connect that ignores the limit
// fails the test instead of hanging it for the kernel's two minutes).
// Outer nullopt: still connecting after `guard`.
task<std::optional<absl::StatusOr<net::socket>>> connect_bounded(
    std::string where, std::chrono::milliseconds limit, std::chrono::seconds guard) {
  net::options o;
  o.connect_timeout = limit;
  auto attempt = conch::go(net::connect(where, o));
  auto r = co_await recv_within(attempt, guard);
  if (!r.has_value() || !r->has_value()) co_return std::nullopt;
  co_return std::move(**r);
}

}  // namespace

TEST_CASE("connect to an address that never answers gives kDeadlineExceeded after connect_timeout",
          "[sockets][connect_timeout][errors]") {
  black_hole hole;
  if (!hole.ok)
    conch::test::skip("could not make a loopback connect hang here (accept queue overflow "
                      "did not drop the SYN)");
  conch::run([](std::string where) -> task<void> {
    const int fds_before = count_fds();
    const auto t0 = std::chrono::steady_clock::now();
    auto r = co_await connect_bounded(where, 300ms, 20s);
    const auto waited = std::chrono::steady_clock::now() - t0;
    REQUIRE(r.has_value());  // else the connect ignored its timeout
    REQUIRE(!r->ok());
    INFO(r->status().ToString());
    CHECK(r->status().code() == absl::StatusCode::kDeadlineExceeded);
    CHECK(std::string(r->status().message()).find("connect to " + where) != std::string::npos);
    CHECK(std::string(r->status().message()).find("300 ms") != std::string::npos);
    CHECK(waited >= 250ms);  // it did wait (timers never fire early; 50 ms of slack)
    CHECK(waited < 15s);
    CHECK(count_fds() == fds_before);  // the abandoned attempt's socket is closed
  }(hole.addr.to_string()), {.threads = 1});
}

TEST_CASE("connects that answer in time are unaffected by connect_timeout",
          "[sockets][connect_timeout]") {
  conch::run([](std::string path) -> task<void> {
    // Named, not a braced temporary: GCC 12 mishandles those across suspension points.
    const std::vector<std::string> places = {"127.0.0.1:0", path};
    for (const std::string& at : places) {
      auto srv = net::listen(at, {.frame = net::framing::lines()});
      REQUIRE(srv.ok());
      conch::go(echo_server(*srv));
      net::options o{.frame = net::framing::lines()};
      o.connect_timeout = 100ms;
      // Several in a row: each leaves a cancelled link timeout behind.
      std::vector<net::socket> conns;
      for (int i = 0; i < 20; ++i) {
        auto c = co_await net::connect(srv->local().to_string(), o);
        INFO(c.status().ToString());
        REQUIRE(c.ok());
        conns.push_back(*c);
      }
      // Past the timeout: the connections keep working.
      co_await conch::sleep(200ms);
      for (net::socket& c : conns) {
        bool sent = co_await c.out.send("still here");
        REQUIRE(sent);
        auto r = co_await recv_within(c.in, 5s);
        REQUIRE(r.has_value());
        CHECK(r->value_or("?") == "still here");
        c.close();
      }
      srv->close();
    }
    // A refusal is still a refusal, not a timeout.
    auto gone = net::listen("127.0.0.1:0");
    REQUIRE(gone.ok());
    const std::string where = gone->local().to_string();
    gone->close();
    const net::address gone_at = gone->local();
    auto refusing = [&gone_at] { return refuses(gone_at); };  // the close has happened
    REQUIRE(co_await conch::test::eventually(refusing));
    auto refused = co_await connect_bounded(where, 2000ms, 20s);
    REQUIRE(refused.has_value());
    REQUIRE(!refused->ok());
    CHECK(refused->status().code() == absl::StatusCode::kUnavailable);
  }(temp_socket_path("ctimeout")), {.threads = 1});
}
