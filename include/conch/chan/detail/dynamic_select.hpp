// conch/chan/detail/dynamic_select.hpp
// detail::dynamic_select: a select whose cases (sends and receives, of any channel types) are chosen at run time (internal).
//
// The combinators need a select whose case list changes as they run: mult
// sends one value to every tap still waiting for it, mix receives from the
// inputs that are currently live plus a "config changed" channel. This is a
// thin driver over the select engine of conch/chan/detail/chan_core.hpp (select_start /
// select_finish), so it has exactly the semantics of conch::select: random
// choice among ready cases, exactly one case commits, the others are withdrawn
// before the await returns.
//
//   detail::dynamic_select sel;
//   sel.clear();
//   sel.add_send(ch_a, &value);              // value stays put unless this case commits
//   sel.add_recv(ch_b, &slot);               // a T is constructed in slot if this case commits
//   detail::dynamic_select::outcome o = co_await sel.wait();  // {index, ok}
//
// Not for users: the case storage is raw pointers; the caller keeps the
// channels, the values and the slots alive and in place while it awaits.
#pragma once

#include <cstddef>
#include <optional>
#include <vector>

#include "conch/chan/chan.hpp"

namespace conch::detail {

/// A select over a case list built at run time (internal to the combinators).
///
/// Reuse one object across iterations of a loop: clear() keeps the storage,
/// so a steady-state loop allocates nothing. Not thread-safe: one coroutine
/// owns it. The awaiting coroutine resumes on the loop thread it parked on.
class dynamic_select {
 public:
  /// Which case committed, and its outcome: for a send, true if the value
  /// was taken, false if the channel is closed; for a receive, true if a
  /// value was constructed in the slot, false if the channel is closed and
  /// drained.
  struct outcome {
    std::size_t index;
    bool ok;
  };

  dynamic_select() = default;
  dynamic_select(const dynamic_select&) = delete;
  dynamic_select& operator=(const dynamic_select&) = delete;

  /// Forgets every case (keeps the storage).
  void clear() noexcept {
    ops_.clear();
    destroy_.clear();
  }
  /// Adds a send of `*v` on `ch`. `*v` is moved from only if this case
  /// commits; several send cases may point at the same value (only one
  /// case commits).
  template <class T>
  void add_send(const chan<T>& ch, T* v) {
    ops_.push_back(select_op{get_core(ch), v, true});
    destroy_.push_back(nullptr);
    grow();
  }
  /// Adds a receive from `ch` into raw storage `slot` (a value_slot<T>).
  template <class T>
  void add_recv(const chan<T>& ch, value_slot<T>* slot) {
    ops_.push_back(select_op{get_core(ch), slot->raw(), false});
    destroy_.push_back(elem_ops_for<T>.destroy);
    grow();
  }
  std::size_t size() const noexcept { return ops_.size(); }

  class [[nodiscard]] awaiter {
   public:
    awaiter(dynamic_select& s, bool in_order) noexcept : s_(s), in_order_(in_order) {}
    awaiter(const awaiter&) = delete;
    awaiter& operator=(const awaiter&) = delete;
    ~awaiter() {
      // A frame destroyed while parked (runtime teardown): withdraw every
      // case, and destroy a value a sender may have handed us meanwhile.
      if (parked_) {
        int f = select_finish(s_.ops_.data(), s_.ws_.data(), s_.ops_.size(), &s_.st_);
        if (f >= 0 && s_.ws_[static_cast<std::size_t>(f)].ok) s_.destroy_value(f);
      }
    }
    bool await_ready() const noexcept { return false; }
    bool await_suspend(std::coroutine_handle<> h) noexcept {
      check_on_runtime();
      s_.prepare();
      s_.st_.r = {current_loop(), h.address(), nullptr};
      fired_ = select_start(s_.ops_.data(), s_.ws_.data(), s_.ops_.size(), in_order_, &s_.st_,
                            &ok_, s_.scratch_.data());
      if (fired_ >= 0) return false;
      parked_ = true;
      return true;
    }
    outcome await_resume() noexcept {
      if (parked_) {
        parked_ = false;
        fired_ = select_finish(s_.ops_.data(), s_.ws_.data(), s_.ops_.size(), &s_.st_);
        ok_ = s_.ws_[static_cast<std::size_t>(fired_)].ok;
      }
      return {static_cast<std::size_t>(fired_), ok_};
    }

   private:
    dynamic_select& s_;
    bool in_order_;
    int fired_ = -1;
    bool ok_ = false;
    bool parked_ = false;
  };

  /// co_await -> outcome. Parks until one case commits; random among ready
  /// cases, or the earliest listed with `in_order`. Needs at least one case.
  awaiter wait(bool in_order = false) noexcept { return awaiter(*this, in_order); }

  /// Commits a ready case without parking, or returns nullopt. Any thread.
  std::optional<outcome> poll(bool in_order = false) noexcept {
    prepare();
    bool ok = false;
    int f = select_start(ops_.data(), ws_.data(), ops_.size(), in_order, nullptr, &ok,
                         scratch_.data());
    if (f < 0) return std::nullopt;
    return outcome{static_cast<std::size_t>(f), ok};
  }

 private:
  // Storage for the cases added so far: one waiter each, and the scratch the
  // engine needs (n channel pointers + n 32-bit indices). Allocates here, in
  // add_*, never inside an await.
  void grow() {
    const std::size_t n = ops_.size();
    if (ws_.size() < n) ws_.resize(n);
    if (scratch_.size() < 2 * n) scratch_.resize(2 * n);
  }
  // Fresh waiters and select state for one round.
  void prepare() noexcept {
    const std::size_t n = ops_.size();
    CONCH_CHECK(n > 0, "dynamic_select with no cases");
    for (std::size_t i = 0; i < n; ++i) ws_[i] = waiter{};
    st_.done.store(0, std::memory_order_relaxed);  // relaxed: not shared until parked
    st_.fired = ~0u;
  }
  void destroy_value(int f) noexcept {
    auto i = static_cast<std::size_t>(f);
    if (destroy_[i] != nullptr) destroy_[i](ops_[i].slot);
  }

  using destroy_fn = void (*)(void*) noexcept;
  std::vector<select_op> ops_;
  std::vector<destroy_fn> destroy_;  // per case: T's destructor (recv) or null (send)
  std::vector<waiter> ws_;
  std::vector<void*> scratch_;
  select_state st_;
};

}  // namespace conch::detail
