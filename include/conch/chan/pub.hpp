// conch/chan/pub.hpp
// pub<T, K>: split one channel into topics; subscribers get the values of the topics they subscribe to (core.async pub/sub).
//
//   conch::chan<log_line> lines(64);
//   conch::pub p{lines, [](const log_line& l) { return l.level; }};   // pub<log_line, level>
//   conch::chan<log_line> errors(16);
//   p.sub(level::error, errors);          // errors gets every line whose topic is level::error
//   p.unsub(level::error, errors);
//
// Semantics (core.async's): the pub's go block reads the source and applies
// the topic function to each value. Each topic is handled by an internal mult
// over a dedicated channel; by default those channels are unbuffered, and a
// buffer (or a function topic -> buffer) gives each topic its own buffering.
// Every subscriber of a topic must accept a value before the topic takes the
// next one (a slow subscriber slows its topic, and with unbuffered topics the
// whole pub). Values whose topic has no subscribers are dropped, never
// blocking the pub. When the source closes, every topic delivers what it
// holds, then the subscribers added with close=true are closed (a channel
// subscribed to several topics once all of them are done). With buffered
// topics, a channel subscribed to several topics may see them interleaved
// differently from the source.
#pragma once

#include <algorithm>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "conch/chan/buffer.hpp"
#include "conch/chan/chan.hpp"
#include "conch/chan/detail/pub_loop.hpp"
#include "conch/chan/go.hpp"
#include "conch/chan/mult.hpp"
#include "conch/chan/select.hpp"

namespace conch {

/// A pub(lication) of a source channel, partitioned into topics of type K by
/// a topic function (core.async pub). T must be copyable; K must be hashable
/// (std::hash) and equality-comparable.
///
/// A handle: copies share one pub. The constructor starts a go block that
/// reads the source on the runtime's loop threads until it closes. sub()
/// starts a go block when it creates a topic, so it must be called on a
/// runtime thread; unsub and unsub_all may be called from any thread.
template <class T, class K>
class pub {
  static_assert(std::is_copy_constructible_v<T>, "pub<T, K> copies values: T must be copyable");

 public:
  /// Partitions `src` by `topic_fn(const T&) -> K`; every topic's channel is
  /// unbuffered. Must be called on a runtime thread.
  template <class F>
    requires std::is_invocable_r_v<K, F&, const T&>
  pub(chan<T> src, F topic_fn) : pub(std::move(src), std::move(topic_fn), buffer::fixed(0)) {}

  /// Same, with every topic's channel buffered by `b` (core.async buf-fn
  /// returning one buffer for all topics).
  template <class F>
    requires std::is_invocable_r_v<K, F&, const T&>
  pub(chan<T> src, F topic_fn, buffer b)
      : pub(std::move(src), std::move(topic_fn), [b](const K&) { return b; }) {}

  /// Same, with each topic's channel buffered by `buf_fn(topic)` (core.async
  /// buf-fn), called once when the topic is created.
  template <class F, class B>
    requires std::is_invocable_r_v<K, F&, const T&> && std::is_invocable_r_v<buffer, B&, const K&>
  pub(chan<T> src, F topic_fn, B buf_fn)
      : s_(std::make_shared<detail::pub_state<T, K>>(std::move(src), std::move(topic_fn),
                                                     std::move(buf_fn))) {
    go(detail::pub_loop<T, K>(s_));
  }

  /// Subscribes `ch` to `topic` (core.async sub): it gets a copy of every
  /// later value whose topic is `topic`. With `close` (the default) `ch` is
  /// closed once the source has closed and every topic `ch` subscribes to
  /// has delivered its last value; if the source has already closed, `ch` is
  /// closed now. Subscribing a channel twice to a topic updates its flag.
  /// A subscriber found closed is removed from its topic. Returns `ch`.
  /// Must be called on a runtime thread (a new topic starts a go block).
  chan<T> sub(const K& topic, chan<T> ch, bool close = true) const {
    std::unique_lock lk(s_->mu);
    if (s_->done) {
      lk.unlock();
      if (close) ch.close();
      return ch;
    }
    auto it = s_->topics.find(topic);
    if (it == s_->topics.end()) {
      chan<T> tc(s_->buf_fn(topic));
      it = s_->topics.emplace(topic, typename detail::pub_state<T, K>::topic{tc, mult<T>(tc), {}}).first;
    }
    auto& subs = it->second.subs;
    // Forget subscribers that closed themselves (the mult already dropped them).
    std::erase_if(subs, [&](const auto& e) { return e.ch.closed() && !(e.ch == ch); });
    auto known = std::find_if(subs.begin(), subs.end(), [&](const auto& e) { return e.ch == ch; });
    if (known != subs.end())
      known->close = close;
    else
      subs.push_back({ch, close});
    return it->second.m.tap(std::move(ch), false);
  }

  /// Unsubscribes `ch` from `topic` (core.async unsub); `ch` is not closed.
  /// Takes effect at once. Any thread.
  void unsub(const K& topic, const chan<T>& ch) const {
    std::lock_guard lk(s_->mu);
    auto it = s_->topics.find(topic);
    if (it == s_->topics.end()) return;
    std::erase_if(it->second.subs, [&](const auto& e) { return e.ch == ch; });
    it->second.m.untap(ch);
  }

  /// Unsubscribes every channel from `topic` and forgets the topic; none of
  /// them is closed (core.async unsub-all with a topic). Any thread.
  void unsub_all(const K& topic) const {
    std::unique_lock lk(s_->mu);
    auto it = s_->topics.find(topic);
    if (it == s_->topics.end()) return;
    auto t = std::move(it->second);
    s_->topics.erase(it);
    lk.unlock();
    detail::retire_topic(t.m, t.ch);
  }

  /// Unsubscribes every channel from every topic; none is closed (core.async
  /// unsub-all). Any thread.
  void unsub_all() const {
    std::unordered_map<K, typename detail::pub_state<T, K>::topic> topics;
    {
      std::lock_guard lk(s_->mu);
      topics.swap(s_->topics);
    }
    for (auto& e : topics) detail::retire_topic(e.second.m, e.second.ch);
  }

  /// The source channel (core.async muxch*).
  const chan<T>& source() const noexcept { return s_->src; }

 private:
  std::shared_ptr<detail::pub_state<T, K>> s_;
};

template <class T, class F>
pub(chan<T>, F) -> pub<T, std::decay_t<std::invoke_result_t<F&, const T&>>>;
template <class T, class F, class B>
pub(chan<T>, F, B) -> pub<T, std::decay_t<std::invoke_result_t<F&, const T&>>>;

}  // namespace conch
