// bench/ipc_bench.cpp
// conch::ipc round trips, conch client -> conch server -> back: events/s, p50/p99, per payload and client count.
//
//   conch_bench_ipc [--events N]    N round trips per client per cell (default 20000)
//   conch_bench_ipc --serve PATH --expect M
//                                   only the echo server, at PATH, for other clients (bench/run_ipc.sh's
//                                   node-ipc clients); after M echoes prints cpu_us_per_event and exits
//
// Each client keeps 16 events in flight (emit 16, then one more per echo);
// the server echoes every "ping" to its sender from a handler. Prints
// bench=ipc_conch lines (B.8 format); exits 1 if an echo is lost or out of order.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "conch/conch.hpp"

using namespace std::chrono_literals;
using conch::task;
namespace ipc = conch::ipc;

namespace {

constexpr int kInFlight = 16;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// One client: n round trips, 16 in flight; latencies (ns) appended; false on loss or disorder.
task<bool> run_client(std::string path, int n, std::size_t payload, std::vector<std::int64_t>* lat) {
  auto c = ipc::client::connect({.id = "bench", .path = path, .retry = 10ms});
  if (!c.ok()) co_return false;
  const std::string pad(payload, 'x');
  auto ping = [&](int seq) {
    ipc::json d(rapidjson::kObjectType);
    auto& a = d.GetAllocator();
    d.AddMember("seq", seq, a);
    d.AddMember("t", static_cast<int64_t>(now_ns()), a);
    d.AddMember("pad", rapidjson::StringRef(pad.data(), static_cast<rapidjson::SizeType>(pad.size())), a);
    return d;
  };
  int sent = 0;
  for (; sent < std::min(kInFlight, n); ++sent) {
    ipc::json d = ping(sent);
    if (!co_await c->emit("ping", d)) co_return false;
  }
  bool ok = true;
  for (int got = 0; got < n; ++got) {
    std::optional<ipc::event> e;
    for (;;) {
      e = co_await c->events.recv();
      if (!e || e->type == "ping") break;
    }
    if (!e) co_return false;
    const auto& d = *e->data;
    if (!d.IsObject() || d["seq"].GetInt() != got) ok = false;
    lat->push_back(now_ns() - d["t"].GetInt64());
    if (sent < n) {
      ipc::json next = ping(sent++);
      if (!co_await c->emit("ping", next)) co_return false;
    }
  }
  c->close();
  co_return ok;
}

task<int> cell(int clients, std::size_t payload, int n) {
  const std::string path = "/tmp/conch-bench-ipc-" + std::to_string(::getpid());
  auto srv = ipc::server::listen({.path = path});
  if (!srv.ok()) {
    std::fprintf(stderr, "listen: %s\n", std::string(srv.status().message()).c_str());
    co_return 1;
  }
  ipc::server s = *srv;
  s.on("ping", [s](ipc::event e) mutable -> task<void> { co_await s.emit(*e.from, "ping", *e.data); });
  std::vector<std::vector<std::int64_t>> lats(static_cast<std::size_t>(clients));
  std::vector<conch::chan<bool>> done;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < clients; ++i)
    done.push_back(conch::go_on(conch::placement::least_busy(),
                                run_client(path, n, payload, &lats[static_cast<std::size_t>(i)])));
  bool all = true;
  for (auto& d : done) all = (co_await d.recv()).value_or(false) && all;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  s.close();
  std::vector<std::int64_t> l;
  for (auto& v : lats) l.insert(l.end(), v.begin(), v.end());
  std::sort(l.begin(), l.end());
  if (!all || l.size() != static_cast<std::size_t>(clients) * static_cast<std::size_t>(n)) {
    std::fprintf(stderr, "ipc bench: lost or reordered echoes (clients=%d payload=%zu)\n", clients, payload);
    co_return 1;
  }
  auto pct = [&](double p) { return static_cast<double>(l[static_cast<std::size_t>(p * static_cast<double>(l.size() - 1))]) / 1e3; };
  std::printf("bench=ipc_conch param=clients:%d,payload:%zu value=%.0f unit=msg/s p50_us=%.1f p99_us=%.1f\n",
              clients, payload, static_cast<double>(l.size()) / secs, pct(0.50), pct(0.99));
  std::fflush(stdout);
  co_return 0;
}

/// The echo server alone: M echoes, then this process's CPU time per event.
task<int> serve_only(std::string path, long expect) {
  auto srv = ipc::server::listen({.path = path});
  if (!srv.ok()) {
    std::fprintf(stderr, "listen: %s\n", std::string(srv.status().message()).c_str());
    co_return 1;
  }
  ipc::server s = *srv;
  auto count = std::make_shared<std::atomic<long>>(0);
  conch::chan<int> enough(1);
  s.on("ping", [s, count, expect, enough](ipc::event e) mutable -> task<void> {
    co_await s.emit(*e.from, "ping", *e.data);
    if (count->fetch_add(1) + 1 == expect) enough.try_send(1);
  });
  std::printf("ready\n");
  std::fflush(stdout);
  co_await enough.recv();
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  const double us = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
                    static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
  std::printf("cpu_us_per_event=%.2f\n", us / static_cast<double>(expect));
  std::fflush(stdout);
  co_await conch::sleep(200ms);  // the last echoes leave before the sockets close
  s.close();
  co_return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int n = 20000;
  std::string serve;
  long expect = 0;
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::strcmp(argv[i], "--events") == 0) n = std::max(1, std::atoi(argv[i + 1]));
    if (std::strcmp(argv[i], "--serve") == 0) serve = argv[i + 1];
    if (std::strcmp(argv[i], "--expect") == 0) expect = std::atol(argv[i + 1]);
  }
  if (!serve.empty() && expect <= 0) {
    std::fprintf(stderr, "conch_bench_ipc: --serve needs --expect M (M > 0)\n");
    return 2;
  }
  auto rt = conch::runtime::create({.threads = 2});
  if (!rt.ok()) {
    std::fprintf(stderr, "skipped: no runtime: %s\n", std::string(rt.status().message()).c_str());
    return 77;
  }
  if (!serve.empty()) return (*rt)->block_on(serve_only(serve, expect));
  for (int clients : {1, 16})
    for (std::size_t payload : {std::size_t{64}, std::size_t{4096}})
      if ((*rt)->block_on(cell(clients, payload, n)) != 0) return 1;
  return 0;
}
