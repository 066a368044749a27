// lua/control.cpp
// The host's thread hand-over: the baton, the control queue (outside thread -> home loop), timers, shutdown.
//
// Invariants:
//  - baton_ goes outside -> on_loop only on the outside thread (which then
//    stops touching Lua and posts a kick), and on_loop -> outside only on the
//    home loop outside any driver step (control command, outside proxy), so
//    a driver that read on_loop finishes its step before the outside thread
//    can run Lua again.
//  - The control coroutine is scheduled at most once at a time
//    (control_scheduled_); a command posted while it runs schedules it again.
//  - A timer posted with cmd::add_timer is owned by the command until the
//    loop arms it; kill_all drops the ones never armed.
//  - After cmd::shutdown the control coroutine touches nothing of the host
//    (the outside thread may free it once shut_ is set).
// Lock order: mu_ and cmd_mu_ are leaves, never held together; channel locks
// are taken without holding either (a channel lock may take a loop's
// remote-queue lock).
#include "conch/chan/detail/timeout.hpp"
#include "lua/bridge.hpp"

namespace conch::lua::detail {

// ---- timers ----

void host::add_timer(conch::detail::timer_node* t) noexcept {
  if (on_home_loop())
    conch::detail::timer_add(home_, t);
  else
    post(cmd::add_timer, t);
}

bool host::close_after(chan_core* core, std::int64_t ns) noexcept {
  conch::detail::timer_node* t = conch::detail::make_close_timer(core, conch::detail::now_ns() + ns);
  if (t == nullptr) return false;  // out of memory: nothing armed
  add_timer(t);
  return true;
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

// Called with the baton; waits for the go blocks like a parked operation.
void host::wait_idle() noexcept {
  if (by_thread_.empty()) return;
  wait_idle_ = true;  // outside_req_ is idle: the proxy's finish() does nothing
  wait_outside();
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
