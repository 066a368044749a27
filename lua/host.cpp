// lua/host.cpp
// The host: go-block drivers, the baton between the outside thread and the
// home loop, the control queue, error reports and shutdown.
//
// Invariants:
//  - Lua code of a state runs only on the thread holding the baton: the
//    outside thread while baton_ == outside, the home loop while on_loop.
//  - baton_ goes outside -> on_loop only on the outside thread (which then
//    stops touching Lua and posts a kick), and on_loop -> outside only on the
//    home loop outside any driver step (control command, outside proxy), so
//    a driver that read on_loop finishes its step before the outside thread
//    can run Lua again.
//  - A driver runs only on the home loop: we schedule it there ourselves
//    (never through go(), whose frames idle loops may steal), and a parked
//    waiter resumes on the loop it parked on.
//  - A task is in at most one of: the loop's ready queue (queued), a
//    channel or timer (parked), pending_, deferred_; phase says which.
//  - Nothing in a channel refers to Lua: values are C++ copies.
// Lock order: mu_ and cmd_mu_ are leaves; channel locks are taken without
// holding either (a channel lock may take a loop's remote-queue lock).
#include <cstdio>

#include "lua/bridge.hpp"

namespace conch::lua::detail {

namespace {

driver task_driver(lua_task* t) {
  while (t->h->step(t)) co_await std::suspend_always{};
}

driver outside_driver_body(host* h) {
  for (;;) {
    h->outside_woken();
    co_await std::suspend_always{};
  }
}

driver control_body(host* h) {
  while (h->run_commands()) co_await std::suspend_always{};
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

}  // namespace

// ---- creation ----

host::host(lua_State* L, loop* home, std::unique_ptr<runtime> owned,
           std::function<void(std::string_view)> on_error)
    : main_(L), home_(home), owned_rt_(std::move(owned)), on_error_(std::move(on_error)) {
  cmds_.reserve(64);
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
          deliver_error(std::string("conch: a go block returned a ") + lua_typename(t->co, bad) +
                        ", which cannot be sent on its result channel");
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

void host::wait_idle() noexcept {
  if (by_thread_.empty()) return;
  wait_idle_ = true;  // outside_req_ is idle: the proxy's finish() does nothing
  wait_outside();
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

// ---- timers ----

void host::add_timer(conch::detail::timer_node* t) noexcept {
  if (on_home_loop())
    conch::detail::timer_add(home_, t);
  else
    post(cmd::add_timer, t);
}

// ---- the control queue: outside thread -> home loop ----

void host::post(cmd kind, void* arg) noexcept {
  bool schedule_it;
  {
    std::lock_guard lk(cmd_mu_);
    cmds_.push_back({kind, arg});  // capacity reserved; a rare growth may allocate
    schedule_it = !control_scheduled_;
    control_scheduled_ = true;
  }
  if (schedule_it) conch::detail::schedule(home_, control_);
}

bool host::run_commands() noexcept {
  for (;;) {
    command batch[16];
    std::size_t k = 0;
    {
      std::lock_guard lk(cmd_mu_);
      k = std::min(cmds_.size(), std::size(batch));
      std::copy(cmds_.begin(), cmds_.begin() + static_cast<std::ptrdiff_t>(k), batch);
      cmds_.erase(cmds_.begin(), cmds_.begin() + static_cast<std::ptrdiff_t>(k));
      // Cleared while we still run: a post from now on schedules us again,
      // and the loop resumes us only after this turn suspends.
      if (k == 0) control_scheduled_ = false;
    }
    if (k == 0) return true;
    for (std::size_t i = 0; i < k; ++i) {
      switch (batch[i].kind) {
        case cmd::kick:
          kick();
          break;
        case cmd::take: {
          baton_.store(outside, std::memory_order_release);
          std::lock_guard lk(mu_);
          taken_ = true;
          cv_.notify_all();
          break;
        }
        case cmd::add_timer:
          conch::detail::timer_add(home_, static_cast<conch::detail::timer_node*>(batch[i].arg));
          break;
        case cmd::call: {
          call_fn_(batch[i].arg);
          std::lock_guard lk(mu_);
          call_done_ = true;
          cv_.notify_all();
          break;
        }
        case cmd::shutdown:
          kill_all(true);
          if (zombies_ == 0) signal_shutdown_done();
          return false;  // the host may be gone: touch nothing
      }
    }
  }
}

// The baton just came (or may have come) to the loop: run what waited for it.
void host::kick() noexcept {
  if (baton_.load(std::memory_order_acquire) != on_loop) return;
  for (lua_task* t = pending_.take_all(); t != nullptr;) {
    lua_task* next = t->qnext;
    t->ph = phase::queued;
    conch::detail::schedule(home_, t->driver);
    t = next;
  }
  for (lua_task* t = deferred_.take_all(); t != nullptr;) {
    lua_task* next = t->qnext;
    t->ph = phase::queued;
    conch::detail::schedule(home_, t->driver);
    t = next;
  }
}

// ---- the outside thread ----

void host::wait_outside() noexcept {
  std::unique_lock lk(mu_);
  if (!outside_done_) {
    outside_released_ = true;
    // release: everything the outside thread did to the state happens before
    // the loop runs Lua.
    baton_.store(on_loop, std::memory_order_release);
    lk.unlock();
    post(cmd::kick);
    lk.lock();
    cv_.wait(lk, [this] { return outside_done_; });
  }
  outside_done_ = false;
  outside_released_ = false;
}

// The outside thread's operation completed (home loop, between drivers).
void host::outside_woken() noexcept {
  outside_req_.finish();
  std::lock_guard lk(mu_);
  outside_done_ = true;
  if (outside_released_) baton_.store(outside, std::memory_order_release);
  cv_.notify_all();
}

void host::call_on_loop(void (*fn)(void*) noexcept, void* arg) noexcept {
  if (on_home_loop()) {
    fn(arg);
    return;
  }
  call_fn_ = fn;  // one outside thread at a time; read by the loop after post()
  post(cmd::call, arg);
  std::unique_lock lk(mu_);
  cv_.wait(lk, [this] { return call_done_; });
  call_done_ = false;
}

void host::acquire() noexcept {
  if (baton_.load(std::memory_order_acquire) == outside) return;
  post(cmd::take);
  std::unique_lock lk(mu_);
  cv_.wait(lk, [this] { return taken_; });
  taken_ = false;
}

void host::release() noexcept {
  baton_.store(on_loop, std::memory_order_release);
  post(cmd::kick);
}

// ---- shutdown ----

void host::shutdown() noexcept {
  if (dead_) return;
  if (owned_rt_ != nullptr) {
    // The stock interpreter: stop our runtime first (joins the loop thread,
    // drops timers and queued handles), then free everything here.
    owned_rt_.reset();
    kill_all(false);
    return;
  }
  post(cmd::shutdown);
  std::unique_lock lk(mu_);
  cv_.wait(lk, [this] { return shut_; });
}

void host::signal_shutdown_done() noexcept {
  std::lock_guard lk(mu_);
  shut_ = true;
  cv_.notify_all();  // the outside thread may free us now
}

// Kills every go block. With loop_alive, runs on the home loop (control);
// else after the runtime stopped. A task whose wake-up is already queued on
// the loop becomes a zombie that frees itself when it runs.
void host::kill_all(bool loop_alive) noexcept {
  dead_ = true;
  baton_.store(outside, std::memory_order_release);
  by_thread_.clear();
  parked_.clear();
  pending_.take_all();
  deferred_.take_all();
  for (lua_task* t = tasks_; t != nullptr;) {
    lua_task* next = t->next;
    bool now = true;
    switch (t->ph) {
      case phase::parked:
        now = t->req.withdraw(loop_alive);
        break;
      case phase::queued:
        now = !loop_alive;
        break;
      default:
        break;
    }
    t->result.close();
    if (now) {
      t->driver.destroy();
      free_task(t);
    } else {
      t->ph = phase::zombie;
      ++zombies_;
    }
    t = next;
  }
  // The outside proxy is idle (the outside thread is here, not parked).
  outside_req_.withdraw(loop_alive);
  outside_req_.clear();
  outside_driver_.destroy();
  if (!loop_alive) control_.destroy();  // else control_body ends by itself
  // Timers posted but never armed.
  std::lock_guard lk(cmd_mu_);
  for (const command& c : cmds_) {
    if (c.kind == cmd::add_timer) {
      auto* t = static_cast<conch::detail::timer_node*>(c.arg);
      if (t->drop != nullptr) t->drop(t);
    }
  }
  cmds_.clear();
}

}  // namespace conch::lua::detail
