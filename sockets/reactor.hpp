// sockets/reactor.hpp
// reactor: the sockets layer's per-loop state (buffer ring, live endpoints) and io_uring glue.
//
// Invariants:
//  - One reactor per loop, created on the loop thread at first use and owned
//    by the loop (a loop_extension, src/io.hpp); ~loop destroys it after the ring is
//    closed, so the buffer memory outlives every operation that could use it.
//  - Every open endpoint is on its home reactor's registry, which holds a
//    strong reference (endpoint::self_), until the endpoint has no operation
//    in flight and has closed its fd. A runtime torn down with live sockets
//    tears the rest down in ~reactor: fds closed, channels closed, refs dropped.
//  - Memory comes back: when the loop goes idle (idle()) after at least
//    kTrimDrop endpoints ended since the peak (and half of them gone), the
//    grown stream rings are retired (receives armed on them end with
//    -ENOBUFS and re-arm on the first ring), the string pool is emptied and
//    malloc_trim returns the freed pages.
//  - A stopping loop keeps running while wants_linger() (an endpoint with
//    unsent output), bounded by runtime_options::linger; then ~reactor.
//  - Everything here runs on the home loop thread, except endpoint::teardown
//    (the destroying thread, after the loop thread has stopped).
#pragma once

#include <liburing.h>

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "conch/chan/chan.hpp"
#include "conch/core/runtime.hpp"
#include "sockets/frame_codec.hpp"
#include "src/io.hpp"

namespace conch::net::detail {

using conch::detail::io_op;
using conch::detail::loop;
using conch::detail::root;
using conch::detail::start_on;

/// A provided-buffer ring registered on one loop's io_uring, set up by hand
/// (liburing 2.3 has no io_uring_setup_buf_ring). The kernel picks a buffer
/// per completion; the reactor copies the bytes out and recycles it at once,
/// so buffers are shared by every socket of the loop and never held long.
/// Each buffer is the storage of a std::string (size() == buffer_size()), so
/// a large chunk can also be handed out as it is (take): no copy at all.
class buffer_ring {
 public:
  /// Allocates `entries` (a power of two) buffers of `size` bytes and
  /// registers them as group `bgid`. The errno status on failure.
  static absl::StatusOr<std::unique_ptr<buffer_ring>> create(io_uring* ring, std::uint16_t bgid,
                                                            unsigned entries, std::size_t size);
  ~buffer_ring();
  buffer_ring(const buffer_ring&) = delete;
  buffer_ring& operator=(const buffer_ring&) = delete;

  std::uint16_t bgid() const noexcept { return bgid_; }
  std::size_t buffer_size() const noexcept { return size_; }
  char* buffer(std::uint16_t bid) noexcept { return slots_[bid].data(); }
  /// Gives buffer `bid` back to the kernel.
  void recycle(std::uint16_t bid) noexcept {
    io_uring_buf_ring_add(br_, buffer(bid), static_cast<unsigned>(size_), bid, mask_, 0);
    io_uring_buf_ring_advance(br_, 1);
    at_[tail_ & static_cast<unsigned>(mask_)] = bid;
    pos_[bid] = tail_++;
  }
  /// The buffers a bundle completion filled: the kernel takes ring entries in
  /// order, so they are `first` and the ones that followed it in the ring.
  /// Appends their ids to `out` (res bytes: full buffers, then the rest).
  void bundle(std::uint16_t first, std::size_t res, std::vector<std::uint16_t>* out) const {
    unsigned p = pos_[first];
    for (std::size_t got = 0; got < res; got += size_)
      out->push_back(at_[p++ & static_cast<unsigned>(mask_)]);
  }
  /// Hands out buffer `bid` holding `n` received bytes as a string, and
  /// gives the kernel a fresh buffer (from `pool` when it has one) instead.
  std::string take(std::uint16_t bid, std::size_t n, string_pool* pool) {
    std::string out = std::move(slots_[bid]);
    out.resize(n);  // shrinking: nothing is written but the terminator
    slots_[bid] = pool->blank(size_);
    recycle(bid);
    return out;
  }

