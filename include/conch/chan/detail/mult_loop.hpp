// conch/chan/detail/mult_loop.hpp
// The state and go loop behind mult<T> (internal; not for users).
#pragma once

#include <algorithm>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "conch/chan/chan.hpp"
#include "conch/chan/detail/dynamic_select.hpp"
#include "conch/chan/go.hpp"

namespace conch {

namespace detail {

template <class T>
struct mult_state {
  struct tap_entry {
    chan<T> ch;
    bool close;
  };

  explicit mult_state(chan<T> s) : src(std::move(s)) {}

  const chan<T> src;
  // Nudged (never blocks: sliding 1) whenever the tap set changes, so a
  // distribution parked on a tap that was just untapped gives up on it.
  const chan<unit> changed{buffer::sliding(1)};

  std::mutex mu;
  std::vector<tap_entry> taps;  // guarded by mu
  bool done = false;            // guarded by mu: the source closed

  bool tapped(const chan<T>& ch) {
    std::lock_guard lk(mu);
    return std::any_of(taps.begin(), taps.end(), [&](const tap_entry& e) { return e.ch == ch; });
  }
  /// Untaps `ch`; `nudge` wakes a distribution parked on it.
  void remove(const chan<T>& ch, bool nudge) {
    {
      std::lock_guard lk(mu);
      std::erase_if(taps, [&](const tap_entry& e) { return e.ch == ch; });
    }
    if (nudge) changed.try_send(unit{});
  }
};

/// The mult's go block: read a value, hand a copy to every tap, repeat.
template <class T>
task<void> mult_loop(std::shared_ptr<mult_state<T>> s) {
  std::vector<chan<T>> pending;  // taps that have not yet accepted the current value
  dynamic_select sel;
  value_slot<unit> nudge;
  for (;;) {
    std::optional<T> v = co_await s->src.recv();
    if (!v) break;
    {
      std::lock_guard lk(s->mu);
      pending.clear();
      for (auto& e : s->taps) pending.push_back(e.ch);
    }
    // Fast path: taps with room take their copy at once. `copy` holds the
    // value being offered (made only when needed); a send moves from it only
    // when it commits.
    std::optional<T> copy;
    std::size_t keep = 0;
    for (std::size_t i = 0; i < pending.size(); ++i) {
      if (!copy) copy.emplace(*v);
      switch (get_core(pending[i])->send(&*copy, nullptr)) {
        case op_status::ok:
          copy.reset();
          break;
        case op_status::closed:
          s->remove(pending[i], false);
          break;
        case op_status::blocked:
          pending[keep++] = pending[i];
          break;
      }
    }
    pending.resize(keep);
    // Slow path: park on every tap still waiting (and on tap-set changes)
    // until each has taken its copy, closed, or been untapped.
    while (!pending.empty()) {
      if (!copy) copy.emplace(*v);
      sel.clear();
      for (auto& p : pending) sel.add_send(p, &*copy);
      sel.add_recv(s->changed, &nudge);
      dynamic_select::outcome o = co_await sel.wait();
      if (o.index == pending.size()) {  // the tap set changed: drop untapped ones
        std::erase_if(pending, [&](const chan<T>& p) { return !s->tapped(p); });
        continue;
      }
      if (o.ok)
        copy.reset();
      else
        s->remove(pending[o.index], false);  // closed: core.async removes it from the mult
      pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(o.index));
    }
  }
  // The source closed: close the taps that asked for it.
  std::vector<typename mult_state<T>::tap_entry> taps;
  {
    std::lock_guard lk(s->mu);
    s->done = true;
    taps.swap(s->taps);
  }
  for (auto& e : taps)
    if (e.close) e.ch.close();
}

}  // namespace detail
}  // namespace conch
