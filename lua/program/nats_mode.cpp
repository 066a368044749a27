// lua/program/nats_mode.cpp
// A NATS worker process (conch --nats URL --worker worker.lua [-w N]): N worker states serving jobs from NATS.
//
// The handler's side of NATS mode is stdio mode's (pool.cpp, with no local
// workers); both sides' NATS code is the Lua glue's (nats_glue.lua.inc).
// Here: the URL and the server are checked once up front (a bad URL is a
// usage error, exit 2; an unreachable server exit 1, before any state is
// made), then the pool's worker threads run until every worker has stopped
// for good: its connection ended, or its script fails before a job.
// Invariants: the probe connection is closed before the workers start.
// Lock order: none here (the pool's).
#include <cstdio>
#include <string>
#include <thread>

#include "conch/net/nats.hpp"
#include "lua/program/pool.hpp"

namespace conch::lua::program {

int run_nats_worker_mode(const command& cmd) {
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  absl::StatusOr<std::unique_ptr<runtime>> rt = runtime::create({});
  if (!rt.ok()) {
    std::fprintf(stderr, "conch: cannot start the runtime: %s\n", std::string(rt.status().message()).c_str());
    return kExitError;
  }
  nats::options probe_opts;
  probe_opts.name = "conch worker (probe)";
  probe_opts.reconnect = false;
  absl::StatusOr<nats::connection> probe = (*rt)->block_on(nats::connect(cmd.nats, probe_opts));
  if (!probe.ok()) {
    std::fprintf(stderr, "conch: cannot connect to NATS at %s: %s\n", cmd.nats.c_str(),
                 std::string(probe.status().message()).c_str());
    return probe.status().code() == absl::StatusCode::kInvalidArgument ? kExitUsage : kExitError;
  }
  probe->close();
  pool work(**rt, pool::config::from(cmd, cores));
  work.start();
  work.wait();
  std::string dead = work.dead_reason();
  if (!dead.empty()) {
    std::fprintf(stderr, "conch: %s\n", dead.c_str());
    return kExitError;
  }
  return kExitOk;
}

}  // namespace conch::lua::program
