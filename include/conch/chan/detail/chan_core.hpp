// conch/chan/detail/chan_core.hpp
// The type-erased channel core behind chan<T> (internal; not for users).
//
// One non-template implementation holds the hard parts (waiter queues, the
// buffer ring, direct handoff, close, select arbitration), the way Go's
// runtime/chan.go serves every element type. chan<T> is a thin typed handle
// over it; values cross as `void*` to a T plus a table of T's operations.
//
// Invariants (mu_ held):
//  - At most one of sendq_ and recvq_ holds waiters that can still commit.
//  - count_ > 0 implies recvq_ holds no committable waiter.
//  - Buffered values survive close() and are still received.
//  - A waiter is completed (ok set, unlinked, resumer woken) exactly once, by
//    the thread that claimed it; for a select, the claim is the CAS on its
//    select_state, so exactly one of its cases commits.
//  - Waking happens under mu_: once mu_ is released the waiter's owner may
//    run, and nothing touches the waiter again.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

#include "conch/core/runtime.hpp"
#include "conch/core/detail/spin_mutex.hpp"

namespace conch::detail {

enum class buffer_kind : std::uint8_t { fixed, dropping, sliding, promise };

/// Operations on one element type, so the core can move values it cannot name.
struct elem_ops {
  std::size_t size;
  std::size_t align;
  bool trivial;                                          // memcpy moves it
  void (*move)(void* dst, void* src) noexcept;           // construct *dst from std::move(*src)
  void (*destroy)(void* p) noexcept;
  void (*copy)(void* dst, const void* src) noexcept;     // promise channels; null if not copyable
};

template <class T>
inline constexpr elem_ops elem_ops_for = {
    sizeof(T),
    alignof(T),
    std::is_trivially_copyable_v<T>,
    [](void* d, void* s) noexcept { ::new (d) T(std::move(*static_cast<T*>(s))); },
    [](void* p) noexcept { static_cast<T*>(p)->~T(); },
    [] {
      if constexpr (std::is_copy_constructible_v<T>)
        return +[](void* d, const void* s) noexcept { ::new (d) T(*static_cast<const T*>(s)); };
      else
        return static_cast<void (*)(void*, const void*) noexcept>(nullptr);
    }(),
};

/// A blocked plain thread (send_blocking/recv_blocking). One per thread.
struct thread_parker;

/// How a parked operation gets going again.
struct resumer {
  loop* home;              // coroutine: the loop it parked on
  void* frame;             // coroutine to resume (coroutine_handle address; trivial type)
  thread_parker* parker;   // or: a plain thread to unblock (then home/frame unused)
  void wake() const noexcept;
};

/// Shared by every case of one select: the first claimer wins.
struct select_state {
  std::atomic<std::uint32_t> done{0};
  std::uint32_t fired = ~0u;  // the committed case; written by the claimer under its lock
  resumer r{};
};

/// A parked send or receive: an intrusive node in a channel's queue, living
/// in the parked coroutine's frame (or the blocked thread's stack).
///
/// Trivially constructible on purpose (a select holds one per case and most
/// selects never park): whoever parks it sets every field it needs —
/// `r`/`sel` by the awaiter (or select engine), `slot`/`is_send` and the
/// links by the channel — and `ok` is written before the waiter completes.
struct waiter {
  waiter* prev;
  waiter* next;
  void* slot;                     // send: the T to take; recv: raw storage for a T
  select_state* sel;              // non-null when part of a select
  std::uint32_t case_index;
  bool linked;                    // in a queue now (set by push, cleared by unlink)
  bool is_send;                   // which queue it parks in
  bool ok;                        // outcome: true = value moved; false = closed
  resumer r;                      // single operations (select uses sel->r)

