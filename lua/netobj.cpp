// lua/netobj.cpp
// The net library's objects: socket, server and UDP userdata, holders, datagrams as values.
//
// A socket's `input`/`output` (also ["in"]/["out"]) are ordinary channel
// objects of strings, kept as the userdata's user values; a server's
// `connections` is a channel of sockets; a UDP socket's are channels of
// datagrams {data = string, peer = "host:port"}. All of them work with
// send/recv/select like any other channel. A holder is a userdata that owns
// a heap object (a job of lua/netlib.cpp) until it is collected.
//
// Invariants:
//  - An object userdata's magic is set only once its C++ object is built and
//    cleared when __gc destroys it, so to_object never returns garbage.
//  - Objects hold handles (socket, server, udp_socket copies share the
//    connection), never anything of the Lua state, so they travel on
//    channels as values (lua/convert.cpp) and come back, in the same state,
//    as the same userdata (obj_cache_key, keyed by their first channel).
// Lock order: no lock is held here.
#include <cstddef>
#include <cstring>
#include <new>
#include <utility>

#include "conch/chan/go.hpp"
#include "lua/bridge.hpp"

namespace conch::lua::detail {

namespace {

const char sock_mt_key = 0;
const char srv_mt_key = 0;
const char udp_mt_key = 0;
const char holder_mt_key = 0;

// ---- holder ----

int holder_gc(lua_State* L) {
  auto* hd = static_cast<holder*>(lua_touserdata(L, 1));
  if (hd->p != nullptr) {
    // Still owns its job: free it.
    hd->del(hd->p);
    hd->p = nullptr;
  }
  return 0;
}

// ---- object userdata: socket, server, UDP socket ----

template <class T, std::uint32_t Magic>
struct object_ud {
  static constexpr std::uint32_t kMagic = Magic;
  std::uint32_t magic;
  T obj;
};
using sock_ud = object_ud<net::socket, 0x50C4E701u>;
using srv_ud = object_ud<net::server, 0x5E4BE402u>;
using udp_ud = object_ud<net::udp_socket, 0x0D9D0003u>;

template <class U>
U* to_object(lua_State* L, int idx) noexcept {
  if (lua_type(L, idx) != LUA_TUSERDATA || lua_rawlen(L, idx) != sizeof(U)) return nullptr;
  auto* u = static_cast<U*>(lua_touserdata(L, idx));
  return u->magic == U::kMagic ? u : nullptr;
}

template <class U>
U* check_object(lua_State* L, int idx, const char* name) {
  U* u = to_object<U>(L, idx);
  if (u == nullptr) luaL_typeerror(L, idx, name);
  return u;
}

template <class U>
int object_gc(lua_State* L) {
  auto* u = static_cast<U*>(lua_touserdata(L, 1));
  if (u != nullptr && u->magic != 0) {
    // Built and not yet collected: drop our handle.
    std::destroy_at(&u->obj);
    u->magic = 0;
  }
  return 0;
}

// Allocates an object userdata with `uv` user values and copies obj into it.
template <class U, class T>
void push_object(lua_State* L, const T& obj, int uv, const char* mt_key) {
  auto* u = static_cast<U*>(lua_newuserdatauv(L, sizeof(U), uv));
  u->magic = 0;
  new (&u->obj) T(obj);  // copies share the connection; they do not throw
  u->magic = U::kMagic;
  lua_rawgetp(L, LUA_REGISTRYINDEX, mt_key);
  lua_setmetatable(L, -2);
}

// Sets user value `uv` of the object on top to a channel object for c.
template <class T>
void set_chan_field(lua_State* L, const conch::chan<T>& c, int uv) {
  push_new_chan(L, [&c] { return c; });
  lua_setiuservalue(L, -2, uv);
}

// __index for objects: field names map to user values, the rest to methods
// (upvalue 2). fields: {name, its length, user value index}, null-terminated.
// `s.output:send(x)` runs this once per message: compare lengths first, no strlen.
struct field {
  const char* name;
  std::size_t len;
  int uv;
};

int index_with(lua_State* L, const field* fields) {
  std::size_t n = 0;
  const char* k = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &n) : nullptr;
  if (k != nullptr)
    for (const field* f = fields; f->name != nullptr; ++f)
      if (n == f->len && std::memcmp(k, f->name, n) == 0) {
        // A field: its channel.
        lua_getiuservalue(L, 1, f->uv);
        return 1;
      }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(2));
  return 1;
}

const field sock_fields[] = {{"output", 6, 2}, {"input", 5, 1}, {"in", 2, 1}, {"out", 3, 2}, {nullptr, 0, 0}};
const field srv_fields[] = {{"connections", 11, 1}, {nullptr, 0, 0}};
const field udp_fields[] = {{"output", 6, 2}, {"input", 5, 1}, {"in", 2, 1}, {"out", 3, 2}, {nullptr, 0, 0}};

int sock_index(lua_State* L) { return index_with(L, sock_fields); }
int srv_index(lua_State* L) { return index_with(L, srv_fields); }
int udp_index(lua_State* L) { return index_with(L, udp_fields); }

