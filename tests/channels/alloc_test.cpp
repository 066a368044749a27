// tests/channels/alloc_test.cpp
// Steady-state send and recv allocate nothing: a counting global allocator
// watches a ping-pong and a buffered stream after warm-up.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <new>

#include "tests/support/test_support.hpp"

#if defined(__SANITIZE_ADDRESS__)
// ASan's own operator new may meet this file's operator delete (which frees
// with free, as ASan's would): not a bug here, so do not report the mismatch.
extern "C" const char* __asan_default_options() { return "alloc_dealloc_mismatch=0"; }
#endif

namespace {
std::atomic<bool> counting{false};
std::atomic<long> allocations{0};
}  // namespace

void* operator new(std::size_t n) {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new(std::size_t n, std::align_val_t a) {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1, std::memory_order_relaxed);
  std::size_t al = static_cast<std::size_t>(a);
  if (void* p = std::aligned_alloc(al, (n + al - 1) / al * al)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

using conch::chan;
using conch::task;

namespace {
task<void> pong(chan<std::int64_t> in, chan<std::int64_t> out) {
  while (auto v = co_await in.recv()) co_await out.send(*v + 1);
}

task<long> measure(int rounds) {
  chan<std::int64_t> ping, back;
  chan<std::int64_t> buffered(64);
  conch::go(pong(ping, back));
  auto drain = conch::go([](chan<std::int64_t> b, int n) -> task<std::int64_t> {
    std::int64_t s = 0;
    for (int i = 0; i < n; ++i) s += *(co_await b.recv());
    co_return s;
  }, buffered, 2 * rounds);
  auto round = [&](int n, bool count) -> task<void> {
    counting = count;  // inside the frame: creating it is not counted
    for (int i = 0; i < n; ++i) {
      co_await ping.send(i);
      co_await back.recv();
      co_await buffered.send(i);
    }
    counting = false;
  };
  co_await round(rounds, false);  // warm-up: queues reach their size
  co_await round(rounds, true);
  co_await drain.recv();
  ping.close();
  co_return allocations.load();
}
}  // namespace

TEST_CASE("steady-state send and recv allocate nothing", "[chan][alloc]") {
  long n = conch::test::run_on(1, measure(20000));
  CHECK(n == 0);
}
