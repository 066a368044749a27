// channels/timeout.cpp
// timeout(): a private channel closed by a timer on the calling loop.
#include "conch/chan/go.hpp"
#include "src/loop.hpp"

namespace conch {

namespace {
// Owned by the timer heap from timer_add until it fires or the runtime drops it.
struct timeout_node final : detail::timer_node {
  chan<unit> ch;
  explicit timeout_node(chan<unit> c) : ch(std::move(c)) {}
};
}  // namespace

chan<unit> timeout(std::chrono::nanoseconds d) {
  detail::loop* l = detail::current_loop();
  CONCH_CHECK(l != nullptr, "conch::timeout() called outside a runtime thread");
  chan<unit> c;
  auto* node = new timeout_node(c);
  node->deadline_ns = detail::now_ns() + d.count();
  node->fire = [](detail::timer_node* t) noexcept {
    auto* self = static_cast<timeout_node*>(t);
    self->ch.close();
    delete self;
  };
  node->drop = [](detail::timer_node* t) noexcept { delete static_cast<timeout_node*>(t); };
  l->timer_add(node);
  return c;
}

}  // namespace conch
