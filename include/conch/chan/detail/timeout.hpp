// conch/chan/detail/timeout.hpp
// make_close_timer(): a heap-owned timer that closes a channel when it fires (internal).
//
//   // On a loop thread (conch::timeout does exactly this):
//   timer_node* t = detail::make_close_timer(detail::get_core(c), detail::now_ns() + d.count());
//   if (t == nullptr) throw std::bad_alloc();
//   detail::timer_add(detail::current_loop(), t);   // the heap owns it from here
//
// The one timer mechanism behind conch::timeout() and the Lua bridge's
// conch.timeout / conch.sleep (lua/ posts the node to its home loop when the
// caller is not on it). Internal: not part of the public API.
#pragma once

#include <cstdint>

#include "conch/core/runtime.hpp"

namespace conch::detail {

class chan_core;

/// Makes an unarmed timer that closes `core` at `deadline_ns` (now_ns()
/// clock). The node holds its own reference on `core`, so the channel lives
/// until the timer is gone even if every handle is dropped.
///
/// Returns null if out of memory (nothing is made, `core` is untouched).
/// Otherwise the caller arms the node with timer_add() on a loop thread; from
/// then on the loop's timer heap owns it: it closes the channel and frees
/// itself when it fires, or `drop` frees it (without closing) if the runtime
/// is destroyed first. A node that is never armed must be freed with its
/// `drop`. Thread-safe (it only allocates and takes a reference).
timer_node* make_close_timer(chan_core* core, std::int64_t deadline_ns) noexcept;

}  // namespace conch::detail
