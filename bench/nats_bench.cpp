// bench/nats_bench.cpp
// NATS through one nats-server: messages/s 1 publisher -> 1 subscriber, and request/reply round trips/s.
//
//   conch_bench_nats URL pubsub N SIZE     # N messages of SIZE bytes, publisher and subscriber connections
//   conch_bench_nats URL reqrep N          # N sequential request/reply round trips (16 B);
//                                          # BENCH_THREADS=k: a k-thread runtime (default 2)
//
// Prints `bench=nats_<mode> param=conch,size=S value=X unit=msg/s|rt/s`; exits 1 if the
// subscriber did not get exactly N messages of the right size (the smoke test checks it).
// The subscriber uses slow_consumer::backpressure, so nothing is dropped.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "conch/conch.hpp"
#include "conch/net/nats.hpp"

namespace nats = conch::nats;
using conch::task;
using namespace std::chrono_literals;

namespace {

task<long> count(nats::subscription s, long n, std::size_t size) {
  long got = 0;
  while (got < n) {
    auto m = co_await s.messages.recv();
    if (!m || m->data.size() != size) break;
    ++got;
  }
  co_return got;
}

task<int> pubsub(std::string url, long n, std::size_t size) {
  auto pub = co_await nats::connect(url);
  auto sub = co_await nats::connect(url);
  if (!pub.ok() || !sub.ok()) {
    std::fprintf(stderr, "connect: %s\n", std::string((pub.ok() ? sub.status() : pub.status()).message()).c_str());
    co_return 1;
  }
  nats::subscribe_options so{.capacity = 65536, .when_full = nats::slow_consumer::backpressure};
  auto s = co_await sub->subscribe("bench.ps", so);
  if (!s.ok() || !(co_await sub->flush()).ok()) co_return 1;
  conch::chan<long> done = conch::go(count(*s, n, size));
  const std::string payload(size, 'x');
  const auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < n; ++i) {
    absl::Status st = co_await pub->publish("bench.ps", payload);
    if (!st.ok()) {
      std::fprintf(stderr, "publish: %s\n", std::string(st.message()).c_str());
      co_return 1;
    }
  }
  std::optional<long> got = co_await done.recv();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  pub->close();
  sub->close();
  if (!got || *got != n) {
    std::fprintf(stderr, "received %ld of %ld messages\n", got.value_or(-1), n);
    co_return 1;
  }
  std::printf("bench=nats_pubsub param=conch,size=%zu value=%.0f unit=msg/s\n", size, static_cast<double>(n) / secs);
  co_return 0;
}

task<void> responder(nats::connection c, nats::subscription s) {
  while (auto m = co_await s.messages.recv()) {
    std::string data = std::move(m->data);
    co_await c.publish(m->reply, std::move(data));
  }
}

task<int> reqrep(std::string url, long n) {
  auto srv = co_await nats::connect(url);
  auto cli = co_await nats::connect(url);
  if (!srv.ok() || !cli.ok()) co_return 1;
  auto s = co_await srv->subscribe("bench.rr");
  if (!s.ok() || !(co_await srv->flush()).ok()) co_return 1;
  conch::go(responder(*srv, *s));
  const std::string payload(16, 'x');
  const auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < n; ++i) {
    auto r = co_await cli->request("bench.rr", payload, 5000ms);
    if (!r.ok() || r->data != payload) {
      std::fprintf(stderr, "request %ld: %s\n", i, r.ok() ? "wrong answer" : std::string(r.status().message()).c_str());
      co_return 1;
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  srv->close();
  cli->close();
  std::printf("bench=nats_reqrep param=conch,size=16 value=%.0f unit=rt/s\n", static_cast<double>(n) / secs);
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s URL pubsub N SIZE | URL reqrep N\n", argv[0]);
    return 2;
  }
  const std::string url = argv[1], mode = argv[2];
  const long n = std::atol(argv[3]);
  if (mode == "pubsub" && argc == 5)
    return conch::run(pubsub(url, n, static_cast<std::size_t>(std::atol(argv[4]))), {.threads = 2});
  const char* th = std::getenv("BENCH_THREADS");
  if (mode == "reqrep") return conch::run(reqrep(url, n), {.threads = th ? unsigned(std::atoi(th)) : 2u});
  std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
  return 2;
}
