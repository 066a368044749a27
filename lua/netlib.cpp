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
#include <new>

#include "conch/chan/go.hpp"
#include "lua/bridge.hpp"

namespace conch::lua::detail {

namespace {

// ---- options ----

// Reads t[name] (an integer from 1 to max) into field, if present. The
// limits: capacities net::options::max_capacity (slots are allocated up
// front), backlog INT_MAX, max_frame none beyond 1.
void size_field(lua_State* L, int idx, const char* name, std::size_t& field,
                lua_Integer max = LUA_MAXINTEGER) {
  if (lua_getfield(L, idx, name) != LUA_TNIL) {
    lua_Integer v = luaL_checkinteger(L, -1);
    if (v < 1) luaL_error(L, "conch: %s must be at least 1", name);
    if (v > max) luaL_error(L, "conch: %s of %I is over the limit of %I", name, v, max);
    field = static_cast<std::size_t>(v);
  }
  lua_pop(L, 1);
}

// Reads the framing= (and delimiter=) keys into o.frame.
void check_framing(lua_State* L, int idx, net::options& o) {
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
      // One delimiter byte, form feed by default.
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
}

// {framing = "raw"|"lines"|"length"|"delimited", delimiter = "\f",
//  in_capacity =, out_capacity =, max_frame =, backlog =, connect_timeout = ms (0: none)}
net::options check_options(lua_State* L, int idx) {
  net::options o;
  if (lua_isnoneornil(L, idx)) return o;  // the defaults
  luaL_checktype(L, idx, LUA_TTABLE);
  check_framing(L, idx, o);
  constexpr auto cap_limit = static_cast<lua_Integer>(net::options::max_capacity);
  size_field(L, idx, "in_capacity", o.in_capacity, cap_limit);
  size_field(L, idx, "out_capacity", o.out_capacity, cap_limit);
  size_field(L, idx, "max_frame", o.max_frame);
  std::size_t backlog = static_cast<std::size_t>(o.backlog);
  size_field(L, idx, "backlog", backlog, INT_MAX);
  o.backlog = static_cast<int>(backlog);
  if (lua_getfield(L, idx, "connect_timeout") != LUA_TNIL) {
    lua_Integer ms = luaL_checkinteger(L, -1);
    if (ms < 0) luaL_error(L, "conch: connect_timeout must be milliseconds >= 0 (0: none)");
    o.connect_timeout = std::chrono::milliseconds(ms);
  }
  lua_pop(L, 1);
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

// Runs bind(addr, opts) on the home loop into a job owned by a holder at
// the top of the stack; pushes the object (push) or nil, err, code.
template <class Result>
int run_bind(lua_State* L, void (*bind)(void*) noexcept, void (*push)(lua_State*, const Result&)) {
  host* h = host_of(L);
  std::size_t n = 0;
  const char* addr = luaL_checklstring(L, 1, &n);
  net::options o = check_options(L, 2);
  holder* hd = push_holder(L);
  auto* j = new_job<bind_job<Result>>(hd, addr, n, o);
  if (j == nullptr) return raise_no_memory(L);
  h->call_on_loop(bind, j);
  if (!j->result.ok()) return push_status(L, j->result.status());
  push(L, *j->result);
  return 1;
}

// conch.listen(addr [, opts]) -> server | nil, err, code
int l_listen(lua_State* L) {
  return run_bind<net::server>(
      L,
      [](void* p) noexcept {
        auto* job = static_cast<listen_job*>(p);
        job->result = net::listen(job->addr, job->opts);
      },
      &push_server);
}

// conch.udp(addr [, opts]) -> udp socket | nil, err, code
int l_udp(lua_State* L) {
  return run_bind<net::udp_socket>(
      L,
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
          // Out of memory: s->ok stays false.
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

// ---- interfaces ----

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
