// lua/program/server.cpp
// Server mode: every accepted connection runs handler.lua in a Lua state of its own.
//
// The server listens on a loop of the runtime (raw framing: client.line and
// client.read cut the bytes themselves). --handlers plain threads take
// connections in turn: each makes a fresh state for its connection (home
// loop: by its slot, see handler_thread), runs the handler there as a go block and waits for
// it, so at most --handlers connections are served at once and the next one
// waits in `connections` (then in the kernel backlog). When a handler ends,
// its output is flushed and the connection closed; a client that
// disconnects ends only its own handler. SIGINT or SIGTERM stops accepting,
// lets running handlers finish, stops the pool and exits 0.
//
// Invariants:
//  - SIGINT and SIGTERM are blocked in every thread (set before any thread
//    starts) and taken by sigwait on the main thread only.
//  - A handler's mailbox outlives its state (closed after the state is
//    destroyed), so the state's P.take never sees a freed mailbox.
// Lock order: none of ours.
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "conch/chan/go.hpp"
#include "conch/chan/select.hpp"
#include "conch/net/address.hpp"
#include "lua/program/pool.hpp"

namespace conch::lua::program {

namespace {

using namespace std::chrono_literals;

// How long a finished handler's connection may take to flush and see the
// peer's EOF before it is closed outright.
constexpr auto kLinger = 2s;

task<absl::StatusOr<net::server>> listen_here(std::string address, net::options opts) {
  co_return net::listen(address, opts);
}

// Flushes and closes a connection whose handler has ended.
task<void> finish(net::socket s) {
  s.out.close();  // write what is queued, then shut our side
  chan<unit> done = s.done();
  chan<unit> later = conch::timeout(kLinger);
  co_await conch::select(conch::recv(done), conch::recv(later));
  s.close();
}

task<void> start_finish(net::socket s) {
  conch::go(finish(std::move(s)));
  co_return;
}

// Serves connections until `connections` closes.
// Slot `slot`'s states live on loop workers + slot (modulo the loops; see
// pool::worker_loop for why not least_busy).
void handler_thread(runtime* rt, pool* work, const command* cmd, chan<net::socket> connections, unsigned slot) {
  while (std::optional<net::socket> s = connections.recv_blocking()) {
    std::string peer = s->peer().to_string();
    if (peer.empty()) peer = "(unix client)";
    auto [id, box] = work->open_box();
    std::pair<std::string, std::string> outcome;
    {
      state L(*rt, {.place = placement::loop(work->cfg().workers + slot)});
      state_env env;
      env.what = role::handler;
      env.work = work;
      env.box = id;
      env.client = &*s;
      env.peer = peer.c_str();
      env.cmd = cmd;
      std::string err;
      bool ok = true;
      L.with([&](lua_State* S) { ok = install_program_globals(S, env, &err); });
      outcome = ok ? run_program_main(L) : std::pair<std::string, std::string>("fatal", err);
    }
    work->close_box(id);
    if (!outcome.second.empty())
      std::fprintf(stderr, "conch: handler for %s: %s\n", peer.c_str(), outcome.second.c_str());
    rt->block_on(start_finish(std::move(*s)));
  }
}

}  // namespace

int run_server_mode(const command& cmd) {
  // Before any thread starts, so that every thread inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  net::options opts;
  opts.frame = net::framing::raw();
  if (absl::Status st = apply_tls(cmd, &opts); !st.ok()) {
    std::fprintf(stderr, "conch: %s\n", std::string(st.message()).c_str());
    return kExitUsage;
  }
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  absl::StatusOr<std::unique_ptr<runtime>> rt = runtime::create({});
  if (!rt.ok()) {
    std::fprintf(stderr, "conch: cannot start the runtime: %s\n", std::string(rt.status().message()).c_str());
    return kExitError;
  }
  absl::StatusOr<net::server> srv = (*rt)->block_on(listen_here(cmd.listen, opts));
  if (!srv.ok()) {
    std::fprintf(stderr, "conch: cannot listen on '%s': %s\n", cmd.listen.c_str(),
                 std::string(srv.status().message()).c_str());
    return srv.status().code() == absl::StatusCode::kInvalidArgument ? kExitUsage : kExitError;
  }
  std::fprintf(stderr, "conch: listening on %s\n", srv->local().to_string().c_str());
  std::fflush(stderr);

  pool work(**rt, pool::config::from(cmd, cores));
  work.start();
  unsigned handlers = cmd.handlers != 0 ? cmd.handlers : std::max(2u, cores);
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < handlers; ++i)
    threads.emplace_back(handler_thread, rt->get(), &work, &cmd, srv->connections, i);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  std::fprintf(stderr, "conch: %s: stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  srv->close();  // handler threads finish their connections, then see `connections` closed
  for (std::thread& t : threads) t.join();
  work.stop();
  return kExitOk;
}

}  // namespace conch::lua::program
