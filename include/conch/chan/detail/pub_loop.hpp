// conch/chan/detail/pub_loop.hpp
// The state and go loop behind pub<T, K> (internal; not for users).
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
#include "conch/chan/go.hpp"
#include "conch/chan/mult.hpp"
#include "conch/chan/select.hpp"

namespace conch {

namespace detail {

template <class T, class K>
struct pub_state {
  struct subscriber {
    chan<T> ch;
    bool close;
  };
  struct topic {
    chan<T> ch;  // the topic's dedicated channel: the pub sends, the mult reads
    mult<T> m;   // its taps are all close=false: the pub closes subscribers itself
    std::vector<subscriber> subs;
  };

  pub_state(chan<T> s, std::function<K(const T&)> tf, std::function<buffer(const K&)> bf)
      : src(std::move(s)), topic_fn(std::move(tf)), buf_fn(std::move(bf)) {}

  const chan<T> src;
  std::function<K(const T&)> topic_fn;      // called on the pub's go block only
  const std::function<buffer(const K&)> buf_fn;

  std::mutex mu;
  std::unordered_map<K, topic> topics;  // guarded by mu
  bool done = false;                    // guarded by mu: the source closed

  /// The topic's channel, or nullopt if nobody subscribes to it.
  std::optional<chan<T>> find(const K& k) {
    std::lock_guard lk(mu);
    auto it = topics.find(k);
    if (it == topics.end()) return std::nullopt;
    return it->second.ch;
  }
  /// Forgets topic `k` if its channel is still `ch` (not a newer one).
  void forget(const K& k, const chan<T>& ch) {
    std::lock_guard lk(mu);
    auto it = topics.find(k);
    if (it != topics.end() && it->second.ch == ch) topics.erase(it);
  }
};

/// Ends a topic without closing its subscribers: untap them all, then close
/// the topic's channel so its mult's go block ends.
template <class T>
void retire_topic(mult<T>& m, chan<T>& ch) {
  m.untap_all();
  ch.close();
}

/// The pub's go block: route each value to its topic's channel.
template <class T, class K>
task<void> pub_loop(std::shared_ptr<pub_state<T, K>> s) {
  for (;;) {
    std::optional<T> v = co_await s->src.recv();
    if (!v) break;
    std::optional<K> k;
    try {
      k.emplace(s->topic_fn(*v));
    } catch (...) {
      report_exception(std::current_exception());  // the value is dropped; the pub goes on
      continue;
    }
    std::optional<chan<T>> ch = s->find(*k);
    if (!ch) continue;  // nobody subscribes: drop it (core.async)
    if (!co_await ch->send(std::move(*v))) s->forget(*k, *ch);  // unsub_all closed it meanwhile
  }
  // The source closed: every topic closes and delivers what it holds. A
  // subscriber that asked for it is closed once every topic it subscribes to
  // is done, so a channel on several topics is not closed by the first topic
  // to finish while another still has a value for it (core.async closes it
  // from whichever topic ends first). Topics finish independently: one stuck
  // subscriber delays only the channels that share a topic with it.
  std::vector<typename pub_state<T, K>::topic> ts;
  {
    std::lock_guard lk(s->mu);
    s->done = true;
    for (auto& e : s->topics) ts.push_back(std::move(e.second));
    s->topics.clear();
  }
  std::unordered_map<chan<T>, std::pair<std::size_t, bool>> open;  // topics left, close?
  std::vector<chan<unit>> dones;
  std::vector<std::size_t> which;  // dones[i] belongs to ts[which[i]]
  for (std::size_t i = 0; i < ts.size(); ++i) {
    ts[i].ch.close();
    for (auto& sub : ts[i].subs) {
      auto& o = open[sub.ch];
      ++o.first;
      o.second = o.second || sub.close;
    }
    dones.push_back(ts[i].m.done());
    which.push_back(i);
  }
  while (!dones.empty()) {
    std::pair<std::size_t, std::optional<unit>> r = co_await conch::select(dones);
    for (auto& sub : ts[which[r.first]].subs) {
      auto& o = open[sub.ch];
      if (--o.first == 0 && o.second) sub.ch.close();
    }
    dones.erase(dones.begin() + static_cast<std::ptrdiff_t>(r.first));
    which.erase(which.begin() + static_cast<std::ptrdiff_t>(r.first));
  }
}

}  // namespace detail
}  // namespace conch
