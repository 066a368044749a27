// lua/net.cpp
// The sockets part of the `conch` module: listen, connect, udp, resolve,
// interfaces, and the socket, server and UDP objects.
//
// A socket's `input`/`output` (also ["in"]/["out"]) are ordinary channel
// objects of strings; a server's `connections` is a channel of sockets; a UDP
// socket's are channels of datagrams {data = string, peer = "host:port"}.
// All of them work with send/recv/select like any other channel.
//
// listen and bind_udp must run on a runtime thread, so they run on the home
// loop (through host::call_on_loop from the outside thread). connect and
// resolve are tasks: a C++ go block on the home loop runs them and hands the
// result over a one-slot channel that the Lua side receives from (parking a
// go block, or blocking the outside thread), so they never block the loop.
// Errors follow the Lua convention: nil, message, code name (UNAVAILABLE...).
//
// Longjmp safety as in module.cpp: C++ results live in heap jobs owned by a
// `holder` userdata (its __gc frees them) while Lua calls that may raise run.
#include <chrono>
#include <new>

#include "conch/chan/go.hpp"
#include "lua/bridge.hpp"

namespace conch::lua::detail {

namespace {

const char sock_mt_key = 0;
const char srv_mt_key = 0;
const char udp_mt_key = 0;
const char holder_mt_key = 0;

host* host_of(lua_State* L) noexcept { return static_cast<host*>(lua_touserdata(L, lua_upvalueindex(1))); }

// ---- holder: a userdata that owns a heap object until collected ----

struct holder {
  void* p;
  void (*del)(void*) noexcept;
};

int holder_gc(lua_State* L) {
  auto* hd = static_cast<holder*>(lua_touserdata(L, 1));
  if (hd->p != nullptr) {
    hd->del(hd->p);
    hd->p = nullptr;
  }
  return 0;
}

holder* push_holder(lua_State* L) {
  auto* hd = static_cast<holder*>(lua_newuserdatauv(L, sizeof(holder), 0));
  hd->p = nullptr;
  hd->del = nullptr;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &holder_mt_key);
  lua_setmetatable(L, -2);
  return hd;
}

template <class T>
void delete_as(void* p) noexcept {
  delete static_cast<T*>(p);
}

// ---- errors ----

int push_status(lua_State* L, const absl::Status& st) {
  lua_pushnil(L);
  lua_pushlstring(L, st.message().data(), st.message().size());
  std::string code = absl::StatusCodeToString(st.code());  // tiny: SSO, no allocation
  lua_pushstring(L, code.c_str());
  return 3;
}

// ---- options ----

// {framing = "raw"|"lines"|"length"|"delimited", delimiter = "\f",
//  in_capacity =, out_capacity =, max_frame =, backlog =, connect_timeout = ms (0: none)}
net::options check_options(lua_State* L, int idx) {
  net::options o;
  if (lua_isnoneornil(L, idx)) return o;
  luaL_checktype(L, idx, LUA_TTABLE);
  if (lua_getfield(L, idx, "framing") != LUA_TNIL) {
    const char* f = luaL_checkstring(L, -1);
    std::string_view fr(f);
    if (fr == "raw") {
      o.frame = net::framing::raw();
    } else if (fr == "lines") {
      o.frame = net::framing::lines();
    } else if (fr == "length" || fr == "length_prefixed") {
      o.frame = net::framing::length_prefixed();
    } else if (fr == "delimited") {
      std::size_t n = 0;
      lua_getfield(L, idx, "delimiter");
      const char* d = luaL_optlstring(L, -1, "\f", &n);
      if (n != 1) luaL_error(L, "conch: delimiter must be one byte");
      o.frame = net::framing::delimited(d[0]);
      lua_pop(L, 1);
    } else {
      luaL_error(L, "conch: framing must be raw, lines, length or delimited (got %s)", f);
    }
  }
  lua_pop(L, 1);
  auto size_field = [&](const char* name, std::size_t& field) {
    if (lua_getfield(L, idx, name) != LUA_TNIL) {
      lua_Integer v = luaL_checkinteger(L, -1);
      if (v < 1) luaL_error(L, "conch: %s must be at least 1", name);
      field = static_cast<std::size_t>(v);
    }
    lua_pop(L, 1);
  };
  size_field("in_capacity", o.in_capacity);
  size_field("out_capacity", o.out_capacity);
  size_field("max_frame", o.max_frame);
  std::size_t backlog = static_cast<std::size_t>(o.backlog);
  size_field("backlog", backlog);
  o.backlog = static_cast<int>(backlog);
  if (lua_getfield(L, idx, "connect_timeout") != LUA_TNIL) {
    lua_Integer ms = luaL_checkinteger(L, -1);
    if (ms < 0) luaL_error(L, "conch: connect_timeout must be milliseconds >= 0 (0: none)");
    o.connect_timeout = std::chrono::milliseconds(ms);
  }
  lua_pop(L, 1);
  return o;
}

// ---- channel userdata for a typed channel (builds the box in place) ----

template <class T>
bool init_chan(chan_ud* ud, const conch::chan<T>& c) noexcept {
  try {
    auto box = std::make_shared<const any_chan>(c);
    new (ud) chan_ud{chan_ud::kMagic, box->core(), static_cast<elem>(box->kind()), std::move(box)};
    return true;
  } catch (...) {
    return false;
  }
}

template <class T>
void push_typed_chan(lua_State* L, const conch::chan<T>& c) {
  chan_ud* ud = new_chan_ud(L);
  if (!init_chan(ud, c)) raise_no_memory(L);
  finish_chan_ud(L);
}

// ---- objects: socket, server, UDP socket ----

template <class T, std::uint32_t Magic>
struct object_ud {
  std::uint32_t magic;
  T obj;
};
using sock_ud = object_ud<net::socket, 0x50C4E701u>;
using srv_ud = object_ud<net::server, 0x5E4BE402u>;
using udp_ud = object_ud<net::udp_socket, 0x0D9D0003u>;

template <class U>
U* to_object(lua_State* L, int idx, std::uint32_t magic) noexcept {
  if (lua_type(L, idx) != LUA_TUSERDATA || lua_rawlen(L, idx) != sizeof(U)) return nullptr;
  auto* u = static_cast<U*>(lua_touserdata(L, idx));
  return u->magic == magic ? u : nullptr;
}

template <class U>
U* check_object(lua_State* L, int idx, std::uint32_t magic, const char* name) {
  U* u = to_object<U>(L, idx, magic);
  if (u == nullptr) luaL_typeerror(L, idx, name);
  return u;
}

template <class U>
int object_gc(lua_State* L) {
  auto* u = static_cast<U*>(lua_touserdata(L, 1));
  if (u != nullptr && u->magic != 0) {
    std::destroy_at(&u->obj);
    u->magic = 0;
  }
  return 0;
}

// Allocates an object userdata with `uv` user values and copies obj into it.
template <class U, class T>
void push_object(lua_State* L, const T& obj, std::uint32_t magic, int uv, const char* mt_key) {
  auto* u = static_cast<U*>(lua_newuserdatauv(L, sizeof(U), uv));
  u->magic = 0;
  new (&u->obj) T(obj);  // copies share the connection; they do not throw
  u->magic = magic;
  lua_rawgetp(L, LUA_REGISTRYINDEX, mt_key);
  lua_setmetatable(L, -2);
}

constexpr std::uint32_t kSockMagic = 0x50C4E701u;
constexpr std::uint32_t kSrvMagic = 0x5E4BE402u;
constexpr std::uint32_t kUdpMagic = 0x0D9D0003u;

// __index for objects: field names map to user values, the rest to methods
// (upvalue 2). fields: {name, user value index} pairs, null-terminated.
struct field {
  const char* name;
  int uv;
};

int index_with(lua_State* L, const field* fields) {
  if (lua_type(L, 2) == LUA_TSTRING) {
    std::string_view k = lua_tostring(L, 2);
    for (const field* f = fields; f->name != nullptr; ++f)
      if (k == f->name) {
        lua_getiuservalue(L, 1, f->uv);
        return 1;
      }
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(2));
  return 1;
}

const field sock_fields[] = {{"input", 1}, {"in", 1}, {"output", 2}, {"out", 2}, {nullptr, 0}};
const field srv_fields[] = {{"connections", 1}, {nullptr, 0}};
const field udp_fields[] = {{"input", 1}, {"in", 1}, {"output", 2}, {"out", 2}, {nullptr, 0}};

int sock_index(lua_State* L) { return index_with(L, sock_fields); }
int srv_index(lua_State* L) { return index_with(L, srv_fields); }
int udp_index(lua_State* L) { return index_with(L, udp_fields); }

void push_address(lua_State* L, const net::address& a) {
  std::string s = a.to_string();  // no Lua call while it lives... except this push:
  lua_pushlstring(L, s.data(), s.size());  // (an OOM here leaks s; acceptable)
}

// sock:close(), sock:peer(), sock:address(), sock:status() -> true | nil, msg, code
int sock_close(lua_State* L) {
  check_object<sock_ud>(L, 1, kSockMagic, "conch.socket")->obj.close();
  return 0;
}
int sock_peer(lua_State* L) {
  push_address(L, check_object<sock_ud>(L, 1, kSockMagic, "conch.socket")->obj.peer());
  return 1;
}
int sock_address(lua_State* L) {
  push_address(L, check_object<sock_ud>(L, 1, kSockMagic, "conch.socket")->obj.local());
  return 1;
}
int sock_status(lua_State* L) {
  absl::Status st = check_object<sock_ud>(L, 1, kSockMagic, "conch.socket")->obj.status();
  if (st.ok()) {
    lua_pushboolean(L, 1);
    return 1;
  }
  return push_status(L, st);
}
int srv_close(lua_State* L) {
  check_object<srv_ud>(L, 1, kSrvMagic, "conch.server")->obj.close();
  return 0;
}
int srv_address(lua_State* L) {
  push_address(L, check_object<srv_ud>(L, 1, kSrvMagic, "conch.server")->obj.local());
  return 1;
}
int udp_close(lua_State* L) {
  check_object<udp_ud>(L, 1, kUdpMagic, "conch.udp")->obj.close();
  return 0;
}
int udp_address(lua_State* L) {
  push_address(L, check_object<udp_ud>(L, 1, kUdpMagic, "conch.udp")->obj.local());
  return 1;
}
// usock:join(group [, iface]) -> true | nil, msg, code
int udp_join(lua_State* L) {
  udp_ud* u = check_object<udp_ud>(L, 1, kUdpMagic, "conch.udp");
  const char* group = luaL_checkstring(L, 2);
  const char* iface = luaL_optstring(L, 3, "");
  absl::Status st = u->obj.join_multicast(group, iface);
  if (st.ok()) {
    lua_pushboolean(L, 1);
    return 1;
  }
  return push_status(L, st);
}

void make_object_mt(lua_State* L, host* h, const char* name, lua_CFunction index, lua_CFunction gc,
                    std::initializer_list<std::pair<const char*, lua_CFunction>> methods,
                    const char* key) {
  lua_createtable(L, 0, 4);
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  lua_pushlightuserdata(L, h);
  lua_createtable(L, 0, static_cast<int>(methods.size()));
  for (const auto& [mname, fn] : methods) {
    lua_pushlightuserdata(L, h);
    lua_pushcclosure(L, fn, 1);
    lua_setfield(L, -2, mname);
  }
  lua_pushcclosure(L, index, 2);  // upvalues: host, methods
  lua_setfield(L, -2, "__index");
  lua_rawsetp(L, LUA_REGISTRYINDEX, key);
}

// ---- listen / udp: run on the home loop ----

struct listen_job {
  std::string addr;
  net::options opts;
  absl::StatusOr<net::server> result{absl::UnknownError("not run")};
};
struct udp_job {
  std::string addr;
  net::options opts;
  absl::StatusOr<net::udp_socket> result{absl::UnknownError("not run")};
};

template <class Job>
Job* new_job(holder* hd, const char* addr, std::size_t n, const net::options& o) noexcept {
  try {
    auto* j = new Job;
    j->addr.assign(addr, n);
    j->opts = o;
    hd->p = j;
    hd->del = &delete_as<Job>;
    return j;
  } catch (...) {
    return nullptr;
  }
}

// conch.listen(addr [, opts]) -> server | nil, err, code
int l_listen(lua_State* L) {
  host* h = host_of(L);
  std::size_t n = 0;
  const char* addr = luaL_checklstring(L, 1, &n);
  net::options o = check_options(L, 2);
  holder* hd = push_holder(L);
  auto* j = new_job<listen_job>(hd, addr, n, o);
  if (j == nullptr) return raise_no_memory(L);
  h->call_on_loop(
      [](void* p) noexcept {
        auto* job = static_cast<listen_job*>(p);
        job->result = net::listen(job->addr, job->opts);
      },
      j);
  if (!j->result.ok()) return push_status(L, j->result.status());
  push_object<srv_ud>(L, *j->result, kSrvMagic, 1, &srv_mt_key);
  push_typed_chan(L, j->result->connections);
  lua_setiuservalue(L, -2, 1);
  return 1;
}

// conch.udp(addr [, opts]) -> udp socket | nil, err, code
int l_udp(lua_State* L) {
  host* h = host_of(L);
  std::size_t n = 0;
  const char* addr = luaL_checklstring(L, 1, &n);
  net::options o = check_options(L, 2);
  holder* hd = push_holder(L);
  auto* j = new_job<udp_job>(hd, addr, n, o);
  if (j == nullptr) return raise_no_memory(L);
  h->call_on_loop(
      [](void* p) noexcept {
        auto* job = static_cast<udp_job*>(p);
        job->result = net::bind_udp(job->addr, job->opts);
      },
      j);
  if (!j->result.ok()) return push_status(L, j->result.status());
  push_object<udp_ud>(L, *j->result, kUdpMagic, 2, &udp_mt_key);
  push_typed_chan(L, j->result->in);
  lua_setiuservalue(L, -2, 1);
  push_typed_chan(L, j->result->out);
  lua_setiuservalue(L, -2, 2);
  return 1;
}

// ---- connect / resolve: a C++ go block on the home loop, a one-slot channel ----

struct connect_job {
  std::string addr;
  net::options opts;
  conch::chan<net::socket> result{1};  // closes empty on failure
  absl::Status status;                 // written before result closes
};
struct resolve_job {
  std::string addr;
  net::options opts;  // unused
  conch::chan<value> result{1};
  absl::Status status;
};

conch::task<void> connect_body(std::shared_ptr<connect_job> j) {
  absl::StatusOr<net::socket> s = co_await net::connect(j->addr, j->opts);
  if (s.ok())
    j->result.try_send(*s);
  else
    j->status = s.status();
  j->result.close();
}

conch::task<void> resolve_body(std::shared_ptr<resolve_job> j) {
  absl::StatusOr<std::vector<net::address>> r = co_await net::resolve(j->addr);
  if (r.ok()) {
    auto t = std::make_shared<table>();
    std::int64_t i = 0;
    for (const net::address& a : *r) t->entries.emplace_back(value(++i), value(a.to_string()));
    j->result.try_send(value(value::table_ptr(std::move(t))));
  } else {
    j->status = r.status();
  }
  j->result.close();
}

template <class Job>
struct job_ref {
  std::shared_ptr<Job> j;
};

// After the receive: the socket (or list), or nil, err, code. Stack: [.., holder].
template <class Job>
int k_job(lua_State* L, int, lua_KContext ctx) {
  request* r = reinterpret_cast<host*>(ctx)->op_request();
  op_case& c = r->cases[0];
  if (r->ok && c.full) {
    r->kind = op::single;  // busy while pushing
    push_elem(L, c.type, c.slot.raw());
    r->clear();
    return 1;
  }
  r->clear();
  auto* hd = static_cast<holder*>(lua_touserdata(L, 3));
  auto* ref = static_cast<job_ref<Job>*>(hd->p);
  absl::Status st = ref->j->status;
  if (st.ok()) st = absl::UnknownError("the operation was abandoned");
  return push_status(L, st);
}

template <class Job>
int start_job(lua_State* L, conch::task<void> (*body)(std::shared_ptr<Job>), elem type) {
  host* h = host_of(L);
  std::size_t n = 0;
  const char* addr = luaL_checklstring(L, 1, &n);
  net::options o = lua_gettop(L) >= 2 ? check_options(L, 2) : net::options{};
  lua_settop(L, 2);
  holder* hd = push_holder(L);  // index 3
  struct start_args {
    holder* hd;
    const char* addr;
    std::size_t n;
    const net::options* o;
    conch::task<void> (*body)(std::shared_ptr<Job>);
    bool ok;
  } a{hd, addr, n, &o, body, false};
  // Builds the job and starts its go block on the home loop.
  h->call_on_loop(
      [](void* p) noexcept {
        auto* s = static_cast<start_args*>(p);
        try {
          auto ref = std::make_unique<job_ref<Job>>();
          ref->j = std::make_shared<Job>();
          ref->j->addr.assign(s->addr, s->n);
          ref->j->opts = *s->o;
          conch::go(s->body(ref->j));
          s->hd->p = ref.release();
          s->hd->del = &delete_as<job_ref<Job>>;
          s->ok = true;
        } catch (...) {
        }
      },
      &a);
  if (!a.ok) return raise_no_memory(L);
  auto* ref = static_cast<job_ref<Job>*>(hd->p);
  return recv_core(L, h, conch::detail::get_core(ref->j->result), type, &k_job<Job>);
}

// conch.connect(addr [, opts]) -> socket | nil, err, code
int l_connect(lua_State* L) { return start_job<connect_job>(L, &connect_body, elem::socket); }

// conch.resolve(host) -> {"addr", ...} | nil, err, code
int l_resolve(lua_State* L) { return start_job<resolve_job>(L, &resolve_body, elem::value); }

// conch.interfaces() -> {{name=, family="inet"|"inet6", addr=, netmask=, index=, up=,
//                         loopback=, multicast=}, ...} | nil, err, code
struct ifaces_job {
  absl::StatusOr<std::vector<net::interface_info>> result{absl::UnknownError("not run")};
};

int l_interfaces(lua_State* L) {
  holder* hd = push_holder(L);
  ifaces_job* j = nullptr;
  try {
    j = new ifaces_job;
    hd->p = j;
    hd->del = &delete_as<ifaces_job>;
    j->result = net::interfaces();
  } catch (...) {
  }
  if (j == nullptr) return raise_no_memory(L);
  if (!j->result.ok()) return push_status(L, j->result.status());
  const auto& list = *j->result;
  lua_createtable(L, static_cast<int>(list.size()), 0);
  lua_Integer i = 0;
  for (const net::interface_info& info : list) {
    lua_createtable(L, 0, 8);
    lua_pushstring(L, info.name.c_str());
    lua_setfield(L, -2, "name");
    lua_pushstring(L, info.family == AF_INET6 ? "inet6" : "inet");
    lua_setfield(L, -2, "family");
    push_address(L, info.addr);
    lua_setfield(L, -2, "addr");
    push_address(L, info.netmask);
    lua_setfield(L, -2, "netmask");
    lua_pushinteger(L, static_cast<lua_Integer>(info.index));
    lua_setfield(L, -2, "index");
    lua_pushboolean(L, info.up);
    lua_setfield(L, -2, "up");
    lua_pushboolean(L, info.loopback);
    lua_setfield(L, -2, "loopback");
    lua_pushboolean(L, info.multicast);
    lua_setfield(L, -2, "multicast");
    lua_rawseti(L, -2, ++i);
  }
  return 1;
}

void set_fn(lua_State* L, host* h, lua_CFunction f, const char* name) {
  lua_pushlightuserdata(L, h);
  lua_pushcclosure(L, f, 1);
  lua_setfield(L, -2, name);
}

}  // namespace

