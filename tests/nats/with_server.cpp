// tests/nats/with_server.cpp
// conch_nats_with_server: runs a command next to a fresh nats-server, whose URL it gets in CONCH_NATS_URL.
//
//   conch_nats_with_server lua5.4 tests/nats/nats_test.lua
//
// Starts nats-server on a free loopback port (skips, exit 77, when it is not
// installed), runs the command with CONCH_NATS_URL=nats://127.0.0.1:PORT,
// stops the server and exits with the command's status. The Lua, JavaScript
// and program tests use it to get a server of their own.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "tests/support/nats_server.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s command [args...]\n", argv[0]);
    return 2;
  }
  conch::test::nats_server srv;  // exits 77 if nats-server is absent
  ::setenv("CONCH_NATS_URL", srv.url().c_str(), 1);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::execvp(argv[1], argv + 1);
    std::perror(argv[1]);
    std::_Exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  srv.kill();
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  std::fprintf(stderr, "%s ended by signal %d\n", argv[1], WTERMSIG(status));
  return 1;
}
