// conch/chan/detail/select_awaiters.hpp
// The awaiters behind select, select_in_order and try_select (internal; not for users).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <tuple>
#include <utility>
#include <variant>
#include <vector>

#include "conch/chan/chan.hpp"

namespace conch {

template <class T>
struct recv_case;
template <class T>
struct send_case;

namespace detail {

template <class C>
inline constexpr bool is_case_v = false;
template <class T>
inline constexpr bool is_case_v<recv_case<T>> = true;
template <class T>
inline constexpr bool is_case_v<send_case<T>> = true;

/// Storage big enough for the value of any recv case (only one commits).
template <class... Cases>
struct recv_slot {
  static constexpr std::size_t size = std::max({std::size_t{1}, sizeof(typename Cases::value_type)...});
  static constexpr std::size_t align = std::max({alignof(typename Cases::value_type)...});
  alignas(align) unsigned char bytes[size];
};

template <bool InOrder, class... Cases>
class [[nodiscard]] select_awaiter {
  static constexpr std::size_t n = sizeof...(Cases);

 public:
  using result_type = std::variant<typename Cases::result_type...>;

  explicit select_awaiter(Cases... cs) noexcept : cases_(std::move(cs)...) {}
  select_awaiter(const select_awaiter&) = delete;
  select_awaiter& operator=(const select_awaiter&) = delete;
  ~select_awaiter() {
    if (parked_) {
      int f = select_finish(ops_, ws_, n, &st_);
      if (f >= 0 && ws_[f].ok) destroy_value(f);
    }
  }

  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) noexcept {
    check_on_runtime();
    st_.r = {current_loop(), h.address(), nullptr};
    fired_ = start(&st_);
    if (fired_ >= 0) return false;
    parked_ = true;
    return true;
  }
  result_type await_resume() {
    if (parked_) {
      parked_ = false;
      fired_ = select_finish(ops_, ws_, n, &st_);
      ok_ = ws_[fired_].ok;
    }
    return result();
  }

  /// try_select: poll once without parking.
  std::optional<result_type> poll() {
    fired_ = start(nullptr);
    if (fired_ < 0) return std::nullopt;
    return result();
  }

 private:
  template <std::size_t... I>
  void make_ops(std::index_sequence<I...>) noexcept {
    ((ops_[I] = make_op(std::get<I>(cases_))), ...);
  }
  int start(select_state* st) noexcept {
    make_ops(std::make_index_sequence<n>{});
    if constexpr (n == 2) {
      int f = select_two_fast(ops_, InOrder, &ok_);
      if (f >= 0) return f;
    }
    return select_start(ops_, ws_, n, InOrder, st, &ok_, scratch_);
  }
  template <class C>
  select_op make_op(C& c) noexcept {
    if constexpr (C::is_send)
      return {c.c, &c.v, true};
    else
      return {c.c, slot_.bytes, false};
  }

  template <std::size_t I>
  result_type make_result() {
    using C = std::tuple_element_t<I, std::tuple<Cases...>>;
    if constexpr (C::is_send) {
      return result_type(std::in_place_index<I>, ok_);
    } else {
      using T = typename C::value_type;
      if (!ok_) return result_type(std::in_place_index<I>, std::nullopt);
      T* p = std::launder(reinterpret_cast<T*>(slot_.bytes));
      result_type r(std::in_place_index<I>, std::move(*p));
      p->~T();
      return r;
    }
  }
  // A fold over the cases, not a table of member-function pointers: GCC 12
  // with -fsanitize=undefined miscompiles indexing such a table.
  template <std::size_t... I>
  result_type result_at(std::index_sequence<I...>) {
    std::optional<result_type> r;
    ((static_cast<std::size_t>(fired_) == I ? (void)r.emplace(make_result<I>()) : void()), ...);
    return std::move(*r);
  }
  result_type result() { return result_at(std::make_index_sequence<n>{}); }
  template <std::size_t... I>
  void destroy_at(int f, std::index_sequence<I...>) noexcept {
    ((I == static_cast<std::size_t>(f) ? destroy_if_recv<I>() : void()), ...);
  }
  void destroy_value(int f) noexcept { destroy_at(f, std::make_index_sequence<n>{}); }
  template <std::size_t I>
  void destroy_if_recv() noexcept {
    using C = std::tuple_element_t<I, std::tuple<Cases...>>;
    if constexpr (!C::is_send) {
      using T = typename C::value_type;
      std::launder(reinterpret_cast<T*>(slot_.bytes))->~T();
    }
  }

