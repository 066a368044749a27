// bench/bench_util.hpp
// Timing and checksum helpers shared by the channel workload benchmarks.
#pragma once

#include <time.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace bench {

using i64 = std::int64_t;
using clock_type = std::chrono::steady_clock;

// CPU time of all the process's threads so far, in ns.
inline double process_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

// One measurement of the timed region: wall time, and the process's CPU time
// (every thread), which a loaded machine disturbs less for one-thread runs.
struct sample {
  double wall;
  double cpu;
};

// Starts timing when constructed.
struct stopwatch {
  clock_type::time_point wall0 = clock_type::now();
  double cpu0 = process_cpu_ns();
  sample elapsed() const {
    return {std::chrono::duration<double, std::nano>(clock_type::now() - wall0).count(),
            process_cpu_ns() - cpu0};
  }
};

inline sample per_op(sample s, i64 n) {
  return {s.wall / static_cast<double>(n), s.cpu / static_cast<double>(n)};
}
inline sample in_ms(sample s) { return {s.wall / 1e6, s.cpu / 1e6}; }

// Sum of from .. from+n-1.
inline i64 range_sum(i64 from, i64 n) { return n * from + n * (n - 1) / 2; }

// Exits 1 with a message when a workload received the wrong values.
inline void expect_sum(const char* what, i64 got, i64 want) {
  if (got != want) {
    std::fprintf(stderr, "%s: checksum mismatch: got %lld, want %lld\n", what,
                 static_cast<long long>(got), static_cast<long long>(want));
    std::exit(1);
  }
}

// The workloads of issue 2, shared by the conch and Boost.Fiber binaries.
struct workload {
  char id;
  const char* name;
  i64 default_n;
  const char* unit;
};

inline constexpr workload workloads[] = {
    {'A', "A_pingpong", 1'000'000, "ns/op"},  {'B', "B_spsc", 10'000'000, "ns/op"},
    {'C', "C_mpmc", 10'000'000, "ns/op"},     {'D', "D_select", 5'000'000, "ns/op"},
    {'E', "E_spawn", 1'000'000, "ns/op"},     {'F', "F_timeouts", 100'000, "ms"},
};

// The workload named by a one-letter argument, or null.
inline const workload* find_workload(const char* arg) {
  if (arg == nullptr || arg[0] == '\0' || arg[1] != '\0') return nullptr;
  for (const workload& w : workloads)
    if (w.id == arg[0]) return &w;
  return nullptr;
}

}  // namespace bench