  /// Prepares a single (non-select) operation resumed by `r`.
  void init_single(resumer how) noexcept {
    sel = nullptr;
    r = how;
  }
};
static_assert(std::is_trivially_default_constructible_v<waiter>);

struct waiter_queue {
  waiter* head = nullptr;
  waiter* tail = nullptr;
  bool empty() const noexcept { return head == nullptr; }
  void push(waiter* w) noexcept;
  void unlink(waiter* w) noexcept;
};

/// The outcome of one attempt at a channel operation.
enum class op_status : std::uint8_t {
  ok,       // the value moved
  closed,   // the channel is closed (and, for recv, drained)
  blocked,  // it would park (try_*) or it did park (the *_or_park calls)
};

class chan_core {
 public:
  /// A new channel with one reference; the buffer lives in the same
  /// allocation, right after the core.
  static chan_core* create(const elem_ops* ops, buffer_kind kind, std::size_t capacity);
  chan_core(const chan_core&) = delete;
  chan_core& operator=(const chan_core&) = delete;

  void ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void unref() noexcept {
    // acq_rel: the last owner must see every other owner's writes before freeing.
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) destroy(this);
  }

  /// Sends *v (moving from it only on ok), parking `w` if it must wait
  /// (w == nullptr: never park). Locks mu_.
  op_status send(void* v, waiter* w) noexcept {
    // Inline fast path: a buffered channel with room and nobody parked.
    mu_.lock();
    std::size_t n = count();
    if (kind_ == buffer_kind::fixed && n < cap_ && recvq_.empty() && !closed_) {
      move_val(at(n), v);
      set_count(n + 1);
      mu_.unlock();
      return op_status::ok;
    }
    return send_slow(v, w);  // releases mu_
  }
  /// Receives into raw storage `out` (a T is constructed there only on ok),
  /// parking `w` if it must wait (w == nullptr: never park). Locks mu_.
  op_status recv(void* out, waiter* w) noexcept {
    // Inline fast path: a value buffered and no sender parked behind it.
    mu_.lock();
    std::size_t n = count();
    if (kind_ != buffer_kind::promise && n > 0 && sendq_.empty()) {
      void* p = at(0);
      move_val(out, p);
      destroy_val(p);
      if (++head_ == cap_) head_ = 0;
      set_count(n - 1);
      mu_.unlock();
      return op_status::ok;
    }
    return recv_slow(out, w);  // releases mu_
  }
  /// Withdraws a parked waiter. Returns false if it had already completed.
  bool cancel(waiter* w) noexcept;
  void close() noexcept;
  bool closed() const noexcept { return closed_flag_.load(std::memory_order_acquire); }
  std::size_t size() const noexcept;

  // ---- for the select engine ----
  /// Without the lock: does a receive look likely to complete now (a value
  /// is buffered)? Only a hint; the caller re-checks under mu_.
  bool recv_hint() const noexcept { return count() != 0; }
  /// Without the lock: does a send look likely to complete now?
  bool send_hint() const noexcept {
    return kind_ != buffer_kind::fixed ||
           count() < cap_;
  }
  // Call with mu_ held:
  op_status send_locked(void* v) noexcept;
  op_status recv_locked(void* out) noexcept;
  void park_send_locked(waiter* w) noexcept { sendq_.push(w); }
  void park_recv_locked(waiter* w) noexcept { recvq_.push(w); }

  mutable spin_mutex mu_;

 private:
  // The general paths; called with mu_ held, they release it.
  op_status send_slow(void* v, waiter* w) noexcept;
  op_status recv_slow(void* out, waiter* w) noexcept;
  chan_core(const elem_ops* ops, buffer_kind kind, std::size_t capacity, unsigned char* storage);
  ~chan_core();
  static void destroy(chan_core* c) noexcept;
  static std::size_t storage_offset(const elem_ops* ops) noexcept;
  void* at(std::size_t i) const noexcept {
    std::size_t idx = head_ + i;
    if (idx >= cap_) idx -= cap_;
    return storage_ + idx * ops_->size;
  }
  // Moves of small trivially copyable values are plain loads and stores, not
  // a call through the ops table or a variable-size memcpy. (Inlined into a
  // chan<unit>, GCC warns about the unreachable 8/16-byte cases.)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#endif
  void move_val(void* dst, void* src) const noexcept {
    if (ops_->trivial) {
      switch (ops_->size) {
        case 8: std::memcpy(dst, src, 8); return;
        case 4: std::memcpy(dst, src, 4); return;
        case 16: std::memcpy(dst, src, 16); return;
        case 1: std::memcpy(dst, src, 1); return;
        default: std::memcpy(dst, src, ops_->size); return;
      }
    }
    ops_->move(dst, src);
  }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
  void destroy_val(void* p) const noexcept {
    if (!ops_->trivial) ops_->destroy(p);
  }
  // count_ is written only under mu_; it is atomic so that select's peek
  // (recv_hint/send_hint) and size() may read it without the lock. Relaxed:
  // those readers take it as a hint or a snapshot; under mu_ the lock orders.
  std::size_t count() const noexcept { return count_.load(std::memory_order_relaxed); }
  void set_count(std::size_t n) noexcept { count_.store(n, std::memory_order_relaxed); }
  void push_back(void* src) noexcept;
  void pop_front(void* dst) noexcept;
  void drop_front() noexcept;
  static waiter* take(waiter_queue& q) noexcept;
  static void complete(waiter* w, bool ok) noexcept;

