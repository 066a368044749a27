// examples/pipeline.cpp
// Stages connected by channels, on a runtime with two loop threads.
//
// Each stage is a go block: it receives from the channel before it, sends to
// the channel after it, and closes its output when its input closes, so the
// end of the stream flows down the pipeline. go() queues a block on the
// spawning loop; an idle loop steals queued blocks that have not started yet,
// which it manages while the spawning loop is busy. A go block never changes
// thread once it runs (it resumes where it parked): each stage says where.
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "conch/conch.hpp"

using conch::chan;
using conch::task;

// "T1", "T2", ...: a short name for the calling thread, in order of first use.
std::string thread_name() {
  static std::mutex mu;
  static std::map<std::thread::id, int> ids;
  std::lock_guard lock(mu);
  auto it = ids.try_emplace(std::this_thread::get_id(), static_cast<int>(ids.size()) + 1).first;
  return "T" + std::to_string(it->second);
}

// CPU work: every prime below n, by trial division.
std::vector<long> primes_below(long n) {
  std::vector<long> out;
  for (long c = 2; c < n; ++c) {
    bool prime = true;
    for (long d = 2; d * d <= c && prime; ++d) prime = c % d != 0;
    if (prime) out.push_back(c);
  }
  return out;
}

task<void> square(chan<long> in, chan<long> out) {
  int count = 0;
  while (std::optional<long> v = co_await in.recv()) {
    co_await out.send(*v * *v);
    ++count;
  }
  out.close();
  std::printf("square:   squared %d numbers on %s\n", count, thread_name().c_str());
}

task<long> sum(chan<long> in) {
  long total = 0;
  while (std::optional<long> v = co_await in.recv()) total += *v;
  std::printf("sum:      added them up on %s\n", thread_name().c_str());
  co_return total;
}

task<long> run_pipeline(long limit) {
  chan<long> numbers(16), squares(16);
  // Both go blocks queue on this loop, and the second wakes the idle loop,
  // which steals what is still queued while this task computes the input.
  chan<long> total = conch::go(sum(squares));
  conch::go(square(numbers, squares));
  std::vector<long> primes = primes_below(limit);
  std::printf("generate: computed %zu primes on %s\n", primes.size(), thread_name().c_str());
  for (long p : primes) co_await numbers.send(p);
  numbers.close();
  co_return (co_await total.recv()).value_or(-1);
}

int main() {
  conch::runtime rt({.threads = 2});
  long total = rt.block_on(run_pipeline(100000));
  long expected = 0;
  for (long p : primes_below(100000)) expected += p * p;
  std::printf("sum of squares of the primes below 100000 = %ld (expected %ld)\n", total, expected);
  return total == expected ? 0 : 1;
}
