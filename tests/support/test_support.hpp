// tests/support/test_support.hpp
// Shared helpers for conch's Catch2 suites.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "conch/conch.hpp"

namespace conch::test {

/// Runs `t` on a fresh runtime with `threads` loops.
template <class T>
T run_on(unsigned threads, task<T> t) {
  return conch::run(std::move(t), {.threads = threads});
}

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

/// Receives from `ch` or gives up after `limit` (so a bug cannot hang a test).
template <class T>
task<std::optional<std::optional<T>>> recv_within(chan<T> ch, std::chrono::nanoseconds limit) {
  auto r = co_await select(recv(ch), recv(timeout(limit)));
  if (r.index() == 1) co_return std::nullopt;
  co_return std::get<0>(std::move(r));
}

}  // namespace conch::test
