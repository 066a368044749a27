// lua/program/globals.cpp
// install_program_globals: the program's globals in every state it makes, and the shared helpers.
//
// A state gets `conch` (the module), `eprint`, and `work` (in script mode a
// `work` whose submit/collect say there are no workers); a handler or worker
// state also gets the private table P (registry field "conch.program"),
// which the Lua glue (glue.lua.inc) turns into work.*, client.* and print.
//
// Invariants:
//  - install_program_globals runs everything that can raise inside one
//    lua_pcall; the C++ objects it reads live in the caller's frame.
// Lock order: none.
#include <cstdio>
#include <cstring>
#include <string>

#include "lua/bridge.hpp"
#include "lua/program/pool.hpp"
#include "lua/util.hpp"

namespace conch::lua::program {

namespace {

const char kGlue[] =
#include "lua/program/glue.lua.inc"
    ;

const char kNatsGlue[] =
#include "lua/program/nats_glue.lua.inc"
    ;

const char kRegistryKey[] = "conch.program";

// P.nats = {url, subject, queue, timeout, max_jobs} and P.nats_glue (the
// chunk the glue calls with P, role, work) when the command has --nats.
void add_nats_settings(lua_State* L, const command& cmd) {
  lua_createtable(L, 0, 5);
  lua_pushstring(L, cmd.nats.c_str());
  lua_setfield(L, -2, "url");
  lua_pushstring(L, cmd.subject.empty() ? kNatsSubject : cmd.subject.c_str());
  lua_setfield(L, -2, "subject");
  lua_pushstring(L, kNatsQueue);
  lua_setfield(L, -2, "queue");
  lua_pushinteger(L, static_cast<lua_Integer>(cmd.job_timeout_ms != 0 ? cmd.job_timeout_ms : kNatsJobTimeoutMs));
  lua_setfield(L, -2, "timeout");
  lua_pushinteger(L, static_cast<lua_Integer>(cmd.max_jobs != 0 ? cmd.max_jobs : kNatsMaxJobs));
  lua_setfield(L, -2, "max_jobs");
  lua_setfield(L, -2, "nats");
  if (luaL_loadbuffer(L, kNatsGlue, sizeof kNatsGlue - 1, "=conch/nats") != LUA_OK) lua_error(L);
  lua_setfield(L, -2, "nats_glue");
}

struct install_job {
  const state_env* env;
};

int install_fn(lua_State* L) {
  const state_env& env = *static_cast<install_job*>(lua_touserdata(L, 1))->env;
  // conch = require "conch"
  lua_getglobal(L, "require");
  lua_pushliteral(L, "conch");
  lua_call(L, 1, 1);
  lua_setglobal(L, "conch");
  // slua's helpers as globals: eprint, json, string.md5..., os.usleep, io.ls/stat.
  install_slua_globals(L);
  // P: the private table of the glue.
  lua_createtable(L, 0, 16);
  lua_newtable(L);
  lua_setfield(L, -2, "stop");
  lua_newtable(L);
  lua_setfield(L, -2, "disconnected");
  if (env.what != role::script) {
    mailbox* box = nullptr;
    if (env.what == role::handler) box = env.work->find_box(env.box).get();  // the handler's thread keeps it alive
    detail::host* h = detail::host::find(L);  // the conch module above made it
    if (h == nullptr) return luaL_error(L, "conch: the state has no conch host");
    add_pool_functions(L, env.work, box, h);
    lua_pushinteger(L, env.box);
    lua_setfield(L, -2, "box");
    lua_pushinteger(L, env.worker_index);
    lua_setfield(L, -2, "index");
    const std::string& script = env.what == role::handler ? env.cmd->handler : env.cmd->worker;
    lua_pushlstring(L, script.data(), script.size());
    lua_setfield(L, -2, "script");
    if (!env.cmd->nats.empty()) add_nats_settings(L, *env.cmd);
    if (env.client != nullptr) {
      detail::push_socket(L, *env.client);
      lua_setfield(L, -2, "sock");
      lua_pushstring(L, env.peer);
      lua_setfield(L, -2, "peer");
    }
  }
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, kRegistryKey);
  // Run the glue with (P, role).
  if (luaL_loadbuffer(L, kGlue, sizeof kGlue - 1, "=conch/program") != LUA_OK) return lua_error(L);
  lua_insert(L, -2);
  lua_pushstring(L, env.what == role::script ? "script" : env.what == role::handler ? "handler" : "worker");
  lua_call(L, 2, 0);
  return 0;
}

// P.run() in protected mode, then P.outcome and P.err.
int run_main_fn(lua_State* L) {
  auto* out = static_cast<std::pair<std::string, std::string>*>(lua_touserdata(L, 1));
  lua_getfield(L, LUA_REGISTRYINDEX, kRegistryKey);
  lua_getfield(L, -1, "run");
  lua_call(L, 0, 0);
  lua_getfield(L, -1, "outcome");
  lua_getfield(L, -2, "err");
  // Copying into std::string may throw bad_alloc; it cannot longjmp.
  if (const char* s = lua_tostring(L, -2)) out->first = s;
  if (const char* s = lua_tostring(L, -1)) out->second = s;
  return 0;
}

}  // namespace

int traceback_handler(lua_State* L) {
  const char* msg = lua_tostring(L, 1);
  if (msg == nullptr) msg = luaL_tolstring(L, 1, nullptr);
  luaL_traceback(L, L, msg, 1);
  return 1;
}

bool install_program_globals(lua_State* L, const state_env& env, std::string* err) {
  install_job job{&env};
  int top = lua_gettop(L);
  lua_pushcfunction(L, traceback_handler);
  lua_pushcfunction(L, install_fn);
  lua_pushlightuserdata(L, &job);
  bool ok = lua_pcall(L, 1, 0, top + 1) == LUA_OK;
  if (!ok) *err = lua_tostring(L, -1) != nullptr ? lua_tostring(L, -1) : "cannot set up the Lua state";
  lua_settop(L, top);
  return ok;
}

std::pair<std::string, std::string> run_program_main(state& L) {
  std::pair<std::string, std::string> out;
  L.with([&](lua_State* S) {
    int top = lua_gettop(S);
    lua_pushcfunction(S, traceback_handler);
    lua_pushcfunction(S, run_main_fn);
    lua_pushlightuserdata(S, &out);
    if (lua_pcall(S, 1, 0, top + 1) != LUA_OK) {
      out.first = "fatal";
      out.second = lua_tostring(S, -1) != nullptr ? lua_tostring(S, -1) : "(error object is not a string)";
    }
    lua_settop(S, top);
  });
  return out;
}

bool readable_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return false;
  std::fclose(f);
  return true;
}

absl::Status apply_tls(const command& cmd, net::options* opts) {
  if (cmd.tls_cert.empty()) return absl::OkStatus();  // plain TCP/Unix
  // The files are read (and a bad one reported, naming it) when listen()
  // loads the context.
  net::tls_options t;
  t.cert_file = cmd.tls_cert;
  t.key_file = cmd.tls_key;
  opts->tls = std::move(t);
  return absl::OkStatus();
}

}  // namespace conch::lua::program