  std::tuple<Cases...> cases_;
  select_op ops_[n];
  waiter ws_[n];
  select_state st_;
  recv_slot<Cases...> slot_;
  void* scratch_[2 * n];  // n channel pointers + n 32-bit indices
  int fired_ = -1;
  bool ok_ = false;
  bool parked_ = false;
};

/// select over a run of channels of one type, all receive cases.
template <class T, bool InOrder>
class [[nodiscard]] select_span_awaiter {
  static constexpr std::size_t inline_cases = 8;

 public:
  using result_type = std::pair<std::size_t, std::optional<T>>;

  explicit select_span_awaiter(std::span<const chan<T>> chans) : n_(chans.size()) {
    CONCH_CHECK(n_ > 0, "select over an empty set of channels");
    if (n_ > inline_cases) {
      heap_ops_ = std::make_unique<select_op[]>(n_);
      heap_ws_ = std::make_unique<waiter[]>(n_);
      heap_scratch_ = std::make_unique<void*[]>(2 * n_);
    }
    select_op* ops = this->ops();
    for (std::size_t i = 0; i < n_; ++i) ops[i] = {get_core(chans[i]), slot_.raw(), false};
  }
  select_span_awaiter(const select_span_awaiter&) = delete;
  select_span_awaiter& operator=(const select_span_awaiter&) = delete;
  ~select_span_awaiter() {
    if (parked_) {
      int f = select_finish(ops(), ws(), n_, &st_);
      if (f >= 0 && ws()[f].ok) slot_.get()->~T();
    }
  }

  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> h) noexcept {
    check_on_runtime();
    st_.r = {current_loop(), h.address(), nullptr};
    fired_ = select_start(ops(), ws(), n_, InOrder, &st_, &ok_, scratch());
    if (fired_ >= 0) return false;
    parked_ = true;
    return true;
  }
  /// {index of the channel that fired, its value or nullopt if it is closed}.
  result_type await_resume() noexcept {
    if (parked_) {
      parked_ = false;
      fired_ = select_finish(ops(), ws(), n_, &st_);
      ok_ = ws()[fired_].ok;
    }
    return result();
  }
  std::optional<result_type> poll() noexcept {
    fired_ = select_start(ops(), ws(), n_, InOrder, nullptr, &ok_, scratch());
    if (fired_ < 0) return std::nullopt;
    return result();
  }

 private:
  result_type result() noexcept {
    if (!ok_) return {static_cast<std::size_t>(fired_), std::nullopt};
    result_type r{static_cast<std::size_t>(fired_), std::move(*slot_.get())};
    slot_.get()->~T();
    return r;
  }
  select_op* ops() noexcept { return heap_ops_ ? heap_ops_.get() : inline_ops_; }
  waiter* ws() noexcept { return heap_ws_ ? heap_ws_.get() : inline_ws_; }
  void* scratch() noexcept { return heap_scratch_ ? heap_scratch_.get() : inline_scratch_; }

  std::size_t n_;
  select_op inline_ops_[inline_cases];
  waiter inline_ws_[inline_cases];
  void* inline_scratch_[2 * inline_cases];
  std::unique_ptr<select_op[]> heap_ops_;
  std::unique_ptr<waiter[]> heap_ws_;
  std::unique_ptr<void*[]> heap_scratch_;
  select_state st_;
  value_slot<T> slot_;
  int fired_ = -1;
  bool ok_ = false;
  bool parked_ = false;
};

}  // namespace detail
}  // namespace conch
