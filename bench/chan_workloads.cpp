// bench/chan_workloads.cpp
// Channel workloads A-F of issue 2 on conch, one workload per process.
//
//   conch_bench_channels <A|B|C|D|E|F> <threads> [n]
//
// A  ping-pong over two unbuffered channels (n round trips, default 1M)
// B  1 producer / 1 consumer over a 1024 buffer (n messages, default 10M)
// C  4 producers / 4 consumers over one 1024 buffer (n messages in all, 10M)
// D  1 consumer selecting over two 1024 buffers fed by 2 producers (n = 5M)
// E  n go blocks (1M) each send one value into a 2^20 buffer; a collector drains
// F  n (100k) go blocks each wait on conch::timeout(1ms)
//
// Each run does a warm-up of n/10 on the same runtime first, then the timed
// run, and prints one line (STYLE.md B.8, plus impl and peak RSS):
//   bench=A_pingpong impl=conch1 param=threads:1/n:1000000 value=56.9 unit=ns/op rss_kb=4244 cpu=56.1
// value is wall-clock ns per operation (A: round trip, B-D: message, E: go
// block), or for F the total wall time in ms. cpu is the process's CPU time
// (all threads) over the same timed region, in the same unit: less disturbed
// by a loaded machine for one-thread runs, and above value when a second
// thread worked. rss_kb is getrusage(RUSAGE_SELF).ru_maxrss at exit, reported
// as is (it includes the runtime and the warm-up). Every workload checks the
// sum of what it received and exits 1 on a mismatch.
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "conch/chan.hpp"
#include "conch/core.hpp"

#include "bench_util.hpp"