 private:
  buffer_ring() = default;
  io_uring_buf_ring* br_ = nullptr;
  std::size_t ring_bytes_ = 0;
  std::vector<std::string> slots_;
  std::vector<std::uint16_t> at_;   // ring position (mod entries) -> buffer id we put there
  std::vector<unsigned> pos_;       // buffer id -> the ring position it was last put at
  unsigned tail_ = 0;               // our copy of the ring's tail
  std::size_t size_ = 0;
  int mask_ = 0;
  std::uint16_t bgid_ = 0;
};

class reactor;

/// Base of every socket object the reactor tracks (stream connection,
/// listener, UDP socket).
class endpoint {
 public:
  virtual ~endpoint() = default;
  /// Runtime teardown (loop thread stopped, ring closed): close the fd and
  /// the channels, drop what is pending. Runs on the destroying thread.
  virtual void teardown() noexcept = 0;
  /// Has output queued or being written that a stopping loop should wait
  /// for (runtime_options::linger). Home loop thread.
  virtual bool unsent() const noexcept { return false; }

 private:
  friend class reactor;
  endpoint* prev_ = nullptr;
  endpoint* next_ = nullptr;
  std::shared_ptr<endpoint> self_;  // the registry's reference
};

/// Per-loop sockets state.
class reactor final : public conch::detail::loop_extension {
 public:
  /// The reactor of `l`, created on first use. Loop thread only.
  static reactor& of(loop* l);
  ~reactor() override;
  /// A stopping loop asks: does an endpoint still have output to write?
  bool wants_linger() noexcept override;
  /// The loop goes idle: after a large drop in live endpoints, give memory
  /// back (string pool, the C allocator's free pages: malloc_trim).
  void idle() noexcept override;

  loop* home() const noexcept { return home_; }
  io_uring* ring() const noexcept { return ring_; }
  io_uring_sqe* sqe() const noexcept { return conch::detail::get_sqe(home_); }

  /// The stream receive buffers (created on first use): the newest ring.
  absl::StatusOr<buffer_ring*> stream_buffers();
  /// The ring new receives should use (stream_buffers() was called before).
  buffer_ring* newest_stream_ring() const noexcept { return stream_rings_.back().get(); }
  /// A receive armed on `used` found it empty (-ENOBUFS). After repeated
  /// exhaustion of the newest ring the reactor registers one twice as large
  /// (256 -> 512 -> 1024 buffers); receives move to it as they re-arm. Older
  /// rings stay registered (their buffers are still recycled into them)
  /// until idle() retires the grown ones.
  void note_enobufs(const buffer_ring* used) noexcept;
  /// The UDP receive buffers (created on first use): 16 buffers of
  /// datagram_buffer_size, shared by the loop's UDP sockets. A multishot
  /// recvmsg writes its io_uring_recvmsg_out header, the peer's address and
  /// the payload into one; the socket copies the datagram out and recycles
  /// the buffer at once.
  absl::StatusOr<buffer_ring*> datagram_buffers();
  /// Room for the largest UDP payload (65,527 bytes over IPv6) after the
  /// recvmsg header and a sockaddr_storage.
  static constexpr std::size_t datagram_buffer_size = 65536 + 256;
  /// Recycled string buffers shared by the loop's connections.
  string_pool* strings() noexcept { return &strings_; }

