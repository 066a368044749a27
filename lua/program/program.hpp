// lua/program/program.hpp
// The `conch` executable's parts: command line, script mode, the worker pool, server mode.
//
// Internal to lua/program/. main.cpp parses the command line into a
// `command` and runs one mode: script (script.cpp), stdio or server
// (pool.cpp, server.cpp). Every Lua state the program makes goes through
// install_program_globals (globals.cpp), the one place where the program's
// globals (`conch`, `eprint`, `work`, `client`, `print` in server mode) are
// set.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "conch/core/runtime.hpp"
#include "conch/lua/lua.hpp"
#include "conch/net/framing.hpp"
#include "conch/net/socket.hpp"

struct lua_State;

namespace conch::lua::program {

/// Exit statuses (API.md §7).
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;  // a script raised an error
inline constexpr int kExitUsage = 2;  // bad command line, missing script file

/// One `-e code`, `-l name` or the script, in command-line order.
struct action {
  enum class kind { code, library, file, stdin_script, inline_code } what;
  std::string text;  // the code, the module name or the file path
};

/// The parsed command line.
struct command {
  enum class mode { script, interactive, stdio, server, nats_worker, help, version } run = mode::script;
  std::vector<action> actions;        // script mode: -e/-l in order, then the script
  std::vector<std::string> argv;      // the whole command line (for `arg`)
  int script_index = 0;               // argv index that becomes arg[0]
  bool interactive_after = false;     // -i: a prompt after the script
  // stdio and server modes
  std::string handler, worker, listen;
  unsigned workers = 0;               // 0: one per core
  std::size_t max_jobs = 0;           // 0: ten per worker (slua's default)
  std::size_t max_results = 0;        // 0: unbounded
  unsigned handlers = 0;              // 0: one per core, at least 2
  std::string tls_cert, tls_key;
  // NATS mode (stdio mode's handler or worker across machines; nats_mode.cpp)
  std::string nats;                   // --nats URL: the handler (mode stdio) or, with --worker, a worker
  std::string subject;                // --subject: the jobs' subject (empty: kNatsSubject)
  std::size_t job_timeout_ms = 0;     // --job-timeout: 0 = kNatsJobTimeoutMs
};

/// NATS mode's defaults: the jobs' subject, the answer timeout of one try,
/// the handler's jobs in flight (--max-jobs), the workers' queue group.
inline constexpr const char* kNatsSubject = "conch.jobs";
inline constexpr std::size_t kNatsJobTimeoutMs = 30000;
inline constexpr std::size_t kNatsMaxJobs = 64;
inline constexpr const char* kNatsQueue = "conch-workers";

/// Parses argv; a usage error is kInvalidArgument with the message to print.
absl::Status parse_command_line(int argc, char** argv, command* out);
/// The text of `conch -h`.
const char* usage_text();

/// What a state is for: the globals install_program_globals sets differ.
enum class role { script, handler, worker };

class pool;
struct client_conn;

/// The program's view of one Lua state while it is being set up.
struct state_env {
  role what = role::script;
  pool* work = nullptr;            // handler and worker states
  int box = 0;                     // handler: its results mailbox
  int worker_index = 0;            // worker: 1-based
  const net::socket* client = nullptr;  // server-mode handler: its connection
  const char* peer = "";               // ... and the peer's address
  const command* cmd = nullptr;
};

/// Sets the program's globals in L: `conch` (the module), `eprint`, and by
/// role `work` (handler, worker), `client` and a `print` that writes to the
/// client (server-mode handler). Runs in protected mode; false with `err`
/// set if it failed. The one place where program-wide globals are added
/// (slua's helpers are installed from here once conch.util is in).
bool install_program_globals(lua_State* L, const state_env& env, std::string* err);

/// Runs a script-mode command; returns the exit status.
int run_script_mode(const command& cmd);
/// Runs stdio mode; returns the exit status.
int run_stdio_mode(const command& cmd);
/// Runs server mode until the process is stopped; returns the exit status.
int run_server_mode(const command& cmd);
/// Runs a NATS worker process (--nats URL --worker worker.lua) until its
/// workers stop (killed, or the connection lost for good); the exit status.
int run_nats_worker_mode(const command& cmd);

/// Applies --tls-cert/--tls-key to the listening options (nothing without
/// --tls-cert); the files are read, and a bad one reported, by listen().
absl::Status apply_tls(const command& cmd, net::options* opts);

/// Reads a whole file; false if it cannot be opened.
bool readable_file(const std::string& path);

/// Lua's message handler: the message (tostring'd) and a traceback.
int traceback_handler(lua_State* L);

}  // namespace conch::lua::program
