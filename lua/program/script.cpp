// lua/program/script.cpp
// Script mode: a file, -e code, standard input or inline code, and the prompt.
//
// The script runs on the main thread as the stock lua5.4 runs it (an outside
// caller of a conch::lua::state: a channel operation that would park hands
// the state to its home loop, go blocks run there meanwhile). `arg` is built
// as lua.c builds it: arg[0] is the script, arg[1..] its arguments, negative
// indices the interpreter and its options; the script also gets its
// arguments as `...`.
//
// Invariants:
//  - Everything that can raise runs inside one lua_pcall (run_actions), with
//    traceback_handler as message handler; the C++ objects it reads live in
//    the caller's frame (a `script_job`), never as locals of a raising call.
// Lock order: none of ours (state::with holds the state's call mutex).
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <string>

#include <lua.hpp>

#include "lua/program/program.hpp"

namespace conch::lua::program {

namespace {

// What run_actions works on (it reads this through a light userdata).
struct script_job {
  const command* cmd;
  const std::vector<action>* actions;
};

// Builds `arg` as lua.c does: argv[i] at index i - script_index.
void push_arg_table(lua_State* L, const command& cmd) {
  int n = static_cast<int>(cmd.argv.size());
  lua_createtable(L, n - cmd.script_index, cmd.script_index + 1);
  for (int i = 0; i < n; ++i) {
    lua_pushstring(L, cmd.argv[static_cast<std::size_t>(i)].c_str());
    lua_rawseti(L, -2, i - cmd.script_index);
  }
}

// Runs the actions in order (protected: called through lua_pcall).
// Upvalue-free: argument 1 is the script_job.
int run_actions(lua_State* L) {
  auto* job = static_cast<script_job*>(lua_touserdata(L, 1));
  const command& cmd = *job->cmd;
  push_arg_table(L, cmd);
  lua_setglobal(L, "arg");
  for (const action& a : *job->actions) {
    int st = LUA_OK;
    switch (a.what) {
      case action::kind::code:
      case action::kind::inline_code:
        st = luaL_loadbuffer(L, a.text.data(), a.text.size(), "=(command line)");
        break;
      case action::kind::file:
        st = luaL_loadfile(L, a.text.c_str());
        break;
      case action::kind::stdin_script:
        st = luaL_loadfile(L, nullptr);  // NULL: standard input, as lua.c reads it
        break;
      case action::kind::library:
        lua_getglobal(L, "require");
        lua_pushstring(L, a.text.c_str());
        lua_call(L, 1, 1);
        lua_setglobal(L, a.text.c_str());
        continue;
    }
    if (st != LUA_OK) return lua_error(L);  // the message says which chunk and why
    int nargs = 0;
    if (a.what == action::kind::file || a.what == action::kind::stdin_script || a.what == action::kind::inline_code) {
      // The script's arguments as `...`, as lua.c passes them.
      int n = static_cast<int>(cmd.argv.size());
      luaL_checkstack(L, n, "too many arguments to script");
      for (int i = cmd.script_index + 1; i < n; ++i, ++nargs)
        lua_pushstring(L, cmd.argv[static_cast<std::size_t>(i)].c_str());
    }
    lua_call(L, nargs, 0);
  }
  return 0;
}

// Runs one line typed at the prompt: as an expression whose values are
// printed if it is one, else as a statement (protected).
int run_line(lua_State* L) {
  size_t len = 0;
  const char* line = lua_tolstring(L, 1, &len);
  lua_pushfstring(L, "return %s", line);
  int base = lua_gettop(L);
  if (luaL_loadbuffer(L, lua_tostring(L, -1), lua_rawlen(L, -1), "=stdin") != LUA_OK) {
    lua_settop(L, base);
    if (luaL_loadbuffer(L, line, len, "=stdin") != LUA_OK) return lua_error(L);
  }
  lua_call(L, 0, LUA_MULTRET);
  int nres = lua_gettop(L) - base;
  if (nres > 0) {
    lua_getglobal(L, "print");
    lua_insert(L, base + 1);
    lua_call(L, nres, 0);
  }
  return 0;
}

// Calls f(job) in protected mode with a traceback; on error prints it
// ("conch: <message and traceback>") and returns false.
bool protected_call(lua_State* L, lua_CFunction f, void* job) {
  int top = lua_gettop(L);
  lua_pushcfunction(L, traceback_handler);
  lua_pushcfunction(L, f);
  lua_pushlightuserdata(L, job);
  int st = lua_pcall(L, 1, 0, top + 1);
  if (st != LUA_OK) {
    const char* msg = lua_tostring(L, -1);
    std::fprintf(stderr, "conch: %s\n", msg != nullptr ? msg : "(error object is not a string)");
    std::fflush(stderr);
  }
  lua_settop(L, top);
  return st == LUA_OK;
}

void run_prompt(state& L) {
  std::printf("conch %s (%s)  -h for help, Ctrl-D to leave\n", CONCH_VERSION, LUA_RELEASE);
  std::string line;
  while (true) {
    std::fputs("> ", stdout);
    std::fflush(stdout);
    if (!std::getline(std::cin, line)) break;
    if (line.empty()) continue;
    L.with([&](lua_State* S) {
      int top = lua_gettop(S);
      lua_pushcfunction(S, traceback_handler);
      lua_pushcfunction(S, run_line);
      lua_pushlstring(S, line.data(), line.size());
      if (lua_pcall(S, 1, 0, top + 1) != LUA_OK) {
        const char* msg = lua_tostring(S, -1);
        std::fprintf(stderr, "%s\n", msg != nullptr ? msg : "(error object is not a string)");
      }
      lua_settop(S, top);
    });
  }
  std::fputs("\n", stdout);
}

}  // namespace

int run_script_mode(const command& cmd) {
  absl::StatusOr<std::unique_ptr<runtime>> rt = runtime::create({});
  if (!rt.ok()) {
    std::fprintf(stderr, "conch: cannot start the runtime: %s\n", std::string(rt.status().message()).c_str());
    return kExitError;
  }
  int status = kExitOk;
  {
    state L(**rt);
    std::string err;
    state_env env;
    env.what = role::script;
    env.cmd = &cmd;
    bool ok = true;
    L.with([&](lua_State* S) { ok = install_program_globals(S, env, &err); });
    if (!ok) {
      std::fprintf(stderr, "conch: %s\n", err.c_str());
      return kExitError;
    }
    script_job job{&cmd, &cmd.actions};
    if (!cmd.actions.empty() || cmd.run == command::mode::script) {
      L.with([&](lua_State* S) {
        if (!protected_call(S, run_actions, &job)) status = kExitError;
      });
    }
    if (status == kExitOk && (cmd.run == command::mode::interactive || cmd.interactive_after)) run_prompt(L);
  }
  std::fflush(stdout);
  return status;
}

}  // namespace conch::lua::program
