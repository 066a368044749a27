// tests/nats/with_server.cpp
// conch_nats_with_server: runs a command next to a fresh nats-server, whose URL it gets in CONCH_NATS_URL.
//
//   conch_nats_with_server lua5.4 tests/nats/nats_test.lua
//   conch_nats_with_server --tls lua5.4 tests/nats/nats_tls_test.lua
//
// Starts nats-server on a free loopback port (skips, exit 77, when it is not
// installed), runs the command with CONCH_NATS_URL=nats://127.0.0.1:PORT,
// stops the server and exits with the command's status. The Lua, JavaScript
// and program tests use it to get a server of their own. With --tls the
// server requires TLS with a throwaway certificate for localhost (made by
// the openssl command; skips without it): CONCH_NATS_URL is then
// nats://localhost:PORT and CONCH_NATS_TLS_CA the certificate to trust.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "tests/support/nats_server.hpp"
#include "tests/support/test_cert.hpp"

int main(int argc, char** argv) {
  const bool tls = argc > 1 && std::string(argv[1]) == "--tls";
  char** cmd = argv + (tls ? 2 : 1);
  if (*cmd == nullptr) {
    std::fprintf(stderr, "usage: %s [--tls] command [args...]\n", argv[0]);
    return 2;
  }
  std::vector<std::string> extra;
  if (tls) {
    conch::test::test_cert c = conch::test::make_test_cert("nats-with-server");  // exits 77 without openssl
    extra = {"-c", conch::test::nats_config_file("with-server-tls", "tls {\n  cert_file: \"" + c.crt +
                                                                      "\"\n  key_file: \"" + c.key + "\"\n}\n")};
    ::setenv("CONCH_NATS_TLS_CA", c.crt.c_str(), 1);
  }
  conch::test::nats_server srv(extra);  // exits 77 if nats-server is absent
  const std::string url = tls ? "nats://localhost:" + std::to_string(srv.port()) : srv.url();
  ::setenv("CONCH_NATS_URL", url.c_str(), 1);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::execvp(cmd[0], cmd);
    std::perror(cmd[0]);
    std::_Exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  srv.kill();
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  std::fprintf(stderr, "%s ended by signal %d\n", cmd[0], WTERMSIG(status));
  return 1;
}
