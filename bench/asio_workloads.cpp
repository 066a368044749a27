// bench/asio_workloads.cpp
// Channel workloads A-F of issue 2 on Boost.Asio's experimental channel with C++20 coroutines: a peer for conch.
//
//   conch_bench_asio <A|B|C|D|E|F> [n]
//
// Same workloads, sizes, warm-up, checks and output line as bench/chan_workloads.cpp,
// written as an Asio user writes them: one io_context run on one thread (concurrency
// hint 1), experimental::channel<void(error_code, i64)>, coroutines started with
// co_spawn, every operation co_awaited with as_tuple(use_awaitable) (no exceptions).
// A  ping-pong over two channels of capacity 0 (a send completes when a receiver takes it).
// B  1 producer / 1 consumer over a channel of capacity 1024.
// C  4 producers / 4 consumers over one channel of capacity 1024 (all on one thread).
// D  Asio has no select over channels. The nearest parking equivalent is a parallel
//    group of both receives waiting for one (what awaitable_operators' || does), but
//    || drops the other receive's value when both complete in the same turn. Here the
//    group is awaited with make_parallel_group, whose result carries both outcomes, and
//    a value the cancelled receive had already taken is counted too: so one "select"
//    may take two values. Every value is received once; the per-message cost includes
//    starting and cancelling the second receive each time.
// E  n coroutines co_spawned, each sends one value into a channel of capacity 2^20;
//    a collector receives n. co_spawn posts a coroutine's start, so the spawner yields
//    (a post) after every 1024 spawns: otherwise all n frames would wait at once (as
//    Boost.Fiber's run uses launch::dispatch and conch runs queued go blocks past a bound).
// F  n coroutines each wait on a steady_timer of 1 ms; the last one to finish
//    signals the main coroutine.
//
// Prints: bench=<name> impl=asio1 param=threads:1/n:<n> value=<wall> unit=<u> rss_kb=<peak> cpu=<cpu>
#include <sys/resource.h>

#include <algorithm>
#include <boost/asio.hpp>
#include <boost/asio/experimental/channel.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <random>
#include <vector>

#include "bench_util.hpp"

namespace {

namespace asio = boost::asio;
using bench::i64;
using chan = asio::experimental::channel<void(boost::system::error_code, i64)>;
using done_chan = asio::experimental::channel<void(boost::system::error_code)>;  // completions, no value
template <class T>
using awaitable = asio::awaitable<T>;
constexpr auto kToken = asio::as_tuple(asio::use_awaitable);
const boost::system::error_code kOk;  // a send's error argument: named, not a temporary in a co_await

using bench::expect_sum;
using bench::find_workload;
using bench::in_ms;
using bench::per_op;
using bench::range_sum;
using bench::sample;
using bench::stopwatch;
using bench::workload;

// recv(c): the next value, or nullopt once c is closed and drained.
awaitable<std::optional<i64>> recv(chan& c) {
  auto [ec, v] = co_await c.async_receive(kToken);
  if (ec) co_return std::nullopt;
  co_return v;
}

// send(c, v): false once c is closed.
awaitable<bool> send(chan& c, i64 v) {
  auto [ec] = co_await c.async_send(kOk, v, kToken);
  co_return !ec;
}

// ---- A ----

awaitable<void> echo(chan& in, chan& out) {
  while (std::optional<i64> v = co_await recv(in))
    if (!co_await send(out, *v)) break;
  out.close();
}

awaitable<sample> pingpong(i64 n) {
  auto ex = co_await asio::this_coro::executor;
  chan ping(ex, 0);
  chan pong(ex, 0);
  asio::co_spawn(ex, echo(ping, pong), asio::detached);
  i64 sum = 0;
  const stopwatch watch;
  for (i64 i = 0; i < n; ++i) {
    co_await send(ping, i);
    std::optional<i64> v = co_await recv(pong);
    sum += *v;
  }
  const sample elapsed = watch.elapsed();
  ping.close();
  // The echo closes pong when it sees ping closed: wait for that, so it ends before its channels do.
  while (co_await recv(pong)) {
  }
  expect_sum("A", sum, range_sum(0, n));
  co_return per_op(elapsed, n);
}

// ---- B, C ----

// Sends from .. from+count-1; the last producer to finish closes c (one thread: a plain counter).
awaitable<void> produce(chan& c, i64 from, i64 count, int& producers_left) {
  for (i64 i = 0; i < count; ++i) co_await send(c, from + i);
  if (--producers_left == 0) c.close();
}

// Adds up what c delivers until it is closed, then counts itself done on `done`.
awaitable<void> consume(chan& c, i64& sum, done_chan& done) {
  i64 s = 0;
  while (std::optional<i64> v = co_await recv(c)) s += *v;
  sum += s;
  co_await done.async_send(kOk, kToken);
}

awaitable<sample> producers_consumers(i64 n, int producers, int consumers, std::size_t capacity) {
  auto ex = co_await asio::this_coro::executor;
  chan c(ex, capacity);
  done_chan done(ex, static_cast<std::size_t>(consumers));
  int producers_left = producers;
  i64 sum = 0;
  const stopwatch watch;
  for (int k = 0; k < consumers; ++k) asio::co_spawn(ex, consume(c, sum, done), asio::detached);
  const i64 share = n / producers;
  for (int p = 0; p < producers; ++p) {
    const i64 count = p == producers - 1 ? n - share * p : share;
    asio::co_spawn(ex, produce(c, share * p, count, producers_left), asio::detached);
  }
  for (int k = 0; k < consumers; ++k) co_await done.async_receive(kToken);
  const sample elapsed = watch.elapsed();
  expect_sum(producers == 1 ? "B" : "C", sum, range_sum(0, n));
  co_return per_op(elapsed, n);
}

// ---- D ----

awaitable<void> select_consume(chan& a, chan& b, i64& sum, done_chan& done) {
  bool a_open = true;
  bool b_open = true;
  while (a_open && b_open) {
    auto [order, ea, va, eb, vb] =
        co_await asio::experimental::make_parallel_group(a.async_receive(asio::deferred),
                                                         b.async_receive(asio::deferred))
            .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
    (void)order;
    // The receive that lost was cancelled (operation_aborted) unless it had already taken a
    // value: then that value is counted too. A closed channel ends its side.
    if (!ea) sum += va;
    else if (ea != asio::error::operation_aborted) a_open = false;
    if (!eb) sum += vb;
    else if (eb != asio::error::operation_aborted) b_open = false;
  }
  // One side closed: receive from the other one alone (as conch's and Go's consumers do).
  chan& rest = a_open ? a : b;
  if (a_open || b_open)
    while (std::optional<i64> v = co_await recv(rest)) sum += *v;
  co_await done.async_send(kOk, kToken);
}

awaitable<sample> select_two(i64 n) {
  auto ex = co_await asio::this_coro::executor;
  chan a(ex, 1024);
  chan b(ex, 1024);
  done_chan done(ex, 1);
  int left_a = 1;
  int left_b = 1;
  i64 sum = 0;
  const stopwatch watch;
  asio::co_spawn(ex, select_consume(a, b, sum, done), asio::detached);
  const i64 half = n / 2;
  asio::co_spawn(ex, produce(a, 0, half, left_a), asio::detached);
  asio::co_spawn(ex, produce(b, half, n - half, left_b), asio::detached);
  co_await done.async_receive(kToken);
  const sample elapsed = watch.elapsed();
  expect_sum("D", sum, range_sum(0, n));
  co_return per_op(elapsed, n);
}

// ---- E ----

awaitable<void> send_one(chan& c, i64 v) { co_await send(c, v); }

awaitable<void> collect(chan& c, i64 n, i64& sum, done_chan& done) {
  for (i64 i = 0; i < n; ++i) sum += *co_await recv(c);
  co_await done.async_send(kOk, kToken);
}

awaitable<sample> spawn_many(i64 n) {
  auto ex = co_await asio::this_coro::executor;
  chan c(ex, std::size_t{1} << 20);
  done_chan done(ex, 1);
  i64 sum = 0;
  const stopwatch watch;
  asio::co_spawn(ex, collect(c, n, sum, done), asio::detached);
  for (i64 i = 0; i < n; ++i) {
    asio::co_spawn(ex, send_one(c, i), asio::detached);
    // Let the spawned ones run now and then (see the banner: E).
    if ((i & 1023) == 1023) co_await asio::post(ex, asio::use_awaitable);
  }
  co_await done.async_receive(kToken);
  const sample elapsed = watch.elapsed();
  expect_sum("E", sum, range_sum(0, n));
  co_return per_op(elapsed, n);
}

// ---- F ----

awaitable<void> wait_timeout(i64& left, done_chan& all_done) {
  asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(1));
  co_await t.async_wait(kToken);
  if (--left == 0) co_await all_done.async_send(kOk, kToken);
}

