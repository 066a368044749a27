// lua/netlib.cpp
// The net library's functions: conch.listen, connect, udp, resolve, interfaces, and their options.
//
// listen and bind_udp must run on a runtime thread, so they run on the home
// loop (through host::call_on_loop from the outside thread). connect and
// resolve are tasks: a C++ go block on the home loop runs them and hands the
// result over a one-slot channel that the Lua side receives from (parking a
// go block, or blocking the outside thread), so they never block the loop.
// Errors follow the Lua convention: nil, message, code name (UNAVAILABLE...).
//
// Invariants:
//  - C++ results live in heap jobs owned by a holder userdata (its __gc
//    frees them, lua/netobj.cpp) while Lua calls that may raise run.
//  - A connect/resolve job is shared by its go block and the holder; the go
//    block writes `status` before it closes `result`, so a receive that saw
//    the close sees the status.
// Lock order: no lock is held here (call_on_loop waits on the host's mu_).
#include <chrono>
#include <climits>
#include <cstring>
#include <string_view>
#include <type_traits>
#include <new>
#include <optional>

#include "conch/chan/go.hpp"
#include "lua/bridge.hpp"

namespace conch::lua::detail {

namespace {

// ---- options ----

const char* const listen_keys[] = {"framing", "delimiter", "in_capacity", "out_capacity",
                                   "max_frame", "backlog", "unix_mode", "tls", nullptr};
const char* const connect_keys[] = {"framing", "delimiter", "in_capacity", "out_capacity",
                                    "max_frame", "connect_timeout", "tls", nullptr};
const char* const udp_keys[] = {"in_capacity", "out_capacity", nullptr};
const char* const starttls_keys[] = {"framing",         "delimiter", "in_capacity", "out_capacity", "max_frame",
                                     "connect_timeout", "tls",       "server",      nullptr};

// Where a key another function takes belongs (for the unknown-option error).
const char* net_hint(const char* key) {
  std::string_view k(key);
  if (k == "connect_timeout") return "it is an option of conch.connect";
  if (k == "backlog" || k == "unix_mode") return "it is an option of conch.listen";
  if (k == "framing" || k == "delimiter" || k == "max_frame" || k == "tls")
    return "it is an option of conch.listen and conch.connect (a datagram is one frame)";
  if (k == "frame" || k == "framer" || k == "mode") return "did you mean framing?";
  return nullptr;
}

const option_names listen_options{"conch.listen", listen_keys, net_hint};
const option_names connect_options{"conch.connect", connect_keys, net_hint};
const option_names udp_options{"conch.udp", udp_keys, net_hint};
const option_names starttls_options{"sock:starttls", starttls_keys, net_hint};

constexpr lua_Integer kMaxSize = lua_Integer{1} << 40;

// Reads t[name] (an integer from 1 to max) into field, if present. The
// limits: capacities net::options::max_capacity (slots are allocated up
// front), max_frame kMaxSize.
void size_field(lua_State* L, int idx, const char* fn, const char* name, std::size_t& field,
                lua_Integer max = kMaxSize) {
  lua_Integer v = 0;
  if (opt_integer(L, idx, fn, name, 1, max, &v)) field = static_cast<std::size_t>(v);
}

// Reads the framing= (and delimiter=) keys into o.frame.
void check_framing(lua_State* L, int idx, const char* fn, net::options& o) {
  int ft = lua_getfield(L, idx, "framing");
  bool delimited = false;
  if (ft != LUA_TNIL) {
    if (ft != LUA_TSTRING) raise_option_type(L, fn, "framing", "a string", -1);
    const char* f = lua_tostring(L, -1);
    std::string_view fr(f);
    if (fr == "raw") {
      o.frame = net::framing::raw();
    } else if (fr == "lines") {
      o.frame = net::framing::lines();
    } else if (fr == "length" || fr == "length_prefixed") {
      o.frame = net::framing::length_prefixed();
    } else if (fr == "delimited") {
      delimited = true;
    } else {
      luaL_error(L, "%s: option 'framing' must be raw, lines, length or delimited (got %s)", fn, f);
    }
  }
  lua_pop(L, 1);
  // One delimiter byte (form feed by default), only with framing = "delimited".
  int dt = lua_getfield(L, idx, "delimiter");
  if (dt != LUA_TNIL && !delimited)
    luaL_error(L, "%s: option 'delimiter' needs framing = \"delimited\"", fn);
  if (delimited) {
    if (dt != LUA_TNIL && dt != LUA_TSTRING) raise_option_type(L, fn, "delimiter", "a one-byte string", -1);
    std::size_t n = 1;
    const char* d = dt == LUA_TNIL ? "\f" : lua_tolstring(L, -1, &n);
    if (n != 1) luaL_error(L, "%s: option 'delimiter' must be one byte (got %d bytes)", fn, static_cast<int>(n));
    o.frame = net::framing::delimited(d[0]);
  }
  lua_pop(L, 1);
}

// Reads the option table at idx (nil: the defaults), checked against `names`:
// {framing = "raw"|"lines"|"length"|"delimited", delimiter = "\f",
//  in_capacity =, out_capacity =, max_frame =, backlog =, unix_mode =,
//  connect_timeout = ms (0: none), tls = true | {cert=, key=, ca=, verify=, server_name=}
//  (read by check_tls)}
net::options check_options(lua_State* L, int idx, const option_names& names) {
  net::options o;
  if (lua_isnoneornil(L, idx)) return o;  // the defaults
  if (!lua_istable(L, idx)) luaL_typeerror(L, idx, "nil or a table of options");
  check_option_keys(L, idx, names);
  const char* fn = names.fn;
  if (names.takes != udp_keys) check_framing(L, idx, fn, o);
  constexpr auto cap_limit = static_cast<lua_Integer>(net::options::max_capacity);
  size_field(L, idx, fn, "in_capacity", o.in_capacity, cap_limit);
  size_field(L, idx, fn, "out_capacity", o.out_capacity, cap_limit);
  size_field(L, idx, fn, "max_frame", o.max_frame);
  lua_Integer v = 0;
  if (opt_integer(L, idx, fn, "backlog", 1, 1 << 20, &v)) o.backlog = static_cast<int>(v);
  if (opt_integer(L, idx, fn, "unix_mode", 0, 07777, &v)) o.unix_mode = static_cast<unsigned>(v);
  if (opt_integer(L, idx, fn, "connect_timeout", 0, kMaxSize, &v)) o.connect_timeout = std::chrono::milliseconds(v);
  return o;
}

// ---- listen / udp: run on the home loop ----

template <class Result>
struct bind_job {
  std::string addr;
  net::options opts;
  absl::StatusOr<Result> result{absl::UnknownError("not run")};
};
using listen_job = bind_job<net::server>;
using udp_job = bind_job<net::udp_socket>;

template <class Job>
Job* new_job(holder* hd, const char* addr, std::size_t n, const net::options& o, const lua_tls& tls) noexcept {
  try {
    auto* j = new Job;
    hd->p = j;
    hd->del = &delete_as<Job>;
    j->addr.assign(addr, n);
    j->opts = o;
    if (!apply_tls(tls, j->opts.tls)) return nullptr;
    return j;
  } catch (...) {
    return nullptr;
  }
}

// Runs bind(addr, opts) on the home loop into a job owned by a holder at
// the top of the stack; pushes the object (push) or nil, err, code.
template <class Result>
int run_bind(lua_State* L, const option_names& names, void (*bind)(void*) noexcept,
             void (*push)(lua_State*, const Result&)) {
  host* h = host_of(L);
  check_max_args(L, 2, names.fn);
  std::size_t n = 0;
  const char* addr = luaL_checklstring(L, 1, &n);
  net::options o = check_options(L, 2, names);
  lua_tls tls;
  check_tls(L, 2, tls);
  if (tls.set && std::is_same_v<Result, net::udp_socket>) luaL_error(L, "conch.udp: tls is for stream sockets");
  holder* hd = push_holder(L);
  auto* j = new_job<bind_job<Result>>(hd, addr, n, o, tls);
  if (j == nullptr) return raise_no_memory(L);
  h->call_on_loop(bind, j);
  if (!j->result.ok()) return push_status(L, j->result.status());
  push(L, *j->result);
  return 1;
}

// conch.listen(addr [, opts]) -> server | nil, err, code
int l_listen(lua_State* L) {
  return run_bind<net::server>(
      L, listen_options,
      [](void* p) noexcept {
        auto* job = static_cast<listen_job*>(p);
        job->result = net::listen(job->addr, job->opts);
      },
      &push_server);
}

// conch.udp(addr [, opts]) -> udp socket | nil, err, code
int l_udp(lua_State* L) {
  return run_bind<net::udp_socket>(
      L, udp_options,
      [](void* p) noexcept {
        auto* job = static_cast<udp_job*>(p);
        job->result = net::bind_udp(job->addr, job->opts);
      },
      &push_udp);
}

// ---- connect / resolve: a C++ go block on the home loop, a one-slot channel ----

template <class T>
struct async_job {
  std::string addr;
  net::options opts;                  // unused by resolve
  conch::chan<T> result{1};           // closes empty on failure
  absl::Status status;                // written before result closes
};
using connect_job = async_job<net::socket>;
using resolve_job = async_job<value>;

// The go blocks below close `result` on every path, an exception included
// (std::bad_alloc): the Lua side waits on it and would otherwise wait forever.
conch::task<void> connect_body(std::shared_ptr<connect_job> j) {
  try {
    absl::StatusOr<net::socket> s = co_await net::connect(j->addr, j->opts);
    if (s.ok())
      j->result.try_send(*s);
    else
      j->status = s.status();
  } catch (const std::exception& e) {
    j->status = absl::InternalError(std::string("connect: ") + e.what());
  }
  j->result.close();
}

conch::task<void> resolve_body(std::shared_ptr<resolve_job> j) {
  try {
    absl::StatusOr<std::vector<net::address>> r = co_await net::resolve(j->addr);
    if (r.ok()) {
      // The addresses as a Lua list of strings.
      auto t = std::make_shared<table>();
      std::int64_t i = 0;
      for (const net::address& a : *r) t->entries.emplace_back(value(++i), value(a.to_string()));
      j->result.try_send(value(value::table_ptr(std::move(t))));
    } else {
      j->status = r.status();
    }
  } catch (const std::exception& e) {
    j->status = absl::InternalError(std::string("resolve: ") + e.what());
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
  request* r = host_from(ctx)->op_request();
  bool pushed = push_received(L, r, 0);
  r->clear();
  if (pushed) return 1;
  // Closed empty: the job failed (or was abandoned at shutdown).
  auto* hd = static_cast<holder*>(lua_touserdata(L, 3));
  auto* ref = static_cast<job_ref<Job>*>(hd->p);
  absl::Status st = ref->j->status;
  if (st.ok()) st = absl::UnknownError("the operation was abandoned");
  return push_status(L, st);
}

template <class Job>
int start_job(lua_State* L, conch::task<void> (*body)(std::shared_ptr<Job>), elem type,
              const option_names* names, const char* fn) {
  host* h = host_of(L);
  check_max_args(L, names != nullptr ? 2 : 1, fn);
  std::size_t n = 0;
  const char* addr = luaL_checklstring(L, 1, &n);
  net::options o = names != nullptr ? check_options(L, 2, *names) : net::options{};
  lua_tls tls;
  check_tls(L, 2, tls);
  lua_settop(L, 2);
  holder* hd = push_holder(L);  // index 3
  struct start_args {
    holder* hd;
    const char* addr;
    std::size_t n;
    const net::options* o;
    const lua_tls* tls;
    conch::task<void> (*body)(std::shared_ptr<Job>);
    bool ok;
  } a{hd, addr, n, &o, &tls, body, false};
  // Builds the job and starts its go block on the home loop.
  h->call_on_loop(
      [](void* p) noexcept {
        auto* s = static_cast<start_args*>(p);
        try {
          auto ref = std::make_unique<job_ref<Job>>();
          ref->j = std::make_shared<Job>();
          ref->j->addr.assign(s->addr, s->n);
          ref->j->opts = *s->o;
          if (!apply_tls(*s->tls, ref->j->opts.tls)) return;  // out of memory: s->ok stays false
          conch::go(s->body(ref->j));
          s->hd->p = ref.release();
          s->hd->del = &delete_as<job_ref<Job>>;
          s->ok = true;
        } catch (...) {
          // Out of memory: s->ok stays false.
        }
      },
      &a);
  if (!a.ok) return raise_no_memory(L);
  auto* ref = static_cast<job_ref<Job>*>(hd->p);
  return recv_core(L, h, conch::detail::get_core(ref->j->result), type, &k_job<Job>);
}

// conch.connect(addr [, opts]) -> socket | nil, err, code
int l_connect(lua_State* L) {
  return start_job<connect_job>(L, &connect_body, elem::socket, &connect_options, "conch.connect");
}

// ---- sock:starttls ----

// The upgrade of one socket: connect_job's result and status, plus the
// plain socket and the role.
struct starttls_job : connect_job {
  std::optional<net::socket> plain;
  bool server = false;
};

conch::task<void> starttls_body(std::shared_ptr<starttls_job> j) {
  try {
    const net::tls_role role = j->server ? net::tls_role::server : net::tls_role::client;
    absl::StatusOr<net::socket> s = co_await net::start_tls(*j->plain, j->opts, role);
    if (s.ok())
      j->result.try_send(*s);
    else
      j->status = s.status();
  } catch (const std::exception& e) {
    j->status = absl::InternalError(std::string("starttls: ") + e.what());
  }
  j->plain.reset();
  j->result.close();
}

}  // namespace

// sock:starttls{tls = true | {...}, server = false, framing = ..., connect_timeout = ms, ...}
//   -> the TLS socket | nil, err, code
// net::start_tls on the socket (read nothing unread first; the plain socket
// must be raw-framed); parks like conch.connect until the handshake is done.
int sock_starttls(lua_State* L) {
  host* h = host_of(L);
  check_max_args(L, 2, starttls_options.fn);
  const net::socket* plain = check_socket(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  net::options o = check_options(L, 2, starttls_options);  // no tls yet: nothing to free on a raise
  lua_tls tls;
  check_tls(L, 2, tls);
  if (!tls.set) return luaL_error(L, "sock:starttls: option 'tls' is required (true or a table)");
  int server = 0;
  if (int t = lua_getfield(L, 2, "server"); t != LUA_TNIL) {
    if (t != LUA_TBOOLEAN) raise_option_type(L, starttls_options.fn, "server", "a boolean", -1);
    server = lua_toboolean(L, -1);
  }
  lua_settop(L, 2);
  holder* hd = push_holder(L);  // index 3, as k_job expects
  struct start_args {
    holder* hd;
    const net::socket* plain;
    const net::options* o;
    const lua_tls* tls;
    bool server;
    bool ok;
  } a{hd, plain, &o, &tls, server != 0, false};
  h->call_on_loop(
      [](void* p) noexcept {
        auto* s = static_cast<start_args*>(p);
        try {
          auto ref = std::make_unique<job_ref<starttls_job>>();
          ref->j = std::make_shared<starttls_job>();
          ref->j->plain.emplace(*s->plain);
          ref->j->opts = *s->o;
          ref->j->server = s->server;
          if (!apply_tls(*s->tls, ref->j->opts.tls)) return;  // out of memory: s->ok stays false
          conch::go(starttls_body(ref->j));
          s->hd->p = ref.release();
          s->hd->del = &delete_as<job_ref<starttls_job>>;
          s->ok = true;
        } catch (...) {
          // Out of memory: s->ok stays false.
        }
      },
      &a);
  if (!a.ok) return raise_no_memory(L);
  auto* ref = static_cast<job_ref<starttls_job>*>(hd->p);
  return recv_core(L, h, conch::detail::get_core(ref->j->result), elem::socket, &k_job<starttls_job>);
}

namespace {

// conch.resolve(host) -> {"addr", ...} | nil, err, code
int l_resolve(lua_State* L) {
  return start_job<resolve_job>(L, &resolve_body, elem::value, nullptr, "conch.resolve");
}

// ---- interfaces ----

// conch.interfaces() -> {{name=, family="inet"|"inet6", addr=, netmask=, index=, up=,
//                         loopback=, multicast=}, ...} | nil, err, code
struct ifaces_job {
  absl::StatusOr<std::vector<net::interface_info>> result{absl::UnknownError("not run")};
};

int l_interfaces(lua_State* L) {
  check_max_args(L, 0, "conch.interfaces");
  holder* hd = push_holder(L);
  ifaces_job* j = nullptr;
  try {
    j = new ifaces_job;
    hd->p = j;
    hd->del = &delete_as<ifaces_job>;
    j->result = net::interfaces();
  } catch (...) {
    // Out of memory: j is null, or holds what it got (the holder frees it).
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

const luaL_Reg net_functions[] = {
    {"listen", l_listen},   {"connect", l_connect},       {"udp", l_udp},
    {"resolve", l_resolve}, {"interfaces", l_interfaces}, {nullptr, nullptr},
};

}  // namespace

void add_net_functions(lua_State* L, host* h) { set_closures(L, h, net_functions); }

}  // namespace conch::lua::detail
