// examples/echo_server.cpp
// A line echo server: every connection is an `in` and an `out` channel.
//
//   conch_example_echo_server [address] [--once]
//   address: 127.0.0.1:7000 (default), [::1]:7000, /tmp/echo.sock, @echo
//   then:  socat - TCP:127.0.0.1:7000   (or conch_example_echo_client)
//
// Each accepted socket gets its own go block, which receives lines from
// `in` and sends them back on `out`. When the client closes its side, `in`
// ends; closing `out` flushes what is queued and closes ours. With --once
// the server exits after its first client leaves (the smoke test uses it),
// waiting on done() so the runtime is not torn down before the last reply.
#include <cstdio>
#include <cstring>
#include <string>

#include "conch/conch.hpp"
#include "conch/net.hpp"

namespace net = conch::net;
using conch::task;

task<void> echo(net::socket s) {
  std::string who = s.peer().to_string();
  std::printf("+ %s\n", who.empty() ? "(unix client)" : who.c_str());
  int lines = 0;
  while (std::optional<std::string> line = co_await s.in.recv()) {
    ++lines;
    if (!co_await s.out.send(std::move(*line))) break;  // the connection failed
  }
  s.out.close();  // flush, then shut our write side
  std::printf("- %s after %d lines (%s)\n", who.empty() ? "(unix client)" : who.c_str(), lines,
              s.status().ok() ? "clean" : s.status().ToString().c_str());
}

task<int> serve(std::string address, bool once) {
  auto srv = net::listen(address, {.frame = net::framing::lines()});
  if (!srv.ok()) {
    std::fprintf(stderr, "echo_server: %s\n", srv.status().ToString().c_str());
    co_return 1;
  }
  std::printf("echo server on %s\n", srv->local().to_string().c_str());
  std::fflush(stdout);
  while (std::optional<net::socket> s = co_await srv->connections.recv()) {
    if (!once) {
      conch::go(echo(std::move(*s)));  // serve it concurrently, take the next
      continue;
    }
    co_await echo(*s);  // --once: serve one client, then leave, once
    co_await s->done().recv();  // our last replies have reached the client
    srv->close();
  }
  co_return 0;
}

int main(int argc, char** argv) {
  std::string address = "127.0.0.1:7000";
  bool once = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--once") == 0)
      once = true;
    else
      address = argv[i];
  }
  return conch::run(serve(address, once), {.threads = 1});
}