awaitable<sample> timeouts(i64 n) {
  auto ex = co_await asio::this_coro::executor;
  done_chan all_done(ex, 1);
  i64 left = n;
  const stopwatch watch;
  for (i64 i = 0; i < n; ++i) asio::co_spawn(ex, wait_timeout(left, all_done), asio::detached);
  co_await all_done.async_receive(kToken);
  const sample elapsed = watch.elapsed();
  expect_sum("F", left, 0);
  co_return in_ms(elapsed);  // total ms
}

awaitable<sample> run_workload(char id, i64 n) {
  switch (id) {
    case 'A': co_return co_await pingpong(n);
    case 'B': co_return co_await producers_consumers(n, 1, 1, 1024);
    case 'C': co_return co_await producers_consumers(n, 4, 4, 1024);
    case 'D': co_return co_await select_two(n);
    case 'E': co_return co_await spawn_many(n);
    default: co_return co_await timeouts(n);
  }
}

// Runs one workload on a fresh io_context (one thread) to the end.
sample run_on_context(char id, i64 n) {
  asio::io_context ctx(1);
  std::optional<sample> result;
  asio::co_spawn(ctx, run_workload(id, n), [&result](std::exception_ptr e, sample s) {
    if (e) std::rethrow_exception(e);
    result = s;
  });
  ctx.run();
  if (!result) {
    std::fprintf(stderr, "asio bench: workload %c did not finish\n", id);
    std::exit(1);
  }
  return *result;
}

[[noreturn]] void usage() {
  std::fprintf(stderr, "usage: conch_bench_asio <A|B|C|D|E|F> [n]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) usage();
  const workload* w = find_workload(argv[1]);
  if (w == nullptr) usage();
  const i64 n = argc > 2 ? std::atoll(argv[2]) : w->default_n;
  if (n < 2) usage();

  run_on_context(w->id, std::max<i64>(n / 10, 2));  // warm-up
  const sample value = run_on_context(w->id, n);
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  std::printf("bench=%s impl=asio1 param=threads:1/n:%lld value=%.1f unit=%s rss_kb=%ld cpu=%.1f\n",
              w->name, static_cast<long long>(n), value.wall, w->unit, ru.ru_maxrss, value.cpu);
  return 0;
}
