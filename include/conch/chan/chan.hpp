// conch/chan/chan.hpp
// chan<T>: a typed, thread-safe channel (core.async chan, Go chan).
//
//   conch::chan<int> ch(8);
//   bool sent = co_await ch.send(1);          // false once ch is closed
//   std::optional<int> v = co_await ch.recv(); // nullopt once closed and drained
//   ch.close();
//
// Outcomes are values, never exceptions: send -> bool, recv -> optional.
// Closing is idempotent and wakes every parked sender (false) and receiver
// (nullopt); values buffered before close are still received. A parked
// coroutine resumes on the runtime thread it parked on. Steady-state send and
// recv allocate nothing: a parked operation is a node in the caller's frame.
#pragma once

#include <cstddef>
#include <optional>
#include <type_traits>
#include <utility>

#include "conch/chan/buffer.hpp"
#include "conch/chan/detail/chan_awaiters.hpp"
#include "conch/chan/detail/chan_core.hpp"

namespace conch {

template <class T>
class chan;
template <class T>
chan<T> promise_chan();

/// A handle to a channel of T. Copies share one channel; == compares
/// identity. Thread-safe: any thread and any runtime may use it.
///
/// T must be nothrow-move-constructible. An awaiter returned by send()/recv()
/// borrows the channel: await it in the same expression (the usual
/// `co_await ch.recv()`), while a handle to the channel is alive.
template <class T>
class chan {
  static_assert(std::is_nothrow_move_constructible_v<T>,
                "chan<T> needs a nothrow move constructor");
  static_assert(!std::is_reference_v<T> && !std::is_const_v<T>, "chan<T> holds plain values");

 public:
  using value_type = T;

  /// An unbuffered (rendezvous) channel: a send waits for a receiver.
  chan() : chan(buffer::fixed(0)) {}
  /// A channel with a fixed buffer of `capacity` values (0 = unbuffered).
  /// The slots are allocated up front: a capacity too large for memory
  /// throws std::bad_alloc.
  explicit chan(std::size_t capacity) : chan(buffer::fixed(capacity)) {}
  /// A channel with the given buffer policy (slots allocated up front, as
  /// above: std::bad_alloc when they do not fit in memory).
  explicit chan(buffer b) : c_(detail::chan_core::create(&detail::elem_ops_for<T>, b.kind, b.capacity)) {
    CONCH_CHECK(b.kind == detail::buffer_kind::fixed || b.capacity > 0,
                "dropping and sliding buffers need a capacity of at least 1");
  }

  chan(const chan& o) noexcept : c_(o.c_) { c_->ref(); }
  chan(chan&& o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
  chan& operator=(const chan& o) noexcept {
    if (o.c_ != nullptr) o.c_->ref();
    if (c_ != nullptr) c_->unref();
    c_ = o.c_;
    return *this;
  }
  chan& operator=(chan&& o) noexcept {
    if (this != &o) {
      if (c_ != nullptr) c_->unref();
      c_ = std::exchange(o.c_, nullptr);
    }
    return *this;
  }
  ~chan() {
    if (c_ != nullptr) c_->unref();
  }

  /// co_await -> bool: true once the value is delivered or buffered (or
  /// dropped by a dropping/sliding buffer); false if the channel is or
  /// becomes closed while waiting (the value is not taken).
  detail::send_awaiter<T> send(T v) const noexcept(std::is_nothrow_move_constructible_v<T>) {
    return detail::send_awaiter<T>(c_, std::move(v));
  }
  /// co_await -> std::optional<T>: the next value; nullopt once the channel
  /// is closed and drained.
  detail::recv_awaiter<T> recv() const noexcept { return detail::recv_awaiter<T>(c_); }

  /// Sends without parking (core.async offer!). False if it would have to
  /// wait or the channel is closed; then `v` is not taken.
  bool try_send(T v) const noexcept {
    return c_->send(&v, nullptr) == detail::op_status::ok;
  }
  /// Receives without parking (core.async poll!): nullopt if nothing is
  /// ready or the channel is closed and drained (closed() tells which).
  std::optional<T> try_recv() const noexcept {
    detail::value_slot<T> s;
    if (c_->recv(s.raw(), nullptr) != detail::op_status::ok) return std::nullopt;
    std::optional<T> out(std::move(*s.get()));
    s.get()->~T();
    return out;
  }
  /// Blocks the calling plain thread until sent (core.async >!!). Aborts if
  /// called on a runtime thread, where it would stall every coroutine.
  bool send_blocking(T v) const noexcept {
    return detail::send_blocking(c_, &v) == detail::op_status::ok;
  }
  /// Blocks the calling plain thread until a value or close (core.async <!!).
  std::optional<T> recv_blocking() const noexcept {
    detail::value_slot<T> s;
    if (detail::recv_blocking(c_, s.raw()) != detail::op_status::ok) return std::nullopt;
    std::optional<T> out(std::move(*s.get()));
    s.get()->~T();
    return out;
  }

  /// Closes the channel. Idempotent. Parked senders resume with false,
  /// parked receivers with nullopt; buffered values remain receivable.
  void close() const noexcept { c_->close(); }
  bool closed() const noexcept { return c_->closed(); }
  /// Values buffered now (a promise channel: 1 once it holds its value).
  std::size_t size() const noexcept { return c_->size(); }

  friend bool operator==(const chan& a, const chan& b) noexcept { return a.c_ == b.c_; }

 private:
  friend chan<T> promise_chan<T>();
  friend detail::chan_core* detail::get_core<T>(const chan<T>&) noexcept;
  struct adopt {};  // so that chan<T>(0) is never read as a null core pointer
  chan(adopt, detail::chan_core* c) noexcept : c_(c) {}
  detail::chan_core* c_;
};

/// A channel whose first value sticks: every recv, now and later, gets a copy
/// (core.async promise-chan). Later sends succeed and are dropped. Closing it
/// before a value arrives makes receivers get nullopt. T must be copyable.
template <class T>
chan<T> promise_chan() {
  static_assert(std::is_copy_constructible_v<T>, "promise_chan<T> needs a copyable T");
  return chan<T>(typename chan<T>::adopt{},
                 detail::chan_core::create(&detail::elem_ops_for<T>, detail::buffer_kind::promise, 1));
}

namespace detail {
template <class T>
chan_core* get_core(const chan<T>& c) noexcept {
  return c.c_;
}
}  // namespace detail

}  // namespace conch

template <class T>
struct std::hash<conch::chan<T>> {
  std::size_t operator()(const conch::chan<T>& c) const noexcept {
    return std::hash<const void*>()(conch::detail::get_core(c));
  }
};
