// lua/host.cpp
// The host: creation, go-block drivers and steps, the end of a go block, error reports.
//
// The baton, the control queue and shutdown are in lua/control.cpp.
//
// Invariants:
//  - Lua code of a state runs only on the thread holding the baton: the
//    outside thread while baton_ == outside, the home loop while on_loop.
//    A driver step (step, end_task) runs on the home loop and checks the
//    baton before it touches Lua; a task that finds it outside is deferred.
//  - A driver runs only on the home loop: we schedule it there ourselves
//    (never through go(), whose frames idle loops may steal), and a parked
//    waiter resumes on the loop it parked on.
//  - A task is in at most one of: the loop's ready queue (queued), a
//    channel or timer (parked), pending_, deferred_; phase says which.
//  - Nothing in a channel refers to Lua: values are C++ copies.
// Lock order: none taken here (mu_ and cmd_mu_, in lua/control.cpp, are
// leaves; channel locks are taken without holding either).
#include <malloc.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "lua/bridge.hpp"

namespace conch::lua::detail {

namespace {

// One named awaiter for every driver (no braced temporary in co_await).
constexpr std::suspend_always yield_turn;

driver task_driver(lua_task* t) {
  while (t->h->step(t)) co_await yield_turn;
}

driver outside_driver_body(host* h) {
  for (;;) {
    h->outside_woken();
    co_await yield_turn;
  }
}

driver control_body(host* h) {
  while (h->run_commands()) co_await yield_turn;
}

const char aux_key = 0;  // registry key anchoring the host's aux thread

// The userdata that owns a host: its __gc shuts the host down and frees it.
struct host_box {
  host* h;
};

int host_gc(lua_State* L) {
  auto* box = static_cast<host_box*>(lua_touserdata(L, 1));
  if (box->h != nullptr) {
    box->h->shutdown();
    delete box->h;
    box->h = nullptr;
  }
  return 0;
}

// (err, co) -> message with co's traceback. Runs protected on the aux thread.
int traceback_fn(lua_State* L) {
  const char* msg = lua_tostring(L, 1);
  if (msg == nullptr) msg = luaL_tolstring(L, 1, nullptr);  // __tostring, or "table: 0x..."
  lua_State* co = lua_tothread(L, 2);
  luaL_traceback(L, co, msg, 0);
  return 1;
}

// glibc hands the top of an arena back to the kernel (madvise) whenever more
// than M_TRIM_THRESHOLD (128 KiB) lies free there, and the next allocations
// fault the pages back in, zeroed. A Lua state's collector frees in bursts
// (every string a socket delivered since the last cycle), so a Lua server on a
// loop thread paid that churn all the time: about half the server CPU of the
// 16 KiB echo cells (bench/NOTES.md, "Lua states: malloc trim threshold").
// Raised to kTrimThreshold once per process, unless the user chose a value
// (MALLOC_TRIM_THRESHOLD_ or GLIBC_TUNABLES's glibc.malloc.trim_threshold).
constexpr int kTrimThreshold = 8 << 20;

void raise_trim_threshold() noexcept {
#ifdef __GLIBC__
  static const bool done = [] {
    const char* tunables = std::getenv("GLIBC_TUNABLES");
    const bool chosen = std::getenv("MALLOC_TRIM_THRESHOLD_") != nullptr ||
                        (tunables != nullptr && std::strstr(tunables, "malloc.trim_threshold") != nullptr);
    if (!chosen) mallopt(M_TRIM_THRESHOLD, kTrimThreshold);  // 0 (ignored) under a sanitizer's malloc
    return true;
  }();
  (void)done;
#endif
}

}  // namespace

// ---- creation ----

host::host(lua_State* L, loop* home, std::unique_ptr<runtime> owned,
           std::function<void(std::string_view)> on_error)
    : main_(L), home_(home), owned_rt_(std::move(owned)), on_error_(std::move(on_error)) {
  cmds_.reserve(64);
  raise_trim_threshold();
  outside_driver_ = outside_driver_body(this).h;
  control_ = control_body(this).h;
}

host* host::make_host(lua_State* L, loop* home, runtime* owned,
                      const std::function<void(std::string_view)>* on_error) noexcept {
  try {
    return new host(L, home, std::unique_ptr<runtime>(owned),
                    on_error != nullptr ? *on_error : std::function<void(std::string_view)>());
  } catch (...) {
    return nullptr;
  }
}

host* host::create(lua_State* L, loop* home, runtime* owned,
                   const std::function<void(std::string_view)>* on_error) {
  auto* box = static_cast<host_box*>(lua_newuserdatauv(L, sizeof(host_box), 0));
  box->h = nullptr;
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, host_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_State* aux = lua_newthread(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &aux_key);   // anchor aux
  lua_rawsetp(L, LUA_REGISTRYINDEX, &host_key);  // anchor the box
  host* h = make_host(L, home, owned, on_error);
  if (h == nullptr) luaL_error(L, "conch: not enough memory");
  h->aux_ = aux;
  box->h = h;
  install_chan_metatable(L, h);
  install_net_metatables(L, h);
  return h;
}

host* host::find(lua_State* L) noexcept {
  if (!lua_checkstack(L, 1)) return nullptr;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &host_key);
  auto* box = static_cast<host_box*>(lua_touserdata(L, -1));
  lua_pop(L, 1);
  return box != nullptr ? box->h : nullptr;
}

