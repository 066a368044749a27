// channels/timeout.cpp
// The close timer (a channel closed when a timer fires) and timeout() on top of it.
//
// Invariants:
//  - A close_timer holds one reference on its channel from make_close_timer
//    until it is freed, so a timer never closes a freed channel.
//  - After timer_add the loop's timer heap owns the node: exactly one of
//    `fire` (on the loop thread) or `drop` (runtime destroyed first) runs,
//    and either frees it.
// Lock order: none held here; close() takes the channel's lock on its own.
#include <new>

#include "conch/chan/detail/chan_core.hpp"
#include "conch/chan/detail/timeout.hpp"
#include "conch/chan/go.hpp"

namespace conch::detail {

namespace {

struct close_timer final : timer_node {
  chan_core* core;
};

// Fired on the loop thread: close the channel, then let go of it.
void close_timer_fire(timer_node* t) noexcept {
  auto* self = static_cast<close_timer*>(t);
  self->core->close();
  self->core->unref();
  delete self;
}

// The runtime stopped before the deadline: free without closing.
void close_timer_drop(timer_node* t) noexcept {
  auto* self = static_cast<close_timer*>(t);
  self->core->unref();
  delete self;
}

}  // namespace

timer_node* make_close_timer(chan_core* core, std::int64_t deadline_ns) noexcept {
  auto* t = new (std::nothrow) close_timer;
  if (t == nullptr) return nullptr;  // out of memory: nothing taken
  core->ref();
  t->core = core;
  t->deadline_ns = deadline_ns;
  t->fire = &close_timer_fire;
  t->drop = &close_timer_drop;
  return t;
}

}  // namespace conch::detail

namespace conch {

chan<unit> timeout(std::chrono::nanoseconds d) {
  detail::loop* l = detail::current_loop();
  CONCH_CHECK(l != nullptr, "conch::timeout() called outside a runtime thread");
  chan<unit> c;
  detail::timer_node* t = detail::make_close_timer(detail::get_core(c), detail::now_ns() + d.count());
  if (t == nullptr) throw std::bad_alloc();  // as the plain `new` it replaces did
  detail::timer_add(l, t);
  return c;
}

}  // namespace conch
