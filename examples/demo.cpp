// examples/demo.cpp
// A short end-to-end tour of conch: buffers, go, select, threads, blocking ops.
// Part 6 makes a socket round trip: sockets are channels too. Exits 1 if
// the round trips (part 5's and part 6's) do not give what they should.
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "conch/conch.hpp"
#include "conch/net.hpp"

using namespace std::chrono_literals;
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

// Offers 1..4 without parking, then prints what the channel kept.
void offer_four(const char* kind, chan<int> ch) {
  std::printf("  %-8s took:", kind);
  for (int i = 1; i <= 4; ++i) std::printf(" %d:%s", i, ch.try_send(i) ? "yes" : "no ");
  std::printf("  holds:");
  while (std::optional<int> v = ch.try_recv()) std::printf(" %d", *v);
  std::printf("\n");
}

// A pipeline stage: adds `add` to each value; its result is the thread it ran on.
task<std::string> stage(chan<int> in, chan<int> out, int add) {
  while (std::optional<int> v = co_await in.recv()) co_await out.send(*v + add);
  out.close();
  co_return thread_name();
}

// CPU work: how many primes there are below n, by trial division.
int count_primes_below(int n) {
  int count = 0;
  for (int c = 2, d = 2; c < n; ++c, d = 2) {
    while (d * d <= c && c % d != 0) ++d;
    count += d * d > c;  // no divisor up to sqrt(c)
  }
  return count;
}

task<void> tour(chan<int> requests, chan<int> replies) {
  std::printf("1. channels (capacity 2), offered 1..4 with try_send:\n");
  offer_four("fixed", chan<int>(conch::buffer::fixed(2)));
  offer_four("dropping", chan<int>(conch::buffer::dropping(2)));
  offer_four("sliding", chan<int>(conch::buffer::sliding(2)));
  chan<int> answer = conch::promise_chan<int>();
  answer.try_send(42);  // the first value sticks: every recv gets it
  std::printf("  promise  recv, recv: %d, %d\n", *co_await answer.recv(), *co_await answer.recv());

  std::printf("2. select with a timeout\n");
  auto s = co_await conch::select(conch::recv(chan<int>()), conch::recv(conch::timeout(20ms)));
  std::printf("  case %zu fired (%s)\n", s.index(), s.index() == 1 ? "the 20ms timeout" : "a value");

  std::printf("3. go blocks as pipeline stages; this task runs on %s\n", thread_name().c_str());
  chan<int> a, b(8), c(8);
  auto plus1 = conch::go(stage(a, b, 1));    // both queue on this loop; the idle loop
  auto plus10 = conch::go(stage(b, c, 10));  // steals them while we compute the input
  int input[] = {count_primes_below(100000), count_primes_below(200000), count_primes_below(300000)};
  for (int v : input) co_await a.send(v);
  a.close();
  while (std::optional<int> v = co_await c.recv()) std::printf("  out: %d\n", *v);
  std::string t1 = *co_await plus1.recv(), t10 = *co_await plus10.recv();
  std::printf("  stage +1 ran on %s, stage +10 on %s\n", t1.c_str(), t10.c_str());

  std::printf("4. conch::thread runs blocking code on the blocking pool\n");
  chan<std::string> slow = conch::thread([] {
    std::this_thread::sleep_for(10ms);  // fine here; in a go block it would stall a loop
    return "slept on " + thread_name();
  });
  std::printf("  %s\n", (co_await slow.recv()).value_or("?").c_str());
  conch::go([](chan<int> in, chan<int> out) -> task<void> {  // doubles numbers for part 5
    while (std::optional<int> v = co_await in.recv()) co_await out.send(*v * 2);
  }, requests, replies);
}

// True if the server echoed the client's line.
task<bool> socket_round_trip() {
  std::printf("6. sockets are channels: a line echo server and a client on TCP loopback\n");
  auto lines = conch::net::options{.frame = conch::net::framing::lines()};
  absl::StatusOr<conch::net::server> srv = conch::net::listen("127.0.0.1:0", lines);
  if (!srv.ok()) {
    std::printf("  listen failed: %s\n", std::string(srv.status().message()).c_str());
    co_return false;
  }
  auto serve = [](conch::net::server s) -> task<void> {  // every connection: echo its lines
    while (std::optional<conch::net::socket> c = co_await s.connections.recv())
      conch::go([](conch::net::socket k) -> task<void> {
        while (std::optional<std::string> line = co_await k.in.recv()) {
          std::string reply = "echo: " + *line;  // built before co_await (GCC 12)
          co_await k.out.send(std::move(reply));
        }
        k.out.close();
      }, *c);
  };
  conch::go(serve, *srv);
  std::string where = srv->local().to_string();
  absl::StatusOr<conch::net::socket> c = co_await conch::net::connect(where, lines);
  if (!c.ok()) {
    std::printf("  connect failed: %s\n", std::string(c.status().message()).c_str());
    co_return false;
  }
  std::string hello = "hello from " + thread_name();
  co_await c->out.send(hello);
  std::optional<std::string> back = co_await c->in.recv();
  std::printf("  server on %s replied: %s\n", where.c_str(), back.value_or("(nothing)").c_str());
  c->close();
  srv->close();
  co_return back == "echo: " + hello;
}

int main() {
  conch::runtime rt({.threads = 2});
  std::printf("conch demo: main() runs on %s; %u loop threads\n", thread_name().c_str(), rt.threads());
  chan<int> requests, replies;
  rt.block_on(tour(requests, replies));
  std::printf("5. blocking ops from a plain std::thread\n");
  int doubled = -1;
  std::thread plain([&] {
    requests.send_blocking(21);  // parks this OS thread, never a loop thread
    doubled = replies.recv_blocking().value_or(-1);
    std::printf("  %s sent 21, got %d\n", thread_name().c_str(), doubled);
    requests.close();
  });
  plain.join();
  bool echoed = rt.block_on(socket_round_trip());
  return doubled == 42 && echoed ? 0 : 1;
}