  const elem_ops* ops_;
  buffer_kind kind_;
  bool closed_ = false;
  bool has_value_ = false;        // promise: the value is set
  std::atomic<bool> closed_flag_{false};
  std::atomic<std::uint32_t> refs_{1};
  std::size_t cap_;
  std::size_t head_ = 0;
  std::atomic<std::size_t> count_{0};  // values buffered (written under mu_)
  unsigned char* storage_ = nullptr;
  waiter_queue sendq_;
  waiter_queue recvq_;
};

// ---- blocking operations from plain threads ----
op_status send_blocking(chan_core* c, void* v) noexcept;
op_status recv_blocking(chan_core* c, void* out) noexcept;

// ---- the select engine (channels/select.cpp) ----
struct select_op {
  chan_core* c;
  void* slot;      // send: the T; recv: raw storage for the result
  bool is_send;
};

/// Locks every channel once (address order), polls the cases (in order, or
/// in a random order), and commits the first that is ready. If none is and
/// `st` is non-null, parks waiters[i] on every case and returns -1 (the
/// caller suspends); with `st` null just returns -1.
/// `scratch` has room for n channel pointers and n indices.
int select_start(select_op* ops, waiter* waiters, std::size_t n, bool in_order,
                 select_state* st, bool* ok, void* scratch) noexcept;
/// After a parked select woke (or is destroyed): withdraws every case that
/// did not fire. Returns the fired index or -1 if none fired.
int select_finish(select_op* ops, waiter* waiters, std::size_t n, select_state* st) noexcept;

// xorshift32 state per thread; 0 until first use (constant-initialised, so
// no TLS guard on each call).
inline thread_local std::uint32_t tl_rng = 0;
std::uint32_t seed_random() noexcept;

/// A random index below n from a per-thread generator (select fairness).
inline std::uint32_t fast_random(std::uint32_t n) noexcept {
  std::uint32_t s = tl_rng;
  if (s == 0) s = seed_random();
  s ^= s << 13;
  s ^= s >> 17;
  s ^= s << 5;
  tl_rng = s;
  return static_cast<std::uint32_t>((static_cast<std::uint64_t>(s) * n) >> 32);
}

/// The select fast path for two cases, inline: in a random order (in order
/// for priority: only the first case), try the first case whose channel
/// looks ready, under that channel's lock alone. Returns the committed case
/// or -1 (then the caller runs select_start). For two cases a random start
/// is exactly a uniform random order, so fairness is unchanged.
inline int select_two_fast(select_op* ops, bool in_order, bool* ok) noexcept {
  std::uint32_t first = in_order ? 0 : fast_random(2);
  for (std::uint32_t k = 0; k < (in_order ? 1u : 2u); ++k) {
    std::uint32_t i = first ^ k;
    select_op& op = ops[i];
    if (!(op.is_send ? op.c->send_hint() : op.c->recv_hint())) continue;
    op.c->mu_.lock();
    op_status s = op.is_send ? op.c->send_locked(op.slot) : op.c->recv_locked(op.slot);
    op.c->mu_.unlock();
    if (s == op_status::blocked) return -1;
    *ok = s == op_status::ok;
    return static_cast<int>(i);
  }
  return -1;
}

}  // namespace conch::detail
