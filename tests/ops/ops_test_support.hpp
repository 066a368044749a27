// tests/ops/ops_test_support.hpp
// Helpers for the combinator tests: time-bounded drains, sends and waits, so a bug fails a test instead of hanging it.
// (recv_within and run_on are the shared ones, tests/support/test_support.hpp.)
#pragma once

#include <chrono>
#include <optional>
#include <stdexcept>
#include <vector>

#include "conch/chan/ops.hpp"
#include "conch/conch.hpp"
#include "tests/support/test_support.hpp"

namespace conch::ops_test {

using namespace std::chrono_literals;

/// Everything `ch` yields until it closes; `closed` is false if it did not
/// close within `limit`.
template <class T>
struct drained {
  std::vector<T> values;
  bool closed = false;
};

template <class T>
task<drained<T>> drain(chan<T> ch, std::chrono::nanoseconds limit = test::patience) {
  drained<T> d;
  chan<unit> deadline = timeout(limit);
  for (;;) {
    auto r = co_await select(recv(ch), recv(deadline));
    if (r.index() == 1) co_return d;
    std::optional<T> v = std::get<0>(std::move(r));
    if (!v) {
      d.closed = true;
      co_return d;
    }
    d.values.push_back(std::move(*v));
  }
}

/// Sends `v` on `ch`, giving up after `limit`; true if it was sent (false:
/// timed out or closed). Pass a named value, not a braced temporary (GCC 12
/// destroys a braced temporary in a co_await expression twice).
template <class T>
task<bool> send_within(chan<T> ch, T v, std::chrono::nanoseconds limit = test::patience) {
  auto r = co_await select(send(ch, std::move(v)), recv(timeout(limit)));
  co_return r.index() == 0 && std::get<0>(r);
}

/// Runs `t` in a go block and returns its result, or throws if it takes
/// longer than `limit` or fails.
template <class T>
task<T> within(task<T> t, std::chrono::nanoseconds limit = test::patience) {
  chan<T> r = go(std::move(t));
  auto g = co_await test::recv_within(r, limit);
  if (g.timed_out) throw std::runtime_error("timed out");
  if (!g.value) throw std::runtime_error("the task failed (see the error handler's output)");
  co_return std::move(*g.value);
}

/// True if nothing arrives on `ch` within `quiet` (the channel stays open and empty).
template <class T>
task<bool> stays_silent(chan<T> ch, std::chrono::nanoseconds quiet = 50ms) {
  auto g = co_await test::recv_within(ch, quiet);
  co_return g.timed_out;
}

/// A vector 0, 1, ..., n-1.
inline std::vector<int> iota(int n) {
  std::vector<int> v;
  for (int i = 0; i < n; ++i) v.push_back(i);
  return v;
}

}  // namespace conch::ops_test
