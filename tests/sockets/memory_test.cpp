// tests/sockets/memory_test.cpp
// Memory comes back: one loop holds 10,000 echo connections (every echo checked), and once every
// client has closed, the process's RSS returns to within 64 MiB of what it was before.
//
// The clients live in a child process forked before the runtime starts (10,000 descriptors each
// side; the RSS measured is the server's alone). Not built under the sanitizers: their allocators
// keep freed memory on purpose (ASan's quarantine), so RSS says nothing there.
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <vector>

#include "tests/sockets/net_test_support.hpp"

namespace net = conch::net;
using namespace conch::net::test;
using conch::task;

namespace {

constexpr int kConns = 10'000;
constexpr long kSlackKib = 64 * 1024;

bool read_exact(int fd, void* p, std::size_t n) {
  auto* c = static_cast<char*>(p);
  while (n > 0) {
    ssize_t k = ::read(fd, c, n);
    if (k <= 0) return false;
    c += k;
    n -= static_cast<std::size_t>(k);
  }
  return true;
}

// The child: waits for the port, opens kConns connections, sends one line on
// each and checks its echo, reports how many were right, waits for the word
// to close them all, closes, reports again, exits. Plain blocking sockets.
[[noreturn]] void client_main(int from_parent, int to_parent) {
  int port = 0;
  if (!read_exact(from_parent, &port, sizeof port)) _exit(2);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::vector<int> fds;
  fds.reserve(kConns);
  int good = 0;
  for (int i = 0; i < kConns; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) break;
    fds.push_back(fd);
    std::string line = "conn " + std::to_string(i) + " says hello\n";
    if (!write_all(fd, line)) break;
  }
  for (std::size_t i = 0; i < fds.size(); ++i) {
    std::string want = "conn " + std::to_string(i) + " says hello\n";
    if (read_some(fds[i], want.size(), 5000) == want) ++good;
  }
  if (::write(to_parent, &good, sizeof good) != sizeof good) _exit(3);
  char go = 0;
  if (!read_exact(from_parent, &go, 1)) _exit(4);
  for (int fd : fds) ::close(fd);
  int closed = static_cast<int>(fds.size());
  if (::write(to_parent, &closed, sizeof closed) != sizeof closed) _exit(5);
  _exit(0);
}

}  // namespace

TEST_CASE("10,000 connections on one loop: every echo right, and RSS comes back after they close",
          "[sockets][memory]") {
  conch::test::require_io_uring();
  rlimit rl{};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &rl) == 0);
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < kConns + 100)
    conch::test::skip("the hard RLIMIT_NOFILE (" + std::to_string(rl.rlim_max) +
                      ") is below 10,100: cannot hold 10,000 connections");
  rl.rlim_cur = rl.rlim_max;
  REQUIRE(setrlimit(RLIMIT_NOFILE, &rl) == 0);

  int down[2], up[2];  // parent -> child, child -> parent
  REQUIRE(::pipe2(down, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(up, O_CLOEXEC) == 0);
  pid_t child = ::fork();  // before any runtime thread exists
  REQUIRE(child >= 0);
  if (child == 0) client_main(down[0], up[1]);
  ::close(down[0]);
  ::close(up[1]);

  std::atomic<int> ended{0};
  long before = 0, peak = 0, after = 0;
  int echoed = -1, closed = -1;
  bool all_ended = false, came_back = false;
  {
    conch::runtime rt({.threads = 1});
    before = rss_kib();
    rt.block_on([&]() -> task<void> {
      auto srv = net::listen("127.0.0.1:0", {.frame = net::framing::lines(), .backlog = 4096});
      REQUIRE(srv.ok());
      conch::go([](net::server s, std::atomic<int>* n) -> task<void> {
        while (auto c = co_await s.connections.recv()) {
          conch::go([](net::socket sock, std::atomic<int>* n2) -> task<void> {
            while (auto f = co_await sock.in.recv()) {
              std::string line = std::move(*f) + "\n";
              if (!co_await sock.out.send(std::move(line))) break;
            }
            sock.out.close();
            co_await sock.done().recv();
            n2->fetch_add(1);
          }(std::move(*c), n));
        }
      }(*srv, &ended));
      int port = srv->local().port();
      // Blocking pipe I/O happens on the blocking pool, not on the loop.
      auto start_clients = [&] {
        int got = -1;
        if (::write(down[1], &port, sizeof port) == sizeof port) read_exact(up[0], &got, sizeof got);
        return got;
      };
      auto echoes = conch::thread(start_clients);
      echoed = (co_await echoes.recv()).value_or(-1);
      peak = rss_kib();
      auto close_clients = [&] {
        int got = -1;
        char go = 1;
        if (::write(down[1], &go, 1) == 1) read_exact(up[0], &got, sizeof got);
        return got;
      };
      auto closes = conch::thread(close_clients);
      closed = (co_await closes.recv()).value_or(-1);
      auto every_one_ended = [&] { return ended.load() == kConns; };
      all_ended = co_await conch::test::eventually(every_one_ended, std::chrono::seconds(60));
      // Once the loop goes idle after the drop, memory goes back.
      auto rss_back = [&] {
        after = rss_kib();
        return after <= before + kSlackKib;
      };
      came_back = co_await conch::test::eventually(rss_back, std::chrono::seconds(30));
      srv->close();
    }());
  }
  ::close(down[1]);
  ::close(up[0]);
  int st = 0;
  ::waitpid(child, &st, 0);
  std::printf("memory_test: RSS before %ld KiB, with %d connections %ld KiB, after they closed %ld KiB\n",
              before, kConns, peak, after);
  CHECK(echoed == kConns);
  CHECK(closed == kConns);
  CHECK(all_ended);
  CHECK(came_back);
  CHECK((WIFEXITED(st) && WEXITSTATUS(st) == 0));
}
