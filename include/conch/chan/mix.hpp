// conch/chan/mix.hpp
// mix<T>: merge a changing set of input channels into one output, with per-input mute/pause/solo (core.async mix).
//
//   conch::chan<sample> out(16);
//   conch::mix<sample> m{out};                 // starts a go block feeding out
//   m.admix(mic);
//   m.admix(music);
//   m.toggle(music, {.mute = true});           // music is read but not passed on
//   m.toggle(mic, {.solo = true});             // only soloed inputs reach out
//   m.solo_mode(conch::solo_mode::pause);      // non-soloed inputs are not even read
//   m.unmix(mic);
//
// Semantics (core.async's): each input has three flags, all false when added.
//  - mute: the input is read, its values are dropped.
//  - pause: the input is not read (its senders wait).
//  - solo: when any input is soloed, only soloed inputs reach `out`; the
//    others are muted (solo_mode::mute, the default) or paused
//    (solo_mode::pause). The mute and pause flags of soloed inputs are ignored.
// Among inputs with values ready the mix picks at random. An input that
// closes is removed. The mix never closes `out`; its go block ends when a send
// to `out` fails because `out` is closed. Changes (admix, toggle, ...) apply
// from the next value the mix reads; a value already read is still delivered.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "conch/chan/chan.hpp"
#include "conch/chan/detail/dynamic_select.hpp"
#include "conch/chan/go.hpp"

namespace conch {

/// What a solo does to the inputs that are not soloed (core.async solo-mode).
enum class solo_mode {
  mute,   ///< they are read and their values dropped (the default)
  pause,  ///< they are not read
};

/// Flags to change on one input of a mix; unset fields keep their value
/// (core.async merges the state map into the current state).
struct toggle_state {
  std::optional<bool> mute;
  std::optional<bool> pause;
  std::optional<bool> solo;
};

namespace detail {

template <class T>
struct mix_state {
  struct input {
    chan<T> ch;
    bool mute = false;
    bool pause = false;
    bool solo = false;
  };

  explicit mix_state(chan<T> o) : out(std::move(o)) {}

  const chan<T> out;
  const chan<unit> changed{buffer::sliding(1)};  // nudges the go block to recompute

  std::mutex mu;
  std::vector<input> inputs;                       // guarded by mu
  conch::solo_mode mode = conch::solo_mode::mute;  // guarded by mu
  // Bumped under mu by every change; the go block compares it with the
  // version its plan was made from before each read.
  std::atomic<std::uint64_t> version{0};

  input& find_or_add(const chan<T>& ch) {  // mu held
    bump();
    auto it = std::find_if(inputs.begin(), inputs.end(), [&](const input& i) { return i.ch == ch; });
    if (it != inputs.end()) return *it;
    inputs.push_back(input{ch});
    return inputs.back();
  }
  void remove(const chan<T>& ch) {
    std::lock_guard lk(mu);
    std::erase_if(inputs, [&](const input& i) { return i.ch == ch; });
    bump();
  }
  // mu held. release: pairs with the acquire load in mix_loop, so a plan
  // made after seeing the new version sees the change.
  void bump() { version.fetch_add(1, std::memory_order_release); }
  /// Call after a change, with mu released: wakes a go block parked on reads.
  void nudge() { changed.try_send(unit{}); }