// true, or nil, msg, code
int push_result(lua_State* L, const absl::Status& st) {
  if (!st.ok()) return push_status(L, st);
  lua_pushboolean(L, 1);
  return 1;
}

// ---- methods ----

// sock:close(), sock:peer(), sock:address(), sock:status() -> true | nil, msg, code
int sock_close(lua_State* L) {
  check_object<sock_ud>(L, 1, "conch.socket")->obj.close();
  return 0;
}
int sock_peer(lua_State* L) {
  push_address(L, check_object<sock_ud>(L, 1, "conch.socket")->obj.peer());
  return 1;
}
int sock_address(lua_State* L) {
  push_address(L, check_object<sock_ud>(L, 1, "conch.socket")->obj.local());
  return 1;
}
int sock_status(lua_State* L) {
  absl::Status st = check_object<sock_ud>(L, 1, "conch.socket")->obj.status();
  return push_result(L, st);
}
// sock:done() -> true, once the socket has fully ended: `output` written (or
// dropped by an error or close()), the read side over, the descriptor closed
// (sock:status() says how it ended). Parks the go block (outside one, blocks
// like ch:recv()). A C++ go block on the home loop waits on the socket's
// done() and then closes `over`, which this receives from.
struct done_job {
  conch::chan<value> over{1};  // never sent to: closes once the socket is done
};

conch::task<void> done_body(net::socket s, std::shared_ptr<done_job> j) {
  conch::chan<unit> d = s.done();
  co_await d.recv();
  j->over.close();
}

int k_done(lua_State* L, int, lua_KContext ctx) {
  host_from(ctx)->op_request()->clear();
  lua_pushboolean(L, 1);
  return 1;
}

int sock_done(lua_State* L) {
  sock_ud* u = check_object<sock_ud>(L, 1, "conch.socket");
  host* h = host_of(L);
  lua_settop(L, 1);
  holder* hd = push_holder(L);  // keeps the job while we wait
  struct start_args {
    holder* hd;
    const net::socket* s;
    bool ok;
  } a{hd, &u->obj, false};
  h->call_on_loop(
      [](void* p) noexcept {
        auto* sa = static_cast<start_args*>(p);
        try {
          auto j = std::make_unique<std::shared_ptr<done_job>>(std::make_shared<done_job>());
          conch::go(done_body(*sa->s, *j));
          sa->hd->p = j.release();
          sa->hd->del = &delete_as<std::shared_ptr<done_job>>;
          sa->ok = true;
        } catch (...) {
          // Out of memory: sa->ok stays false.
        }
      },
      &a);
  if (!a.ok) return raise_no_memory(L);
  auto* j = static_cast<std::shared_ptr<done_job>*>(hd->p);
  return recv_core(L, h, conch::detail::get_core((*j)->over), elem::value, &k_done);
}

int srv_close(lua_State* L) {
  check_object<srv_ud>(L, 1, "conch.server")->obj.close();
  return 0;
}
int srv_address(lua_State* L) {
  push_address(L, check_object<srv_ud>(L, 1, "conch.server")->obj.local());
  return 1;
}
int udp_close(lua_State* L) {
  check_object<udp_ud>(L, 1, "conch.udp")->obj.close();
  return 0;
}
int udp_address(lua_State* L) {
  push_address(L, check_object<udp_ud>(L, 1, "conch.udp")->obj.local());
  return 1;
}
// usock:join(group [, iface]) -> true | nil, msg, code
int udp_join(lua_State* L) {
  udp_ud* u = check_object<udp_ud>(L, 1, "conch.udp");
  const char* group = luaL_checkstring(L, 2);
  const char* iface = luaL_optstring(L, 3, "");
  absl::Status st = u->obj.join_multicast(group, iface);
  return push_result(L, st);
}

const luaL_Reg sock_methods[] = {
    {"close", sock_close}, {"peer", sock_peer}, {"address", sock_address}, {"status", sock_status},
    {"done", sock_done}, {"starttls", sock_starttls},
    {nullptr, nullptr},
};
const luaL_Reg srv_methods[] = {{"close", srv_close}, {"address", srv_address}, {nullptr, nullptr}};
const luaL_Reg udp_methods[] = {
    {"close", udp_close}, {"address", udp_address}, {"join", udp_join}, {nullptr, nullptr},
};

// Creates an object metatable (registry key `key`): __name, __gc, and an
// __index with upvalues host, methods.
void make_object_mt(lua_State* L, host* h, const char* name, lua_CFunction index, lua_CFunction gc,
                    const luaL_Reg* methods, const char* key) {
  lua_createtable(L, 0, 4);
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  lua_pushlightuserdata(L, h);
  lua_createtable(L, 0, 4);
  set_closures(L, h, methods);
  lua_pushcclosure(L, index, 2);  // upvalues: host, methods
  lua_setfield(L, -2, "__index");
  lua_rawsetp(L, LUA_REGISTRYINDEX, key);
}

}  // namespace

// ---- shared with lua/netlib.cpp ----

