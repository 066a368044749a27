// channels/select.cpp
// The select engine: Go's selectgo, over the type-erased core.
//
//  1. Lock every distinct channel of the select, in address order (the global
//     lock order that makes concurrent selects deadlock-free).
//  2. Poll the cases in a random order (or in order, for select_in_order);
//     the first ready case commits and we are done.
//  3. Otherwise park one waiter per case, all pointing at one select_state,
//     and unlock. The first thread to complete any of them claims the state
//     with a CAS (chan_core::take); the other waiters can no longer commit.
//  4. On wake-up, withdraw the losers at once, one channel at a time, so no
//     waiter lingers in a queue (core.async's ASYNC-234 kept them until the
//     slowest channel fired).
#include <algorithm>
#include <mutex>

#include "conch/chan/detail/chan_core.hpp"

namespace conch::detail {

std::uint32_t seed_random() noexcept {
  std::uint32_t s = static_cast<std::uint32_t>(now_ns()) ^
                    static_cast<std::uint32_t>(reinterpret_cast<std::uintptr_t>(&tl_rng));
  return s == 0 ? 0x2545F491u : s;
}

namespace {

struct lock_set {
  chan_core** chans;
  std::size_t n = 0;
  void lock() noexcept {
    for (std::size_t i = 0; i < n; ++i) chans[i]->mu_.lock();
  }
  void unlock() noexcept {
    for (std::size_t i = n; i > 0; --i) chans[i - 1]->mu_.unlock();
  }
};

}  // namespace

int select_start(select_op* ops, waiter* waiters, std::size_t n, bool in_order,
                 select_state* st, bool* ok, void* scratch) noexcept {
  CONCH_CHECK(n > 0, "select needs at least one case");
  auto* chans = static_cast<chan_core**>(scratch);
  auto* order = reinterpret_cast<std::uint32_t*>(chans + n);

  // The poll order: identity, or a Fisher-Yates shuffle (one draw for n = 2).
  for (std::uint32_t i = 0; i < n; ++i) order[i] = i;
  if (!in_order)
    for (std::uint32_t i = static_cast<std::uint32_t>(n) - 1; i > 0; --i)
      std::swap(order[i], order[fast_random(i + 1)]);


  // Fast path: the first case that looks ready (a lock-free peek) is tried
  // under its own lock alone. Committing on one channel under its lock is
  // atomic by itself, so this is the same select, minus locking the others.
  // In order, only the first case may take this path (priority must see
  // every earlier case, and the peek cannot see parked senders or close).
  for (std::size_t k = 0; k < (in_order ? 1 : n); ++k) {
    select_op& op = ops[order[k]];
    if (!(op.is_send ? op.c->send_hint() : op.c->recv_hint())) continue;
    op_status s;
    {
      std::lock_guard lk(op.c->mu_);
      s = op.is_send ? op.c->send_locked(op.slot) : op.c->recv_locked(op.slot);
    }
    if (s != op_status::blocked) {
      *ok = s == op_status::ok;
      return static_cast<int>(order[k]);
    }
    break;  // raced with another thread: take the slow path
  }

  // The lock order: distinct channels by address (insertion sort: n is small).
  for (std::size_t i = 0; i < n; ++i) {
    chan_core* c = ops[i].c;
    std::size_t j = i;
    for (; j > 0 && chans[j - 1] > c; --j) chans[j] = chans[j - 1];
    chans[j] = c;
  }
  lock_set locks{chans, static_cast<std::size_t>(std::unique(chans, chans + n) - chans)};

  locks.lock();
  for (std::size_t k = 0; k < n; ++k) {
    std::uint32_t i = order[k];
    select_op& op = ops[i];
    op_status s = op.is_send ? op.c->send_locked(op.slot) : op.c->recv_locked(op.slot);
    if (s != op_status::blocked) {
      locks.unlock();
      *ok = s == op_status::ok;
      return static_cast<int>(i);
    }
  }
  if (st != nullptr) {
    for (std::uint32_t i = 0; i < n; ++i) {
      waiter& w = waiters[i];
      w.slot = ops[i].slot;
      w.sel = st;
      w.case_index = i;
      w.is_send = ops[i].is_send;
      if (ops[i].is_send)
        ops[i].c->park_send_locked(&w);
      else
        ops[i].c->park_recv_locked(&w);
    }
  }
  locks.unlock();
  return -1;
}

int select_finish(select_op* ops, waiter* waiters, std::size_t n, select_state* st) noexcept {
  for (std::size_t i = 0; i < n; ++i) ops[i].c->cancel(&waiters[i]);
  // Every channel lock was taken once above, after the claimer released the
  // one it completed under, so `fired` is visible here.
  return st->fired == ~0u ? -1 : static_cast<int>(st->fired);
}

}  // namespace conch::detail
