// lua/module.cpp
// The `conch` Lua module: channels, select, go, sleep, timeout, and the
// park-aware coroutine.resume/wrap.
//
// Every function here is longjmp-safe (the stock lua5.4 is C: a Lua error is
// a longjmp that skips C++ destructors). The pattern: check arguments first
// (luaL_check* may raise), keep every C++ object in heap storage (a request,
// a userdata) or inside a noexcept helper that calls no raising Lua API, and
// raise only after cleaning up. Values being pushed live in a request, never
// in a local.
//
// A channel operation that cannot complete at once:
//  - inside a go block parks a waiter whose resumer is the block's driver and
//    yields the park tag with a continuation; the driver resumes the block
//    when the channel wakes it, and the continuation pushes the outcome;
//  - outside any go block parks a waiter whose resumer is the outside proxy,
//    then hands the state to the home loop until it completes (<!!).
#include <cmath>
#include <cstdio>
#include <new>

#include "conch/chan/buffer.hpp"
#include "lua/bridge.hpp"

namespace conch::lua::detail {

namespace {

host* host_of(lua_State* L) noexcept { return static_cast<host*>(lua_touserdata(L, lua_upvalueindex(1))); }

chan_ud* check_chan(lua_State* L, int idx) {
  chan_ud* ud = to_chan_ud(L, idx);
  if (ud == nullptr) luaL_typeerror(L, idx, "conch.chan");
  return ud;
}

// The request for an operation of the running code. A finalizer (__gc) that
// runs while a received value is being pushed must not reuse it.
request* get_request(lua_State* L, host* h) {
  request* r = h->op_request();
  if (r->kind != op::none)
    luaL_error(L, "conch: channel operation inside a finalizer or hook that interrupted another one");
  return r;
}

int raise_not_yieldable(lua_State* L) {
  return luaL_error(L,
                    "conch: cannot wait on a channel here: this code cannot yield to its go block "
                    "(a metamethod, an iterator, table.sort, a finalizer, or a coroutine resumed by a "
                    "coroutine.resume that conch did not install)");
}

// ---- continuations: push the outcome of a completed request ----
// Their context is the host (saves a lua_touserdata per operation).

lua_KContext host_ctx(host* h) noexcept { return reinterpret_cast<lua_KContext>(h); }
host* host_from(lua_KContext ctx) noexcept { return reinterpret_cast<host*>(ctx); }

int k_send(lua_State* L, int, lua_KContext ctx) {
  request* r = host_from(ctx)->op_request();
  bool ok = r->ok;
  r->clear();
  lua_pushboolean(L, ok ? 1 : 0);
  return 1;
}

int k_recv(lua_State* L, int, lua_KContext ctx) {
  request* r = host_from(ctx)->op_request();
  op_case& c = r->cases[0];
  if (r->ok && c.full) {
    r->kind = op::single;  // busy while pushing (see get_request)
    push_elem(L, c.type, c.slot.raw());
  } else {
    lua_pushnil(L);
  }
  r->clear();
  return 1;
}

// Stack: [cases table]. Returns value-or-ok, channel.
int k_select(lua_State* L, int, lua_KContext ctx) {
  request* r = host_from(ctx)->op_request();
  auto f = static_cast<std::size_t>(r->fired);
  op_case& c = r->cases[f];
  if (c.is_send) {
    lua_pushboolean(L, r->ok ? 1 : 0);
  } else if (r->ok && c.full) {
    r->kind = op::select;  // busy while pushing
    push_elem(L, c.type, c.slot.raw());
  } else {
    lua_pushnil(L);
  }
  r->clear();
  if (lua_rawgeti(L, 1, static_cast<lua_Integer>(f) + 1) == LUA_TTABLE) {
    lua_rawgeti(L, -1, 1);
    lua_remove(L, -2);
  }
  return 2;
}

int k_none(lua_State*, int, lua_KContext) { return 0; }

// Runs a prepared request to completion (see the file comment), then its
// continuation `k`.
int run_op(lua_State* L, host* h, request* r, lua_KFunction k) {
  if (h->current() != nullptr) {
    if (h->can_park(L)) {
      resumer res = h->park_resumer();
      if (r->start(&res) < 0) {
        lua_pushlightuserdata(L, park_tag());
        return lua_yieldk(L, 1, host_ctx(h), k);
      }
    } else if (r->start(nullptr) < 0) {
      r->clear();
      return raise_not_yieldable(L);
    }
  } else {
    if (h->on_home_loop()) {
      r->clear();
      return raise_not_yieldable(L);
    }
    resumer res = h->park_resumer();
    if (r->start(&res) < 0) h->wait_outside();
  }
  return k(L, LUA_OK, host_ctx(h));
}

// Prepares r as a single operation on channel ud.
bool prepare_single(request* r, chan_ud* ud, bool is_send) noexcept {
  if (!r->reset(1)) return false;
  r->kind = op::single;
  op_case& c = r->cases[0];
  c.core = ud->core;
  c.type = ud->type;
  c.is_send = is_send;
  return true;
}

}  // namespace

int raise_no_memory(lua_State* L) { return luaL_error(L, "conch: not enough memory"); }

int recv_core(lua_State* L, host* h, chan_core* core, elem type, lua_KFunction k) {
  request* r = get_request(L, h);
  if (!r->reset(1)) return raise_no_memory(L);
  r->kind = op::single;
  op_case& c = r->cases[0];
  c.core = core;
  c.type = type;
  return run_op(L, h, r, k);
}

namespace {

// Converts argument `idx` into r's send slot; raises on failure.
void fill_send(lua_State* L, request* r, int idx) {
  op_case& c = r->cases[0];
  int bad = LUA_TNONE;
  conv_error e = to_elem(L, idx, c.type, c.slot.raw(), &bad);
  if (e != conv_error::none) {
    r->clear();
    raise_conv_error(L, e, bad);
  }
  c.full = true;
}

// ---- channel methods ----

int m_send(lua_State* L) {
  host* h = host_of(L);
  chan_ud* ud = check_chan(L, 1);
  request* r = get_request(L, h);
  if (!prepare_single(r, ud, true)) return raise_no_memory(L);
  fill_send(L, r, 2);
  return run_op(L, h, r, k_send);  // the stack keeps ch (and v) while parked
}

int m_recv(lua_State* L) {
  host* h = host_of(L);
  chan_ud* ud = check_chan(L, 1);
  request* r = get_request(L, h);
  if (!prepare_single(r, ud, false)) return raise_no_memory(L);
  return run_op(L, h, r, k_recv);
}

int m_try_send(lua_State* L) {
  host* h = host_of(L);
  chan_ud* ud = check_chan(L, 1);
  request* r = get_request(L, h);
  if (!prepare_single(r, ud, true)) return raise_no_memory(L);
  fill_send(L, r, 2);
  r->start(nullptr);  // fired >= 0 iff it committed; ok says how
  return k_send(L, LUA_OK, host_ctx(h));
}

int m_try_recv(lua_State* L) {
  host* h = host_of(L);
  chan_ud* ud = check_chan(L, 1);
  request* r = get_request(L, h);
  if (!prepare_single(r, ud, false)) return raise_no_memory(L);
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

// ---- constructors ----

bool make_chan(chan_ud* ud, conch::buffer b, bool promise) noexcept {
  try {
    conch::chan<value> c = promise ? conch::promise_chan<value>() : conch::chan<value>(b);
    auto box = std::make_shared<const any_chan>(std::move(c));
    new (ud) chan_ud{chan_ud::kMagic, box->core(), elem::value, std::move(box)};
    return true;
  } catch (...) {
    return false;
  }
}

std::size_t check_capacity(lua_State* L, int idx, const char* what, bool at_least_one) {
  lua_Integer n = luaL_checkinteger(L, idx);
  if (n < (at_least_one ? 1 : 0) || n > (lua_Integer{1} << 32))
    luaL_error(L, "conch.chan: %s capacity must be %s (got %d)", what,
               at_least_one ? "at least 1" : "0 or more", static_cast<int>(n));
  return static_cast<std::size_t>(n);
}

// conch.chan() | conch.chan(n) | conch.chan{dropping=n} | conch.chan{sliding=n} | conch.chan{fixed=n}
int l_chan(lua_State* L) {
  conch::buffer b = conch::buffer::fixed(0);
  switch (lua_type(L, 1)) {
    case LUA_TNONE:
    case LUA_TNIL:
      break;
    case LUA_TNUMBER:
      b = conch::buffer::fixed(check_capacity(L, 1, "a", false));
      break;
    case LUA_TTABLE: {
      int found = 0;
      if (lua_getfield(L, 1, "dropping") != LUA_TNIL) {
        b = conch::buffer::dropping(check_capacity(L, -1, "a dropping", true));
        ++found;
      }
      if (lua_getfield(L, 1, "sliding") != LUA_TNIL) {
        b = conch::buffer::sliding(check_capacity(L, -1, "a sliding", true));
        ++found;
      }
      if (lua_getfield(L, 1, "fixed") != LUA_TNIL) {
        b = conch::buffer::fixed(check_capacity(L, -1, "a fixed", false));
        ++found;
      }
      if (found > 1) return luaL_error(L, "conch.chan: give one of dropping=, sliding=, fixed=");
      break;
    }
    default:
      return luaL_typeerror(L, 1, "nil, capacity or {dropping=n}/{sliding=n}");
  }
  chan_ud* ud = new_chan_ud(L);
  if (!make_chan(ud, b, false)) return raise_no_memory(L);
  finish_chan_ud(L);
  return 1;
}

int l_promise(lua_State* L) {
  chan_ud* ud = new_chan_ud(L);
  if (!make_chan(ud, conch::buffer::fixed(1), true)) return raise_no_memory(L);
  finish_chan_ud(L);
  return 1;
}

// A channel closed by a timer on the home loop (conch.timeout).
struct timeout_node final : conch::detail::timer_node {
  conch::chan<value> ch;
};

std::int64_t ms_to_ns(lua_Number ms) noexcept {
  if (!(ms > 0)) return 0;                 // also NaN
  if (ms > 1e12) return std::int64_t{1} << 62;  // "never", without overflow
  return static_cast<std::int64_t>(ms * 1e6);
}

// Makes a timeout channel; returns its core with one reference for the
// caller, or null.
chan_core* make_timeout(host* h, lua_Number ms, std::shared_ptr<const any_chan>* box) noexcept {
  timeout_node* node = nullptr;
  try {
    node = new timeout_node;
    if (box != nullptr) *box = std::make_shared<const any_chan>(node->ch);
  } catch (...) {
    delete node;
    return nullptr;
  }
  chan_core* core = conch::detail::get_core(node->ch);
  core->ref();
  node->deadline_ns = conch::detail::now_ns() + ms_to_ns(ms);
  node->fire = [](conch::detail::timer_node* t) noexcept {
    auto* self = static_cast<timeout_node*>(t);
    self->ch.close();
    delete self;
  };
  node->drop = [](conch::detail::timer_node* t) noexcept { delete static_cast<timeout_node*>(t); };
  h->add_timer(node);
  return core;
}

bool init_timeout_ud(chan_ud* ud, host* h, lua_Number ms) noexcept {
  std::shared_ptr<const any_chan> box;
  chan_core* core = make_timeout(h, ms, &box);
  if (core == nullptr) return false;
  core->unref();  // the box holds the channel
  new (ud) chan_ud{chan_ud::kMagic, core, elem::value, std::move(box)};
  return true;
}

int l_timeout(lua_State* L) {
  host* h = host_of(L);
  lua_Number ms = luaL_checknumber(L, 1);
  chan_ud* ud = new_chan_ud(L);
  if (!init_timeout_ud(ud, h, ms)) return raise_no_memory(L);
  finish_chan_ud(L);
  return 1;
}

int l_sleep(lua_State* L) {
  host* h = host_of(L);
  lua_Number ms = luaL_optnumber(L, 1, 0);
  if (lua_task* t = h->current()) {
    if (!h->can_park(L)) return raise_not_yieldable(L);
    request* r = get_request(L, h);
    r->clear();
    if (!(ms > 0)) {
      r->kind = op::yield;
      h->reschedule_current();
    } else {
      r->kind = op::sleep;
      sleep_timer& tm = r->timer;
      tm.deadline_ns = conch::detail::now_ns() + ms_to_ns(ms);
      tm.home = h->home();
      tm.h = t->driver;
      tm.fire = [](conch::detail::timer_node* n) noexcept {
        auto* self = static_cast<sleep_timer*>(n);
        conch::detail::schedule(self->home, self->h);
      };
      tm.drop = nullptr;  // owned by the request
      conch::detail::timer_add(h->home(), &tm);
    }
    lua_pushlightuserdata(L, park_tag());
    return lua_yieldk(L, 1, 0, k_none);
  }
  if (h->on_home_loop()) return raise_not_yieldable(L);
  // Outside a go block: wait on a private timeout channel, running the loop.
  request* r = get_request(L, h);
  if (!r->reset(1)) return raise_no_memory(L);
  chan_core* core = make_timeout(h, ms, nullptr);
  if (core == nullptr) return raise_no_memory(L);
  r->kind = op::single;
  op_case& c = r->cases[0];
  c.core = core;
  c.type = elem::value;
  c.refd = true;  // make_timeout's reference; clear() drops it
  resumer res = h->park_resumer();
  if (r->start(&res) < 0) h->wait_outside();
  r->clear();
  return 0;
}

// conch.select{ch1, {ch2, v}, ..., priority=true, default=x} -> value, ch
int l_select(lua_State* L) {
  host* h = host_of(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_getfield(L, 1, "priority");
  bool in_order = lua_toboolean(L, -1) != 0;
  bool has_default = lua_getfield(L, 1, "default") != LUA_TNIL;  // stack: [cases, priority, default]
  auto n = static_cast<std::size_t>(lua_rawlen(L, 1));
  if (n == 0) {
    if (!has_default) return luaL_error(L, "conch.select: no cases");
    lua_pushnil(L);
    return 2;  // default, nil
  }
  request* r = get_request(L, h);
  if (!r->reset(n)) return raise_no_memory(L);
  r->kind = op::select;
  r->in_order = in_order;
  for (std::size_t i = 0; i < n; ++i) {
    op_case& c = r->cases[i];
    int type = lua_rawgeti(L, 1, static_cast<lua_Integer>(i) + 1);
    chan_ud* ud = nullptr;
    if (type == LUA_TTABLE) {
      lua_rawgeti(L, -1, 1);
      ud = to_chan_ud(L, -1);
      lua_pop(L, 1);
      if (ud == nullptr) {
        r->clear();
        return luaL_error(L, "conch.select: case %d: a send case is {channel, value}", static_cast<int>(i) + 1);
      }
      c.core = ud->core;
      c.type = ud->type;
      c.is_send = true;
      lua_rawgeti(L, -1, 2);
      int bad = LUA_TNONE;
      conv_error e = to_elem(L, -1, c.type, c.slot.raw(), &bad);
      lua_pop(L, 2);
      if (e != conv_error::none) {
        r->clear();
        return raise_conv_error(L, e, bad);
      }
      c.full = true;
    } else if ((ud = to_chan_ud(L, -1)) != nullptr) {
      lua_pop(L, 1);
      c.core = ud->core;
      c.type = ud->type;
    } else {
      r->clear();
      return luaL_error(L, "conch.select: case %d is not a channel or {channel, value}", static_cast<int>(i) + 1);
    }
  }
  if (has_default && r->start(nullptr) < 0) {
    r->clear();
    lua_pushnil(L);
    return 2;  // default, nil
  }
  lua_settop(L, 1);
  if (has_default) return k_select(L, LUA_OK, host_ctx(h));
  return run_op(L, h, r, k_select);
}

// conch.go(fn, ...) -> result channel
int l_go(lua_State* L) {
  host* h = host_of(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  int n = lua_gettop(L);
  chan_ud* ud = new_chan_ud(L);  // [f args ud]
  lua_State* co = lua_newthread(L);
  int ref = luaL_ref(L, LUA_REGISTRYINDEX);  // pops co: [f args ud]
  lua_rotate(L, 1, 1);                       // [ud f args]
  if (!lua_checkstack(co, n)) {
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
    return luaL_error(L, "conch.go: too many arguments");
  }
  lua_xmove(L, co, n);  // [ud]
  lua_task* t = h->new_task(co, ref, n - 1);
  if (t == nullptr) {
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
    return raise_no_memory(L);
  }
  new (ud) chan_ud{chan_ud::kMagic, conch::detail::get_core(t->result), elem::value, t->result_box};
  finish_chan_ud(L);
  h->start(t);
  return 1;
}

int l_now(lua_State* L) {
  lua_pushnumber(L, static_cast<lua_Number>(conch::detail::now_ns()) / 1e6);
  return 1;
}

// conch.on_error(fn | nil): fn(message) runs as a go block for every error
// that escapes a go block.
int l_on_error(lua_State* L) {
  if (!lua_isnoneornil(L, 1)) luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &on_error_key);
  return 0;
}

// conch.run(): outside any go block, runs the event loop until every go
// block of this state has finished (a script that only starts go blocks
// calls it last). In a go block it is an error.
int l_run(lua_State* L) {
  host* h = host_of(L);
  if (h->current() != nullptr || h->on_home_loop())
    return luaL_error(L, "conch.run: call it outside any go block (the main chunk)");
  h->wait_idle();
  return 0;
}

// conch.tasks() -> number of live go blocks of this state
int l_tasks(lua_State* L) {
  lua_pushinteger(L, static_cast<lua_Integer>(host_of(L)->live_tasks()));
  return 1;
}

// ---- coroutine.resume / coroutine.wrap that pass parks up ----
//
// A channel operation in a coroutine that a go block resumed parks by
// yielding the park tag. These replacements of coroutine.resume and
// coroutine.wrap recognise it and yield it on to their own resumer (and so on
// up to the go block's driver); when resumed, they resume the inner coroutine
// again, whose continuation then returns the outcome. Every other yield
// reaches the caller as usual.

int k_resume(lua_State* L, int status, lua_KContext ctx);

// Resumes co with the top narg values of L. wrap: coroutine.wrap semantics.
int resume_loop(lua_State* L, host* h, lua_State* co, int narg, bool wrap) {
  if (h->is_go_thread(co) || h->is_parked(co)) {
    const char* why = h->is_go_thread(co) ? "cannot resume a go block"
                                          : "cannot resume a coroutine that waits on a channel";
    if (wrap) return luaL_error(L, "%s", why);
    lua_pushboolean(L, 0);
    lua_pushstring(L, why);
    return 2;
  }
  int nres = 0;
  int status;
  if (!lua_checkstack(co, narg)) {
    lua_pushliteral(L, "too many arguments to resume");
    status = -1;
  } else {
    lua_xmove(L, co, narg);
    bool saved = h->swap_chain_yieldable(h->chain_yieldable() && lua_isyieldable(L));
    status = lua_resume(co, L, narg, &nres);
    h->swap_chain_yieldable(saved);
    if (status == LUA_YIELD && nres == 1 && h->current() != nullptr &&
        lua_type(co, -1) == LUA_TLIGHTUSERDATA && lua_touserdata(co, -1) == park_tag()) {
      lua_pop(co, 1);
      if (!h->mark_parked(co)) return raise_no_memory(L);
      lua_pushlightuserdata(L, park_tag());
      return lua_yieldk(L, 1, wrap ? 1 : 0, k_resume);
    }
    if (status == LUA_OK || status == LUA_YIELD) {
      if (!lua_checkstack(L, nres + 1)) {
        lua_pop(co, nres);
        lua_pushliteral(L, "too many results to resume");
        status = -1;
      } else {
        if (!wrap) lua_pushboolean(L, 1);
        lua_xmove(co, L, nres);
        return wrap ? nres : nres + 1;
      }
    } else {
      lua_xmove(co, L, 1);  // the error object
      status = -1;
    }
  }
  // An error: status -1, message on top of L.
  if (!wrap) {
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
  }
  int stat = lua_status(co);
  if (stat != LUA_OK && stat != LUA_YIELD) {  // an error in the coroutine
    stat = lua_resetthread(co);                // close its tbc variables
    lua_xmove(co, L, 1);
  }
  if (stat != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
    luaL_where(L, 1);
    lua_insert(L, -2);
    lua_concat(L, 2);
  }
  return lua_error(L);
}

// Back from a passed-up park: resume the inner coroutine again.
int k_resume(lua_State* L, int, lua_KContext ctx) {
  host* h = host_of(L);
  bool wrap = ctx != 0;
  lua_State* co = wrap ? lua_tothread(L, lua_upvalueindex(2)) : lua_tothread(L, 1);
  h->unmark_parked(co);
  int base = wrap ? 0 : 1;
  return resume_loop(L, h, co, lua_gettop(L) - base, wrap);
}

int co_resume(lua_State* L) {
  host* h = host_of(L);
  lua_State* co = lua_tothread(L, 1);
  luaL_argexpected(L, co != nullptr, 1, "coroutine");
  return resume_loop(L, h, co, lua_gettop(L) - 1, false);
}

int co_wrapped(lua_State* L) {
  host* h = host_of(L);
  lua_State* co = lua_tothread(L, lua_upvalueindex(2));
  return resume_loop(L, h, co, lua_gettop(L), true);
}

int co_wrap(lua_State* L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_State* co = lua_newthread(L);  // [f co]
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushvalue(L, lua_upvalueindex(1));  // [f co host]
  lua_insert(L, -2);                      // [f host co]
  lua_pushcclosure(L, co_wrapped, 2);
  return 1;
}

void set_closure(lua_State* L, host* h, lua_CFunction f, const char* name) {
  lua_pushlightuserdata(L, h);
  lua_pushcclosure(L, f, 1);
  lua_setfield(L, -2, name);
}

}  // namespace

void install_chan_metatable(lua_State* L, host* h) {
  luaL_checkstack(L, 6, nullptr);
  lua_createtable(L, 0, 6);
  lua_pushliteral(L, "conch.chan");
  lua_setfield(L, -2, "__name");
  lua_createtable(L, 0, 8);  // methods
  set_closure(L, h, m_send, "send");
  set_closure(L, h, m_recv, "recv");
  set_closure(L, h, m_try_send, "try_send");
  set_closure(L, h, m_try_recv, "try_recv");
  set_closure(L, h, m_close, "close");
  set_closure(L, h, m_closed, "closed");
  set_closure(L, h, m_size, "size");
  lua_getfield(L, -1, "recv");
  lua_pushlightuserdata(L, h);
  lua_insert(L, -2);
  lua_pushcclosure(L, m_iter, 2);  // upvalues: host, recv
  lua_setfield(L, -2, "iter");
  lua_setfield(L, -2, "__index");
  set_closure(L, h, m_gc, "__gc");
  set_closure(L, h, m_eq, "__eq");
  set_closure(L, h, m_tostring, "__tostring");
  lua_rawsetp(L, LUA_REGISTRYINDEX, &chan_mt_key);
}

int open_module(lua_State* L) {
  host* h = host::find(L);
  if (h == nullptr) return luaL_error(L, "conch: this Lua state has no conch host");
  luaL_checkstack(L, 8, nullptr);

  // Park-aware coroutine.resume and coroutine.wrap.
  if (lua_getglobal(L, "coroutine") == LUA_TTABLE) {
    set_closure(L, h, co_resume, "resume");
    set_closure(L, h, co_wrap, "wrap");
  }
  lua_pop(L, 1);

  lua_createtable(L, 0, 12);
  set_closure(L, h, l_chan, "chan");
  set_closure(L, h, l_promise, "promise");
  set_closure(L, h, l_go, "go");
  set_closure(L, h, l_sleep, "sleep");
  set_closure(L, h, l_timeout, "timeout");
  set_closure(L, h, l_select, "select");
  set_closure(L, h, l_now, "now");
  set_closure(L, h, l_on_error, "on_error");
  set_closure(L, h, l_tasks, "tasks");
  set_closure(L, h, l_run, "run");
  add_net_functions(L, h);
  return 1;
}

namespace {

conch::task<loop*> home_loop_task() { co_return conch::detail::current_loop(); }

// Starts a one-thread runtime for a state opened by the stock interpreter.
const char* start_runtime(runtime** rt, loop** home) noexcept {
  try {
    auto* r = new runtime(runtime_options{.threads = 1});
    *home = r->block_on(home_loop_task());
    *rt = r;
    return nullptr;
  } catch (...) {
    return "conch: cannot start the runtime";
  }
}

}  // namespace

int open_standalone(lua_State* L) {
  if (host::find(L) == nullptr) {
    runtime* rt = nullptr;
    loop* home = nullptr;
    if (const char* err = start_runtime(&rt, &home)) return luaL_error(L, "%s", err);
    host::create(L, home, rt, nullptr);
  }
  return open_module(L);
}

}  // namespace conch::lua::detail
