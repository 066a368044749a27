// tests/sockets/limits_test.cpp
// Backpressure both ways, 1,000 concurrent connections, EMFILE on accept.
#include <sys/resource.h>
#include <sys/time.h>

#include <catch2/catch.hpp>
#include <thread>
#include <vector>

#include "tests/sockets/net_test_support.hpp"

namespace net = conch::net;
using namespace conch::net::test;
using conch::test::recv_within;
using conch::chan;
using conch::task;

namespace {

// Process CPU time (user + system) in milliseconds.
long cpu_ms() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return (u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000 +
         (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1000;
}

// Raises the soft descriptor limit to at least `want` (up to the hard limit).
bool ensure_fds(rlim_t want) {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur >= want) return true;
  if (rl.rlim_max < want) return false;
  rl.rlim_cur = want;
  return setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

}  // namespace

TEST_CASE("backpressure: a peer that never reads parks the writer, memory stays flat",
          "[sockets][backpressure]") {
  conch::run([]() -> task<void> {
    auto srv = net::listen("127.0.0.1:0", {.out_capacity = 4});
    REQUIRE(srv.ok());
    net::address a = srv->local();
    chan<int> done(1);
    auto peer = conch::thread([a, done] {
      int fd = raw_connect(a);  // connects, never reads
      done.recv_blocking();
      ::close(fd);
      return 0;
    });
    auto s = co_await srv->connections.recv();
    REQUIRE(s.has_value());
    const std::string frame(256 * 1024, 'w');
    // Fill: sends succeed until the kernel buffers, the writer's batch and
    // `out` are full; then a send parks (here: times out).
    std::size_t accepted = 0;
    for (;;) {
      auto r = co_await conch::select(conch::send(s->out, frame), conch::recv(conch::timeout(300ms)));
      if (r.index() == 1) break;
      REQUIRE(std::get<0>(r));
      ++accepted;
      REQUIRE(accepted < 400);  // 100 MiB: no backpressure at all
    }
    long rss_parked = rss_kib();
    // Keep pushing for a while (10 MiB): every send parks and is withdrawn.
    for (int i = 0; i < 40; ++i) {
      auto r = co_await conch::select(conch::send(s->out, frame), conch::recv(conch::timeout(20ms)));
      CHECK(r.index() == 1);
    }
    long rss_after = rss_kib();
    INFO("frames accepted before parking: " << accepted << ", rss " << rss_parked << " -> "
                                            << rss_after << " KiB");
    CHECK(accepted * frame.size() < 64u << 20);  // kernel buffers + out + one batch
#ifndef __SANITIZE_ADDRESS__  // ASan's quarantine keeps freed frames resident
    CHECK(rss_after - rss_parked < 2048);
#endif
    CHECK(s->out.size() == 4);
    done.try_send(1);
    co_await peer.recv();
    s->close();
    srv->close();
  }(), {.threads = 1});
}

TEST_CASE("backpressure: a consumer that never reads stops the socket reading",
          "[sockets][backpressure]") {
  conch::run([]() -> task<void> {
    auto srv = net::listen("127.0.0.1:0", {.in_capacity = 8});
    REQUIRE(srv.ok());
    net::address a = srv->local();
    // The peer writes until the kernel stops taking data for 300 ms, then
    // closes its side (the kernel still delivers what is queued) and
    // returns how much it wrote.
    auto peer = conch::thread([a] {
      int fd = raw_connect(a);
      constexpr std::size_t chunk = 64 * 1024;
      std::string pattern(chunk + 251, '\0');
      for (std::size_t i = 0; i < pattern.size(); ++i) pattern[i] = static_cast<char>(i % 251);
      std::size_t total = 0;
      auto idle_since = std::chrono::steady_clock::now();
      for (;;) {
        ssize_t n = ::send(fd, pattern.data() + total % 251, chunk, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
          total += static_cast<std::size_t>(n);
          idle_since = std::chrono::steady_clock::now();
          if (total > (256u << 20)) break;  // no backpressure: give up
          continue;
        }
        if (std::chrono::steady_clock::now() - idle_since > 300ms) break;
        std::this_thread::sleep_for(1ms);
      }
      ::shutdown(fd, SHUT_WR);
      ::close(fd);
      return total;
    });
    auto s = co_await srv->connections.recv();
    REQUIRE(s.has_value());
    // Nobody reads `in` until the peer has been stuck for 300 ms.
    auto total = co_await peer.recv();
    REQUIRE(total.has_value());
    INFO("peer wrote " << *total << " bytes; frames waiting in `in`: " << s->in.size());
    CHECK(s->in.size() == 8);
    std::size_t received = 0;
    bool ordered = true;
    for (;;) {
      auto f = co_await recv_within(s->in, 10s);
      REQUIRE(f.has_value());
      if (!f->has_value()) break;
      for (std::size_t i = 0; i < (*f)->size(); ++i)
        ordered = ordered && (**f)[i] == static_cast<char>((received + i) % 251);
      received += (*f)->size();
    }
    CHECK(*total < (64u << 20));
    CHECK(received == *total);  // nothing lost while reading was stopped
    CHECK(ordered);
    CHECK(s->status().ok());
    s->out.close();
    srv->close();
  }(), {.threads = 1});
}

TEST_CASE("1,000 concurrent connections", "[sockets][scale]") {
  REQUIRE(ensure_fds(2600));
  conch::run([]() -> task<void> {
    net::options o{.frame = net::framing::lines()};
    auto srv = net::listen("127.0.0.1:0", o);
    REQUIRE(srv.ok());
    conch::go(echo_server(*srv));
    const std::string where = srv->local().to_string();
    std::vector<net::socket> clients;
    clients.reserve(1000);
    for (int i = 0; i < 1000; ++i) {
      auto c = co_await net::connect(where, o);
      REQUIRE(c.ok());
      clients.push_back(*c);
    }
    for (int i = 0; i < 1000; ++i) REQUIRE(co_await clients[i].out.send("ping " + std::to_string(i)));
    int good = 0;
    for (int i = 0; i < 1000; ++i) {
      auto r = co_await recv_within(clients[i].in, 10s);
      if (r && *r && **r == "ping " + std::to_string(i)) ++good;
    }
    CHECK(good == 1000);
    for (auto& c : clients) c.close();
    srv->close();
  }(), {.threads = 2});
}

TEST_CASE("EMFILE on accept backs off without spinning and recovers", "[sockets][limits]") {
  rlimit saved{};
  getrlimit(RLIMIT_NOFILE, &saved);
  conch::run([](rlimit restore) -> task<void> {
    auto srv = net::listen("127.0.0.1:0", {.frame = net::framing::lines()});
    REQUIRE(srv.ok());
    net::address a = srv->local();
    // Client sockets first, while descriptors are plentiful.
    constexpr int n = 12;
    int fds[n];
    for (int& fd : fds) fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int probe = ::dup(0);  // the lowest free descriptor number
    ::close(probe);
    rlimit tight = restore;
    tight.rlim_cur = static_cast<rlim_t>(probe + 2);  // room for two more
    REQUIRE(setrlimit(RLIMIT_NOFILE, &tight) == 0);
    for (int fd : fds) REQUIRE(::connect(fd, a.data(), a.size()) == 0);  // into the backlog
    std::vector<net::socket> accepted;
    for (;;) {
      auto s = co_await recv_within(srv->connections, 200ms);
      if (!s || !*s) break;
      accepted.push_back(**s);
    }
    CHECK(accepted.size() <= 2);
    long cpu0 = cpu_ms();
    co_await conch::sleep(500ms);  // the server is out of descriptors
    long spent = cpu_ms() - cpu0;
    INFO("CPU while out of descriptors: " << spent << " ms");
    CHECK(spent < 150);
    REQUIRE(setrlimit(RLIMIT_NOFILE, &restore) == 0);
    while (accepted.size() < n) {
      auto s = co_await recv_within(srv->connections, 3s);
      REQUIRE(s.has_value());
      REQUIRE(s->has_value());
      accepted.push_back(**s);
    }
    for (auto& s : accepted) conch::go(echo_conn(s));
    // The plain clients talk on a pool thread: blocking here would stall the loop.
    std::vector<int> client_fds(fds, fds + n);
    auto talk = [client_fds] {
      int ok = 0;
      for (std::size_t i = 0; i < client_fds.size(); ++i) {
        std::string line = "hi " + std::to_string(i) + "\n";
        if (write_all(client_fds[i], line) && read_some(client_fds[i], line.size()) == line) ++ok;
        ::close(client_fds[i]);
      }
      return ok;
    };
    auto talked = conch::thread(std::move(talk));
    auto ok = co_await talked.recv();
    CHECK(ok.value_or(-1) == n);
    srv->close();
  }(saved), {.threads = 1});
  setrlimit(RLIMIT_NOFILE, &saved);
}
