// bench/sock_echo_conch.cpp
// The conch echo server for the sockets benchmark: raw framing, one runtime thread.
//
//   conch_bench_sock_echo <tcp:PORT|unix:PATH>     prints "ready" once listening
//
// The obvious user code: a go block per connection that sends every chunk
// from `in` back on `out`. The writer coalesces queued chunks into one send.
#include <cstdio>
#include <string>

#include "conch/conch.hpp"
#include "conch/net.hpp"

namespace net = conch::net;
using conch::task;

task<void> echo(net::socket s) {
  while (std::optional<std::string> chunk = co_await s.in.recv())
    if (!co_await s.out.send(std::move(*chunk))) break;
  s.out.close();
}

task<int> serve(std::string address) {
  auto srv = net::listen(address, {.in_capacity = 64, .out_capacity = 64});
  if (!srv.ok()) {
    std::fprintf(stderr, "%s\n", srv.status().ToString().c_str());
    co_return 1;
  }
  std::printf("ready\n");
  std::fflush(stdout);
  while (std::optional<net::socket> s = co_await srv->connections.recv()) conch::go(echo(std::move(*s)));
  co_return 0;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s <tcp:PORT|unix:PATH>\n", argv[0]);
    return 64;
  }
  std::string spec = argv[1];
  // Same argument forms as the C servers: tcp:PORT (loopback) or unix:PATH.
  std::string address = spec.rfind("tcp:", 0) == 0 ? "127.0.0.1:" + spec.substr(4) : spec.substr(5);
  return conch::run(serve(address), {.threads = 1});
}
