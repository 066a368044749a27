// bench/ops_bench.cpp
// Combinator throughput: pipeline (1M items, n = 1, 2, 4 workers) and mult (1 source, 8 taps, 1M values), on a 2-thread runtime.
//
//   conch_bench_ops [runs=3] [items=1000000] [case]
//
// `case` (pipeline, pipeline_1us or mult) runs that case alone, e.g. under
// perf stat or valgrind.
//
// Cases: pipeline (a trivial transform: the cost of the handoffs themselves),
// pipeline_1us (items/5 values, ~1 us of work each: the parallel speed-up,
// with a summary line of n=2's items/s over n=1's),
// mult (8 taps with 128-slot buffers, one consumer go block each).
//
// Prints one line per run and a summary line per case, in the house format:
//   bench=<name> param=<...> value=<number> unit=<...>
// The summary's value is the median; min and max follow as extra fields.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ranges>
#include <string>
#include <vector>

#include "conch/chan/ops.hpp"
#include "conch/conch.hpp"

using conch::chan;
using conch::task;

namespace {

using clock_type = std::chrono::steady_clock;

// pipeline: a source go block feeds `from`, n workers apply a cheap transform,
// a reduce drains `to`. Measures the whole run: ns per item.
task<double> pipeline_case(std::size_t workers, int items) {
  auto t0 = clock_type::now();
  chan<int> from(1024);
  chan<long> to(1024);
  conch::onto_chan(from, std::views::iota(0, items));
  conch::pipeline(workers, to, [](int x) { return static_cast<long>(x) * 2 + 1; }, from);
  long sum = co_await conch::reduce([](long acc, long x) { return acc + x; }, 0L, to);
  auto dt = std::chrono::duration<double, std::nano>(clock_type::now() - t0).count();
  long n = items;
  if (sum != n * n) std::fprintf(stderr, "pipeline: wrong sum %ld\n", sum);
  co_return dt / items;
}

// About a microsecond of arithmetic, so that workers have something to share.
long busy(int x) {
  unsigned long h = static_cast<unsigned long>(x);
  for (int i = 0; i < 1000; ++i) h = h * 6364136223846793005ul + 1442695040888963407ul;
  return static_cast<long>(h >> 60);
}

// pipeline with a transform that costs ~1 us: what n buys when the work,
// not the channel handoffs, dominates.
task<double> pipeline_work_case(std::size_t workers, int items) {
  auto t0 = clock_type::now();
  chan<int> from(1024);
  chan<long> to(1024);
  conch::onto_chan(from, std::views::iota(0, items));
  conch::pipeline(workers, to, busy, from);
  long n = co_await conch::reduce([](long acc, long) { return acc + 1; }, 0L, to);
  auto dt = std::chrono::duration<double, std::nano>(clock_type::now() - t0).count();
  if (n != items) std::fprintf(stderr, "pipeline_work: %ld of %d items\n", n, items);
  co_return dt / items;
}

task<long> sum_of(chan<int> in) {
  long s = 0;
  for (;;) {
    std::optional<int> v = co_await in.recv();
    if (!v) co_return s;
    s += *v;
  }
}

// mult: one source, `taps` tap channels (buffer 128 each) each drained by its
// own go block. Measures until every tap has closed: ns per source value.
task<double> mult_case(int taps, int items) {
  auto t0 = clock_type::now();
  chan<int> src(1024);
  conch::mult m{src};
  std::vector<chan<long>> sums;
  for (int i = 0; i < taps; ++i) sums.push_back(conch::go(sum_of(m.tap(chan<int>(128)))));
  conch::onto_chan(src, std::views::iota(0, items));
  long want = static_cast<long>(items) * (items - 1) / 2;
  for (auto& s : sums) {
    std::optional<long> got = co_await s.recv();
    if (!got || *got != want) std::fprintf(stderr, "mult: a tap missed values\n");
  }
  co_return std::chrono::duration<double, std::nano>(clock_type::now() - t0).count() / items;
}

void report(const std::string& name, const std::string& param, std::vector<double> ns) {
  for (double v : ns)
    std::printf("bench=%s param=%s,run value=%.1f unit=ns/op\n", name.c_str(), param.c_str(), v);
  std::sort(ns.begin(), ns.end());
  std::printf("bench=%s param=%s value=%.1f unit=ns/op min=%.1f max=%.1f runs=%zu\n", name.c_str(),
              param.c_str(), ns[ns.size() / 2], ns.front(), ns.back(), ns.size());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const int runs = argc > 1 ? std::max(1, std::atoi(argv[1])) : 3;
  const int items = argc > 2 ? std::max(1, std::atoi(argv[2])) : 1'000'000;
  const std::string only = argc > 3 ? argv[3] : "";
  if (!only.empty() && only != "pipeline" && only != "pipeline_1us" && only != "mult") {
    std::fprintf(stderr, "conch_bench_ops: unknown case '%s' (pipeline, pipeline_1us, mult)\n", only.c_str());
    return 2;
  }
  auto want = [&](const char* name) { return only.empty() || only == name; };
  conch::runtime rt({.threads = 2});

  // Warm-up (frame caches, thread start-up), not reported.
  rt.block_on(pipeline_case(2, items / 20));
  rt.block_on(mult_case(8, items / 20));

  for (std::size_t n : {1, 2, 4}) {
    if (!want("pipeline")) break;
    std::vector<double> ns;
    for (int r = 0; r < runs; ++r) ns.push_back(rt.block_on(pipeline_case(n, items)));
    report("pipeline", "n=" + std::to_string(n) + ",items=" + std::to_string(items), ns);
  }
  const int work_items = std::max(1, items / 5);
  // Runs of n = 1, 2, 4 alternate, so a noisy moment hits all three; the
  // speed-up is n=1's time over n=2's, run by run.
  std::vector<double> work[3], speedup;
  for (int r = 0; r < runs && want("pipeline_1us"); ++r) {
    for (int k = 0; k < 3; ++k) work[k].push_back(rt.block_on(pipeline_work_case(std::size_t{1} << k, work_items)));
    speedup.push_back(work[0].back() / work[1].back());
  }
  for (int k = 0; k < 3 && want("pipeline_1us"); ++k)
    report("pipeline_1us", "n=" + std::to_string(1 << k) + ",items=" + std::to_string(work_items), work[k]);
  std::sort(speedup.begin(), speedup.end());
  if (want("pipeline_1us"))
    std::printf("bench=pipeline_1us_speedup param=n=2/n=1,threads=2 value=%.2f unit=x min=%.2f max=%.2f runs=%zu\n",
              speedup[speedup.size() / 2], speedup.front(), speedup.back(), speedup.size());
  if (!want("mult")) return 0;
  std::vector<double> ns;
  for (int r = 0; r < runs; ++r) ns.push_back(rt.block_on(mult_case(8, items)));
  report("mult", "taps=8,items=" + std::to_string(items), ns);
  return 0;
}