// ---- conversions used by convert.cpp ----

void push_socket(lua_State* L, const net::socket& s) {
  push_object<sock_ud>(L, s, kSockMagic, 2, &sock_mt_key);
  push_typed_chan(L, s.in);
  lua_setiuservalue(L, -2, 1);
  push_typed_chan(L, s.out);
  lua_setiuservalue(L, -2, 2);
}

const net::socket* to_socket(lua_State* L, int idx) noexcept {
  sock_ud* u = to_object<sock_ud>(L, idx, kSockMagic);
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
  make_object_mt(L, h, "conch.socket", sock_index, object_gc<sock_ud>,
                 {{"close", sock_close}, {"peer", sock_peer}, {"address", sock_address},
                  {"status", sock_status}},
                 &sock_mt_key);
  make_object_mt(L, h, "conch.server", srv_index, object_gc<srv_ud>,
                 {{"close", srv_close}, {"address", srv_address}}, &srv_mt_key);
  make_object_mt(L, h, "conch.udp", udp_index, object_gc<udp_ud>,
                 {{"close", udp_close}, {"address", udp_address}, {"join", udp_join}}, &udp_mt_key);
}

void add_net_functions(lua_State* L, host* h) {
  set_fn(L, h, l_listen, "listen");
  set_fn(L, h, l_connect, "connect");
  set_fn(L, h, l_udp, "udp");
  set_fn(L, h, l_resolve, "resolve");
  set_fn(L, h, l_interfaces, "interfaces");
}

}  // namespace conch::lua::detail
