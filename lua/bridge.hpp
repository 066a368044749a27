// lua/bridge.hpp
// The Lua bridge's shared glue: what every library file of the `conch` module uses.
//
// Every lua/*.cpp includes this one header. It pulls in lua/convert.hpp
// (elements, channel userdata, conversion) and lua/host.hpp (requests, go
// blocks, the host), then declares the glue the library files share and the
// entry point of each of them, as Lua's own libraries (lcorolib.c,
// lstrlib.c, linit.c) each export one opener:
//   chanlib.cpp   channel methods + conch.chan/promise/timeout
//   selectlib.cpp conch.select
//   golib.cpp     conch.go/sleep/run/tasks/on_error/now
//   corolib.cpp   the park-aware coroutine.resume/wrap
//   netlib.cpp    conch.listen/connect/udp/resolve/interfaces
//   netobj.cpp    the socket, server and UDP objects
//   fdlib.cpp     conch.fd_watch/fd_read
//   opslib.cpp    the combinators (conch/ops.lua) and conch.thread
//   lsocketlib.cpp the `lsocket` module (lsocket 1.4 drop-in)
//   init.cpp      open_module / open_standalone
//
// Every Lua C function of the module has the host as upvalue 1 (host_of).
// All of them are longjmp-safe (the stock lua5.4 is C: a Lua error is a
// longjmp that skips C++ destructors): they check their arguments first
// (luaL_check* may raise), keep every C++ object in heap storage (a request,
// a userdata) or inside a noexcept helper that calls no raising Lua API, and
// raise only after cleaning up. Values being pushed live in a request, never
// in a local.
#pragma once

#include <lua.hpp>

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "conch/core/runtime.hpp"
#include "conch/core/task.hpp"
#include "conch/net/tls.hpp"
#include "lua/convert.hpp"
#include "lua/host.hpp"

