// lua/program/main.cpp
// The `conch` executable: command-line parsing and the choice of mode.
//
// Modes (API.md §7): script (a file, -e code, `-` for stdin, slua-style
// inline code, a prompt on a terminal), stdio (handler.lua worker.lua) and
// server (--listen ADDR handler.lua worker.lua), NATS (--nats URL handler.lua,
// --nats URL --worker worker.lua: the pool across processes). Options before the first
// positional argument belong to conch, as with lua5.4; after a script
// everything is the script's (`arg`). Two files, the second ending in
// ".lua", are a handler and a worker, and pool options may follow them.
// Exit status: 0, 1 when a script raises, 2 for a usage error.
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include <lua.hpp>

#include "conch/core/status.hpp"
#include "lua/program/program.hpp"

namespace conch::lua::program {

namespace {

bool is_regular_file(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

absl::Status usage(const std::string& msg) { return absl::InvalidArgumentError(msg); }

// A positive count for option `opt`.
absl::Status parse_count(const char* opt, const char* text, std::size_t* out) {
  std::string_view s(text);
  std::size_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v == 0)
    return usage(std::string(opt) + " wants a positive whole number, not '" + std::string(s) + "'");
  *out = v;
  return absl::OkStatus();
}

// The pool and server options, shared by every position they may take.
// Sets *used to how many arguments it consumed (0: not one of them).
absl::Status pool_option(int argc, char** argv, int i, command* c, int* used) {
  std::string_view a(argv[i]);
  *used = 0;
  static constexpr std::string_view with_value[] = {"-w",       "--workers",  "--max-jobs", "--max-results",
                                                    "--handlers", "--listen", "--tls-cert", "--tls-key",
                                                    "--nats",   "--worker",   "--subject",  "--job-timeout"};
  bool known = false;
  for (std::string_view o : with_value) known = known || a == o;
  if (!known) return absl::OkStatus();
  if (i + 1 >= argc) return usage(std::string(a) + " needs a value");
  const char* v = argv[i + 1];
  *used = 2;
  std::size_t n = 0;
  if (a == "-w" || a == "--workers") {
    CONCH_RETURN_IF_ERROR(parse_count(argv[i], v, &n));
    c->workers = static_cast<unsigned>(n);
  } else if (a == "--max-jobs") {
    CONCH_RETURN_IF_ERROR(parse_count(argv[i], v, &c->max_jobs));
  } else if (a == "--max-results") {
    CONCH_RETURN_IF_ERROR(parse_count(argv[i], v, &c->max_results));
  } else if (a == "--handlers") {
    CONCH_RETURN_IF_ERROR(parse_count(argv[i], v, &n));
    c->handlers = static_cast<unsigned>(n);
  } else if (a == "--listen") {
    c->listen = v;
  } else if (a == "--tls-cert") {
    c->tls_cert = v;
  } else if (a == "--nats") {
    if (*v == '\0') return usage("--nats wants a URL (nats://host:port)");
    c->nats = v;
  } else if (a == "--worker") {
    c->worker = v;
  } else if (a == "--subject") {
    if (*v == '\0') return usage("--subject wants a NATS subject");
    c->subject = v;
  } else if (a == "--job-timeout") {
    CONCH_RETURN_IF_ERROR(parse_count(argv[i], v, &c->job_timeout_ms));
  } else {
    c->tls_key = v;
  }
  return absl::OkStatus();
}

// Is anything set that only stdio or server mode uses?
bool has_pool_options(const command& c) {
  return c.workers != 0 || c.max_jobs != 0 || c.max_results != 0 || c.handlers != 0 || !c.listen.empty() ||
         !c.tls_cert.empty() || !c.tls_key.empty();
}

// NATS mode: `--nats URL handler.lua [--max-jobs N]` (the handler; mode
// stdio with cmd.nats set) or `--nats URL --worker worker.lua [-w N]` (a
// worker process). `i` is the first positional argument (argc: none).
absl::Status parse_nats(int argc, char** argv, int i, command* c) {
  if (c->nats.empty()) return usage("--worker, --subject and --job-timeout need --nats URL");
  if (!c->listen.empty() || !c->tls_cert.empty() || !c->tls_key.empty())
    return usage("--nats cannot be combined with --listen, --tls-cert or --tls-key");
  if (!c->actions.empty()) return usage("-e and -l cannot be combined with --nats");
  if (c->handlers != 0) return usage("--handlers needs --listen");
  if (c->max_results != 0) return usage("--max-results is not available with --nats");
  if (!c->worker.empty()) {
    // A worker process: no handler, only pool options.
    if (i < argc)
      return usage("unexpected argument '" + std::string(argv[i]) +
                   "': a NATS worker is conch --nats URL --worker worker.lua [-w N]");
    if (!is_regular_file(c->worker)) return usage("cannot open worker script '" + c->worker + "'");
    if (c->max_jobs != 0) return usage("--max-jobs goes with the handler, not with --worker");
    c->run = command::mode::nats_worker;
    return absl::OkStatus();
  }
  if (i >= argc) return usage("--nats needs handler.lua, or --worker worker.lua for a worker process");
  c->handler = argv[i];
  if (!is_regular_file(c->handler)) return usage("cannot open handler script '" + c->handler + "'");
  for (int j = i + 1; j < argc; ++j) {
    int used = 0;
    CONCH_RETURN_IF_ERROR(pool_option(argc, argv, j, c, &used));
    if (used == 0) {
      if (ends_with(argv[j], ".lua"))
        return usage("with --nats the workers run apart: conch --nats URL --worker " + std::string(argv[j]));
      return usage("unexpected argument '" + std::string(argv[j]) + "' after the handler script");
    }
    j += used - 1;
  }
  if (!c->worker.empty()) return usage("--worker starts a worker process: give it without handler.lua");
  if (c->workers != 0) return usage("-w goes with --worker (the handler's workers are other processes)");
  if (c->max_results != 0) return usage("--max-results is not available with --nats");
  if (!c->listen.empty() || !c->tls_cert.empty()) return usage("--nats cannot be combined with --listen");
  c->run = command::mode::stdio;
  return absl::OkStatus();
}

}  // namespace

const char* usage_text() {
  return "usage: conch [options] [script [args...]]\n"
         "       conch [options] handler.lua worker.lua [-w N] [--max-jobs N] [--max-results N]\n"
         "       conch --listen ADDR handler.lua worker.lua [-w N] [--handlers N] [--tls-cert F --tls-key F]\n"
         "Script mode runs a Lua file, `-` (standard input) or, when the first argument is no\n"
         "file, that argument as code; with no script and a terminal, a prompt.\n"
         "  -e code        run code (repeatable, in order, before the script)\n"
         "  -l name        require library `name` into global `name`\n"
         "  -i             a prompt after the script\n"
         "  -v             the version\n"
         "  -h, --help     this text\n"
         "  --             stop handling options\n"
         "Stdio mode: handler.lua runs once and gives jobs (work.submit) to worker.lua,\n"
         "which runs in N Lua states side by side (work.accept, work.answer).\n"
         "  -w, --workers N    worker states (default: one per core)\n"
         "  --max-jobs N       queued jobs before work.submit waits (default: 10 per worker)\n"
         "  --max-results N    unread results per handler before work.answer waits (default: no limit)\n"
         "Server mode: every connection to ADDR (host:port, [v6]:port, /unix/path, @abstract)\n"
         "runs handler.lua in a state of its own, with `client` and `print` to the client.\n"
         "  --handlers N       connections served at once (default: one per core, at least 2)\n"
         "  --tls-cert F --tls-key F   serve TLS with this certificate and key (PEM)\n"
         "NATS mode: the handler and its workers in other processes, on any machine, through a\n"
         "NATS server (work.* unchanged); each job is a request on one subject, answered by one\n"
         "worker of the queue group. At-least-once: a job whose answer does not come within\n"
         "--job-timeout is sent again, once (it may then run twice); a second timeout, a worker\n"
         "error or no worker present gives work.collect() nil, err.\n"
         "       conch --nats URL handler.lua [--max-jobs N] [--subject S] [--job-timeout MS]\n"
         "       conch --nats URL --worker worker.lua [-w N] [--subject S]\n"
         "  --nats URL         nats://[user:pass@]host[:port], several separated by commas\n"
         "  --max-jobs N       jobs in flight before work.submit waits (default: 64)\n"
         "  --subject S        the jobs' subject (default: conch.jobs; queue group conch-workers)\n"
         "  --job-timeout MS   wait for one answer this long before sending the job again (default: 30000)\n"
         "Exit status: 0; 1 when a script raises an error; 2 for a usage error.\n";
}

absl::Status parse_command_line(int argc, char** argv, command* c) {
  c->argv.assign(argv, argv + argc);
  int i = 1;
  bool dash_e = false;
  // Options before the first positional argument.
  for (; i < argc; ++i) {
    std::string_view a(argv[i]);
    if (a == "--") {
      ++i;
      break;
    }
    if (a == "-" || a.empty() || a[0] != '-') break;
    int used = 0;
    CONCH_RETURN_IF_ERROR(pool_option(argc, argv, i, c, &used));
    if (used > 0) {
      i += used - 1;
    } else if (a == "-e" || a == "-l") {
      if (i + 1 >= argc) return usage(std::string(a) + " needs an argument");
      c->actions.push_back({a == "-e" ? action::kind::code : action::kind::library, argv[++i]});
      dash_e = dash_e || a == "-e";
    } else if (a == "-i") {
      c->interactive_after = true;
    } else if (a == "-v" || a == "--version") {
      c->run = command::mode::version;
      return absl::OkStatus();
    } else if (a == "-h" || a == "--help") {
      c->run = command::mode::help;
      return absl::OkStatus();
    } else {
      return usage("unrecognized option '" + std::string(a) + "'");
    }
  }
  if (!c->nats.empty() || !c->worker.empty() || !c->subject.empty() || c->job_timeout_ms != 0)
    return parse_nats(argc, argv, i, c);
  if (i >= argc) {
    // No script: -e code alone, or the prompt, or a script piped to stdin.
    if (has_pool_options(*c)) return usage("stdio and server modes need handler.lua worker.lua");
    c->script_index = 0;
    if (!dash_e && !c->interactive_after) {
      if (::isatty(STDIN_FILENO)) {
        c->run = command::mode::interactive;
      } else {
        c->actions.push_back({action::kind::stdin_script, "-"});
      }
    }
    return absl::OkStatus();
  }
  std::string first(argv[i]);
  if (first == "-") {
    if (has_pool_options(*c)) return usage("stdio and server modes need handler.lua worker.lua");
    c->script_index = i;
    c->actions.push_back({action::kind::stdin_script, "-"});
    return absl::OkStatus();
  }
  bool first_is_file = is_regular_file(first);
  bool pool_mode = first_is_file && i + 1 < argc && is_regular_file(argv[i + 1]) && ends_with(argv[i + 1], ".lua");
  if (!pool_mode && (has_pool_options(*c))) {
    // -w, --listen, ... given, so two scripts were meant: say which is missing.
    if (!first_is_file) return usage("cannot open handler script '" + first + "'");
    if (i + 1 >= argc) return usage("stdio and server modes need a worker script after '" + first + "'");
    return usage("cannot open worker script '" + std::string(argv[i + 1]) + "'");
  }
  if (!pool_mode && first_is_file && i + 1 < argc && ends_with(argv[i + 1], ".lua")) {
    // handler.lua missing.lua -w 2: pool options after a missing worker
    // script say which mode was meant (otherwise they are script arguments).
    command probe;
    for (int j = i + 2; j < argc; ++j) {
      int used = 0;
      if (pool_option(argc, argv, j, &probe, &used).ok() && used > 0)
        return usage("cannot open worker script '" + std::string(argv[i + 1]) + "'");
    }
  }
  if (pool_mode) {
    c->handler = first;
    c->worker = argv[i + 1];
    for (int j = i + 2; j < argc; ++j) {
      int used = 0;
      CONCH_RETURN_IF_ERROR(pool_option(argc, argv, j, c, &used));
      if (used == 0) return usage("unexpected argument '" + std::string(argv[j]) + "' after the worker script");
      j += used - 1;
    }
    if (!c->actions.empty()) return usage("-e and -l cannot be combined with handler.lua worker.lua");
    if (!c->nats.empty() || c->worker != argv[i + 1] || !c->subject.empty() || c->job_timeout_ms != 0)
      return usage("--nats, --worker, --subject and --job-timeout go before the scripts: conch --nats URL handler.lua");
    if (c->tls_cert.empty() != c->tls_key.empty()) return usage("--tls-cert and --tls-key go together");
    if (!c->tls_cert.empty() && c->listen.empty()) return usage("--tls-cert and --tls-key need --listen");
    if (c->handlers != 0 && c->listen.empty()) return usage("--handlers needs --listen");
    c->run = c->listen.empty() ? command::mode::stdio : command::mode::server;
    return absl::OkStatus();
  }
  c->script_index = i;
  if (first_is_file) {
    c->actions.push_back({action::kind::file, first});
  } else if (ends_with(first, ".lua") || first.find('/') != std::string::npos) {
    // It names a file (slua would run it as code and report a syntax error).
    return usage("cannot open script '" + first + "'");
  } else {
    c->actions.push_back({action::kind::inline_code, first});  // slua style: conch 'print(1)'
  }
  return absl::OkStatus();
}

}  // namespace conch::lua::program

int main(int argc, char** argv) {
  using namespace conch::lua::program;
  command cmd;
  absl::Status st = parse_command_line(argc, argv, &cmd);
  if (!st.ok()) {
    std::fprintf(stderr, "conch: %.*s\n%s", static_cast<int>(st.message().size()), st.message().data(),
                 "Try 'conch -h' for more information.\n");
    return kExitUsage;
  }
  switch (cmd.run) {
    case command::mode::help:
      std::fputs(usage_text(), stdout);
      return kExitOk;
    case command::mode::version:
      std::printf("conch %s (%s)\n", CONCH_VERSION, LUA_RELEASE);
      return kExitOk;
    case command::mode::stdio:
      return run_stdio_mode(cmd);
    case command::mode::server:
      return run_server_mode(cmd);
    case command::mode::nats_worker:
      return run_nats_worker_mode(cmd);
    case command::mode::script:
    case command::mode::interactive:
      break;
  }
  return run_script_mode(cmd);
}
