// conch/chan/buffer.hpp
// buffer: how a channel buffers values (core.async's buffer kinds).
//
//   conch::chan<int> a{conch::buffer::fixed(16)};     // send parks when full
//   conch::chan<int> b{conch::buffer::dropping(16)};  // full: the new value is dropped
//   conch::chan<int> c{conch::buffer::sliding(16)};   // full: the oldest value is dropped
#pragma once

#include <cstddef>

#include "conch/chan/detail/chan_core.hpp"

namespace conch {

/// A channel's buffering policy. Sends into dropping and sliding buffers
/// never park; they succeed (returning true) until the channel is closed.
struct buffer {
  /// Holds up to n values; a send on a full buffer parks. n == 0 is an
  /// unbuffered (rendezvous) channel.
  static buffer fixed(std::size_t n) noexcept { return {detail::buffer_kind::fixed, n}; }
  /// Holds up to n values; a send on a full buffer succeeds and the new value
  /// is dropped. n must be at least 1.
  static buffer dropping(std::size_t n) noexcept { return {detail::buffer_kind::dropping, n}; }
  /// Holds up to n values; a send on a full buffer succeeds and the oldest
  /// value is dropped. n must be at least 1.
  static buffer sliding(std::size_t n) noexcept { return {detail::buffer_kind::sliding, n}; }

  detail::buffer_kind kind;
  std::size_t capacity;
};

}  // namespace conch
