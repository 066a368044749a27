// tests/support/test_support.hpp
// The shared test vocabulary: run_on, recv_within, eventually, arrivals, skip, require_io_uring, buffer kinds.
//
//   TEST_CASE("...", "[chan]") {
//     auto got = conch::test::run_on(2, [](chan<int> c) -> task<int> {
//       auto r = co_await conch::test::recv_within(c);  // 5 s, then r.timed_out
//       co_return r.value.value_or(-1);
//     }(chan<int>()));
//   }
//
// Every test binary built with conch_test(... NEEDS_IO_URING) also links
// tests/support/io_uring_listener.cpp, which calls require_io_uring() before
// each test case; a test program without Catch calls it itself.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "conch/conch.hpp"

namespace conch::test {

// ---- io_uring, or skip ----

/// The exit code that tells CTest a test was skipped (liburing's
/// T_EXIT_SKIP); conch_test registers it as SKIP_RETURN_CODE.
inline constexpr int skip_exit_code = 77;

/// Whether this process can start a runtime: OK, or why not (kUnavailable
/// when io_uring is disabled by sysctl, seccomp or the kernel build). Probed
/// once per process by starting and stopping a one-thread runtime; later
/// calls return the cached answer. Thread-safe.
inline const absl::Status& io_uring_status() {
  static const absl::Status status = [] {
    auto rt = runtime::create({.threads = 1});
    return rt.ok() ? absl::OkStatus() : rt.status();
  }();
  return status;
}

/// Skips the running test case: prints "skipped: <reason>" and ends the
/// process with skip_exit_code, which CTest reports as skipped, reason in
/// the test's output (every conch_test registers SKIP_RETURN_CODE; Catch2 v2
/// has no SKIP, and CTest runs each test case in its own process). Any
/// thread, inside a coroutine too. For what the host cannot do (decided by
/// a probe, not by the test's own failure), never for a failure.
[[noreturn]] inline void skip(const std::string& reason) {
  std::cout.flush();
  std::fprintf(stderr, "skipped: %s\n", reason.c_str());
  std::fflush(nullptr);
  std::_Exit(skip_exit_code);  // no static destructors: Catch is mid-run
}

/// Returns if io_uring is usable; otherwise skips the test with the reason.
/// A start-up failure other than kUnavailable is a real failure and is left
/// to the test.
inline void require_io_uring() {
  const absl::Status& s = io_uring_status();
  if (s.ok() || s.code() != absl::StatusCode::kUnavailable) return;
  skip("this test needs io_uring, which is unavailable here: " + std::string(s.message()));
}

// ---- running a test body ----

/// Runs `t` on a fresh runtime with `threads` loops and returns its result
/// (or rethrows its exception). Skips the test if io_uring is unavailable.
template <class T>
T run_on(unsigned threads, task<T> t) {
  require_io_uring();
  return conch::run(std::move(t), {.threads = threads});
}

// ---- bounded receives ----

/// How long a test waits before a receive counts as hung.
inline constexpr std::chrono::milliseconds patience = std::chrono::seconds(5);

/// What a bounded receive saw: a value, the channel's close, or nothing in
/// time. Read it by name (`timed_out`, `value`), or as an
/// optional<optional<T>>: engaged unless it timed out, the inner optional
/// nullopt once the channel is closed (`REQUIRE(r.has_value()); CHECK(**r == x)`).
template <class T>
struct received {
  bool timed_out = false;
  std::optional<T> value;  // nullopt (and !timed_out): the channel is closed

  bool has_value() const noexcept { return !timed_out; }
  explicit operator bool() const noexcept { return !timed_out; }
  std::optional<T>& operator*() & noexcept { return value; }
  const std::optional<T>& operator*() const& noexcept { return value; }
  std::optional<T>&& operator*() && noexcept { return std::move(value); }
  std::optional<T>* operator->() noexcept { return &value; }
  const std::optional<T>* operator->() const noexcept { return &value; }
};

/// Receives from `ch`, giving up after `limit`, so a bug fails a test
/// instead of hanging it.
template <class T>
task<received<T>> recv_within(chan<T> ch, std::chrono::nanoseconds limit = patience) {
  auto r = co_await select(recv(ch), recv(timeout(limit)));
  received<T> got;
  if (r.index() == 1)
    got.timed_out = true;
  else
    got.value = std::get<0>(std::move(r));
  co_return got;
}

// ---- waiting on a condition ----

/// Waits until cond() holds, looking every millisecond, for at most `limit`:
/// true if it held. For state no channel announces (a buffer's size, a
/// counter). Name the lambda before the co_await (GCC 12 destroys a
/// capturing lambda made inside a co_await expression twice).
template <class F>
task<bool> eventually(F cond, std::chrono::nanoseconds limit = patience) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    if (cond()) co_return true;
    if (std::chrono::steady_clock::now() >= deadline) co_return false;
    co_await conch::sleep(std::chrono::milliseconds(1));
  }
}

/// A count of go blocks (or threads) that reached a point, for a test to
/// wait on instead of sleeping: each calls arrive() right before the
/// operation that parks it, the test awaits arrived(a, n). Copies share the
/// count, so pass it to go blocks by value.
struct arrivals {
  std::shared_ptr<std::atomic<int>> n = std::make_shared<std::atomic<int>>(0);
  void arrive() const noexcept { n->fetch_add(1, std::memory_order_acq_rel); }
  int count() const noexcept { return n->load(std::memory_order_acquire); }
};

/// Waits (at most `limit`) until `a` has counted `want` arrivals: true if
/// it did. With nothing between arrive() and the park, an arrival seen is a
/// park done or a few instructions away; on a one-loop runtime it is a park
/// done (the arriving go block ran on until it parked).
inline task<bool> arrived(arrivals a, int want, std::chrono::nanoseconds limit = patience) {
  auto cond = [a, want] { return a.count() >= want; };
  co_return co_await eventually(cond, limit);
}

/// How long a test watches for something that must NOT happen. A wait that
/// short proves nothing alone: use it only after a positive control in the
/// same test that saw the same kind of event happen within `quiet`.
inline constexpr std::chrono::milliseconds quiet = std::chrono::milliseconds(500);

// ---- channel kinds ----

/// Every buffer kind the close matrix runs against, with a label.
struct chan_kind {
  std::string name;
  bool parks_senders;  // does a send on a full channel park?
  bool keeps_value;    // promise: the value stays forever
  template <class T>
  chan<T> make() const {
    if (name == "unbuffered") return chan<T>();
    if (name == "fixed") return chan<T>(buffer::fixed(2));
    if (name == "dropping") return chan<T>(buffer::dropping(2));
    if (name == "sliding") return chan<T>(buffer::sliding(2));
    return promise_chan<T>();
  }
};

inline std::vector<chan_kind> all_kinds() {
  return {{"unbuffered", true, false},
          {"fixed", true, false},
          {"dropping", false, false},
          {"sliding", false, false},
          {"promise", false, true}};
}

}  // namespace conch::test
