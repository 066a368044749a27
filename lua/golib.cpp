// lua/golib.cpp
// The go-block library: conch.go, sleep, run, tasks, on_error, now.
//
// conch.go starts a Lua function as a go block (a Lua thread plus a driver
// coroutine on the home loop, lua/host.cpp) and returns its result channel.
// conch.sleep parks a go block on a timer, or, outside any go block, waits on
// a private timeout channel while the home loop runs.
//
// Invariants:
//  - A go block's thread is anchored in the registry (lua_task::ref) from
//    l_go until it ends; on a failure before the task exists l_go unrefs it.
//  - A sleeping go block's timer lives in its request (op::sleep) and is
//    freed with it; the outside thread's sleep uses the shared close timer.
// Lock order: no lock is held here.
#include <new>

#include "lua/bridge.hpp"

namespace conch::lua::detail {

namespace {

int k_none(lua_State*, int, lua_KContext) { return 0; }

// A private channel that the shared close timer closes after `ns`; returns
// its core with one reference for the caller, or null if out of memory.
chan_core* new_timeout_core(host* h, std::int64_t ns) noexcept {
  try {
    conch::chan<value> c;
    chan_core* core = conch::detail::get_core(c);
    if (!h->close_after(core, ns)) return nullptr;  // out of memory
    core->ref();  // c goes away here; the caller's reference stays
    return core;
  } catch (...) {
    return nullptr;
  }
}

// conch.sleep(ms): in a go block parks on a timer (0 or less: yields to the
// others); outside any go block runs the loop until ms passed.
int l_sleep(lua_State* L) {
  host* h = host_of(L);
  lua_Number ms = luaL_optnumber(L, 1, 0);
  if (lua_task* t = h->current()) {
    // In a go block: yield the park tag; the driver resumes us.
    if (!h->can_park(L)) return raise_not_yieldable(L);
    request* r = get_request(L, h);
    r->clear();
    if (!(ms > 0)) {
      // A cooperative yield: back in the loop's ready queue at once.
      r->kind = op::yield;
      h->reschedule_current();
    } else {
      // A timer in the request schedules the driver when it fires.
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
  // On the home loop outside a go block (a finalizer): nothing can wait.
  if (h->on_home_loop()) return raise_not_yieldable(L);
  // Outside a go block: wait on a private timeout channel, running the loop.
  request* r = get_request(L, h);
  if (!r->reset(1)) return raise_no_memory(L);
  chan_core* core = new_timeout_core(h, ms_to_ns(ms));
  if (core == nullptr) return raise_no_memory(L);
  r->kind = op::single;
  op_case& c = r->cases[0];
  c.core = core;
  c.type = elem::value;
  c.refd = true;  // new_timeout_core's reference; clear() drops it
  resumer res = h->park_resumer();
  if (r->start(&res) < 0) h->wait_outside();
  r->clear();
  return 0;
}

// conch.go(fn, ...) -> result channel
int l_go(lua_State* L) {
  host* h = host_of(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  int n = lua_gettop(L);
  // The result channel's userdata comes first (push_new_chan's first half):
  // once the task exists nothing may raise, or the task would leak.
  chan_ud* ud = new_chan_ud(L);  // [f args ud]
  lua_State* co = lua_newthread(L);
  int ref = luaL_ref(L, LUA_REGISTRYINDEX);  // pops co: [f args ud]
  lua_rotate(L, 1, 1);                       // [ud f args]
  if (!lua_checkstack(co, n)) {
    // No room for the function and its arguments on the new thread.
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
    return luaL_error(L, "conch.go: too many arguments");
  }
  lua_xmove(L, co, n);  // [ud]
  lua_task* t = h->new_task(co, ref, n - 1);
  if (t == nullptr) {
    // Out of memory: the thread goes back to the collector.
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
    return raise_no_memory(L);
  }
  build_chan_ud(ud, std::shared_ptr<const any_chan>(t->result_box));  // a copy: cannot fail
  finish_chan_ud(L);
  h->start(t);
  cache_chan_ud(L);  // may raise (memory) now that the task runs: then it is just not cached
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

const luaL_Reg go_functions[] = {
    {"go", l_go},     {"sleep", l_sleep}, {"now", l_now},          {"on_error", l_on_error},
    {"tasks", l_tasks}, {"run", l_run},   {nullptr, nullptr},
};

}  // namespace

void add_go_functions(lua_State* L, host* h) { set_closures(L, h, go_functions); }

}  // namespace conch::lua::detail
