// examples/chat_server.cpp
// A line chat: every line a client sends is broadcast to every connected client.
//
//   conch_example_chat_server [address] [--once]      (default 127.0.0.1:7001)
//   then, in several terminals:  socat - TCP:127.0.0.1:7001
//
// One hub coroutine owns the client list (readers send it events, so no lock
// guards it) and loops over the clients' `out` channels with try_send: a
// client too slow to keep `out` from filling is dropped instead of stalling
// the room. With --once the server exits when its last client leaves.
#include <cstdio>
#include <map>
#include <string>

#include "conch/conch.hpp"
#include "conch/net.hpp"

namespace net = conch::net;
using conch::chan;
using conch::task;

struct event {
  enum kind { join, leave, say } what;
  int id;
  std::string text;                 // say: the line; join/leave: the name
  std::optional<net::socket> sock;  // join: the new client
};

// Events are named before co_await: GCC 12 mishandles braced temporaries there.
task<void> reader(int id, net::socket s, chan<event> hub) {
  std::string name = s.peer().to_string();  // "" for an unnamed Unix client
  if (name.empty()) name = "client" + std::to_string(id);
  event joined{event::join, id, name, s};
  co_await hub.send(std::move(joined));
  while (std::optional<std::string> line = co_await s.in.recv()) {
    event said{event::say, id, name + ": " + *line, std::nullopt};
    co_await hub.send(std::move(said));
  }
  event left{event::leave, id, name, std::nullopt};
  co_await hub.send(std::move(left));
}

task<void> run_hub(chan<event> events, bool once, net::server srv) {
  std::map<int, net::socket> clients;
  auto broadcast = [&clients](const std::string& line) {
    for (auto it = clients.begin(); it != clients.end();) {
      if (it->second.out.try_send(line)) {
        ++it;
        continue;
      }
      it->second.close();  // `out` full (too slow) or gone: drop the client
      it = clients.erase(it);
    }
  };
  while (std::optional<event> e = co_await events.recv()) {
    if (e->what == event::join) {
      broadcast("* " + e->text + " joined");
      clients.emplace(e->id, *e->sock);
    } else if (e->what == event::say) {
      broadcast(e->text);
    } else {
      auto it = clients.find(e->id);
      std::optional<net::socket> gone = it == clients.end() ? std::nullopt : std::optional(it->second);
      clients.erase(e->id);
      broadcast("* " + e->text + " left");
      if (gone) gone->out.close();
      if (gone && once && clients.empty()) {
        co_await gone->done().recv();  // its last lines are out: now stop
        srv.close();
      }
    }
    std::printf("%zu client(s); last: %s\n", clients.size(), e->text.c_str());
    std::fflush(stdout);
  }
}

task<int> serve(std::string address, bool once) {
  auto srv = net::listen(address, {.frame = net::framing::lines()});
  if (!srv.ok()) {
    std::fprintf(stderr, "chat_server: %s\n", srv.status().ToString().c_str());
    co_return 1;
  }
  std::printf("chat server on %s\n", srv->local().to_string().c_str());
  std::fflush(stdout);
  chan<event> events(64);
  chan<conch::unit> hub = conch::go(run_hub(events, once, *srv));
  int next_id = 0;
  while (std::optional<net::socket> s = co_await srv->connections.recv())
    conch::go(reader(++next_id, std::move(*s), events));
  events.close();  // the server closed (--once): the hub finishes
  co_await hub.recv();
  co_return 0;
}

int main(int argc, char** argv) {
  std::string address = "127.0.0.1:7001";
  bool once = false;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--once") once = true;
    else address = argv[i];
  }
  return conch::run(serve(address, once), {.threads = 2});
}
