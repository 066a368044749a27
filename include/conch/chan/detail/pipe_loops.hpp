// conch/chan/detail/pipe_loops.hpp
// The go loops behind conch/chan/pipe.hpp (internal).
#pragma once

#include <optional>
#include <utility>
#include <vector>

#include "conch/chan/chan.hpp"
#include "conch/chan/detail/ops_support.hpp"
#include "conch/chan/select.hpp"
#include "conch/core/task.hpp"

namespace conch::detail {

template <class T>
task<void> pipe_loop(chan<T> from, chan<T> to, bool close) {
  for (;;) {
    std::optional<T> v = co_await from.recv();
    if (!v) break;
    if (!co_await to.send(std::move(*v))) co_return;  // to closed: stop consuming
  }
  if (close) to.close();
}

template <class T>
task<void> merge_loop(std::vector<chan<T>> ins, chan<T> out) {
  while (!ins.empty()) {
    std::pair<std::size_t, std::optional<T>> r = co_await select(ins);
    if (!r.second) {  // that source closed: forget it (every copy of it)
      chan<T> gone = ins[r.first];
      std::erase(ins, gone);
      continue;
    }
    if (!co_await out.send(std::move(*r.second))) co_return;
  }
  out.close();
}

template <class P, class T>
task<void> split_loop(P pred, chan<T> in, chan<T> yes, chan<T> no) {
  for (;;) {
    if (yes.closed() && no.closed()) break;  // nobody listens: stop consuming
    std::optional<T> v = co_await in.recv();
    if (!v) break;
    std::optional<bool> k = test_reporting(pred, *v);
    if (!k) continue;
    chan<T>& o = *k ? yes : no;
    co_await o.send(std::move(*v));  // false: that output is closed; the value is dropped
  }
  yes.close();
  no.close();
}

}  // namespace conch::detail