namespace {

using bench::clock_type;
using bench::i64;
using namespace std::chrono_literals;

using bench::expect_sum;
using bench::in_ms;
using bench::per_op;
using bench::range_sum;
using bench::sample;
using bench::stopwatch;
using bench::workload;
using bench::find_workload;

// ---- A: ping-pong over two unbuffered channels ----

conch::task<void> echo(conch::chan<i64> in, conch::chan<i64> out) {
  while (std::optional<i64> v = co_await in.recv()) {
    if (!co_await out.send(*v)) break;
  }
  out.close();
}

conch::task<sample> pingpong(i64 n) {
  conch::chan<i64> ping;
  conch::chan<i64> pong;
  conch::chan<conch::unit> done = conch::go(echo(ping, pong));
  i64 sum = 0;
  const stopwatch watch;
  for (i64 i = 0; i < n; ++i) {
    co_await ping.send(i);
    std::optional<i64> v = co_await pong.recv();
    sum += *v;
  }
  const sample elapsed = watch.elapsed();
  ping.close();
  co_await done.recv();
  expect_sum("A", sum, range_sum(0, n));
  co_return per_op(elapsed, n);
}

// ---- B, C: producers and consumers over one buffered channel ----

// Sends from .. from+n-1; the last producer to finish closes the channel.
conch::task<void> produce(conch::chan<i64> c, i64 from, i64 n, std::atomic<int>* producers_left) {
  for (i64 i = 0; i < n; ++i) co_await c.send(from + i);
  // acq_rel: the closer must come after every producer's last send.
  if (producers_left->fetch_sub(1, std::memory_order_acq_rel) == 1) c.close();
}

conch::task<i64> consume(conch::chan<i64> c) {
  i64 sum = 0;
  while (std::optional<i64> v = co_await c.recv()) sum += *v;
  co_return sum;
}

conch::task<sample> producers_consumers(i64 n, int producers, int consumers, std::size_t capacity) {
  conch::chan<i64> c(capacity);
  std::atomic<int> producers_left{producers};
  std::vector<conch::chan<i64>> sums;
  const stopwatch watch;
  for (int k = 0; k < consumers; ++k) sums.push_back(conch::go(consume(c)));
  const i64 share = n / producers;
  for (int p = 0; p < producers; ++p) {
    const i64 count = p == producers - 1 ? n - share * p : share;
    conch::go(produce(c, share * p, count, &producers_left));
  }
  i64 sum = 0;
  for (conch::chan<i64>& s : sums) {
    std::optional<i64> v = co_await s.recv();
    sum += *v;
  }
  const sample elapsed = watch.elapsed();
  expect_sum(producers == 1 ? "B" : "C", sum, range_sum(0, n));
  co_return per_op(elapsed, n);
}

// ---- D: one consumer selecting over two buffered channels ----

conch::task<i64> select_consume(conch::chan<i64> a, conch::chan<i64> b) {
  i64 sum = 0;
  bool a_open = true;
  bool b_open = true;
  while (a_open && b_open) {
    auto r = co_await conch::select(conch::recv(a), conch::recv(b));
    if (r.index() == 0) {
      if (std::optional<i64>& v = std::get<0>(r))
        sum += *v;
      else
        a_open = false;
    } else {
      if (std::optional<i64>& v = std::get<1>(r))
        sum += *v;
      else
        b_open = false;
    }
  }
  // One side closed: a select on a closed channel fires at once, so (as a Go
  // program sets that channel to nil) receive from the other one alone.
  conch::chan<i64> rest = a_open ? a : b;
  while (std::optional<i64> v = co_await rest.recv()) sum += *v;
  co_return sum;
}

conch::task<sample> select_two(i64 n) {
  conch::chan<i64> a(1024);
  conch::chan<i64> b(1024);
  std::atomic<int> left_a{1};
  std::atomic<int> left_b{1};
  const stopwatch watch;
  conch::chan<i64> total = conch::go(select_consume(a, b));
  const i64 half = n / 2;
  conch::go(produce(a, 0, half, &left_a));
  conch::go(produce(b, half, n - half, &left_b));
  std::optional<i64> sum = co_await total.recv();
  const sample elapsed = watch.elapsed();
  expect_sum("D", *sum, range_sum(0, n));
  co_return per_op(elapsed, n);
}

// ---- E: spawn n go blocks that each send one value ----

conch::task<void> send_one(conch::chan<i64> c, i64 v) { co_await c.send(v); }

conch::task<i64> collect(conch::chan<i64> c, i64 n) {
  i64 sum = 0;
  for (i64 i = 0; i < n; ++i) {
    std::optional<i64> v = co_await c.recv();
    sum += *v;
  }
  co_return sum;
}

conch::task<sample> spawn_many(i64 n) {
  conch::chan<i64> c(std::size_t{1} << 20);
  const stopwatch watch;
  conch::chan<i64> total = conch::go(collect(c, n));
  for (i64 i = 0; i < n; ++i) conch::go(send_one(c, i));  // result channel dropped
  std::optional<i64> sum = co_await total.recv();
  const sample elapsed = watch.elapsed();
  expect_sum("E", *sum, range_sum(0, n));
  co_return per_op(elapsed, n);
}

// ---- F: n concurrent 1 ms timeouts ----

conch::task<void> wait_timeout(std::atomic<i64>* left, conch::chan<conch::unit> all_done) {
  conch::chan<conch::unit> t = conch::timeout(1ms);
  co_await t.recv();  // nullopt when the timer closes it
  // acq_rel: the last one closes only after every other one has finished.
  if (left->fetch_sub(1, std::memory_order_acq_rel) == 1) all_done.close();
}

conch::task<sample> timeouts(i64 n) {
  std::atomic<i64> left{n};
  conch::chan<conch::unit> all_done;
  const stopwatch watch;
  for (i64 i = 0; i < n; ++i) conch::go(wait_timeout(&left, all_done));
  co_await all_done.recv();
  const sample elapsed = watch.elapsed();
  expect_sum("F", left.load(), 0);
  co_return in_ms(elapsed);  // total ms
}

// ---- driver ----

conch::task<sample> run_workload(char id, i64 n) {
  switch (id) {
    case 'A': return pingpong(n);
    case 'B': return producers_consumers(n, 1, 1, 1024);
    case 'C': return producers_consumers(n, 4, 4, 1024);
    case 'D': return select_two(n);
    case 'E': return spawn_many(n);
    default: return timeouts(n);
  }
}

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: conch_bench_channels <A|B|C|D|E|F> <threads> [n]\n"
               "  A ping-pong  B spsc  C 4x4 mpmc  D select  E spawn  F timeouts\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) usage();
  const workload* w = find_workload(argv[1]);
  const int threads = std::atoi(argv[2]);
  if (w == nullptr || threads < 1) usage();
  const i64 n = argc > 3 ? std::atoll(argv[3]) : w->default_n;
  if (n < 2) usage();

  sample value{};
  {
    conch::runtime rt({.threads = static_cast<unsigned>(threads)});
    rt.block_on(run_workload(w->id, std::max<i64>(n / 10, 2)));  // warm-up
    value = rt.block_on(run_workload(w->id, n));
  }
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("bench=%s impl=conch%d param=threads:%d/n:%lld value=%.1f unit=%s rss_kb=%ld cpu=%.1f\n",
              w->name, threads, threads, static_cast<long long>(n), value.wall, w->unit, ru.ru_maxrss,
              value.cpu);
  return 0;
}
