// lua/state.cpp
// conch::lua::state: the embedding API over a host.
//
// Every call takes the state's call mutex (one caller at a time), takes the
// baton from the home loop (acquire), runs Lua on the calling thread in
// protected mode, and gives the baton back (release), so go blocks run
// between calls. Lua work that can raise runs inside lua_pcall.
#include "conch/lua/lua.hpp"

#include <cstdio>
#include <string>

#include "lua/bridge.hpp"
#include "lua/util.hpp"

namespace conch::lua {

namespace {

int preload_conch(lua_State* L) { return detail::open_module(L); }

struct setup_args {
  detail::loop* home;
  const state_options* opts;
  detail::host* out;
};

int setup_fn(lua_State* L) {
  auto* a = static_cast<setup_args*>(lua_touserdata(L, 1));
  if (a->opts->open_libs) luaL_openlibs(L);
  a->out = detail::host::create(L, a->home, nullptr, &a->opts->on_error);
  // require "conch" finds this state's module, never a conch.so on LUA_CPATH
  // (a second copy of conch in the process would run its own runtime).
  if (lua_getglobal(L, "package") == LUA_TTABLE && lua_getfield(L, -1, "preload") == LUA_TTABLE) {
    lua_pushcfunction(L, preload_conch);
    lua_setfield(L, -2, "conch");
    lua_pushcfunction(L, open_util);  // require "conch.util": slua's helpers
    lua_setfield(L, -2, "conch.util");
  }
  detail::preload_lsocket(L);  // and require "lsocket" conch's lsocket
  return 0;
}

// Message handler: the error message plus a traceback.
int msgh(lua_State* L) {
  const char* msg = lua_tostring(L, 1);
  if (msg == nullptr) msg = luaL_tolstring(L, 1, nullptr);
  luaL_traceback(L, L, msg, 1);
  return 1;
}

struct global_args {
  std::string_view name;
  std::shared_ptr<const any_chan>* chan;
};

int set_global_fn(lua_State* L) {
  auto* a = static_cast<global_args*>(lua_touserdata(L, 1));
  detail::push_chan(L, *a->chan);
  lua_pushlstring(L, a->name.data(), a->name.size());
  lua_insert(L, -2);
  lua_setglobal(L, lua_tostring(L, -2));
  return 0;
}

int get_global_fn(lua_State* L) {
  auto* a = static_cast<global_args*>(lua_touserdata(L, 1));
  lua_pushlstring(L, a->name.data(), a->name.size());
  lua_getglobal(L, lua_tostring(L, -1));
  if (detail::chan_ud* ud = detail::to_chan_ud(L, -1)) *a->chan = ud->box;
  return 0;
}

void fail_setup(lua_State* L) {
  std::fprintf(stderr, "conch::lua::state: %s\n",
               lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "setup failed");
  CONCH_CHECK(false, "could not set up the Lua state");
}

}  // namespace

state::state(runtime& rt, state_options opts) {
  CONCH_CHECK(conch::detail::current_loop() == nullptr,
              "conch::lua::state must be created on a plain thread, not a runtime thread");
  detail::loop* home = rt.block_on(detail::home_loop_task(opts.place));
  conch::detail::add_resident(home, +1);  // until ~state: least_busy counts it
  L_ = luaL_newstate();
  CONCH_CHECK(L_ != nullptr, "cannot create a Lua state (out of memory)");
  setup_args a{home, &opts, nullptr};
  lua_pushcfunction(L_, setup_fn);
  lua_pushlightuserdata(L_, &a);
  if (lua_pcall(L_, 1, 0, 0) != LUA_OK) fail_setup(L_);
  host_ = a.out;
  host_->release();  // go blocks run on the home loop between calls
}

state::~state() {
  detail::loop* home = host_->home();
  host_->shutdown();  // stops the go blocks on the home loop
  lua_close(L_);      // the host's __gc frees it
  conch::detail::add_resident(home, -1);
}

absl::Status state::run_chunk(std::string_view code, std::string_view chunkname, bool is_file) {
  CONCH_CHECK(conch::detail::current_loop() == nullptr,
              "conch::lua::state::run_* called on a runtime thread; call it from a plain thread");
  std::lock_guard lk(host_->call_mutex());
  host_->acquire();
  std::string name(is_file ? std::string_view() : chunkname);
  std::string path(is_file ? code : std::string_view());
  int top = lua_gettop(L_);
  lua_pushcfunction(L_, msgh);
  int st = is_file ? luaL_loadfilex(L_, path.c_str(), nullptr)
                   : luaL_loadbufferx(L_, code.data(), code.size(), name.c_str(), nullptr);
  if (st == LUA_OK) st = lua_pcall(L_, 0, 0, top + 1);
  absl::Status result;
  if (st != LUA_OK) {
    std::string msg = lua_type(L_, -1) == LUA_TSTRING ? lua_tostring(L_, -1) : "(error object is not a string)";
    switch (st) {
      case LUA_ERRSYNTAX:
        result = absl::InvalidArgumentError(msg);
        break;
      case LUA_ERRFILE:
        result = absl::NotFoundError(msg);
        break;
      case LUA_ERRMEM:
        result = absl::ResourceExhaustedError(msg);
        break;
      default:
        result = absl::UnknownError(msg);
        break;
    }
  }
  lua_settop(L_, top);
  host_->release();
  return result;
}

absl::Status state::run_string(std::string_view code, std::string_view chunkname) {
  return run_chunk(code, chunkname, false);
}

absl::Status state::run_file(const std::string& path) { return run_chunk(path, {}, true); }

void state::set_any(std::string_view name, std::shared_ptr<const any_chan> c) {
  std::lock_guard lk(host_->call_mutex());
  host_->acquire();
  global_args a{name, &c};
  lua_pushcfunction(L_, set_global_fn);
  lua_pushlightuserdata(L_, &a);
  if (lua_pcall(L_, 1, 0, 0) != LUA_OK) lua_pop(L_, 1);
  host_->release();
}

std::shared_ptr<const any_chan> state::get_any_chan(std::string_view name) {
  std::lock_guard lk(host_->call_mutex());
  host_->acquire();
  std::shared_ptr<const any_chan> out;
  global_args a{name, &out};
  lua_pushcfunction(L_, get_global_fn);
  lua_pushlightuserdata(L_, &a);
  if (lua_pcall(L_, 1, 0, 0) != LUA_OK) lua_pop(L_, 1);
  host_->release();
  return out;
}

void state::set(std::string_view name, const chan<std::string>& ch) {
  set_any(name, std::make_shared<const any_chan>(ch));
}
void state::set(std::string_view name, const chan<std::int64_t>& ch) {
  set_any(name, std::make_shared<const any_chan>(ch));
}
void state::set(std::string_view name, const chan<double>& ch) {
  set_any(name, std::make_shared<const any_chan>(ch));
}
void state::set(std::string_view name, const chan<value>& ch) {
  set_any(name, std::make_shared<const any_chan>(ch));
}

void state::with(const std::function<void(lua_State*)>& f) {
  std::lock_guard lk(host_->call_mutex());
  host_->acquire();
  f(L_);
  host_->release();
}

}  // namespace conch::lua