  /// How stream receives are armed. Best first: multishot bundles (one
  /// completion covers several ring buffers) capped at recv_cap bytes per
  /// round (Linux 6.16), so a busy socket yields to the loop, which sends
  /// what it echoed before more is read (the interleaving a readiness loop
  /// gets from read-then-write); bundles without a cap (6.10); one buffer per
  /// completion. A receive the kernel refuses with -EINVAL steps it down.
  enum class recv_mode : std::uint8_t { single, bundle, bundle_capped };
  static constexpr unsigned recv_cap = 64 * 1024;
  recv_mode stream_recv_mode() const noexcept { return mode_; }
  /// A receive armed in mode `m` was refused (-EINVAL): use the next one down.
  void recv_mode_refused(recv_mode m) noexcept {
    if (m == mode_ && mode_ != recv_mode::single)
      mode_ = static_cast<recv_mode>(static_cast<int>(mode_) - 1);
  }
  /// Scratch list of the buffer ids of one bundle completion.
  std::vector<std::uint16_t>* bundle_ids() noexcept { return &bundle_ids_; }

  /// Registers `e` (holding a reference) / releases it.
  void add(std::shared_ptr<endpoint> e) noexcept;
  void remove(endpoint* e) noexcept;
  std::size_t live() const noexcept { return live_; }

  /// Submits a cancel of the operation whose user_data is `op` (its
  /// completion, -ECANCELED or the final one, still arrives).
  void cancel(io_op* op) noexcept;

 private:
  explicit reactor(loop* l);
  struct sentinel final : endpoint {
    void teardown() noexcept override {}
  };
  loop* home_;
  io_uring* ring_;  // home_'s, fixed for its lifetime (src/io.hpp ring_of)
  std::vector<std::unique_ptr<buffer_ring>> stream_rings_;
  // Grown rings unregistered by idle(), freed at the next idle(): a
  // completion the kernel posted before the unregister (rings without
  // DEFER_TASKRUN) may still name their buffers until the CQ is drained.
  std::vector<std::unique_ptr<buffer_ring>> retired_rings_;
  std::unique_ptr<buffer_ring> datagram_ring_;
  unsigned enobufs_ = 0;  // since the newest ring was created
  recv_mode mode_ = recv_mode::bundle_capped;
  std::vector<std::uint16_t> bundle_ids_;
  string_pool strings_;
  sentinel head_;
  std::size_t live_ = 0;
  std::size_t peak_live_ = 0;  // most live endpoints since the last trim
};

/// The loop of the calling thread, for `fn` (e.g. "listen"), which must be
/// called on a runtime thread: kFailedPrecondition naming `fn` elsewhere.
absl::StatusOr<loop*> calling_loop(const char* fn);

// start_on(l, r) (src/io.hpp) starts a detached coroutine pinned to loop
// `l`: socket coroutines must stay home.

/// Runs `fn` on loop `l`'s thread soon (inline order: after what is ready).
void post(loop* l, absl::AnyInvocable<void() &&> fn) noexcept;

/// co_await on a single-shot io_uring operation: `prep` fills the SQE, the
/// coroutine resumes (inline, from the completion) with the result.
struct io_wait : io_op {
  std::coroutine_handle<> h;
  int res = 0;
  io_wait() noexcept {
    complete = [](io_op* o, int r, std::uint32_t) noexcept {
      auto* self = static_cast<io_wait*>(o);
      self->res = r;
      conch::detail::resume_chain(self->h);
    };
  }
};

/// Awaitable that submits one SQE (filled by the caller through sqe()) whose
/// completion resumes the awaiting coroutine with res.
class [[nodiscard]] io_awaiter {
 public:
  explicit io_awaiter(io_wait* w) noexcept : w_(w) {}
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) noexcept { w_->h = h; }
  int await_resume() const noexcept { return w_->res; }

 private:
  io_wait* w_;
};

/// Moves `v` into `c` without parking; on failure `v` is left intact
/// (chan::try_send consumes its argument even when it refuses it).
template <class T>
bool try_send_keep(const chan<T>& c, T& v) noexcept {
  return conch::detail::get_core(c)->send(&v, nullptr) == conch::detail::op_status::ok;
}

}  // namespace conch::net::detail
