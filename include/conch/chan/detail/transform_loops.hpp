// conch/chan/detail/transform_loops.hpp
// The go loops behind conch/chan/transform.hpp (internal).
#pragma once

#include <cstddef>
#include <optional>
#include <ranges>
#include <tuple>
#include <utility>
#include <vector>

#include "conch/chan/chan.hpp"
#include "conch/chan/detail/ops_support.hpp"
#include "conch/core/task.hpp"

namespace conch::detail {

template <class F, class T, class R>
task<void> map_loop(F f, chan<T> in, chan<R> out) {
  for (;;) {
    std::optional<T> v = co_await in.recv();
    if (!v) break;
    std::optional<R> r = invoke_reporting(f, std::move(*v));
    if (!r) continue;
    if (!co_await out.send(std::move(*r))) co_return;
  }
  out.close();
}

/// Receives one value from each channel of `ins`, in order, into `vals`;
/// true if every one yielded a value.
template <std::size_t I, class Ins, class Vals>
task<bool> recv_each(Ins& ins, Vals& vals) {
  if constexpr (I == std::tuple_size_v<Ins>) {
    co_return true;
  } else {
    std::get<I>(vals) = co_await std::get<I>(ins).recv();
    const bool ok = std::get<I>(vals).has_value();
    const bool rest = co_await recv_each<I + 1>(ins, vals);
    co_return ok && rest;
  }
}

template <class F, class R, class... Ts>
task<void> map_n_loop(F f, chan<R> out, std::tuple<chan<Ts>...> ins) {
  std::tuple<std::optional<Ts>...> vals;
  for (;;) {
    if (!co_await recv_each<0>(ins, vals)) break;  // any source closed
    auto call = [&](auto&... v) { return invoke_reporting(f, std::move(*v)...); };
    std::optional<R> r = std::apply(call, vals);
    if (!r) continue;
    if (!co_await out.send(std::move(*r))) co_return;
  }
  out.close();
}

template <class P, class T>
task<void> filter_loop(P pred, chan<T> in, chan<T> out, bool keep) {
  for (;;) {
    std::optional<T> v = co_await in.recv();
    if (!v) break;
    std::optional<bool> k = test_reporting(pred, *v);
    if (!k || *k != keep) continue;
    if (!co_await out.send(std::move(*v))) co_return;
  }
  out.close();
}

template <class F, class T, class U>
task<void> mapcat_loop(F f, chan<T> in, chan<U> out) {
  using X = std::decay_t<std::invoke_result_t<F&, T>>;
  for (;;) {
    std::optional<T> v = co_await in.recv();
    if (!v) break;
    std::optional<X> xs = invoke_reporting(f, std::move(*v));
    if (!xs) continue;
    for (auto&& x : *xs) {
      std::optional<U> u;
      if constexpr (std::ranges::view<X>)
        u.emplace(x);  // a view may refer to data we do not own: copy
      else
        u.emplace(std::move(x));  // we own the container
      if (!co_await out.send(std::move(*u))) co_return;
    }
  }
  out.close();
}

template <class T>
task<void> take_loop(std::size_t n, chan<T> in, chan<T> out) {
  for (std::size_t i = 0; i < n; ++i) {
    std::optional<T> v = co_await in.recv();
    if (!v) break;
    if (!co_await out.send(std::move(*v))) break;
  }
  out.close();
}

template <class T>
task<void> partition_loop(std::size_t n, chan<T> in, chan<std::vector<T>> out) {
  std::vector<T> part;
  for (;;) {
    std::optional<T> v = co_await in.recv();
    if (!v) break;
    part.push_back(std::move(*v));
    if (part.size() == n) {
      std::vector<T> full = std::exchange(part, std::vector<T>());
      if (!co_await out.send(std::move(full))) co_return;
    }
  }
  if (!part.empty()) co_await out.send(std::move(part));
  out.close();
}

template <class F, class T>
task<void> partition_by_loop(F f, chan<T> in, chan<std::vector<T>> out) {
  using K = std::decay_t<std::invoke_result_t<F&, const T&>>;
  std::vector<T> part;
  std::optional<K> last;
  for (;;) {
    std::optional<T> v = co_await in.recv();
    if (!v) break;
    std::optional<K> k = invoke_reporting(f, std::as_const(*v));
    if (!k) continue;
    if (last && !(*last == *k)) {
      std::vector<T> run = std::exchange(part, std::vector<T>());
      if (!co_await out.send(std::move(run))) co_return;
    }
    last = std::move(k);
    part.push_back(std::move(*v));
  }
  if (!part.empty()) co_await out.send(std::move(part));
  out.close();
}

template <class T>
task<void> unique_loop(chan<T> in, chan<T> out) {
  std::optional<T> last;
  for (;;) {
    std::optional<T> v = co_await in.recv();
    if (!v) break;
    if (last && *last == *v) continue;
    last = *v;
    if (!co_await out.send(std::move(*v))) co_return;
  }
  out.close();
}

}  // namespace conch::detail
