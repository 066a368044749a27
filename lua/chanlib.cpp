// lua/chanlib.cpp
// The channel library: channel methods and metatable, conch.chan / promise / timeout.
//
// A channel object is a chan_ud userdata (lua/convert.hpp) whose methods run
// their operation through run_op (lua/request.cpp): at once if it can
// complete, else parking the go block or blocking the outside thread.
//
// Invariants:
//  - A chan_ud is built (magic set, box holding the channel) before it gets
//    the metatable, so __gc never sees garbage; __gc unbuilds it once.
//  - An operation's values live in the running code's request, never in a
//    C++ local, so a raise while pushing leaks nothing.
// Lock order: no lock is held here; channel operations lock their channel.
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <string>

#include "conch/chan/buffer.hpp"
#include "lua/bridge.hpp"

namespace conch::lua::detail {

namespace {

chan_ud* check_chan(lua_State* L, int idx) {
  chan_ud* ud = to_chan_ud(L, idx);
  if (ud == nullptr) luaL_typeerror(L, idx, "conch.chan");
  return ud;
}

// ---- continuations: push the outcome of a completed request ----

int k_send(lua_State* L, int, lua_KContext ctx) {
  request* r = host_from(ctx)->op_request();
  bool ok = r->ok;
  r->clear();
  lua_pushboolean(L, ok ? 1 : 0);
  return 1;
}

int k_recv(lua_State* L, int, lua_KContext ctx) {
  host* h = host_from(ctx);
  request* r = h->op_request();
  if (!push_received(L, r, 0)) lua_pushnil(L);  // closed and drained
  op_case& c = r->cases[0];
  // A received string is in Lua now: keep its buffer for the next string send.
  if (c.full && c.type == elem::string) h->keep_spare(std::move(*static_cast<std::string*>(c.slot.raw())));
  r->clear();
  return 1;
}

// Builds the string [p, p+n) in raw storage `out`, in the host's spare
// buffer when it has one (see host::keep_spare). Never raises.
conv_error build_string(host* h, void* out, const char* p, std::size_t n) noexcept {
  auto* s = new (out) std::string(h->take_spare());
  try {
    s->assign(p, n);
  } catch (const std::bad_alloc&) {
    std::destroy_at(s);
    return conv_error::no_memory;
  }
  return conv_error::none;
}

// The value of the number or boolean at index 2 (`type` is its lua_type).
// Never raises.
value build_scalar(lua_State* L, int type) noexcept {
  if (type == LUA_TBOOLEAN) return value(lua_toboolean(L, 2) != 0);
  // Only a Lua integer becomes an integer value (2.0 stays a float), as in to_value.
  if (lua_isinteger(L, 2)) return value(static_cast<std::int64_t>(lua_tointeger(L, 2)));
  return value(static_cast<double>(lua_tonumber(L, 2)));
}

// Prepares a single operation on channel ud (argument 1) in the running
// code's request: a send converts argument 2 into the request's slot.
// Raises on failure, after clearing the request.
request* prepare_single(lua_State* L, host* h, bool is_send) {
  chan_ud* ud = check_chan(L, 1);
  request* r = get_request(L, h);
  if (!r->reset(1)) {
    raise_no_memory(L);  // never returns
    return nullptr;
  }
  r->kind = op::single;
  op_case& c = r->cases[0];
  c.core = ud->core;
  c.type = ud->type;
  c.is_send = is_send;
  if (is_send) {
    int bad = LUA_TNONE;
    std::size_t limit = ud->box->max_value();
    conv_error e;
    const int type = lua_type(L, 2);
    if (c.type == elem::value && (type == LUA_TNUMBER || type == LUA_TBOOLEAN)) {
      // The common scalar send (ping-pong's): built in place, skipping to_elem's
      // second type dispatch and the variant reassignment (bench/NOTES.md,
      // "Lua round trip"). Same values as to_value: integers stay integers.
      new (c.slot.raw()) value(build_scalar(L, type));
      e = conv_error::none;
    } else if (c.type == elem::string && type == LUA_TSTRING) {
      // The common string send (an echo's): no allocation when a buffer is spare.
      std::size_t n = 0;
      const char* p = lua_tolstring(L, 2, &n);
      e = build_string(h, c.slot.raw(), p, n);
    } else {
      e = to_elem(L, 2, c.type, c.slot.raw(), &bad, limit);
    }
    if (e != conv_error::none) {
      // Not convertible: nothing was built; raise with the request idle.
      r->clear();
      raise_conv_error(L, e, bad, limit);
    }
    c.full = true;
  }
  return r;
}

// ---- channel methods ----

int m_send(lua_State* L) {
  host* h = host_of(L);
  request* r = prepare_single(L, h, true);
  return run_op(L, h, r, k_send);  // the stack keeps ch (and v) while parked
}

int m_recv(lua_State* L) {
  host* h = host_of(L);
  request* r = prepare_single(L, h, false);
  return run_op(L, h, r, k_recv);
}

int m_try_send(lua_State* L) {
  host* h = host_of(L);
  request* r = prepare_single(L, h, true);
  r->start(nullptr);  // fired >= 0 iff it committed; ok says how
  return k_send(L, LUA_OK, host_ctx(h));
}

int m_try_recv(lua_State* L) {
  host* h = host_of(L);
  request* r = prepare_single(L, h, false);
  r->start(nullptr);
  return k_recv(L, LUA_OK, host_ctx(h));
}

// ch:iter() -> recv, ch: `for v in ch:iter() do ... end` receives until ch
// is closed and drained (Go's range); the for loop calls recv directly.
int m_iter(lua_State* L) {
  check_chan(L, 1);
  lua_pushvalue(L, lua_upvalueindex(2));  // the recv method
  lua_pushvalue(L, 1);
  return 2;
}

int m_close(lua_State* L) {
  check_chan(L, 1)->core->close();
  return 0;
}

int m_closed(lua_State* L) {
  lua_pushboolean(L, check_chan(L, 1)->core->closed() ? 1 : 0);
  return 1;
}

int m_size(lua_State* L) {
  lua_pushinteger(L, static_cast<lua_Integer>(check_chan(L, 1)->core->size()));
  return 1;
}

int m_gc(lua_State* L) {
  auto* ud = static_cast<chan_ud*>(lua_touserdata(L, 1));
  if (ud != nullptr && ud->core != nullptr) {
    // Built and not yet collected: drop our handle on the channel.
    std::destroy_at(&ud->box);
    ud->core = nullptr;
    ud->magic = 0;
  }
  return 0;
}

int m_eq(lua_State* L) {
  chan_ud* a = to_chan_ud(L, 1);
  chan_ud* b = to_chan_ud(L, 2);
  lua_pushboolean(L, a != nullptr && b != nullptr && a->core == b->core ? 1 : 0);
  return 1;
}

int m_tostring(lua_State* L) {
  chan_ud* ud = check_chan(L, 1);
  static const char* const kinds[] = {"", "<string>", "<integer>", "<number>", "<socket>", "<datagram>"};
  lua_pushfstring(L, "conch.chan%s: %p", kinds[static_cast<int>(ud->type)], static_cast<void*>(ud->core));
  return 1;
}

const luaL_Reg chan_methods[] = {
    {"send", m_send},     {"recv", m_recv},     {"try_send", m_try_send}, {"try_recv", m_try_recv},
    {"close", m_close},   {"closed", m_closed}, {"size", m_size},         {nullptr, nullptr},
};

const luaL_Reg chan_metamethods[] = {
    {"__gc", m_gc}, {"__eq", m_eq}, {"__tostring", m_tostring}, {nullptr, nullptr},
};

// ---- constructors ----

// The largest Lua channel capacity (2^24 slots): a channel allocates its
// slots up front, so conch.chan(2^32) would exhaust memory (or kill the
// process) instead of failing. Documented in lua/DROPINS.md.
constexpr lua_Integer kMaxCapacity = lua_Integer{1} << 24;

const char* const chan_option_keys[] = {"fixed", "dropping", "sliding", "max_value", nullptr};
const option_names chan_options{"conch.chan", chan_option_keys,
                                [](const char* key) -> const char* {
                                  // The names people reach for first.
                                  if (std::strcmp(key, "size") == 0 || std::strcmp(key, "capacity") == 0 ||
                                      std::strcmp(key, "buffer") == 0)
                                    return "a fixed buffer of n is conch.chan(n) or {fixed=n}";
                                  return nullptr;
                                }};

// conch.chan() | conch.chan(n) | conch.chan{dropping=n | sliding=n | fixed=n, max_value=bytes}
int l_chan(lua_State* L) {
  check_max_args(L, 1, "conch.chan");
  conch::buffer b = conch::buffer::fixed(0);
  lua_Integer max_value = static_cast<lua_Integer>(default_max_value);
  switch (lua_type(L, 1)) {
    case LUA_TNONE:
    case LUA_TNIL:
      break;  // unbuffered
    case LUA_TNUMBER: {
      int isnum = 0;
      lua_Integer n = lua_tointegerx(L, 1, &isnum);
      if (isnum == 0) return luaL_error(L, "conch.chan: capacity must be an integer (got %f)", lua_tonumber(L, 1));
      if (n < 0) return luaL_error(L, "conch.chan: capacity must be 0 or more (got %I)", n);
      if (n > kMaxCapacity)
        return luaL_error(L, "conch.chan: a capacity of %I is over the limit of %I (2^24)", n, kMaxCapacity);
      b = conch::buffer::fixed(static_cast<std::size_t>(n));
      break;
    }
    case LUA_TTABLE: {
      check_option_keys(L, 1, chan_options);
      int found = 0;
      lua_Integer n = 0;
      if (opt_integer(L, 1, "conch.chan", "dropping", 1, kMaxCapacity, &n)) {
        b = conch::buffer::dropping(static_cast<std::size_t>(n));
        ++found;
      }
      if (opt_integer(L, 1, "conch.chan", "sliding", 1, kMaxCapacity, &n)) {
        b = conch::buffer::sliding(static_cast<std::size_t>(n));
        ++found;
      }
      if (opt_integer(L, 1, "conch.chan", "fixed", 0, kMaxCapacity, &n)) {
        b = conch::buffer::fixed(static_cast<std::size_t>(n));
        ++found;
      }
      if (found > 1) return luaL_error(L, "conch.chan: give one of dropping=, sliding=, fixed=");
      opt_integer(L, 1, "conch.chan", "max_value", 1, std::numeric_limits<lua_Integer>::max(), &max_value);
      break;
    }
    default:
      return luaL_typeerror(L, 1, "nil, capacity or {dropping=n}/{sliding=n}/{fixed=n}");
  }
  auto limit = static_cast<std::size_t>(max_value);
  push_new_chan(L, [&b, limit] {
    return std::make_shared<const any_chan>(conch::chan<value>(b), limit);
  });
  // The slots live outside Lua's heap, where its collector cannot see them:
  // a script making big channels in a loop would run out of memory before a
  // cycle freed the unreachable ones (found by the lua_options fuzz target).
  // Count a big buffer as that much allocation, so the collector keeps pace.
  const std::size_t kib = b.capacity * sizeof(value) / 1024;
  if (kib >= 1024) lua_gc(L, LUA_GCSTEP, static_cast<int>(kib));  // at most 2^24 slots: fits an int
  return 1;
}

int l_promise(lua_State* L) {
  check_max_args(L, 0, "conch.promise");
  push_new_chan(L, [] { return conch::promise_chan<value>(); });
  return 1;
}

// conch.timeout(ms) -> a channel that the shared close timer closes after ms.
int l_timeout(lua_State* L) {
  host* h = host_of(L);
  check_max_args(L, 1, "conch.timeout");
  std::int64_t ns = ms_to_ns(luaL_checknumber(L, 1));
  push_new_chan(L, [h, ns] {
    conch::chan<value> c;
    if (!h->close_after(conch::detail::get_core(c), ns)) throw std::bad_alloc();
    return c;
  });
  return 1;
}

const luaL_Reg chan_functions[] = {
    {"chan", l_chan}, {"promise", l_promise}, {"timeout", l_timeout}, {nullptr, nullptr},
};

}  // namespace

void install_chan_metatable(lua_State* L, host* h) {
  luaL_checkstack(L, 6, nullptr);
  lua_createtable(L, 0, 6);
  lua_pushliteral(L, "conch.chan");
  lua_setfield(L, -2, "__name");
  lua_createtable(L, 0, 8);  // methods
  set_closures(L, h, chan_methods);
  lua_getfield(L, -1, "recv");
  lua_pushlightuserdata(L, h);
  lua_insert(L, -2);
  lua_pushcclosure(L, m_iter, 2);  // upvalues: host, recv
  lua_setfield(L, -2, "iter");
  lua_setfield(L, -2, "__index");
  set_closures(L, h, chan_metamethods);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &chan_mt_key);
  new_weak_cache(L, &chan_cache_key);
}

void add_chan_functions(lua_State* L, host* h) { set_closures(L, h, chan_functions); }

}  // namespace conch::lua::detail
