// bench/fiber_workloads.cpp
// Channel workloads A-F of issue 2 on Boost.Fiber 1.81: the baseline for conch.
//
//   conch_bench_fiber <A|B|C|D|E|F> [n]
//
// Same workloads, sizes, warm-up and output line as bench/chan_workloads.cpp,
// on one thread with Boost.Fiber's default round_robin scheduler and default
// stacks (boost::context::fixedsize_stack):
// A  unbuffered_channel ping-pong.
// B  buffered_channel(1024), 1 producer / 1 consumer. Boost's buffered_channel
//    keeps one slot free, so it holds 1023 values.
// C  buffered_channel(1024), 4 producers / 4 consumers (all on one thread).
// D  Boost.Fiber has no select. Emulated by polling: try_pop on both channels
//    in a random order, this_fiber::yield() when both are empty. This is a
//    busy-polling stand-in, not a parking select; it is reported, but no
//    target compares against it.
// E  n fibers, each pushes one value into buffered_channel(2^20) (it holds
//    2^20-1 values; 1M fits). Fibers start with launch::dispatch, so each runs until it
//    finishes before the spawner continues, as a Go spawner is preempted and
//    conch runs queued go blocks past a bound; launch::post would keep all n
//    fiber stacks alive at once.
// F  n fibers, each this_fiber::sleep_for(1ms); launched with dispatch so each
//    starts its sleep at once. The main fiber joins them all.
//
// Prints: bench=<name> impl=fiber param=threads:1/n:<n> value=<wall> unit=<u> rss_kb=<peak> cpu=<cpu>
#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <boost/fiber/all.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "bench_util.hpp"

