// lua/request.cpp
// request: one channel operation (send, recv or select) of a go block or of
// the outside thread, parked as ordinary channel waiters.
//
// A request owns the elements it sends and receives (in its cases' slots)
// and, while parked, a reference on each channel, so a channel that Lua
// drops meanwhile stays alive until the waiter is gone. Single operations go
// straight to chan_core::send/recv (one lock, attempt and park together, so
// no wake-up is lost); selects go through the core's select engine.
//
// Invariants:
//  - A request is touched only by the baton holder, and by the home loop
//    while it is parked (its waiters are on channels).
//  - While parked it holds a reference on every case's channel (refd).
//  - The Lua side (run_op and friends, the last section) raises only after
//    clear(), so no element is left behind in a busy request.
// Lock order: none held here; the channel and select calls lock the channels.
#include "lua/bridge.hpp"

namespace conch::lua::detail {

// ---- the request ----

bool request::reset(std::size_t count) noexcept {
  if (n != 0 || kind != op::none) clear();
  if (count == 1 && !cases.empty()) {  // the common case: a single send or recv
    n = 1;
    op_case& c = cases[0];
    c.is_send = c.full = c.refd = false;
    return true;
  }
  try {
    if (cases.size() < count) {
      cases.resize(count);  // all slots are empty here, so moving cases is fine
      ops.resize(count);
      ws.resize(count);
      scratch.resize(2 * count);
    }
  } catch (...) {
    return false;
  }
  n = count;
  for (std::size_t i = 0; i < n; ++i) {
    op_case& c = cases[i];
    c.core = nullptr;
    c.is_send = false;
    c.full = false;
    c.refd = false;
  }
  return true;
}

void request::clear() noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    op_case& c = cases[i];
    if (c.full) destroy_elem(c.type, c.slot.raw());
    c.full = false;
    if (c.refd) c.core->unref();
    c.refd = false;
  }
  n = 0;
  kind = op::none;
  in_order = false;
  ok = false;
  fired = -1;
}

int request::start(const resumer* r) noexcept {
  if (kind == op::single) {
    op_case& c = cases[0];
    waiter* w = nullptr;
    if (r != nullptr) {
      w = &ws[0];
      w->sel = nullptr;  // the core sets the links, slot and outcome
      w->ok = false;
      w->r = *r;
    }
    op_status s = c.is_send ? c.core->send(c.slot.raw(), w) : c.core->recv(c.slot.raw(), w);
    if (s == op_status::blocked) {
      // Parked: hold the channel from now on (until here the caller's Lua
      // userdata, on the stack of the running C function, kept it alive).
      if (r != nullptr) take_refs();
      return -1;
    }
    ok = s == op_status::ok;
    fired = 0;
    if (!c.is_send && ok) c.full = true;
    return 0;
  }
  // select
  for (std::size_t i = 0; i < n; ++i) ops[i] = {cases[i].core, cases[i].slot.raw(), cases[i].is_send};
  select_state* stp = nullptr;
  if (r != nullptr) {
    st.done.store(0, std::memory_order_relaxed);  // ordered by the channel locks that follow
    st.fired = ~0u;
    st.r = *r;
    for (std::size_t i = 0; i < n; ++i) ws[i] = waiter{};
    stp = &st;
  }
  bool okv = false;
  int f = conch::detail::select_start(ops.data(), ws.data(), n, in_order, stp, &okv, scratch.data());
  if (f < 0) {
    if (r != nullptr) take_refs();  // see the single case
    return -1;
  }
  ok = okv;
  fired = f;
  if (!cases[static_cast<std::size_t>(f)].is_send && ok) cases[static_cast<std::size_t>(f)].full = true;
  return f;
}

void request::take_refs() noexcept {
  for (std::size_t i = 0; i < n; ++i) {
    op_case& c = cases[i];
    if (!c.refd) {
      c.core->ref();
      c.refd = true;
    }
  }
}

