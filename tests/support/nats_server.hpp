// tests/support/nats_server.hpp
// A throwaway nats-server on a free loopback port for a test: start, kill, restart, stop.
//
//   conch::test::nats_server srv;            // skips the test (77) if nats-server is absent
//   auto nc = co_await conch::nats::connect(srv.url());
//   srv.kill(); srv.start();                 // same port: clients reconnect
//   srv.pause(); srv.resume();               // SIGSTOP/SIGCONT: a stalled server
//
//   auto conf = conch::test::nats_config_file("tls", "tls { cert_file: \"s.crt\", key_file: \"s.key\" }");
//   conch::test::nats_server tls_srv({"-c", conf});   // a server with a config file
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "tests/support/test_support.hpp"

extern char** environ;

namespace conch::test {

/// The nats-server binary (PATH, then /usr/sbin and /usr/bin), or "".
inline std::string nats_server_binary() {
  std::vector<std::string> dirs;
  if (const char* p = std::getenv("PATH")) {
    std::string path = p;
    std::size_t i = 0;
    while (i <= path.size()) {
      std::size_t e = path.find(':', i);
      if (e == std::string::npos) e = path.size();
      dirs.push_back(path.substr(i, e - i));
      i = e + 1;
    }
  }
  dirs.push_back("/usr/sbin");
  dirs.push_back("/usr/bin");
  for (const auto& d : dirs) {
    std::string f = d + "/nats-server";
    if (!d.empty() && ::access(f.c_str(), X_OK) == 0) return f;
  }
  return "";
}

/// Writes a nats-server configuration file `name`.conf (the text as given)
/// into a fresh per-process directory under /tmp; returns its path. The
/// server's -a/-p arguments still choose the address.
inline std::string nats_config_file(const std::string& name, const std::string& text) {
  static const std::string dir = [] {
    std::string d = "/tmp/conch-nats-conf-" + std::to_string(::getpid());
    if (std::system(("rm -rf " + d + " && mkdir -p " + d).c_str()) != 0) throw std::runtime_error("cannot make " + d);
    return d;
  }();
  const std::string path = dir + "/" + name + ".conf";
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr || std::fwrite(text.data(), 1, text.size(), f) != text.size() || std::fclose(f) != 0)
    throw std::runtime_error("cannot write " + path);
  return path;
}

/// A port on 127.0.0.1 that was free a moment ago (bound to 0, then closed).
inline int free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("no free loopback port");
  ::close(fd);
  return ntohs(a.sin_port);
}

/// One nats-server process, listening on 127.0.0.1:port(). Stopped by the destructor.
class nats_server {
 public:
  /// Starts a server with extra arguments (e.g. {"--user", "u", "--pass", "p"}).
  /// Skips the test (exit 77) when nats-server is not installed.
  explicit nats_server(std::vector<std::string> extra = {}) : extra_(std::move(extra)) {
    bin_ = nats_server_binary();
    if (bin_.empty()) skip("nats-server is not installed (Debian: apt-get install nats-server, or make deps)");
    port_ = free_loopback_port();
    start();
  }
  nats_server(const nats_server&) = delete;
  nats_server& operator=(const nats_server&) = delete;
  ~nats_server() { kill(); }

  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string url() const { return "nats://" + address(); }

  /// Starts the server (again) on the same port; returns once it accepts
  /// connections (at most 20 s, else throws).
  void start() {
    std::vector<std::string> args = {bin_, "-a", "127.0.0.1", "-p", std::to_string(port_)};
    args.insert(args.end(), extra_.begin(), extra_.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    if (std::getenv("CONCH_NATS_LOG") == nullptr) {
      posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
      posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    }
    int rc = posix_spawn(&pid_, bin_.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) throw std::runtime_error("cannot start " + bin_);
    // Wait until it accepts (the port may need a moment after a restart).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!accepts()) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("nats-server exited at start (port " + std::to_string(port_) + ")");
      }
      if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("nats-server did not start");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // polling a condition, bounded
    }
  }

  /// Stops the server (SIGSTOP): it reads and answers nothing until resume().
  void pause() {
    if (pid_ > 0) ::kill(pid_, SIGSTOP);
  }
  /// Lets a paused server run again (SIGCONT).
  void resume() {
    if (pid_ > 0) ::kill(pid_, SIGCONT);
  }

  /// Kills the server at once (SIGKILL) and reaps it; clients see the break.
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

 private:
  bool accepts() const {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(port_));
    bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
  }

  std::string bin_;
  std::vector<std::string> extra_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace conch::test
