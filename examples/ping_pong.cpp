// examples/ping_pong.cpp
// Two go blocks hit a ball back and forth over unbuffered channels.
//
// An unbuffered channel is a rendezvous: a send parks until a receiver takes
// the value, so the two players strictly alternate. When one player decides
// the rally is over it closes its outgoing channel; the other player's recv
// then yields nullopt and it leaves too.
#include <cstdio>
#include <optional>

#include "conch/conch.hpp"

using conch::chan;
using conch::task;

struct ball {
  int hits = 0;
};

// Receives the ball, hits it back; after `rally` hits, catches it and stops.
task<void> player(const char* name, chan<ball> in, chan<ball> out, int rally) {
  for (;;) {
    std::optional<ball> b = co_await in.recv();
    if (!b) {
      std::printf("%s: my channel closed, leaving\n", name);
      co_return;
    }
    if (b->hits == rally) {
      std::printf("%s: caught the ball after %d hits, closing\n", name, b->hits);
      out.close();
      co_return;
    }
    ++b->hits;
    std::printf("%s: hit %d\n", name, b->hits);
    co_await out.send(*b);
  }
}

task<int> match() {
  chan<ball> to_ping, to_pong;  // unbuffered (rendezvous) channels
  chan<conch::unit> ping = conch::go(player("ping", to_ping, to_pong, 6));
  chan<conch::unit> pong = conch::go(player("pong", to_pong, to_ping, 6));
  ball first{};                  // named: GCC 12 double-frees a braced temporary in co_await
  co_await to_ping.send(first);  // serve: parks until ping receives
  co_await ping.recv();           // a go block's channel closes when it ends
  co_await pong.recv();
  co_return 0;
}

int main() { return conch::run(match(), {.threads = 1}); }
