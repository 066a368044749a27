// tests/ipc/node_peer.hpp
// Starting real node-ipc 9.2.1 peers (tests/ipc/node/peer.js) from a test, or skipping when node or node-ipc is absent.
#pragma once

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sys/stat.h>

#include <fstream>
#include <string>
#include <vector>

#include "conch/conch.hpp"
#include "tests/support/test_support.hpp"

extern char** environ;

namespace conch::test {

/// node and the installed node-ipc (CONCH_NODE_IPC_MODULES, filled by `npm ci`
/// at configure time); skips the test with the reason when either is absent.
inline std::string require_node_ipc() {
  if (::access(CONCH_NODE, X_OK) != 0) skip("node is not installed (" CONCH_NODE "); install Debian's nodejs");
  std::ifstream pkg(std::string(CONCH_NODE_IPC_MODULES) + "/node-ipc/package.json");
  if (!pkg) skip("node-ipc is not installed in " CONCH_NODE_IPC_MODULES " (the configure step runs npm ci there)");
  std::string text((std::istreambuf_iterator<char>(pkg)), std::istreambuf_iterator<char>());
  if (text.find("\"version\": \"9.2.1\"") == std::string::npos)
    skip("the node-ipc in " CONCH_NODE_IPC_MODULES " is not 9.2.1; run npm ci again");
  return CONCH_NODE_IPC_MODULES;
}

/// Whether the Unix socket file `path` is gone within a few seconds: a
/// closed server removes its own path (its listener stops on its home loop,
/// so the removal may trail close() a little).
inline task<bool> unix_path_gone(std::string path) {
  auto gone = [path] {
    struct stat st {};
    return ::lstat(path.c_str(), &st) != 0;
  };
  co_return co_await eventually(gone, std::chrono::seconds(10));
}

/// Removes a Unix socket path when the test ends: node-ipc leaves its
/// server's file behind when the process is killed.
struct remove_at_exit {
  std::string path;
  ~remove_at_exit() { ::unlink(path.c_str()); }
};

/// A running `node peer.js ...`; killed when destroyed if still running.
class node_peer {
 public:
  explicit node_peer(std::vector<std::string> args) {
    std::vector<std::string> all{CONCH_NODE, CONCH_NODE_PEER_JS};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    if (posix_spawn(&pid_, argv[0], nullptr, nullptr, argv.data(), environ) != 0) pid_ = -1;
  }
  node_peer(const node_peer&) = delete;
  node_peer& operator=(const node_peer&) = delete;
  ~node_peer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  bool started() const { return pid_ > 0; }
  /// Ends the process (SIGKILL: a crash, as far as the peer is concerned).
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  /// Waits (on the blocking pool) for the exit; its status, or -1 if killed by a signal.
  task<int> exit_code() {
    pid_t pid = pid_;
    chan<int> r = conch::thread([pid] {
      int st = 0;
      if (::waitpid(pid, &st, 0) != pid) return -2;
      return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    });
    auto code = co_await r.recv();
    pid_ = -1;
    co_return code.value_or(-3);
  }

 private:
  pid_t pid_ = -1;
};

}  // namespace conch::test
