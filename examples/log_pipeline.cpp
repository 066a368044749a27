// examples/log_pipeline.cpp
// A small log-processing pipeline: to_chan -> pipeline (parse, 2 workers) -> pub by level -> one subscriber per level.
//
//   raw lines ──to_chan──▶ raw ──pipeline(2, parse)──▶ parsed ──pub(level)──┬─▶ "ERROR" ─▶ alert
//                                                                         ├─▶ "WARN"  ─▶ summary
//                                                                         └─▶ "INFO": no subscriber, dropped
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "conch/chan/ops.hpp"
#include "conch/conch.hpp"

using conch::chan;
using conch::task;

struct entry {
  std::string level;  // ERROR, WARN or INFO
  std::string text;
};

// Stage 2: "LEVEL text" -> entry. Runs on two workers at once; the pipeline
// still delivers the entries in the order of the lines.
entry parse(std::string line) {
  std::size_t sp = line.find(' ');
  std::printf("  parse    | %s\n", line.c_str());
  return {line.substr(0, sp), line.substr(sp + 1)};
}

// Stage 4: a subscriber prints what it gets and counts it, until its channel
// closes (the pub closes it when the parsed stream ends).
task<int> subscriber(std::string name, chan<entry> in) {
  int n = 0;
  for (;;) {
    std::optional<entry> e = co_await in.recv();
    if (!e) break;
    ++n;
    std::printf("  %-8s | #%d %s\n", name.c_str(), n, e->text.c_str());
  }
  co_return n;
}

// True if every ERROR and WARN line reached its subscriber.
task<bool> run_pipeline() {
  std::vector<std::string> lines = {
      "INFO service started",  "WARN disk 81% full",       "INFO user alice logged in",
      "ERROR payment timeout", "INFO user bob logged in",  "WARN slow query (2.3s)",
      "ERROR disk full",       "INFO user alice logged out",
  };

  // Stages 3 and 4 first, so no entry is published before its subscriber is
  // there. The pub routes entries by level; INFO has no subscriber, so those
  // entries are dropped by the pub without holding anything up.
  chan<entry> parsed(4);
  conch::pub by_level{parsed, [](const entry& e) { return e.level; }};
  chan<entry> errors(4), warnings(4);
  by_level.sub("ERROR", errors);
  by_level.sub("WARN", warnings);
  std::printf("pub        | subscribers for ERROR and WARN; INFO goes nowhere\n");
  // One go block per subscriber; each returns its count on a channel.
  chan<int> n_errors = conch::go(subscriber("alert", errors));
  chan<int> n_warnings = conch::go(subscriber("summary", warnings));

  // Stage 1: the lines on a channel, closed after the last one.
  chan<std::string> raw = conch::to_chan(lines);
  std::printf("to_chan    | %zu lines queued\n", lines.size());

  // Stage 2: parse with two workers, order preserved; `parsed` closes after
  // the last entry, and then the pub closes the subscribers' channels.
  chan<conch::unit> parsed_all = conch::pipeline(2, parsed, parse, raw);

  co_await parsed_all.recv();
  std::printf("pipeline   | every line parsed and passed on\n");
  std::optional<int> e = co_await n_errors.recv();
  std::optional<int> w = co_await n_warnings.recv();
  std::printf("done       | %d errors, %d warnings, %zu info lines dropped\n", *e, *w,
              lines.size() - static_cast<std::size_t>(*e + *w));
  co_return *e == 2 && *w == 2;  // the lines above hold two of each
}

int main() {
  return conch::run(run_pipeline(), {.threads = 2}) ? 0 : 1;
}
