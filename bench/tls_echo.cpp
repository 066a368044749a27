// bench/tls_echo.cpp
// TLS against plain: one client streams raw bytes through a conch echo server over loopback, both in this process.
//
//   conch_bench_tls_echo [megabytes] [rounds]
//
// Prints `bench=tls_echo param=mode:plain|tls,mb:<n> value=<MB/s> unit=MB/s`
// (bytes echoed per second of wall time, the best of `rounds`; the TLS rows
// count plaintext). The throwaway certificate comes from the `openssl`
// command. Checks every echoed byte; exits 1 on a difference.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "conch/conch.hpp"
#include "conch/net.hpp"

namespace net = conch::net;
using conch::task;

namespace {

task<void> echo(net::socket s) {
  while (auto chunk = co_await s.in.recv())
    if (!co_await s.out.send(std::move(*chunk))) break;
  s.out.close();
}

task<void> serve(net::server srv) {
  while (auto s = co_await srv.connections.recv()) conch::go(echo(std::move(*s)));
}

task<void> send_all(net::socket s, std::size_t total, std::string chunk) {
  for (std::size_t sent = 0; sent < total; sent += chunk.size()) {
    std::string c = chunk;
    if (!co_await s.out.send(std::move(c))) break;
  }
  s.out.close();
}

// One round: returns MB/s, or a negative value when the echo differed.
task<double> echo_round(net::options server_opts, net::options client_opts, std::size_t total) {
  auto srv = net::listen("127.0.0.1:0", server_opts);
  if (!srv.ok()) {
    std::fprintf(stderr, "listen: %s\n", std::string(srv.status().message()).c_str());
    co_return -1;
  }
  conch::go(serve(*srv));
  auto t0 = std::chrono::steady_clock::now();
  auto c = co_await net::connect(srv->local().to_string(), client_opts);
  if (!c.ok()) {
    std::fprintf(stderr, "connect: %s\n", std::string(c.status().message()).c_str());
    co_return -1;
  }
  std::string chunk(64u << 10, '\0');
  for (std::size_t i = 0; i < chunk.size(); ++i) chunk[i] = static_cast<char>('a' + i % 23);
  conch::go(send_all(*c, total, chunk));
  std::size_t got = 0;
  bool same = true;
  while (auto r = co_await c->in.recv()) {
    for (std::size_t i = 0; same && i < r->size(); ++i) same = (*r)[i] == chunk[(got + i) % chunk.size()];
    got += r->size();
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  srv->close();
  if (!same || got != total) {
    std::fprintf(stderr, "tls_echo: echoed %zu of %zu bytes%s\n", got, total, same ? "" : ", differing");
    co_return -1;
  }
  co_return static_cast<double>(total) / secs / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t mb = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 256;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 3;
  const std::size_t total = (mb << 20) / (64u << 10) * (64u << 10);
  std::string dir = "/tmp/conch-bench-tls-" + std::to_string(::getpid());
  std::string cmd = "mkdir -p " + dir + " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1"
                    " -nodes -days 1 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 -keyout " + dir +
                    "/k.pem -out " + dir + "/c.pem >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) {
    std::fprintf(stderr, "tls_echo: the openssl command failed (apt-get install openssl)\n");
    return 1;
  }
  net::options plain{.frame = net::framing::raw()};
  net::options tls_server = plain, tls_client = plain;
  tls_server.tls = net::tls_options{.cert_file = dir + "/c.pem", .key_file = dir + "/k.pem"};
  tls_client.tls = net::tls_options{.ca_file = dir + "/c.pem"};
  int rc = 0;
  conch::runtime rt({.threads = 1});
  for (int tls = 0; tls < 2; ++tls) {
    double best = 0;
    for (int i = 0; i < rounds; ++i) {
      double v = tls ? rt.block_on(echo_round(tls_server, tls_client, total)) : rt.block_on(echo_round(plain, plain, total));
      if (v < 0) rc = 1;
      if (v > best) best = v;
    }
    std::printf("bench=tls_echo param=mode:%s,mb:%zu value=%.1f unit=MB/s\n", tls ? "tls" : "plain", mb, best);
  }
  std::system(("rm -rf " + dir).c_str());
  return rc;
}