  /// The inputs to read now, for each whether its values reach `out`, and
  /// the version this plan reflects.
  std::uint64_t plan(std::vector<chan<T>>& reads, std::vector<char>& emit) {
    std::lock_guard lk(mu);
    reads.clear();
    emit.clear();
    bool solos = std::any_of(inputs.begin(), inputs.end(), [](const input& i) { return i.solo; });
    for (const input& i : inputs) {
      bool read = solos ? (i.solo || (mode == conch::solo_mode::mute && !i.pause)) : !i.pause;
      if (!read) continue;
      reads.push_back(i.ch);
      emit.push_back(solos ? i.solo : !i.mute);
    }
    return version.load(std::memory_order_relaxed);  // relaxed: written under mu, which we hold
  }
};

/// The mix's go block: receive from the live inputs, pass values on.
template <class T>
task<void> mix_loop(std::shared_ptr<mix_state<T>> s) {
  std::vector<chan<T>> reads;
  std::vector<char> emit;
  dynamic_select sel;
  value_slot<T> slot;
  value_slot<unit> nudge;
  for (;;) {
    s->changed.try_recv();  // this plan covers every change so far
    const std::uint64_t seen = s->plan(reads, emit);
    sel.clear();
    for (auto& r : reads) sel.add_recv(r, &slot);
    sel.add_recv(s->changed, &nudge);
    // Keep this plan until the configuration changes or an input closes. The
    // version check makes a change that returned before this read apply to
    // it, even when the nudge and an input are ready together.
    for (;;) {
      if (s->version.load(std::memory_order_acquire) != seen) break;
      dynamic_select::outcome o = co_await sel.wait();
      if (o.index == reads.size()) break;  // changed: plan again
      if (!o.ok) {                         // that input closed: core.async drops it
        s->remove(reads[o.index]);
        break;
      }
      T v(std::move(*slot.get()));
      slot.get()->~T();
      if (emit[o.index] && !co_await s->out.send(std::move(v))) co_return;  // out closed: the mix ends
    }
  }
}

}  // namespace detail

/// A mix of input channels onto one output channel (core.async mix).
///
/// A handle: copies share one mix. The constructor starts the go block that
/// feeds `out`; it runs on the runtime's loop threads until `out` is closed.
/// admix, unmix, unmix_all, toggle and solo_mode are thread-safe, may be
/// called from any thread, and take effect before the mix reads its next
/// value.
template <class T>
class mix {
 public:
  /// Creates an empty mix feeding `out`. Must be called on a runtime thread.
  explicit mix(chan<T> out) : s_(std::make_shared<detail::mix_state<T>>(std::move(out))) {
    go(detail::mix_loop<T>(s_));
  }

  /// Adds `ch` as an input with no flags set (core.async admix). Adding a
  /// channel that is already an input leaves its flags unchanged.
  void admix(const chan<T>& ch) const {
    {
      std::lock_guard lk(s_->mu);
      s_->find_or_add(ch);
    }
    s_->nudge();
  }
  /// Removes `ch` from the inputs; it is not closed (core.async unmix).
  void unmix(const chan<T>& ch) const {
    s_->remove(ch);
    s_->nudge();
  }
  /// Removes every input; none is closed (core.async unmix-all).
  void unmix_all() const {
    {
      std::lock_guard lk(s_->mu);
      s_->inputs.clear();
      s_->bump();
    }
    s_->nudge();
  }
  /// Sets the given flags of `ch`, adding it as an input if it is not one
  /// (core.async toggle with one channel).
  void toggle(const chan<T>& ch, toggle_state st) const {
    toggle(std::vector<std::pair<chan<T>, toggle_state>>{{ch, st}});
  }
  /// Sets the flags of several inputs at once: the mix never reads with
  /// only some of them applied (core.async toggle with a state map).
  void toggle(const std::vector<std::pair<chan<T>, toggle_state>>& changes) const {
    {
      std::lock_guard lk(s_->mu);
      for (const auto& c : changes) {
        auto& in = s_->find_or_add(c.first);
        if (c.second.mute) in.mute = *c.second.mute;
        if (c.second.pause) in.pause = *c.second.pause;
        if (c.second.solo) in.solo = *c.second.solo;
      }
    }
    s_->nudge();
  }
  /// Sets what soloing does to the other inputs (core.async solo-mode).
  void solo_mode(conch::solo_mode m) const {
    {
      std::lock_guard lk(s_->mu);
      s_->mode = m;
      s_->bump();
    }
    s_->nudge();
  }

  /// The output channel (core.async muxch*).
  const chan<T>& out() const noexcept { return s_->out; }

  /// Number of inputs now (a snapshot; for tests and diagnostics).
  std::size_t input_count() const {
    std::lock_guard lk(s_->mu);
    return s_->inputs.size();
  }

 private:
  std::shared_ptr<detail::mix_state<T>> s_;
};

template <class T>
mix(chan<T>) -> mix<T>;

}  // namespace conch
