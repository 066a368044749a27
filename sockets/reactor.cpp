// sockets/reactor.cpp
// The per-loop reactor: hand-made provided-buffer rings, the endpoint registry, post.
//
// Invariants: see reactor.hpp. Lock order: none here (loop thread only).
#include "sockets/reactor.hpp"

#include <malloc.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "sockets/address_util.hpp"

namespace conch::net::detail {

namespace {
// Stream receive buffers, shared by every socket of a loop: kStreamBufs x
// kStreamBufSize to start. A completion's buffer is copied into frames and
// recycled before the next completion is looked at, so a ring runs dry only
// when more receive completions arrive in one reap than it has buffers (many
// busy sockets: a multishot recv takes a buffer per chunk the kernel has
// queued). Then the receive ends with -ENOBUFS and is re-armed; after
// kGrowAfter of those the reactor adds a ring twice as large, up to
// kMaxStreamBufs buffers. The buffers are std::strings, zero-filled when the
// ring is created (4 MiB per loop from its first stream socket on). Few, hot
// buffers beat many cold ones (bench/NOTES.md, "stream receive ring").
constexpr unsigned kStreamBufs = 256;
constexpr unsigned kMaxStreamBufs = 1024;
constexpr unsigned kGrowAfter = 64;
constexpr std::size_t kStreamBufSize = 16 * 1024;
constexpr std::uint16_t kStreamGroup = 0x4e31;  // first bgid; the next rings count up
// UDP receive buffers: one ring per loop, created when its first UDP socket
// is bound. Buffers are recycled as each completion is handled, so 16 are
// used up only by more than 16 datagrams in one reap; the multishot recvmsg
// then ends with -ENOBUFS and is re-armed (the datagrams wait in the socket).
constexpr unsigned kDatagramBufs = 16;
constexpr std::uint16_t kDatagramGroup = 0x4e30;  // below the stream groups
const char kReactorKey = 0;                      // the loop extension key (src/io.hpp)
// Give memory back once this many endpoints have ended since the most there
// were (and at least half of those are gone), when the loop next goes idle.
// Each connection leaves ~10 KiB of freed heap (its object, channels,
// coroutine frames) that glibc keeps; 10,000 closed connections held ~250 MB
// of RSS until malloc_trim (bench/NOTES.md "memory after connections close").
// Steady churn (as many open as close) never triggers it.
constexpr std::size_t kTrimDrop = 1024;
}  // namespace

// ---- buffer_ring ----

absl::StatusOr<std::unique_ptr<buffer_ring>> buffer_ring::create(io_uring* ring,
                                                                 std::uint16_t bgid,
                                                                 unsigned entries,
                                                                 std::size_t size) {
  std::unique_ptr<buffer_ring> b(new buffer_ring);
  b->bgid_ = bgid;
  b->size_ = size;
  b->mask_ = io_uring_buf_ring_mask(entries);
  // The ring itself must be page aligned: mmap it (what io_uring_setup_buf_ring
  // does in liburing >= 2.4).
  b->ring_bytes_ = entries * sizeof(io_uring_buf);
  void* mem = mmap(nullptr, b->ring_bytes_, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE,
                   -1, 0);
  if (mem == MAP_FAILED) return errno_status(errno, "conch: mmap of a buffer ring");
  b->br_ = static_cast<io_uring_buf_ring*>(mem);
  b->slots_.resize(entries);
  for (std::string& slot : b->slots_) slot.resize(size);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uintptr_t>(mem);
  reg.ring_entries = entries;
  reg.bgid = bgid;
  int rc = io_uring_register_buf_ring(ring, &reg, 0);
  if (rc < 0) {  // not registered: ~buffer_ring unmaps it
    return errno_status(-rc, "conch: io_uring_register_buf_ring (kernel >= 5.19 needed)");
  }
  io_uring_buf_ring_init(b->br_);
  b->at_.resize(entries);
  b->pos_.resize(entries);
  for (unsigned i = 0; i < entries; ++i) b->recycle(static_cast<std::uint16_t>(i));
  return b;
}

buffer_ring::~buffer_ring() {
  // Runs after io_uring_queue_exit (~loop), so no unregister: the ring is gone.
  if (br_ != nullptr) munmap(br_, ring_bytes_);
}

// ---- reactor ----

reactor::reactor(loop* l) : home_(l), ring_(conch::detail::ring_of(l)) {
  head_.prev_ = head_.next_ = &head_;
  // CONCH_NET_RECV=single|bundle caps the receive mode (tests run the socket
  // suite in each mode; also a way around a kernel that misbehaves).
  if (const char* m = std::getenv("CONCH_NET_RECV")) {
    if (std::strcmp(m, "single") == 0) mode_ = recv_mode::single;
    if (std::strcmp(m, "bundle") == 0) mode_ = recv_mode::bundle;
  }
}

reactor& reactor::of(loop* l) {
  if (auto* e = conch::detail::find_extension(l, &kReactorKey)) return *static_cast<reactor*>(e);
  return *static_cast<reactor*>(
      conch::detail::add_extension(l, &kReactorKey, std::unique_ptr<reactor>(new reactor(l))));
}

reactor::~reactor() {
  // The runtime is being destroyed: its loop threads have stopped and every
  // frame is gone. Close whatever is still open.
  while (head_.next_ != &head_) {
    endpoint* e = head_.next_;
    std::shared_ptr<endpoint> keep = std::move(e->self_);
    e->prev_->next_ = e->next_;
    e->next_->prev_ = e->prev_;
    e->prev_ = e->next_ = nullptr;
    --live_;
    e->teardown();
  }
}

bool reactor::wants_linger() noexcept {
  // One pass over the live endpoints per lingering turn: only while the
  // runtime is being destroyed.
  for (endpoint* e = head_.next_; e != &head_; e = e->next_)
    if (e->unsent()) return true;
  return false;
}

void reactor::idle() noexcept {
  if (!retired_rings_.empty()) {
    // Unregistered at an earlier idle(), every completion reaped since.
    retired_rings_.clear();
    malloc_trim(0);
  }
  if (peak_live_ < live_ + kTrimDrop || live_ > peak_live_ / 2) return;
  peak_live_ = live_;
  // Back to the first ring: the grown ones (up to 28 MiB) leave the kernel.
  // A receive armed on one ends with -ENOBUFS when data comes and re-arms on
  // the first ring.
  while (stream_rings_.size() > 1) {
    io_uring_unregister_buf_ring(ring_, stream_rings_.back()->bgid());
    retired_rings_.push_back(std::move(stream_rings_.back()));
    stream_rings_.pop_back();
  }
  // With DEFER_TASKRUN the kernel posts completions (and picks buffers) only
  // when this thread enters it, and the CQ is empty: no completion names
  // the retired buffers, free them now. Otherwise one posted just before the
  // unregister may still do: keep them until the next idle().
  if ((ring_->flags & IORING_SETUP_DEFER_TASKRUN) != 0 && io_uring_cq_ready(ring_) == 0)
    retired_rings_.clear();
  enobufs_ = 0;
  strings_.release();
  // All arenas: the freed connection state sits in this loop thread's arena,
  // and glibc only returns a heap's top on its own.
  malloc_trim(0);
}

absl::StatusOr<buffer_ring*> reactor::stream_buffers() {
  if (stream_rings_.empty()) {
    auto b = buffer_ring::create(ring(), kStreamGroup, kStreamBufs, kStreamBufSize);
    if (!b.ok()) return b.status();
    stream_rings_.push_back(std::move(*b));
  }
  return stream_rings_.back().get();
}

absl::StatusOr<buffer_ring*> reactor::datagram_buffers() {
  if (datagram_ring_ == nullptr) {
    auto b = buffer_ring::create(ring(), kDatagramGroup, kDatagramBufs, datagram_buffer_size);
    if (!b.ok()) return b.status();
    datagram_ring_ = std::move(*b);
  }
  return datagram_ring_.get();
}

void reactor::note_enobufs(const buffer_ring* used) noexcept {
  // A receive still armed on a ring idle() retired: not a sign of shortage.
  if (used != newest_stream_ring()) return;
  if (++enobufs_ < kGrowAfter) return;
  enobufs_ = 0;
  unsigned entries = static_cast<unsigned>(stream_rings_.size()) == 0
                         ? kStreamBufs
                         : 2 * (kStreamBufs << (stream_rings_.size() - 1));
  if (entries > kMaxStreamBufs) return;
  auto b = buffer_ring::create(ring(), static_cast<std::uint16_t>(kStreamGroup + stream_rings_.size()),
                               entries, kStreamBufSize);
  if (b.ok()) stream_rings_.push_back(std::move(*b));  // else keep using the ones we have
}

void reactor::add(std::shared_ptr<endpoint> e) noexcept {
  endpoint* p = e.get();
  p->self_ = std::move(e);
  p->next_ = head_.next_;
  p->prev_ = &head_;
  head_.next_->prev_ = p;
  head_.next_ = p;
  if (++live_ > peak_live_) peak_live_ = live_;
}

void reactor::remove(endpoint* e) noexcept {
  if (e->prev_ == nullptr) return;
  e->prev_->next_ = e->next_;
  e->next_->prev_ = e->prev_;
  e->prev_ = e->next_ = nullptr;
  --live_;
  std::shared_ptr<endpoint> last = std::move(e->self_);  // may free e: last
}

void reactor::cancel(io_op* op) noexcept {
  io_uring_sqe* s = sqe();
  io_uring_prep_cancel(s, op, 0);
  io_uring_sqe_set_data(s, nullptr);  // its own completion is ignored
}

// ---- running code on a socket's home loop ----

absl::StatusOr<loop*> calling_loop(const char* fn) {
  loop* l = conch::detail::current_loop();
  if (l == nullptr)
    return absl::FailedPreconditionError(std::string("conch::net::") + fn +
                                         "() must be called on a runtime thread (in block_on or a go block)");
  return l;
}

namespace {
conch::detail::root post_body(absl::AnyInvocable<void() &&> fn) {
  std::move(fn)();
  co_return;
}
}  // namespace

void post(loop* l, absl::AnyInvocable<void() &&> fn) noexcept {
  start_on(l, post_body(std::move(fn)));
}

}  // namespace conch::net::detail
