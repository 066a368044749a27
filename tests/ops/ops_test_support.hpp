// tests/ops/ops_test_support.hpp
// Helpers for the combinator tests: time-bounded receives and drains, so a bug fails a test instead of hanging it.
#pragma once

#include <chrono>
#include <optional>
#include <vector>

#include "conch/chan/ops.hpp"
#include "conch/conch.hpp"

namespace conch::ops_test {

using namespace std::chrono_literals;

/// Every test gets this long before a receive counts as hung.
inline constexpr std::chrono::milliseconds patience = 5s;

/// Runs `t` on a fresh runtime with two loop threads.
template <class T>
T run2(task<T> t) {
  return conch::run(std::move(t), {.threads = 2});
}

/// What a bounded receive saw.
template <class T>
struct got {
  bool timed_out = false;
  std::optional<T> value;  // nullopt (and !timed_out): the channel is closed
};

/// Receives from `ch`, giving up after `limit`.
template <class T>
task<got<T>> recv_within(chan<T> ch, std::chrono::nanoseconds limit = patience) {
  auto r = co_await select(recv(ch), recv(timeout(limit)));
  got<T> g;
  if (r.index() == 1)
    g.timed_out = true;
  else
    g.value = std::get<0>(std::move(r));
  co_return g;
}

/// Everything `ch` yields until it closes; `closed` is false if it did not
/// close within `limit`.
template <class T>
struct drained {
  std::vector<T> values;
  bool closed = false;
};

template <class T>
task<drained<T>> drain(chan<T> ch, std::chrono::nanoseconds limit = patience) {
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

/// True if nothing arrives on `ch` within `quiet` (the channel stays open and empty).
template <class T>
task<bool> stays_silent(chan<T> ch, std::chrono::nanoseconds quiet = 50ms) {
  got<T> g = co_await recv_within(ch, quiet);
  co_return g.timed_out;
}

/// A vector 0, 1, ..., n-1.
inline std::vector<int> iota(int n) {
  std::vector<int> v;
  for (int i = 0; i < n; ++i) v.push_back(i);
  return v;
}

}  // namespace conch::ops_test
