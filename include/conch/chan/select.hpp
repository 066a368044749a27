// conch/chan/select.hpp
// select(): wait on several channel operations, commit exactly one.
//
//   auto r = co_await conch::select(conch::recv(a), conch::send(b, 42),
//                                   conch::recv(conch::timeout(10ms)));
//   switch (r.index()) {
//     case 0: if (auto v = std::get<0>(r)) use(*v); break;  // optional<T>
//     case 1: bool sent = std::get<1>(r); break;             // send outcome
//     case 2: /* timed out */ break;
//   }
//
// The result is a std::variant with one alternative per case, in order: a
// recv case yields std::optional<T> (nullopt: that channel is closed), a send
// case yields bool (false: that channel is closed). Among cases that are
// ready together, select picks at random (fair); select_in_order picks the
// first (core.async :priority). try_select never parks: it returns nullopt
// when no case is ready (core.async :default). Exactly one case commits; the
// others are withdrawn before the select returns, and a send case whose value
// was not taken keeps it (it is destroyed with the select).
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
#include "conch/chan/detail/select_awaiters.hpp"

namespace conch {

/// A receive case for select: yields std::optional<T>.
template <class T>
struct recv_case {
  using result_type = std::optional<T>;
  static constexpr bool is_send = false;
  using value_type = T;
  detail::chan_core* c;
};

/// A send case for select: yields bool.
template <class T>
struct send_case {
  using result_type = bool;
  static constexpr bool is_send = true;
  using value_type = T;
  detail::chan_core* c;
  T v;
};

/// A select case receiving from `ch`.
template <class T>
recv_case<T> recv(const chan<T>& ch) noexcept {
  return {detail::get_core(ch)};
}
/// A select case sending `v` on `ch`.
template <class T>
send_case<T> send(const chan<T>& ch, std::type_identity_t<T> v) noexcept {
  return {detail::get_core(ch), std::move(v)};
}

/// Waits until one of the cases can commit and commits exactly that one,
/// choosing at random among cases ready at the same time. co_await yields a
/// std::variant with one alternative per case (see the file comment).
template <class... Cases>
  requires(sizeof...(Cases) > 0 && (detail::is_case_v<Cases> && ...))
detail::select_awaiter<false, Cases...> select(Cases... cases) noexcept {
  return detail::select_awaiter<false, Cases...>(std::move(cases)...);
}

/// Like select, but among ready cases the earliest listed wins.
template <class... Cases>
  requires(sizeof...(Cases) > 0 && (detail::is_case_v<Cases> && ...))
detail::select_awaiter<true, Cases...> select_in_order(Cases... cases) noexcept {
  return detail::select_awaiter<true, Cases...>(std::move(cases)...);
}

/// Commits a ready case without parking, or returns nullopt if none is ready.
/// Among ready cases it picks at random. Usable from any thread.
template <class... Cases>
  requires(sizeof...(Cases) > 0 && (detail::is_case_v<Cases> && ...))
std::optional<std::variant<typename Cases::result_type...>> try_select(Cases... cases) {
  detail::select_awaiter<false, Cases...> s(std::move(cases)...);
  return s.poll();
}

/// Receives from whichever channel of `chans` is ready first (random among
/// ready ones). co_await yields {index, value-or-nullopt-if-closed}.
template <class T>
detail::select_span_awaiter<T, false> select(std::span<const chan<T>> chans) {
  return detail::select_span_awaiter<T, false>(chans);
}
template <class T>
detail::select_span_awaiter<T, false> select(std::span<chan<T>> chans) {
  return detail::select_span_awaiter<T, false>(std::span<const chan<T>>(chans));
}
template <class T>
detail::select_span_awaiter<T, false> select(const std::vector<chan<T>>& chans) {
  return detail::select_span_awaiter<T, false>(std::span<const chan<T>>(chans));
}
/// Like select over a span, but the lowest ready index wins.
template <class T>
detail::select_span_awaiter<T, true> select_in_order(std::span<const chan<T>> chans) {
  return detail::select_span_awaiter<T, true>(chans);
}
template <class T>
detail::select_span_awaiter<T, true> select_in_order(const std::vector<chan<T>>& chans) {
  return detail::select_span_awaiter<T, true>(std::span<const chan<T>>(chans));
}
/// try_select over a run of channels: {index, value-or-nullopt} or nullopt.
template <class T>
std::optional<std::pair<std::size_t, std::optional<T>>> try_select(std::span<const chan<T>> chans) {
  detail::select_span_awaiter<T, false> s(chans);
  return s.poll();
}
template <class T>
std::optional<std::pair<std::size_t, std::optional<T>>> try_select(const std::vector<chan<T>>& chans) {
  return try_select(std::span<const chan<T>>(chans));
}

}  // namespace conch
