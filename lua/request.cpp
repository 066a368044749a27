// lua/request.cpp
// request: one channel operation (send, recv or select) of a go block or of
// the outside thread, parked as ordinary channel waiters.
//
// A request owns the elements it sends and receives (in its cases' slots)
// and, while parked, a reference on each channel, so a channel that Lua
// drops meanwhile stays alive until the waiter is gone. Single operations go
// straight to chan_core::send/recv (one lock, attempt and park together, so
// no wake-up is lost); selects go through the core's select engine.
#include "lua/bridge.hpp"

namespace conch::lua::detail {

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

}  // namespace conch::lua::detail
