// channels/chan_core.cpp
// The channel core: buffer ring, waiter queues, direct handoff, close.
//
// Invariants: see conch/chan/detail/chan_core.hpp. Lock order: one channel lock at a
// time here (select takes several, in address order, in select.cpp); while
// holding it we may take a loop's remote-queue lock or a thread parker's
// mutex to wake a waiter, never the other way round.
#include <algorithm>
#include <cstdint>
#include <new>
#include <condition_variable>
#include <mutex>

#include "conch/chan/detail/chan_core.hpp"

namespace conch::detail {

// ---- waking ----

struct thread_parker {
  std::mutex mu;
  std::condition_variable cv;
  bool woken = false;
};

namespace {
thread_local thread_parker tl_parker;
}

void resumer::wake() const noexcept {
  if (parker != nullptr) {
    // Under the parker's mutex: the thread may return (and reuse its waiter)
    // as soon as it sees woken, which it can only check holding the mutex.
    thread_parker* p = parker;
    std::lock_guard lk(p->mu);
    p->woken = true;
    p->cv.notify_one();
  } else {
    schedule(home, std::coroutine_handle<>::from_address(frame));
  }
}

// ---- waiter queues ----

void waiter_queue::push(waiter* w) noexcept {
  w->next = nullptr;
  w->prev = tail;
  if (tail != nullptr)
    tail->next = w;
  else
    head = w;
  tail = w;
  w->linked = true;
}

void waiter_queue::unlink(waiter* w) noexcept {
  if (w->prev != nullptr)
    w->prev->next = w->next;
  else
    head = w->next;
  if (w->next != nullptr)
    w->next->prev = w->prev;
  else
    tail = w->prev;
  w->prev = w->next = nullptr;
  w->linked = false;
}

// Pops the first waiter that can still commit. A select waiter whose select
// already committed elsewhere is unlinked and skipped (Go's dequeue).
waiter* chan_core::take(waiter_queue& q) noexcept {
  while (waiter* w = q.head) {
    q.unlink(w);
    if (w->sel == nullptr) return w;
    std::uint32_t expected = 0;
    // acq_rel: exclusivity needs only atomicity; the ordering keeps the
    // winner's later writes after the claim for readers of `done`.
    if (w->sel->done.compare_exchange_strong(expected, 1, std::memory_order_acq_rel)) return w;
  }
  return nullptr;
}

// Records the outcome and wakes the owner. Called with mu_ held; the waiter
// must not be touched afterwards.
void chan_core::complete(waiter* w, bool ok) noexcept {
  w->ok = ok;
  if (w->sel != nullptr) {
    w->sel->fired = w->case_index;
    resumer r = w->sel->r;
    r.wake();
  } else {
    resumer r = w->r;
    r.wake();
  }
}

// ---- construction ----

std::size_t chan_core::storage_offset(const elem_ops* ops) noexcept {
  std::size_t a = std::max(ops->align, alignof(chan_core));
  return (sizeof(chan_core) + a - 1) / a * a;
}

namespace {
// Small cores come from the runtime's per-thread block cache (go result
// channels are created and freed once per go block); big or over-aligned
// ones from operator new.
bool cached_block(std::size_t bytes, std::size_t align) noexcept {
  return bytes <= 1024 && align <= __STDCPP_DEFAULT_NEW_ALIGNMENT__;
}
}  // namespace

chan_core* chan_core::create(const elem_ops* ops, buffer_kind kind, std::size_t capacity) {
  // One allocation for the core and its buffer.
  if (kind == buffer_kind::promise) capacity = 1;
  std::size_t align = std::max(ops->align, alignof(chan_core));
  std::size_t off = storage_offset(ops);
  // A capacity whose slots do not fit in size_t would wrap to a small
  // block and let the buffer overrun it: refuse it as the allocation it is.
  if (ops->size != 0 && capacity > (SIZE_MAX - off) / ops->size) throw std::bad_alloc();
  std::size_t bytes = off + capacity * ops->size;
  void* mem = cached_block(bytes, align) ? frame_alloc(bytes)
                                         : ::operator new(bytes, std::align_val_t(align));
  auto* base = static_cast<unsigned char*>(mem);
  return ::new (mem) chan_core(ops, kind, capacity, capacity > 0 ? base + off : nullptr);
}

void chan_core::destroy(chan_core* c) noexcept {
  std::size_t align = std::max(c->ops_->align, alignof(chan_core));
  std::size_t bytes = storage_offset(c->ops_) + c->cap_ * c->ops_->size;
  c->~chan_core();
  if (cached_block(bytes, align))
    frame_free(c, bytes);
  else
    ::operator delete(static_cast<void*>(c), std::align_val_t(align));
}

chan_core::chan_core(const elem_ops* ops, buffer_kind kind, std::size_t capacity,
                     unsigned char* storage)
    : ops_(ops), kind_(kind), cap_(capacity), storage_(storage) {}

chan_core::~chan_core() {
  // Nobody else holds a reference, so no waiter can be queued here: a parked
  // operation's frame holds the channel handle it parked on.
  for (std::size_t i = 0, n = count(); i < n; ++i) ops_->destroy(at(i));
}

// ---- the buffer ring ----

void chan_core::push_back(void* src) noexcept {
  std::size_t n = count();
  move_val(at(n), src);
  set_count(n + 1);
}

void chan_core::pop_front(void* dst) noexcept {
  void* p = at(0);
  move_val(dst, p);
  destroy_val(p);
  if (++head_ == cap_) head_ = 0;
  set_count(count() - 1);
}

void chan_core::drop_front() noexcept {
  destroy_val(at(0));
  if (++head_ == cap_) head_ = 0;
  set_count(count() - 1);
}

std::size_t chan_core::size() const noexcept { return count(); }  // a snapshot

// ---- operations ----

op_status chan_core::send_locked(void* v) noexcept {
  if (closed_) return op_status::closed;
  if (kind_ == buffer_kind::promise) {
    if (has_value_) return op_status::ok;  // the first value sticks; this one is dropped
    push_back(v);
    has_value_ = true;
    // Every parked receiver gets a copy.
    while (waiter* w = take(recvq_)) {
      ops_->copy(w->slot, at(0));
      complete(w, true);
    }
    return op_status::ok;
  }
  // A parked receiver means the buffer is empty: hand the value over directly.
  if (waiter* w = recvq_.empty() ? nullptr : take(recvq_)) {
    move_val(w->slot, v);
    complete(w, true);
    return op_status::ok;
  }
  if (count() < cap_) {
    push_back(v);
    return op_status::ok;
  }
  switch (kind_) {
    case buffer_kind::dropping:
      return op_status::ok;  // full: the new value is dropped (caller destroys it)
    case buffer_kind::sliding:
      drop_front();
      push_back(v);
      return op_status::ok;
    default:
      return op_status::blocked;
  }
}

op_status chan_core::recv_locked(void* out) noexcept {
  if (kind_ == buffer_kind::promise) {
    if (has_value_) {
      ops_->copy(out, at(0));
      return op_status::ok;
    }
    return closed_ ? op_status::closed : op_status::blocked;
  }
  if (count() > 0) {
    pop_front(out);
    // A parked sender means the buffer was full: move its value in behind.
    if (waiter* w = sendq_.empty() ? nullptr : take(sendq_)) {
      push_back(w->slot);
      complete(w, true);
    }
    return op_status::ok;
  }
  if (waiter* w = sendq_.empty() ? nullptr : take(sendq_)) {  // unbuffered: from the sender
    move_val(out, w->slot);
    complete(w, true);
    return op_status::ok;
  }
  return closed_ ? op_status::closed : op_status::blocked;
}

op_status chan_core::send_slow(void* v, waiter* w) noexcept {
  std::lock_guard lk(mu_, std::adopt_lock);
  op_status s = send_locked(v);
  if (s == op_status::blocked && w != nullptr) {
    w->slot = v;
    w->is_send = true;
    sendq_.push(w);
  }
  return s;
}

op_status chan_core::recv_slow(void* out, waiter* w) noexcept {
  std::lock_guard lk(mu_, std::adopt_lock);
  op_status s = recv_locked(out);
  if (s == op_status::blocked && w != nullptr) {
    w->slot = out;
    w->is_send = false;
    recvq_.push(w);
  }
  return s;
}

bool chan_core::cancel(waiter* w) noexcept {
  std::lock_guard lk(mu_);
  if (!w->linked) return false;
  (w->is_send ? sendq_ : recvq_).unlink(w);
  return true;
}

void chan_core::close() noexcept {
  std::lock_guard lk(mu_);
  if (closed_) return;
  closed_ = true;
  closed_flag_.store(true, std::memory_order_release);
  // Receivers park only on an empty buffer, so they all get "closed"; parked
  // senders get false and keep their values (Go wakes them; so do we).
  while (waiter* w = take(recvq_)) complete(w, false);
  while (waiter* w = take(sendq_)) complete(w, false);
}

// ---- blocking operations ----

namespace {
op_status park_thread(chan_core* c, void* slot, bool is_send) noexcept {
  CONCH_CHECK(current_loop() == nullptr,
              "send_blocking/recv_blocking called on a runtime thread: it would stall "
              "every coroutine of that loop; co_await send()/recv() instead");
  thread_parker& p = tl_parker;
  {
    std::lock_guard lk(p.mu);
    p.woken = false;
  }
  waiter w;
  w.init_single({nullptr, nullptr, &p});
  op_status s = is_send ? c->send(slot, &w) : c->recv(slot, &w);
  if (s != op_status::blocked) return s;
  std::unique_lock lk(p.mu);
  p.cv.wait(lk, [&] { return p.woken; });
  return w.ok ? op_status::ok : op_status::closed;
}
}  // namespace

op_status send_blocking(chan_core* c, void* v) noexcept { return park_thread(c, v, true); }
op_status recv_blocking(chan_core* c, void* out) noexcept { return park_thread(c, out, false); }

}  // namespace conch::detail