host::~host() {
  // shutdown() ran (from __gc or ~state); the coroutine frames are gone.
}

// ---- go blocks ----

lua_task* host::new_task(lua_State* co, int ref, int nargs) noexcept {
  lua_task* t = nullptr;
  try {
    t = new lua_task;
    t->h = this;
    t->co = co;
    t->ref = ref;
    t->nargs = nargs;
    t->result_box = std::make_shared<const any_chan>(t->result);
    by_thread_.emplace(co, t);
    t->driver = task_driver(t).h;
  } catch (...) {
    if (t != nullptr) by_thread_.erase(co);
    delete t;
    return nullptr;
  }
  t->next = tasks_;
  if (tasks_ != nullptr) tasks_->prev = t;
  tasks_ = t;
  return t;
}

void host::start(lua_task* t) noexcept {
  if (on_home_loop()) {
    t->ph = phase::queued;
    conch::detail::schedule(home_, t->driver);
  } else {
    t->ph = phase::pending;
    pending_.push(t);
  }
}

void host::reschedule_current() noexcept {
  conch::detail::schedule(home_, current_->driver);
}

// One turn of a go block, on the home loop: run its Lua until it parks,
// yields or ends.
bool host::step(lua_task* t) noexcept {
  if (t->ph == phase::zombie) {
    free_task(t);
    if (--zombies_ == 0) signal_shutdown_done();
    return false;
  }
  if (t->ph == phase::parked) t->req.finish();  // the outcome waits in req for the continuation
  // acquire: pairs with the outside thread's release when it handed us the baton.
  if (baton_.load(std::memory_order_acquire) != on_loop) {
    t->ph = phase::deferred;
    deferred_.push(t);
    return true;
  }
  t->ph = phase::running;
  current_ = t;
  chain_yieldable_ = true;
  int nres = 0;
  int status = lua_resume(t->co, nullptr, t->nargs, &nres);
  current_ = nullptr;
  t->nargs = 0;
  if (status == LUA_YIELD) {
    // Our operations set req.kind right before they yield the park tag (also
    // through nested coroutines); a user's own yield leaves it none.
    bool tagged = t->req.kind != op::none;
    if (nres != 0) lua_pop(t->co, nres);
    if (tagged && t->req.kind != op::yield) {
      t->ph = phase::parked;
    } else {
      // conch.sleep(0) (already rescheduled), or a plain coroutine.yield at the
      // top of a go block: let the others run, then resume it with no values.
      if (!tagged) conch::detail::schedule(home_, t->driver);
      t->req.kind = op::none;
      t->ph = phase::queued;
    }
    return true;
  }
  end_task(t, status, nres);
  return false;
}

