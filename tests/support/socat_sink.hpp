// tests/support/socat_sink.hpp
// A foreign sink for exit-loss tests: socat listening once on a Unix path or a loopback TCP port,
// writing what it receives to a file; helpers to wait for it to listen, to end, and to compare.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

extern char** environ;

namespace conch::test {

/// Whether `tool` is on PATH.
inline bool have_tool(const char* tool) {
  std::string cmd = std::string("command -v ") + tool + " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

/// Starts `argv` (searched on PATH) as a child; its pid, or -1.
inline pid_t spawn(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ) != 0) return -1;
  return pid;
}

/// Waits for child `pid` to exit, at most `limit`, killing it if it does
/// not. Its exit code, or -1 if it was killed (by us or a signal).
inline int wait_child(pid_t pid, std::chrono::milliseconds limit) {
  const auto give_up = std::chrono::steady_clock::now() + limit;
  int st = 0;
  for (;;) {
    pid_t r = ::waitpid(pid, &st, WNOHANG);
    if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (r < 0 || std::chrono::steady_clock::now() >= give_up) break;
    ::usleep(1000);  // no channel announces a child's exit: look every millisecond
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &st, 0);
  return -1;
}

/// The whole content of `path` ("" if it cannot be read).
inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

/// A loopback TCP port nobody listens on right now (bound to port 0, then
/// released: another process could take it meanwhile, which is unlikely).
inline int free_tcp_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

/// Whether something listens on Unix path `path` (/proc/net/unix: flag
/// __SO_ACCEPTCON) or on 127.0.0.1:`port` (/proc/net/tcp: state 0A).
inline bool listening(const std::string& path, int port) {
  std::ifstream f(path.empty() ? "/proc/net/tcp" : "/proc/net/unix");
  std::string line;
  char want[32];
  std::snprintf(want, sizeof want, "0100007F:%04X", static_cast<unsigned>(port));
  while (std::getline(f, line)) {
    std::istringstream in(line);
    std::vector<std::string> w;
    for (std::string x; in >> x;) w.push_back(x);
    if (path.empty()) {
      if (w.size() > 3 && w[1] == want && w[3] == "0A") return true;
    } else if (w.size() > 7 && w[7] == path && w[3] == "00010000") {
      return true;
    }
  }
  return false;
}

/// socat as a sink: listens once on Unix path `path` (or, with an empty
/// path, 127.0.0.1:`port`), writes what it receives to `file`, and exits at
/// EOF. Waits (up to `limit`) until it listens. Its pid, or -1.
inline pid_t start_socat_sink(const std::string& path, int port, const std::string& file,
                              std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  std::string spec = path.empty()
                         ? "TCP-LISTEN:" + std::to_string(port) + ",bind=127.0.0.1,reuseaddr"
                         : "UNIX-LISTEN:" + path;
  pid_t pid = spawn({"socat", "-u", spec, "OPEN:" + file + ",creat,trunc"});
  if (pid < 0) return -1;
  const auto give_up = std::chrono::steady_clock::now() + limit;
  while (!listening(path, port)) {
    if (std::chrono::steady_clock::now() >= give_up || ::waitpid(pid, nullptr, WNOHANG) == pid) {
      wait_child(pid, std::chrono::milliseconds(0));
      return -1;
    }
    ::usleep(1000);  // the kernel's socket table announces nothing: look again
  }
  return pid;
}

}  // namespace conch::test
