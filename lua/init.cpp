// lua/init.cpp
// Opening the `conch` module: open_module (any host) and open_standalone (the stock interpreter).
//
// open_module builds the module table from the library files' openers
// (lua/bridge.hpp lists them), as Lua's linit.c opens its libraries.
// open_standalone, behind luaopen_conch (lua/module_main.cpp), first gives a
// state that has no host one with its own one-thread runtime.
//
// Invariants:
//  - A state has at most one host; a second require reuses it.
//  - The runtime is a plain pointer while Lua calls that may raise run
//    (host::create takes it over); a runtime that cannot start is reported
//    as a Lua error carrying the runtime's reason, never an abort.
// Lock order: no lock is held here.
#include <cstdio>

#include "lua/bridge.hpp"

namespace conch::lua::detail {

int open_module(lua_State* L) {
  host* h = host::find(L);
  if (h == nullptr) return luaL_error(L, "conch: this Lua state has no conch host");
  luaL_checkstack(L, 8, nullptr);
  install_coroutine_glue(L, h);
  preload_lsocket(L);  // require "lsocket" then finds conch's (lsocket.so's shim relies on it)
  lua_createtable(L, 0, 16);
  add_chan_functions(L, h);
  add_select_functions(L, h);
  add_go_functions(L, h);
  add_net_functions(L, h);
  add_fd_functions(L, h);
  add_ops_functions(L, h);
  lua_pushlightuserdata(L, h);  // conch.nats (lua/natslib.cpp)
  lua_pushcclosure(L, open_nats, 1);
  lua_call(L, 0, 1);
  lua_setfield(L, -2, "nats");
  lua_pushlightuserdata(L, h);  // conch._ipcio (lua/ipciolib.cpp), for conch.ipcio
  lua_pushcclosure(L, open_ipcio, 1);
  lua_call(L, 0, 1);
  lua_setfield(L, -2, "_ipcio");
  return 1;
}

namespace {

// Why a runtime could not start, as a C string (trivially destructible, so
// it may cross the raise that reports it).
struct start_error {
  char text[256];
};

// Starts a one-thread runtime for a state opened by the stock interpreter.
// On failure fills `err` and returns false.
bool start_runtime(runtime** rt, loop** home, start_error* err) noexcept {
  try {
    absl::StatusOr<std::unique_ptr<runtime>> r = runtime::create(runtime_options{.threads = 1});
    if (!r.ok()) {
      // The loops could not be set up (io_uring not permitted, no memory...).
      const absl::Status& st = r.status();
      std::snprintf(err->text, sizeof err->text, "conch: cannot start the runtime: %.*s",
                    static_cast<int>(st.message().size()), st.message().data());
      return false;
    }
    *home = (*r)->block_on(home_loop_task());
    *rt = r->release();
    return true;
  } catch (...) {
    std::snprintf(err->text, sizeof err->text, "conch: cannot start the runtime (out of memory)");
    return false;
  }
}

}  // namespace

int open_standalone(lua_State* L) {
  if (host::find(L) == nullptr) {
    // The first require in this state: start its runtime and host.
    runtime* rt = nullptr;
    loop* home = nullptr;
    start_error err;
    if (!start_runtime(&rt, &home, &err)) return luaL_error(L, "%s", err.text);
    host::create(L, home, rt, nullptr);
  }
  return open_module(L);
}

}  // namespace conch::lua::detail