void host::end_task(lua_task* t, int status, int nres) noexcept {
  // Lua may still run for this task (__close handlers, __tostring of the
  // error object, finalizers); its operations use its own, idle request.
  current_ = t;
  chain_yieldable_ = false;
  if (status == LUA_OK) {
    if (nres > 0 && !lua_isnil(t->co, -nres)) {
      value v;
      int bad = LUA_TNONE;
      conv_error e = to_value(t->co, -nres, &v, &bad);
      if (e == conv_error::none) {
        t->result.try_send(std::move(v));
      } else {
        try {
          // Say why: a type that cannot travel, or a table too big or too deep.
          std::string what = e == conv_error::bad_type ? std::string("a ") + lua_typename(t->co, bad)
                             : e == conv_error::too_big ? std::string("a value over max_value")
                             : e == conv_error::too_deep ? std::string("tables nested too deep")
                                                         : std::string("a value");
          deliver_error("conch: a go block returned " + what + ", which cannot be sent on its result channel");
        } catch (...) {
        }
      }
    }
  } else {
    report_error(t);
    // Close its pending to-be-closed variables (runs their __close).
    lua_resetthread(t->co);
  }
  current_ = nullptr;
  t->result.close();
  lua_settop(t->co, 0);
  // The registry slot exists, so unref does not allocate or raise.
  luaL_unref(aux_, LUA_REGISTRYINDEX, t->ref);
  free_task(t);
  if (wait_idle_ && by_thread_.empty()) {
    wait_idle_ = false;
    conch::detail::schedule(home_, outside_driver_);  // conch.run() returns
  }
}

void host::report_error(lua_task* t) noexcept {
  lua_State* a = aux_;
  lua_settop(a, 0);
  if (!lua_checkstack(a, 4)) {
    deliver_error("conch: error in go block (no stack space to describe it)");
    return;
  }
  lua_pushcfunction(a, traceback_fn);
  lua_xmove(t->co, a, 1);  // the error object
  lua_rawgeti(a, LUA_REGISTRYINDEX, t->ref);
  int s = lua_pcall(a, 2, 1, 0);
  std::size_t n = 0;
  const char* msg = lua_type(a, -1) == LUA_TSTRING ? lua_tolstring(a, -1, &n) : nullptr;
  try {
    std::string text = "conch: error in go block: ";
    if (msg != nullptr)
      text.append(msg, n);
    else
      text += s == LUA_OK ? "(no message)" : "(error while describing the error)";
    lua_settop(a, 0);
    deliver_error(text);
  } catch (...) {
    lua_settop(a, 0);
    std::fputs("conch: error in go block (out of memory describing it)\n", stderr);
  }
}

namespace {
// (handler, message) on a fresh stack: starts handler(message) as a go block.
int spawn_handler_fn(lua_State* L) {
  auto* h = static_cast<host*>(lua_touserdata(L, 1));
  auto* text = static_cast<const std::string*>(lua_touserdata(L, 2));
  lua_State* co = lua_newthread(L);
  int ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_rawgetp(co, LUA_REGISTRYINDEX, &on_error_key);
  lua_pushlstring(co, text->data(), text->size());
  lua_task* t = h->new_task(co, ref, 1);
  if (t == nullptr) {
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
    return luaL_error(L, "conch: not enough memory");
  }
  h->start(t);
  return 0;
}
}  // namespace

void host::deliver_error(const std::string& text) noexcept {
  // A Lua handler (conch.on_error) runs as a new go block, so it may use channels.
  lua_State* a = aux_;
  if (lua_checkstack(a, 3)) {
    lua_rawgetp(a, LUA_REGISTRYINDEX, &on_error_key);
    bool has_handler = lua_type(a, -1) == LUA_TFUNCTION;
    lua_pop(a, 1);
    if (has_handler && !dead_) {
      lua_pushcfunction(a, spawn_handler_fn);
      lua_pushlightuserdata(a, this);
      lua_pushlightuserdata(a, const_cast<std::string*>(&text));
      if (lua_pcall(a, 2, 0, 0) == LUA_OK) return;
      lua_pop(a, 1);
    }
  }
  if (on_error_) {
    try {
      on_error_(text);
      return;
    } catch (...) {
    }
  }
  std::fprintf(stderr, "%s\n", text.c_str());
  std::fflush(stderr);
}

void host::free_task(lua_task* t) noexcept {
  t->req.clear();
  if (t->prev != nullptr)
    t->prev->next = t->next;
  else
    tasks_ = t->next;
  if (t->next != nullptr) t->next->prev = t->prev;
  if (!dead_) by_thread_.erase(t->co);
  delete t;
}

}  // namespace conch::lua::detail
