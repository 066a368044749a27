// examples/echo_client.cpp
// A line client: sends its arguments (or stdin's lines) and prints what comes back.
//
//   conch_example_echo_client 127.0.0.1:7000 hello world
//   printf 'a\nb\n' | conch_example_echo_client /tmp/echo.sock
//
// connect() is a task: it resolves names on the blocking pool and reports a
// failure as an absl::Status. Sending everything, then closing `out`
// (half-close), lets the server finish; `in` ends when it has.
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "conch/conch.hpp"
#include "conch/net.hpp"

namespace net = conch::net;
using conch::task;
using namespace std::chrono_literals;

task<int> talk(std::string address, std::vector<std::string> lines) {
  // The server may be starting: retry for a moment.
  absl::StatusOr<net::socket> s = co_await net::connect(address, {.frame = net::framing::lines()});
  for (int i = 0; i < 50 && !s.ok(); ++i) {
    co_await conch::sleep(50ms);
    s = co_await net::connect(address, {.frame = net::framing::lines()});
  }
  if (!s.ok()) {
    std::fprintf(stderr, "echo_client: %s\n", s.status().ToString().c_str());
    co_return 1;
  }
  for (std::string& l : lines) co_await s->out.send(std::move(l));
  s->out.close();  // half-close: "that is all"; replies keep coming
  int replies = 0;
  while (std::optional<std::string> r = co_await s->in.recv()) {
    std::printf("%s\n", r->c_str());
    ++replies;
  }
  if (!s->status().ok()) {
    std::fprintf(stderr, "echo_client: %s\n", s->status().ToString().c_str());
    co_return 1;
  }
  co_return replies == static_cast<int>(lines.size()) ? 0 : 2;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s address [line...]\n", argv[0]);
    return 64;
  }
  std::vector<std::string> lines(argv + 2, argv + argc);
  if (lines.empty())
    for (std::string l; std::getline(std::cin, l);) lines.push_back(l);
  return conch::run(talk(argv[1], std::move(lines)), {.threads = 1});
}
