// tests/sockets/net_test_support.hpp
// Helpers for the sockets suites: an echo server, plain blocking peers, leak probes.
// (recv_within and run_on are the shared ones, tests/support/test_support.hpp.)
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <variant>

#include "conch/conch.hpp"
#include "conch/net.hpp"
#include "tests/support/test_support.hpp"

namespace conch::net::test {

using namespace std::chrono_literals;

/// Echoes every frame of `s` back, then closes `out` once `in` ends.
inline task<void> echo_conn(socket s) {
  while (auto f = co_await s.in.recv()) {
    if (!co_await s.out.send(std::move(*f))) break;
  }
  s.out.close();
}

/// Accepts until the server closes, echoing each connection in a go block.
inline task<void> echo_server(server srv) {
  while (auto s = co_await srv.connections.recv()) conch::go(echo_conn(std::move(*s)));
}

/// A plain blocking socket connected to `a` (for byte-level peers).
inline int raw_connect(const address& a) {
  int fd = ::socket(a.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (::connect(fd, a.data(), a.size()) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

/// Whether a connect to `a` is refused now (ECONNREFUSED, or ENOENT for a
/// removed Unix socket): nothing listens there any more. A connect that
/// succeeds is closed at once. For eventually(): a server's close() ends
/// its listening socket on its loop, a moment after close() returns.
inline bool refuses_connections(const address& a) {
  int fd = ::socket(a.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool refused = ::connect(fd, a.data(), a.size()) != 0 && (errno == ECONNREFUSED || errno == ENOENT);
  ::close(fd);
  return refused;
}

inline bool write_all(int fd, const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

/// Reads until `n` bytes, EOF or `limit_ms` of silence.
inline std::string read_some(int fd, std::size_t n, int limit_ms = 5000) {
  std::string out;
  char buf[65536];
  while (out.size() < n) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, limit_ms) <= 0) break;
    ssize_t k = ::recv(fd, buf, std::min(sizeof buf, n - out.size()), 0);
    if (k <= 0) break;
    out.append(buf, static_cast<std::size_t>(k));
  }
  return out;
}

/// True if `fd` reaches EOF within `limit_ms` (discarding data).
inline bool wait_eof(int fd, int limit_ms = 5000) {
  char buf[4096];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, limit_ms) <= 0) return false;
    ssize_t k = ::recv(fd, buf, sizeof buf, 0);
    if (k == 0) return true;
    if (k < 0) return errno == ECONNRESET;
  }
}

/// How many descriptors this process has open (a leak check).
inline int count_fds() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (::readdir(d) != nullptr) ++n;
    ::closedir(d);
  }
  return n;
}

/// A unique path under /tmp for a Unix socket.
inline std::string temp_socket_path(const char* tag) {
  return "/tmp/conch-test-" + std::to_string(::getpid()) + "-" + tag + ".sock";
}

/// Resident set size in KiB (from /proc/self/statm).
inline long rss_kib() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * (::sysconf(_SC_PAGESIZE) / 1024);
}

}  // namespace conch::net::test