namespace conch::lua::detail {

// ---- closures with the host as upvalue 1 ----

/// The host of the running C function (its upvalue 1).
inline host* host_of(lua_State* L) noexcept {
  return static_cast<host*>(lua_touserdata(L, lua_upvalueindex(1)));
}

/// t[name] = f with upvalue h, for the table t on top of the stack.
inline void set_closure(lua_State* L, host* h, lua_CFunction f, const char* name) {
  lua_pushlightuserdata(L, h);
  lua_pushcclosure(L, f, 1);
  lua_setfield(L, -2, name);
}

/// set_closure for every entry of `fns` (ending with {nullptr, nullptr}).
inline void set_closures(lua_State* L, host* h, const luaL_Reg* fns) {
  lua_pushlightuserdata(L, h);
  luaL_setfuncs(L, fns, 1);  // each function gets a copy of h; pops it
}

// ---- running an operation from Lua (lua/request.cpp) ----

/// The request for an operation of the running code. Raises if it is busy:
/// a finalizer (__gc) or hook that runs while another operation of the same
/// code is pushing its outcome must not reuse it.
request* get_request(lua_State* L, host* h);
/// Raises "cannot wait on a channel here" (code that cannot yield).
int raise_not_yieldable(lua_State* L);

/// Continuation contexts carry the host (saves a lua_touserdata per operation).
inline lua_KContext host_ctx(host* h) noexcept { return reinterpret_cast<lua_KContext>(h); }
inline host* host_from(lua_KContext ctx) noexcept { return reinterpret_cast<host*>(ctx); }

/// Runs the prepared request r to completion, then its continuation k.
/// A request that cannot complete at once: inside a go block it parks a
/// waiter whose resumer is the block's driver and yields the park tag (the
/// driver resumes the block when the channel wakes it and k pushes the
/// outcome); outside any go block it parks a waiter for the outside proxy
/// and hands the state to the home loop until it completes (<!!).
int run_op(lua_State* L, host* h, request* r, lua_KFunction k);
/// Pushes the element that case `i` of a finished request received, marking
/// the request busy while pushing (see get_request). False, pushing
/// nothing, if the case received nothing (closed, or a send).
bool push_received(lua_State* L, request* r, std::size_t i);
/// Receives from `core` (element type `type`) like ch:recv(): parks the go
/// block or blocks the outside thread; then calls k(L, LUA_OK, ctx) where
/// host_from(ctx) is the host and h->op_request() holds the outcome
/// (ok; cases[0] full with the element). k must clear() the request.
int recv_core(lua_State* L, host* h, chan_core* core, elem type, lua_KFunction k);

/// Milliseconds (a Lua number) to nanoseconds: 0 for <= 0 and NaN, 2^62
/// ("never") above 1e12 ms, so deadlines never overflow.
inline std::int64_t ms_to_ns(lua_Number ms) noexcept {
  if (!(ms > 0)) return 0;                      // also NaN
  if (ms > 1e12) return std::int64_t{1} << 62;  // "never", without overflow
  return static_cast<std::int64_t>(ms * 1e6);
}

/// A task whose value is the loop `where` names (block_on it to choose a
/// state's home loop; placement::here() is the runtime's first loop).
inline conch::task<loop*> home_loop_task(placement where = placement::here()) {
  co_return conch::detail::pick_loop(conch::detail::current_loop(), where);
}

// ---- strict options (lua/options.cpp) ----

/// The option keys a function takes (API.md §6: any other key is an error).
struct option_names {
  const char* fn;              // "conch.listen", for messages
  const char* const* takes;    // null-terminated
  /// Optional: a phrase for a key this function does not take but another
  /// does ("it is an option of conch.connect"), or null.
  const char* (*hint)(const char* key) = nullptr;
};
/// Raises "<fn>: unknown option '<key>' (it takes ...)" for a key of the
/// table at idx that is not in `names`; a non-name key is an error too,
/// except, with allow_cases, the integer keys 1..#t (select's cases).
void check_option_keys(lua_State* L, int idx, const option_names& names, bool allow_cases = false);
/// Raises "<fn>: unexpected argument #<max+1>" if more than max arguments were given.
void check_max_args(lua_State* L, int max, const char* fn);
/// Raises "<fn>: option '<key>' must be <expected> (got <type of got_idx>)".
int raise_option_type(lua_State* L, const char* fn, const char* key, const char* expected, int got_idx);
/// Reads t[key] (t at idx) as an integer in [min, max] into *out: false if
/// absent; raises (naming fn and key) if it is not an integer or out of range.
bool opt_integer(lua_State* L, int idx, const char* fn, const char* key, lua_Integer min, lua_Integer max,
                 lua_Integer* out);

// TLS settings read from an options table's `tls` key: pointers into the
// table's strings (alive while it is on the stack), so nothing here needs a
// destructor across a raise; apply_tls copies them into net::tls_options
// inside a noexcept job builder (conch.connect/listen and conch.nats.connect).
struct lua_tls {
  bool set = false;
  bool verify = true;
  const char* cert = nullptr;
  const char* key = nullptr;
  const char* ca = nullptr;
  const char* server_name = nullptr;
};

/// Reads opts.tls (true, or {cert=, key=, ca=, verify=, server_name=}; any
/// other key raises naming it) from the option table at idx, if any (may raise).
void check_tls(lua_State* L, int idx, lua_tls& t);
/// `out` from t (unset when t.set is false); false when out of memory.
bool apply_tls(const lua_tls& t, std::optional<conch::net::tls_options>& out) noexcept;

// ---- the net library's objects (lua/netobj.cpp), for lua/netlib.cpp ----

/// A userdata that owns a heap object until collected (its __gc calls del).
struct holder {
  void* p;
  void (*del)(void*) noexcept;
};
/// Pushes an empty holder (may raise).
holder* push_holder(lua_State* L);
/// The `del` of a holder whose object is a T.
template <class T>
void delete_as(void* p) noexcept {
  delete static_cast<T*>(p);
}
/// Pushes nil, message, code name (UNAVAILABLE...); returns 3. May raise.
int push_status(lua_State* L, const absl::Status& st);
/// Pushes "host:port" (may raise).
void push_address(lua_State* L, const net::address& a);
/// The socket of the conch.socket userdata at idx (raises a type error if it
/// is not one). The pointer lives as long as the userdata.
const net::socket* check_socket(lua_State* L, int idx);
/// sock:starttls(opts): the socket's TLS upgrade (lua/netlib.cpp).
int sock_starttls(lua_State* L);
/// Pushes a server object (field connections; methods close, address). May raise.
void push_server(lua_State* L, const net::server& s);
/// Pushes a UDP socket object (fields input/output; methods close, address,
/// join). May raise.
void push_udp(lua_State* L, const net::udp_socket& u);

// ---- the library files ----

/// Creates the channel metatable of L's state (host::create calls it, so C++
/// can hand channels over before any `require "conch"`). lua/chanlib.cpp.
void install_chan_metatable(lua_State* L, host* h);
/// Adds chan, promise, timeout to the module table on top. lua/chanlib.cpp.
void add_chan_functions(lua_State* L, host* h);
/// Adds select to the module table on top. lua/selectlib.cpp.
void add_select_functions(lua_State* L, host* h);
/// Adds go, sleep, now, on_error, tasks, run to the module table on top.
/// lua/golib.cpp.
void add_go_functions(lua_State* L, host* h);
/// Replaces coroutine.resume and coroutine.wrap (if the coroutine library
/// is open) with conch's park-aware ones. lua/corolib.cpp.
void install_coroutine_glue(lua_State* L, host* h);
/// Creates the holder, socket, server and UDP metatables (host::create calls
/// it). lua/netobj.cpp.
void install_net_metatables(lua_State* L, host* h);
/// Adds listen, connect, udp, resolve, interfaces to the module table on
/// top. lua/netlib.cpp.
void add_net_functions(lua_State* L, host* h);
/// Adds fd_watch, fd_read to the module table on top. lua/fdlib.cpp.
void add_fd_functions(lua_State* L, host* h);

/// Makes the combinators (lua/conch/ops.lua) and conch.thread part of the
/// module table on top, loaded the first time a missing name is read.
/// lua/opslib.cpp.
void add_ops_functions(lua_State* L, host* h);

/// lua_CFunction behind `require "lsocket"`: lsocket 1.4's module table over
/// L's host (raises if L has none). lua/lsocketlib.cpp.
int open_lsocket(lua_State* L);
/// Sets package.preload.lsocket to open_lsocket (if `package` is loaded), so
/// `require "lsocket"` finds conch's in this state. lua/lsocketlib.cpp.
void preload_lsocket(lua_State* L);

/// lua_CFunction (host as upvalue 1) that returns the `conch.nats` table. lua/natslib.cpp.
int open_nats(lua_State* L);
/// lua_CFunction (host as upvalue 1) that returns `conch._ipcio`, the low-level
/// ipcIO functions lua/conch/ipcio.lua builds on. lua/ipciolib.cpp.
int open_ipcio(lua_State* L);
/// Builds the `conch` module table for L (whose host must exist), installs
/// conch's coroutine.resume/wrap. Returns 1. lua/init.cpp.
int open_module(lua_State* L);
/// lua_CFunction behind `require "conch"` in the stock interpreter: creates a
/// host with its own one-thread runtime, then open_module. A runtime that
/// cannot start is a Lua error with the reason. lua/init.cpp.
int open_standalone(lua_State* L);

}  // namespace conch::lua::detail
