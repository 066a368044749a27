// conch/chan/mult.hpp
// mult<T>: copy every value of one channel to any number of tap channels (core.async mult/tap).
//
//   conch::chan<event> src(16);
//   conch::mult<event> m{src};            // starts a go block reading src
//   conch::chan<event> a(8), b(8);
//   m.tap(a);                             // a and b each get every value from now on
//   m.tap(b, /*close=*/false);            // b stays open when src closes
//   m.untap(a);
//
// Semantics (core.async's): each value is offered to all taps in parallel and
// synchronously: every tap must accept it before the next value is read from
// the source, so a slow tap slows the mult (buffer or window the tap channels
// to decouple). Values read while there are no taps are dropped. A tap that
// turns out to be closed is removed. When the source closes, the taps added
// with close=true are closed. An untap takes effect at once, even for the
// value being distributed.
#pragma once

#include <algorithm>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "conch/chan/chan.hpp"
#include "conch/chan/detail/dynamic_select.hpp"
#include "conch/chan/detail/mult_loop.hpp"
#include "conch/chan/go.hpp"

namespace conch {

/// A mult(iple) of a source channel: every value read from the source is
/// copied to each tap channel (core.async mult). T must be copyable.
///
/// A handle: copies share one mult. The go block that reads the source is
/// started by the constructor and runs on the runtime's loop threads until
/// the source closes; it holds the mult's state, so dropping every handle
/// does not stop it. tap/untap/untap_all are thread-safe and may be called
/// from any thread.
template <class T>
class mult {
  static_assert(std::is_copy_constructible_v<T>, "mult<T> copies values: T must be copyable");

 public:
  /// Starts distributing `src`. Values read before the first tap are
  /// dropped. Must be called on a runtime thread (it starts a go block).
  explicit mult(chan<T> src)
      : s_(std::make_shared<detail::mult_state<T>>(std::move(src))),
        done_(go(detail::mult_loop<T>(s_))) {}

  /// Copies the source onto `ch` from the next value on (core.async tap).
  /// With `close` (the default) `ch` is closed when the source closes; if the
  /// source has already closed, `ch` is closed now. Tapping a channel twice
  /// updates its close flag. If `ch` is found closed while the mult offers it
  /// a value, it is untapped. Returns `ch`. Any thread.
  chan<T> tap(chan<T> ch, bool close = true) const {
    bool closed_now = false;
    {
      std::lock_guard lk(s_->mu);
      if (s_->done) {
        closed_now = close;
      } else {
        auto it = std::find_if(s_->taps.begin(), s_->taps.end(),
                               [&](const auto& e) { return e.ch == ch; });
        if (it != s_->taps.end())
          it->close = close;
        else
          s_->taps.push_back({ch, close});
      }
    }
    if (closed_now) ch.close();
    return ch;
  }

  /// Disconnects `ch` (core.async untap). It is not closed. Takes effect at
  /// once: if the mult is waiting for `ch` to accept the current value, it
  /// stops waiting. Untapping a channel that is not tapped does nothing.
  /// Any thread.
  void untap(const chan<T>& ch) const { s_->remove(ch, true); }

  /// Disconnects every tap, closing none (core.async untap-all). Any thread.
  void untap_all() const {
    {
      std::lock_guard lk(s_->mu);
      s_->taps.clear();
    }
    s_->changed.try_send(unit{});
  }

  /// The source channel (core.async muxch*).
  const chan<T>& source() const noexcept { return s_->src; }

  /// A channel that gets unit{} and closes once the mult's go block has
  /// ended: the source closed, every value read was offered to the taps, and
  /// the close=true taps were closed. Await it to know distribution is over.
  const chan<unit>& done() const noexcept { return done_; }

  /// Number of taps now (a snapshot; for tests and diagnostics).
  std::size_t tap_count() const {
    std::lock_guard lk(s_->mu);
    return s_->taps.size();
  }

 private:
  std::shared_ptr<detail::mult_state<T>> s_;
  chan<unit> done_;
};

template <class T>
mult(chan<T>) -> mult<T>;

}  // namespace conch
