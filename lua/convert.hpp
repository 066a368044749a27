// lua/convert.hpp
// The Lua bridge's values: channel elements, channel userdata, Lua <-> C++ conversion.
//
// Internal to lua/ (include "lua/bridge.hpp", which includes this). What a
// channel carries never refers into a Lua state: tables are copied as graphs,
// channels are handles (any_chan), sockets, servers and UDP sockets are
// handles to their connection. Within one state a channel or net object that
// comes back is the same userdata (a weak cache in the registry). Defined in
// lua/convert.cpp, except the socket and datagram conversions
// (lua/netobj.cpp).
#pragma once

#include <lua.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>

#include "conch/chan/chan.hpp"
#include "conch/lua/value.hpp"
#include "conch/net/socket.hpp"
#include "conch/net/udp.hpp"

namespace conch::lua::detail {

using conch::detail::chan_core;

// ---- elements: what one channel slot holds, by channel kind ----

/// The element type of a channel, in any_chan::storage order.
enum class elem : std::uint8_t { value = 0, string = 1, int64 = 2, float64 = 3, socket = 4, datagram = 5 };

/// Raw storage for one element of any channel kind.
struct elem_slot {
  static constexpr std::size_t size =
      std::max({sizeof(value), sizeof(std::string), sizeof(net::socket), sizeof(net::datagram)});
  alignas(value) alignas(std::string) alignas(net::socket) alignas(net::datagram) unsigned char bytes[size];
  void* raw() noexcept { return bytes; }
};

/// Destroys the element of type `t` constructed at `p`.
void destroy_elem(elem t, void* p) noexcept;

// ---- registry keys and the park tag ----

/// Registry keys (their addresses are the keys).
extern const char chan_mt_key;
extern const char host_key;
extern const char on_error_key;
/// Weak-valued tables (identity -> userdata) that give a channel (by core)
/// or a net object (by its first channel's core) one userdata per state.
extern const char chan_cache_key;
extern const char obj_cache_key;
/// The value a parking operation yields, so resumers can tell it from a
/// user's own coroutine.yield.
void* park_tag() noexcept;

// ---- channel userdata ----

/// The payload of a channel userdata (metatable "conch.chan").
struct chan_ud {
  static constexpr std::uint32_t kMagic = 0xC0C4C4A1u;
  std::uint32_t magic;                   // kMagic: tells ours from other userdata fast
  chan_core* core;                       // == box->core(), cached
  elem type;                             // == box->kind(), cached
  std::shared_ptr<const any_chan> box;   // keeps the channel alive
};

/// The channel userdata at `idx`, or null if it is something else.
chan_ud* to_chan_ud(lua_State* L, int idx) noexcept;
/// Allocates an unbuilt channel userdata on top of the stack. May raise
/// (memory); until finish_chan_ud it has no metatable, so if a raise comes
/// first the collector frees it without running a __gc on garbage.
chan_ud* new_chan_ud(lua_State* L);
/// Builds `ud` around `box` (null: fails, builds nothing). Never raises.
bool build_chan_ud(chan_ud* ud, std::shared_ptr<const any_chan>&& box) noexcept;
/// Attaches the channel metatable to the built userdata on top of the stack.
/// Never raises.
void finish_chan_ud(lua_State* L) noexcept;
int raise_no_memory(lua_State* L);

// ---- one userdata per channel or net object in a state ----

/// Creates the weak-valued cache table at registry[key] (may raise).
void new_weak_cache(lua_State* L, const void* key);
/// Pushes the cached userdata for `id` and returns true, or pushes nothing
/// and returns false. May raise (stack).
bool push_cached(lua_State* L, const void* cache_key, const void* id);
/// Caches the userdata on top of the stack under `id` (may raise: memory).
void cache_top(lua_State* L, const void* cache_key, const void* id);
/// Caches the channel userdata on top of the stack (may raise: memory).
void cache_chan_ud(lua_State* L);

/// Builds `ud` from what `make()` returns: a conch::chan<T> of an any_chan
/// kind, or a std::shared_ptr<const any_chan>. make may throw; false then.
template <class Make>
bool build_chan_ud_from(chan_ud* ud, Make& make) noexcept {
  try {
    auto made = make();
    if constexpr (std::is_same_v<decltype(made), std::shared_ptr<const any_chan>>)
      return build_chan_ud(ud, std::move(made));  // a handle already
    else
      return build_chan_ud(ud, std::make_shared<const any_chan>(std::move(made)));  // box the channel
  } catch (...) {
    return false;
  }
}

/// The one way to push a new channel object: allocates the userdata (may
/// raise, nothing built yet), builds it from `make()` (see
/// build_chan_ud_from), then attaches the metatable. If make fails it raises
/// "not enough memory" once nothing of it is left. `make` should capture
/// only references and scalars: a raise may skip its destructor.
template <class Make>
void push_new_chan(lua_State* L, Make&& make) {
  chan_ud* ud = new_chan_ud(L);
  if (!build_chan_ud_from(ud, make)) raise_no_memory(L);  // unbuilt ud: plain garbage
  finish_chan_ud(L);
  cache_chan_ud(L);  // so it comes back as itself
}

/// Pushes this state's channel userdata for `c`: the one it already has, or a
/// new one (may raise, see push_new_chan).
void push_chan(lua_State* L, const std::shared_ptr<const any_chan>& c);

// ---- conversion (lua/convert.cpp) ----

/// Why a Lua value could not be converted; none = it was.
enum class conv_error : std::uint8_t {
  none, nil, bad_type, not_string, not_integer, not_number, too_big, too_deep, no_memory,
  not_socket, not_datagram
};

/// Converts the Lua value at `idx` to an element of type `t`, constructed in
/// raw storage `out` (only on success). Never raises: it uses only Lua API
/// calls that cannot raise. `bad` gets the offending Lua type on error. A
/// value (elem::value) is copied as a graph (shared tables stay shared,
/// cycles are kept) and refused (too_big) past `limit` bytes (value.hpp).
conv_error to_elem(lua_State* L, int idx, elem t, void* out, int* bad,
                   std::size_t limit = default_max_value) noexcept;
/// Same, into a value.
conv_error to_value(lua_State* L, int idx, value* out, int* bad, std::size_t limit = default_max_value) noexcept;
/// Raises the Lua error for `e` (never returns); `limit` is the one the
/// conversion was given (for too_big).
int raise_conv_error(lua_State* L, conv_error e, int bad, std::size_t limit = default_max_value);

/// Pushes the element at `p` (type `t`). May raise (memory errors only), so
/// `p` must not be a C++ automatic object of the caller.
void push_elem(lua_State* L, elem t, void* p);
/// Pushes a value (may raise, see push_elem).
void push_value(lua_State* L, const value& v);

// ---- sockets and datagrams as values (lua/netobj.cpp) ----

/// Pushes a socket object (fields input/output, also ["in"]/["out"]; methods
/// close, peer, address, status). May raise before anything is built.
void push_socket(lua_State* L, const net::socket& s);
/// The socket of the socket object at idx, or null.
const net::socket* to_socket(lua_State* L, int idx) noexcept;
/// The server of the server object at idx, or null.
const net::server* to_server(lua_State* L, int idx) noexcept;
/// The UDP socket of the UDP object at idx, or null.
const net::udp_socket* to_udp(lua_State* L, int idx) noexcept;
/// Converts a Lua datagram {data = string, peer = address string} into raw
/// storage `out`. Never raises.
conv_error to_datagram(lua_State* L, int idx, void* out) noexcept;
/// Pushes {data = ..., peer = "host:port"} (may raise).
void push_datagram(lua_State* L, const net::datagram& d);

}  // namespace conch::lua::detail
