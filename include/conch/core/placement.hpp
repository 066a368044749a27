// conch/core/placement.hpp
// placement: which loop (thread) a go block or a Lua state runs on, chosen on purpose.
//
//   // two CPU-bound halves side by side on a 2-thread runtime
//   auto a = conch::go_on(conch::placement::least_busy(), crunch(0, n / 2));
//   auto b = conch::go_on(conch::placement::least_busy(), crunch(n / 2, n));
//   // a chatty partner kept on this thread: no cross-CPU hop per message
//   auto p = conch::go_on(conch::placement::here(), pong(ch));
//
// go() starts a go block on the calling loop and lets an idle loop take it
// only if the owner leaves it waiting, so go blocks that talk to each other
// stay on one CPU. Work meant to run side by side is placed: go_on (in
// conch/chan/go.hpp) with a placement, pipeline's workers (one per loop in
// turn), a server's connections and the conch::lua::state of an embedding
// (least busy). A placed go block starts on its loop and never moves.
#pragma once

#include <cstdint>

namespace conch {

/// Where a placed go block (or a Lua state) runs.
class placement {
 public:
  /// Loop `index` of the runtime, modulo the number of loops (so
  /// `loop(this_loop() + i)` walks the loops from the caller's).
  static constexpr placement loop(unsigned index) noexcept { return {kind::fixed, index}; }
  /// The calling thread's loop.
  static constexpr placement here() noexcept { return {kind::caller, 0}; }
  /// The loop with the fewest live go blocks at the moment of the call
  /// (counting those started or placed there); ties go round robin, so
  /// successive calls on an idle runtime spread over every loop.
  static constexpr placement least_busy() noexcept { return {kind::least_busy, 0}; }

  enum class kind : std::uint8_t { fixed, caller, least_busy };
  constexpr kind how() const noexcept { return how_; }
  constexpr unsigned index() const noexcept { return index_; }

 private:
  constexpr placement(kind k, unsigned i) noexcept : how_(k), index_(i) {}
  kind how_;
  unsigned index_;
};

/// The calling loop thread's index in its runtime, 0 .. loop_count() - 1.
/// Must be called on a runtime thread.
unsigned this_loop();

/// The number of loops (threads) of the calling thread's runtime.
/// Must be called on a runtime thread.
unsigned loop_count();

}  // namespace conch
