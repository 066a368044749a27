// conch/chan/pipe.hpp
// Moving values between channels: pipe, merge, split.
//
//   conch::chan<int> a = conch::to_chan(std::vector{1, 2});
//   conch::chan<int> b = conch::to_chan(std::vector{3, 4});
//   conch::chan<int> all = conch::merge(std::vector{a, b});   // closes once a and b have
//   auto [evens, odds] = conch::split([](int x) { return x % 2 == 0; }, all, conch::buffer::fixed(4),
//                                     conch::buffer::fixed(4));
//   conch::chan<int> sink(4);
//   conch::pipe(evens, sink);   // sink gets 2 and 4 (in the order merge took them), then closes
//
// Each function starts one go block; the rules they share are in
// conch/chan/ops.hpp.
#pragma once

#include <utility>
#include <vector>

#include "conch/chan/buffer.hpp"
#include "conch/chan/chan.hpp"
#include "conch/chan/detail/pipe_loops.hpp"
#include "conch/chan/go.hpp"

namespace conch {

/// Takes every value from `from` and sends it to `to` (core.async pipe).
/// When `from` closes, `to` is closed if `close` (the default). If `to` is
/// closed, pipe stops taking from `from`. Returns `to`. Starts a go block:
/// call on a runtime thread.
template <class T>
chan<T> pipe(chan<T> from, chan<T> to, bool close = true) {
  go(detail::pipe_loop<T>(std::move(from), to, close));
  return to;
}

/// A channel of every value of every source, in the order they are taken
/// (random among sources ready together); it closes once all sources have
/// closed (core.async merge). With no sources it is closed at once. Starts a
/// go block: call on a runtime thread.
template <class T>
chan<T> merge(std::vector<chan<T>> ins, buffer out_buf = buffer::fixed(0)) {
  chan<T> out(out_buf);
  go(detail::merge_loop<T>(std::move(ins), out));
  return out;
}

/// Two channels: the values of `in` for which pred is true, and those for
/// which it is false (core.async split). Both close when `in` closes. If one
/// of them is closed by its consumer, its values are dropped; when both are,
/// split stops reading `in` (core.async stops at the first refused value and
/// leaves the other open). Starts a go block: call on a runtime thread.
template <class P, class T>
  requires detail::predicate_on<P, T>
std::pair<chan<T>, chan<T>> split(P pred, chan<T> in, buffer true_buf = buffer::fixed(0),
                                  buffer false_buf = buffer::fixed(0)) {
  chan<T> yes(true_buf);
  chan<T> no(false_buf);
  go(detail::split_loop<P, T>(std::move(pred), std::move(in), yes, no));
  return {yes, no};
}

}  // namespace conch