holder* push_holder(lua_State* L) {
  auto* hd = static_cast<holder*>(lua_newuserdatauv(L, sizeof(holder), 0));
  hd->p = nullptr;
  hd->del = nullptr;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &holder_mt_key);
  lua_setmetatable(L, -2);
  return hd;
}

int push_status(lua_State* L, const absl::Status& st) {
  lua_pushnil(L);
  lua_pushlstring(L, st.message().data(), st.message().size());
  std::string code = absl::StatusCodeToString(st.code());  // tiny: SSO, no allocation
  lua_pushstring(L, code.c_str());
  return 3;
}

void push_address(lua_State* L, const net::address& a) {
  std::string s = a.to_string();  // no Lua call while it lives... except this push:
  lua_pushlstring(L, s.data(), s.size());  // (an OOM here leaks s; acceptable)
}

// An object's identity in this state's cache: the core of its first channel
// (a connection's own, never shared with another object).
template <class T>
const void* object_id(const conch::chan<T>& c) noexcept {
  return conch::detail::get_core(c);
}

void push_server(lua_State* L, const net::server& s) {
  if (push_cached(L, &obj_cache_key, object_id(s.connections))) return;  // the same object again
  push_object<srv_ud>(L, s, 1, &srv_mt_key);
  set_chan_field(L, s.connections, 1);
  cache_top(L, &obj_cache_key, object_id(s.connections));
}

void push_udp(lua_State* L, const net::udp_socket& u) {
  if (push_cached(L, &obj_cache_key, object_id(u.in))) return;
  push_object<udp_ud>(L, u, 2, &udp_mt_key);
  set_chan_field(L, u.in, 1);
  set_chan_field(L, u.out, 2);
  cache_top(L, &obj_cache_key, object_id(u.in));
}

// ---- sockets and datagrams as values (used by lua/convert.cpp) ----

const net::socket* check_socket(lua_State* L, int idx) { return &check_object<sock_ud>(L, idx, "conch.socket")->obj; }

void push_socket(lua_State* L, const net::socket& s) {
  if (push_cached(L, &obj_cache_key, object_id(s.in))) return;
  push_object<sock_ud>(L, s, 2, &sock_mt_key);
  set_chan_field(L, s.in, 1);
  set_chan_field(L, s.out, 2);
  cache_top(L, &obj_cache_key, object_id(s.in));
}

const net::socket* to_socket(lua_State* L, int idx) noexcept {
  sock_ud* u = to_object<sock_ud>(L, idx);
  return u != nullptr ? &u->obj : nullptr;
}

const net::server* to_server(lua_State* L, int idx) noexcept {
  srv_ud* u = to_object<srv_ud>(L, idx);
  return u != nullptr ? &u->obj : nullptr;
}

const net::udp_socket* to_udp(lua_State* L, int idx) noexcept {
  udp_ud* u = to_object<udp_ud>(L, idx);
  return u != nullptr ? &u->obj : nullptr;
}

conv_error to_datagram(lua_State* L, int idx, void* out) noexcept {
  if (lua_type(L, idx) != LUA_TTABLE || !lua_checkstack(L, 3)) return conv_error::not_datagram;
  idx = lua_absindex(L, idx);
  // Walk the table instead of looking "data" and "peer" up: pushing a key
  // string could raise (memory), and this function must not.
  const char* d = nullptr;
  const char* p = nullptr;
  std::size_t dn = 0, pn = 0;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
      std::string_view k = lua_tostring(L, -2);
      if (k == "data") d = lua_tolstring(L, -1, &dn);
      if (k == "peer") p = lua_tolstring(L, -1, &pn);
    }
    lua_pop(L, 1);  // the strings stay alive: the table holds them
  }
  if (d == nullptr || p == nullptr) return conv_error::not_datagram;
  try {
    absl::StatusOr<net::address> a = net::address::parse(std::string_view(p, pn));
    if (!a.ok()) return conv_error::not_datagram;
    new (out) net::datagram{std::string(d, dn), *a};
  } catch (...) {
    return conv_error::no_memory;
  }
  return conv_error::none;
}

void push_datagram(lua_State* L, const net::datagram& d) {
  lua_createtable(L, 0, 2);
  lua_pushlstring(L, d.data.data(), d.data.size());
  lua_setfield(L, -2, "data");
  push_address(L, d.peer);
  lua_setfield(L, -2, "peer");
}

void install_net_metatables(lua_State* L, host* h) {
  luaL_checkstack(L, 8, nullptr);
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, holder_gc);
  lua_setfield(L, -2, "__gc");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &holder_mt_key);
  make_object_mt(L, h, "conch.socket", sock_index, object_gc<sock_ud>, sock_methods, &sock_mt_key);
  make_object_mt(L, h, "conch.server", srv_index, object_gc<srv_ud>, srv_methods, &srv_mt_key);
  make_object_mt(L, h, "conch.udp", udp_index, object_gc<udp_ud>, udp_methods, &udp_mt_key);
  new_weak_cache(L, &obj_cache_key);
}

}  // namespace conch::lua::detail