namespace {

using bench::clock_type;
using bench::i64;
namespace fibers = boost::fibers;
using status = fibers::channel_op_status;

using bench::expect_sum;
using bench::in_ms;
using bench::per_op;
using bench::range_sum;
using bench::sample;
using bench::stopwatch;
using bench::workload;
using bench::find_workload;

// ---- A ----

sample pingpong(i64 n) {
  fibers::unbuffered_channel<i64> ping;
  fibers::unbuffered_channel<i64> pong;
  fibers::fiber echo([&] {
    i64 v = 0;
    while (ping.pop(v) == status::success)
      if (pong.push(v) != status::success) break;
    pong.close();
  });
  i64 sum = 0;
  const stopwatch watch;
  for (i64 i = 0; i < n; ++i) {
    ping.push(i);
    i64 v = 0;
    pong.pop(v);
    sum += v;
  }
  const sample elapsed = watch.elapsed();
  ping.close();
  echo.join();
  expect_sum("A", sum, range_sum(0, n));
  return per_op(elapsed, n);
}

// ---- B, C ----

sample producers_consumers(i64 n, int producers, int consumers, std::size_t capacity) {
  fibers::buffered_channel<i64> c(capacity);
  int producers_left = producers;  // one thread: no atomics needed
  std::vector<i64> sums(static_cast<std::size_t>(consumers), 0);
  std::vector<fibers::fiber> fs;
  const stopwatch watch;
  for (int k = 0; k < consumers; ++k)
    fs.emplace_back([&c, &sums, k] {
      i64 s = 0;
      i64 v = 0;
      while (c.pop(v) == status::success) s += v;
      sums[static_cast<std::size_t>(k)] = s;
    });
  const i64 share = n / producers;
  for (int p = 0; p < producers; ++p) {
    const i64 from = share * p;
    const i64 count = p == producers - 1 ? n - share * p : share;
    fs.emplace_back([&c, &producers_left, from, count] {
      for (i64 i = 0; i < count; ++i) c.push(from + i);
      if (--producers_left == 0) c.close();
    });
  }
  for (fibers::fiber& f : fs) f.join();
  const sample elapsed = watch.elapsed();
  i64 sum = 0;
  for (i64 s : sums) sum += s;
  expect_sum(producers == 1 ? "B" : "C", sum, range_sum(0, n));
  return per_op(elapsed, n);
}

// ---- D (polling emulation of select) ----

sample select_two(i64 n) {
  fibers::buffered_channel<i64> a(1024);
  fibers::buffered_channel<i64> b(1024);
  const i64 half = n / 2;
  i64 sum = 0;
  const stopwatch watch;
  fibers::fiber consumer([&] {
    std::minstd_rand rng(12345);
    bool a_open = true;
    bool b_open = true;
    while (a_open && b_open) {
      const bool a_first = (rng() & 1) != 0;
      fibers::buffered_channel<i64>& first = a_first ? a : b;
      fibers::buffered_channel<i64>& second = a_first ? b : a;
      i64 v = 0;
      status s = first.try_pop(v);
      if (s == status::success) {
        sum += v;
        continue;
      }
      if (s == status::closed) {
        (a_first ? a_open : b_open) = false;
        continue;
      }
      s = second.try_pop(v);
      if (s == status::success) {
        sum += v;
      } else if (s == status::closed) {
        (a_first ? b_open : a_open) = false;
      } else {
        boost::this_fiber::yield();  // both empty: let the producers run
      }
    }
    fibers::buffered_channel<i64>& rest = a_open ? a : b;
    i64 v = 0;
    while (rest.pop(v) == status::success) sum += v;
  });
  fibers::fiber pa([&] {
    for (i64 i = 0; i < half; ++i) a.push(i);
    a.close();
  });
  fibers::fiber pb([&] {
    for (i64 i = half; i < n; ++i) b.push(i);
    b.close();
  });
  pa.join();
  pb.join();
  consumer.join();
  const sample elapsed = watch.elapsed();
  expect_sum("D", sum, range_sum(0, n));
  return per_op(elapsed, n);
}

// ---- E ----

sample spawn_many(i64 n) {
  fibers::buffered_channel<i64> c(std::size_t{1} << 20);
  i64 sum = 0;
  const stopwatch watch;
  fibers::fiber collector([&] {
    for (i64 i = 0; i < n; ++i) {
      i64 v = 0;
      c.pop(v);
      sum += v;
    }
  });
  for (i64 i = 0; i < n; ++i) fibers::fiber(fibers::launch::dispatch, [&c, i] { c.push(i); }).detach();
  collector.join();
  const sample elapsed = watch.elapsed();
  expect_sum("E", sum, range_sum(0, n));
  return per_op(elapsed, n);
}

// ---- F ----

sample timeouts(i64 n) {
  std::vector<fibers::fiber> fs;
  fs.reserve(static_cast<std::size_t>(n));
  i64 fired = 0;
  const stopwatch watch;
  for (i64 i = 0; i < n; ++i)
    fs.emplace_back(fibers::launch::dispatch, [&fired] {
      boost::this_fiber::sleep_for(std::chrono::milliseconds(1));
      ++fired;
    });
  for (fibers::fiber& f : fs) f.join();
  const sample elapsed = watch.elapsed();
  expect_sum("F", fired, n);
  return in_ms(elapsed);  // total ms
}

sample run_workload(char id, i64 n) {
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
  std::fprintf(stderr, "usage: conch_bench_fiber <A|B|C|D|E|F> [n]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) usage();
  const workload* w = find_workload(argv[1]);
  if (w == nullptr) usage();
  const i64 n = argc > 2 ? std::atoll(argv[2]) : w->default_n;
  if (n < 2) usage();

  run_workload(w->id, std::max<i64>(n / 10, 2));  // warm-up
  const sample value = run_workload(w->id, n);
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("bench=%s impl=fiber param=threads:1/n:%lld value=%.1f unit=%s rss_kb=%ld cpu=%.1f\n",
              w->name, static_cast<long long>(n), value.wall, w->unit, ru.ru_maxrss, value.cpu);
  return 0;
}
