// examples/select_timeout.cpp
// select over a recv, a send and a timeout case; try_select as the default.
//
// select parks on every case at once and commits exactly one: the variant it
// returns says which (index()) and carries that case's outcome. try_select
// never parks; nullopt means no case was ready (core.async's :default).
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <variant>

#include "conch/conch.hpp"

using namespace std::chrono_literals;
using conch::chan;
using conch::task;

// The other side: sends two numbers, goes quiet, reads one log line, closes.
task<void> world(chan<int> numbers, chan<std::string> log) {
  co_await conch::sleep(20ms);
  co_await numbers.send(1);
  co_await conch::sleep(20ms);
  co_await numbers.send(2);
  co_await conch::sleep(120ms);  // quiet: the selector's timeouts fire
  std::optional<std::string> line = co_await log.recv();
  std::printf("world: read log line \"%s\", closing numbers\n", line ? line->c_str() : "?");
  numbers.close();
}

task<int> selector() {
  chan<int> numbers;
  chan<std::string> log;  // unbuffered: a send case is ready only with a reader
  auto done = conch::go(world(numbers, log));

  // Nothing is ready yet, so try_select takes the default.
  auto polled = conch::try_select(conch::recv(numbers), conch::send(log, std::string("early")));
  if (!polled) std::printf("try_select: no case ready, took the default\n");

  int received = 0;
  for (int round = 1;; ++round) {
    auto r = co_await conch::select(conch::recv(numbers), conch::send(log, std::string("tick")),
                                    conch::recv(conch::timeout(50ms)));
    if (r.index() == 0) {
      std::optional<int> v = std::get<0>(r);
      if (!v) {
        std::printf("round %d: numbers is closed, done\n", round);
        break;
      }
      std::printf("round %d: received %d\n", round, *v);
      ++received;
    } else if (r.index() == 1) {
      std::printf("round %d: sent a log line (sent=%d)\n", round, std::get<1>(r));
    } else {
      std::printf("round %d: timed out after 50ms\n", round);
    }
  }
  co_await done.recv();
  co_return received == 2 ? 0 : 1;  // world sent 1 and 2
}

int main() { return conch::run(selector(), {.threads = 1}); }
