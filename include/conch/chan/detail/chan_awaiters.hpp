// conch/chan/detail/chan_awaiters.hpp
// The awaiters behind chan<T>::send and recv (internal; not for users).
#pragma once

#include <cstddef>
#include <optional>
#include <type_traits>
#include <utility>

#include "conch/chan/buffer.hpp"
#include "conch/chan/detail/chan_core.hpp"

namespace conch {

template <class T>
class chan;

namespace detail {

/// Raw, suitably aligned storage for one T that may or may not hold a value.
template <class T>
struct value_slot {
  alignas(T) unsigned char bytes[sizeof(T)];
  T* get() noexcept { return std::launder(reinterpret_cast<T*>(bytes)); }
  void* raw() noexcept { return bytes; }
};

inline void check_on_runtime() noexcept {
  CONCH_CHECK(current_loop() != nullptr,
              "a channel operation was awaited outside a runtime thread; use "
              "send_blocking/recv_blocking from plain threads");
}

template <class T>
chan_core* get_core(const chan<T>& c) noexcept;

/// co_await ch.send(v). Holds the value until a receiver takes it.
template <class T>
class [[nodiscard]] send_awaiter {
 public:
  send_awaiter(chan_core* c, T v) noexcept(std::is_nothrow_move_constructible_v<T>)
      : c_(c), v_(std::move(v)) {}
  send_awaiter(const send_awaiter&) = delete;
  send_awaiter& operator=(const send_awaiter&) = delete;
  ~send_awaiter() {
    if (parked_) c_->cancel(&w_);  // a frame destroyed while parked
  }
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) noexcept {
    check_on_runtime();
    w_.init_single({current_loop(), h.address(), nullptr});
    op_status s = c_->send(&v_, &w_);
    if (s == op_status::blocked) {
      parked_ = true;
      return true;
    }
    ok_ = s == op_status::ok;
    return false;
  }
  /// true if the value was delivered (or buffered, or dropped by a dropping
  /// or sliding buffer); false if the channel was closed (value not taken).
  bool await_resume() noexcept {
    if (parked_) {
      parked_ = false;
      ok_ = w_.ok;
    }
    return ok_;
  }

 private:
  chan_core* c_;
  T v_;
  waiter w_;
  bool parked_ = false;
  bool ok_ = false;
};

/// co_await ch.recv().
template <class T>
class [[nodiscard]] recv_awaiter {
 public:
  explicit recv_awaiter(chan_core* c) noexcept : c_(c) {}
  recv_awaiter(const recv_awaiter&) = delete;
  recv_awaiter& operator=(const recv_awaiter&) = delete;
  ~recv_awaiter() {
    // A frame destroyed while parked: withdraw, and if a sender completed us
    // in the meantime, destroy the value we were handed.
    if (parked_ && !c_->cancel(&w_) && w_.ok) slot_.get()->~T();
  }
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) noexcept {
    check_on_runtime();
    w_.init_single({current_loop(), h.address(), nullptr});
    op_status s = c_->recv(slot_.raw(), &w_);
    if (s == op_status::blocked) {
      parked_ = true;
      return true;
    }
    ok_ = s == op_status::ok;
    return false;
  }
  /// The value, or nullopt if the channel is closed and drained.
  std::optional<T> await_resume() noexcept(std::is_nothrow_move_constructible_v<T>) {
    if (parked_) {
      parked_ = false;
      ok_ = w_.ok;
    }
    if (!ok_) return std::nullopt;
    std::optional<T> out(std::move(*slot_.get()));
    slot_.get()->~T();
    return out;
  }

 private:
  chan_core* c_;
  value_slot<T> slot_;
  waiter w_;
  bool parked_ = false;
  bool ok_ = false;
};

}  // namespace detail
}  // namespace conch