void request::finish() noexcept {
  switch (kind) {
    case op::single:
      // The waker unlinked ws[0] and set ok before scheduling us.
      ok = ws[0].ok;
      fired = 0;
      if (!cases[0].is_send && ok) cases[0].full = true;
      break;
    case op::select: {
      fired = conch::detail::select_finish(ops.data(), ws.data(), n, &st);
      auto f = static_cast<std::size_t>(fired);
      ok = ws[f].ok;
      if (!cases[f].is_send && ok) cases[f].full = true;
      break;
    }
    case op::sleep:
    case op::yield:
    case op::none:
      break;
  }
  kind = op::none;
}

bool request::withdraw(bool loop_alive) noexcept {
  bool quiet = true;  // nothing will wake the owner
  switch (kind) {
    case op::single:
      if (!cases[0].core->cancel(&ws[0])) {
        quiet = false;
        if (!cases[0].is_send && ws[0].ok) cases[0].full = true;  // destroy what we were handed
      }
      break;
    case op::select: {
      int f = conch::detail::select_finish(ops.data(), ws.data(), n, &st);
      if (f >= 0) {
        quiet = false;
        auto fi = static_cast<std::size_t>(f);
        if (!cases[fi].is_send && ws[fi].ok) cases[fi].full = true;
      }
      break;
    }
    case op::sleep:
      // A stopped runtime disarmed every timer without firing it.
      if (loop_alive) {
        if (timer.armed())
          conch::detail::timer_cancel(timer.home, &timer);
        else
          quiet = false;
      }
      break;
    case op::yield:
      quiet = false;
      break;
    case op::none:
      break;
  }
  kind = op::none;
  return quiet || !loop_alive;
}

// ---- running a request from Lua ----

request* get_request(lua_State* L, host* h) {
  request* r = h->op_request();
  if (r->kind != op::none)  // busy: we run inside another operation's push
    luaL_error(L, "conch: channel operation inside a finalizer or hook that interrupted another one");
  return r;
}

int raise_not_yieldable(lua_State* L) {
  return luaL_error(L,
                    "conch: cannot wait on a channel here: this code cannot yield to its go block "
                    "(a metamethod, an iterator, table.sort, a finalizer, or a coroutine resumed by a "
                    "coroutine.resume that conch did not install)");
}

int run_op(lua_State* L, host* h, request* r, lua_KFunction k) {
  if (h->current() != nullptr) {
    if (h->can_park(L)) {
      // In a go block that can yield: park for the driver, yield the tag.
      resumer res = h->park_resumer();
      if (r->start(&res) < 0) {
        lua_pushlightuserdata(L, park_tag());
        return lua_yieldk(L, 1, host_ctx(h), k);
      }
    } else if (r->start(nullptr) < 0) {
      // It cannot yield and the operation is not ready: an error.
      r->clear();
      return raise_not_yieldable(L);
    }
  } else {
    // Outside any go block. On the home loop itself (a finalizer run by a
    // driver step) nothing could run the loop for us.
    if (h->on_home_loop()) {
      r->clear();
      return raise_not_yieldable(L);
    }
    resumer res = h->park_resumer();
    if (r->start(&res) < 0) h->wait_outside();  // <!!: the loop runs until it completes
  }
  return k(L, LUA_OK, host_ctx(h));
}

bool push_received(lua_State* L, request* r, std::size_t i) {
  op_case& c = r->cases[i];
  if (c.is_send || !r->ok || !c.full) return false;  // a send, or closed: nothing received
  r->kind = op::single;  // busy while pushing (any kind but none: see get_request)
  push_elem(L, c.type, c.slot.raw());
  return true;
}

int recv_core(lua_State* L, host* h, chan_core* core, elem type, lua_KFunction k) {
  request* r = get_request(L, h);
  if (!r->reset(1)) return raise_no_memory(L);
  r->kind = op::single;
  op_case& c = r->cases[0];
  c.core = core;
  c.type = type;
  return run_op(L, h, r, k);
}

}  // namespace conch::lua::detail
