// sockets/stream.cpp
// stream_conn: multishot recv into the loop's buffer ring feeding `in`, a writer coroutine draining `out`.
//
// Invariants and thread ownership: see stream.hpp. The read side is callback
// driven (on_recv runs from the loop's completion dispatch); only when `in`
// is full does a coroutine (reader_pump) exist for it. The write side is one
// coroutine per connection (writer_loop), parked on `out` when idle.
// Lock order: mu_ is a leaf; channels are closed after releasing it.
#include "sockets/stream.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "conch/core/status.hpp"
#include "sockets/address_util.hpp"
#include "sockets/tls.hpp"

#ifndef IORING_RECVSEND_BUNDLE  // liburing 2.3's headers predate it (Linux 6.10)
#define IORING_RECVSEND_BUNDLE (1U << 4)
#endif

namespace conch::net::detail {

namespace {
// A send batch stops growing once it holds this much (its first frame goes
// whole, however large): bigger batches leave both copies colder, smaller
// ones enter the kernel too often (bench/NOTES.md, "send batch cap").
constexpr std::size_t kMaxBatchBytes = 64u << 10;

// A failed send, naming the peer and the errno ("send to 127.0.0.1:5000:
// Broken pipe (EPIPE)"): after the peer has gone, status() says so even if
// the read side had ended cleanly before.
absl::Status send_error(int err, const address& peer) {
  const char* name = strerrorname_np(err);
  absl::Status st = errno_status(err, "send to " + peer.to_string());
  return absl::Status(st.code(), std::string(st.message()) + " (" + (name ? name : "?") + ")");
}
}  // namespace

// ---- construction ----

stream_conn::stream_conn(reactor& r, buffer_ring* bufs, int fd, const options& o)
    : in_(o.in_capacity),
      out_(o.out_capacity),
      r_(&r),
      bufs_(bufs),
      fd_(fd),
      raw_(o.frame.type == framing::kind::raw),
      dec_(o.frame, o.max_frame, r.strings()),
      enc_(o.frame),
      opts_(o) {
  recv_op_.owner = this;
  recv_op_.complete = &stream_conn::on_recv;
}

stream_conn::~stream_conn() {
  // Normally closed by maybe_finish/abandon/teardown; this is the backstop.
  if (fd_ >= 0) ::close(fd_);
}

std::shared_ptr<stream_conn> stream_conn::make(reactor& r, buffer_ring* bufs, int fd,
                                               const options& o) {
  auto c = std::make_shared<stream_conn>(r, bufs, fd, o);
  r.add(c);
  return c;
}

task<int> stream_conn::connect_to(address a) {
  connect_addr_ = a;
  const std::int64_t limit_ms = opts_.connect_timeout.count();
  // A linked timeout must reach the kernel in the same submission as its
  // connect: make room for both now, since sqe() submits when the queue is
  // full, which would cut the link.
  if (limit_ms > 0 && io_uring_sq_space_left(r_->ring()) < 2) io_uring_submit(r_->ring());
  io_uring_sqe* s = r_->sqe();
  io_uring_prep_connect(s, fd_, connect_addr_.data(), connect_addr_.size());
  io_uring_sqe_set_data(s, &connect_wait_);
  // The kernel copies the timespec when the loop submits the SQEs, after this
  // coroutine has suspended: the frame keeps `ts` alive until then.
  __kernel_timespec ts{limit_ms / 1000, (limit_ms % 1000) * 1'000'000};
  if (limit_ms > 0) {
    s->flags |= IOSQE_IO_LINK;
    io_uring_sqe* t = r_->sqe();
    io_uring_prep_link_timeout(t, &ts, 0);
    // user_data 0, like reactor::cancel's: the loop skips this completion
    // (-ETIME when it fired, -ECANCELED when the connect finished first).
    io_uring_sqe_set_data(t, nullptr);
  }
  int res = co_await io_awaiter(&connect_wait_);
  // Only the linked timeout cancels a connect (nothing else targets it).
  if (limit_ms > 0 && res == -ECANCELED) res = -ETIME;
  co_return res;
}

void stream_conn::start() {
  local_ = sock_name(fd_);
  peer_ = peer_name(fd_);
  if (local_.is_ip()) {
    int one = 1;  // the writer coalesces; Nagle would only add latency
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  started_ = true;
  if (closing_.load(std::memory_order_acquire)) {
    read_end_ = true;
    after_recv_stopped();
  } else {
    arm_recv();
  }
  start_on(r_->home(), writer_loop(shared_from_this()));
}

void stream_conn::abandon() noexcept {
  {
    std::lock_guard lk(mu_);
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    ended_ = true;
  }
  in_.close();
  out_.close();
  done_.close();
  finished_ = true;
  r_->remove(this);  // may free this: last
}

// ---- any thread ----

absl::Status stream_conn::status() const {
  std::lock_guard lk(mu_);
  return status_;
}

void stream_conn::close() noexcept {
  {
    std::lock_guard lk(mu_);
    if (close_called_) return;
    close_called_ = true;
    if (!ended_) {
      status_ = absl::CancelledError("socket closed by close()");
      ended_ = true;
    }
    // shutdown() from any thread: the armed recv completes with EOF, a send
    // in flight fails; the loop then finishes the connection. The fd cannot
    // be reused under us: the loop closes it holding mu_.
    if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);
  }
  // release: the loop thread reading closing_ sees the status set above.
  closing_.store(true, std::memory_order_release);
  in_.close();
  out_.close();
}

void stream_conn::teardown() noexcept {
  {
    std::lock_guard lk(mu_);
    dead_ = true;
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (!ended_) {
      status_ = absl::CancelledError("the runtime was destroyed");
      ended_ = true;
    }
  }
  closing_.store(true, std::memory_order_release);
  in_.close();
  out_.close();
  done_.close();
  pending_.clear();
}

bool stream_conn::unsent() const noexcept {
  if (writer_done_ || write_end_ || closing_.load(std::memory_order_relaxed)) return false;
  return sending_ || out_.size() != 0;
}

void stream_conn::set_status(absl::Status st) noexcept {
  std::lock_guard lk(mu_);
  // Final, except that a clean EOF's OK gives way to a later write error.
  if (ended_ && !(status_.ok() && !st.ok())) return;
  status_ = std::move(st);
  ended_ = true;
}

// ---- read side ----

void stream_conn::arm_recv() noexcept {
  bufs_ = r_->newest_stream_ring();  // this recv's completions use that ring
  io_uring_sqe* s = r_->sqe();
  armed_mode_ = r_->stream_recv_mode();
  const bool capped = armed_mode_ == reactor::recv_mode::bundle_capped;
  io_uring_prep_recv_multishot(s, fd_, nullptr, capped ? reactor::recv_cap : 0, 0);
  if (armed_mode_ != reactor::recv_mode::single) s->ioprio |= IORING_RECVSEND_BUNDLE;
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = bufs_->bgid();
  io_uring_sqe_set_data(s, &recv_op_);
  recv_armed_ = true;
  cancel_sent_ = false;
}

void stream_conn::stop_recv() noexcept {
  if (recv_armed_ && !cancel_sent_) {
    r_->cancel(&recv_op_);
    cancel_sent_ = true;
  }
}

void stream_conn::on_recv(io_op* op, int res, std::uint32_t flags) noexcept {
  stream_conn* c = static_cast<owned_op<stream_conn>*>(op)->owner;
  if ((flags & IORING_CQE_F_MORE) == 0) c->recv_armed_ = false;
  if (res > 0) {
    // The buffers it filled: full ones in ring order, the last one partly
    // (just the first buffer when the receive was not a bundle).
    auto n = static_cast<std::size_t>(res);
    std::vector<std::uint16_t>* ids = c->r_->bundle_ids();
    ids->clear();
    c->bufs_->bundle(static_cast<std::uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT), n, ids);
    const std::size_t size = c->bufs_->buffer_size();
    for (std::uint16_t id : *ids) {
      std::size_t k = n < size ? n : size;
      c->consume(id, k);
      n -= k;
    }
  } else if (res == -EINVAL && c->armed_mode_ != reactor::recv_mode::single) {
    // An older kernel: no bundles, or no cap on them. Re-armed below, simpler.
    c->r_->recv_mode_refused(c->armed_mode_);
  } else if (res == 0) {
    c->on_eof();
  } else if (res == -ENOBUFS) {
    c->r_->note_enobufs(c->bufs_);  // re-armed below, possibly on a larger ring
  } else if (res == -ECANCELED || res == -EINTR || res == -EAGAIN) {
    // The buffer ring ran dry, or we cancelled (backpressure, close): the
    // multishot ended; after_recv_stopped decides whether to re-arm.
  } else {
    c->fail(errno_status(-res, "recv from " + c->peer_.to_string()));
  }
  if (!c->recv_armed_) c->after_recv_stopped();  // may free c: last
}

void stream_conn::consume(std::uint16_t bid, std::size_t n) noexcept {
  if (!read_end_ && raw_ && n >= bufs_->buffer_size() / 4 && n <= dec_.max_frame()) {
    // A large raw chunk: hand the buffer itself to `in` (the kernel wrote
    // straight into the string) and give the ring a recycled one.
    deliver(bufs_->take(bid, n, r_->strings()));
  } else if (!read_end_) {
    absl::Status st = dec_.feed(bufs_->buffer(bid), n, [this](std::string&& f) { deliver(std::move(f)); });
    bufs_->recycle(bid);
    if (!st.ok()) fail(std::move(st));
  } else {
    bufs_->recycle(bid);
  }
}

void stream_conn::deliver(std::string&& f) noexcept {
  if (pending_.empty() && try_send_keep(in_, f)) return;
  if (in_.closed()) {  // the consumer closed `in`, or close(): stop reading
    pending_.clear();
    read_end_ = true;
    stop_recv();
    return;
  }
  // `in` is full: hold the frame, stop reading, let the pump wait for room.
  pending_.push_back(std::move(f));
  stop_recv();
  if (!pump_running_) {
    pump_running_ = true;
    start_on(r_->home(), reader_pump(shared_from_this()));
  }
}

void stream_conn::on_eof() noexcept {
  absl::Status st = dec_.finish([this](std::string&& f) { deliver(std::move(f)); });
  set_status(std::move(st));  // OK for a clean EOF
  read_end_ = true;
}

void stream_conn::fail(absl::Status st) noexcept {
  set_status(std::move(st));
  read_end_ = true;
  write_end_ = true;
  stop_recv();
  {
    std::lock_guard lk(mu_);
    if (fd_ >= 0) ::shutdown(fd_, SHUT_RDWR);  // the peer sees the end; a parked send fails
  }
  out_.close();  // senders get false; the writer drains and ends
}

void stream_conn::after_recv_stopped() noexcept {
  if (closing_.load(std::memory_order_acquire)) read_end_ = true;
  if (!read_end_) {
    if (pending_.empty()) arm_recv();  // else reader_pump re-arms once drained
    return;
  }
  if (pump_running_ || reader_done_) return;
  // Read side over: frames still in `in` stay receivable after close.
  in_.close();
  reader_done_ = true;
  maybe_finish();  // may free this: last
}

root reader_pump(std::shared_ptr<stream_conn> c) {
  // Parks on `in` while it is full; the recv stays cancelled meanwhile, so
  // the peer's sends back up into TCP flow control.
  while (!c->pending_.empty()) {
    std::string f = std::move(c->pending_.front());
    c->pending_.pop_front();
    bool ok = co_await c->in_.send(std::move(f));
    if (!ok) {  // `in` closed under us
      c->pending_.clear();
      c->read_end_ = true;
      c->stop_recv();
      break;
    }
    while (!c->pending_.empty() && try_send_keep(c->in_, c->pending_.front()))
      c->pending_.pop_front();
  }
  c->pump_running_ = false;
  if (!c->recv_armed_) c->after_recv_stopped();
}

// ---- write side ----

root writer_loop(std::shared_ptr<stream_conn> c) {
  for (;;) {
    std::optional<std::string> v = co_await c->out_.recv();
    if (!v) break;  // `out` closed and drained: everything queued is written
    if (c->write_end_ || c->closing_.load(std::memory_order_relaxed)) continue;  // dropped
    c->sending_ = true;
    c->enc_.add(std::move(*v));
    while (!c->enc_.full() && c->enc_.bytes() < kMaxBatchBytes) {
      std::optional<std::string> w = c->out_.try_recv();
      if (!w) break;
      c->enc_.add(std::move(*w));
    }
    c->enc_.build();
    while (c->enc_.iov_count() > 0) {
      io_uring_sqe* s = c->r_->sqe();
      // MSG_WAITALL: the kernel retries a short send itself (stream sockets).
      if (c->enc_.iov_count() == 1) {  // one buffer: plain send, no msghdr to import
        io_uring_prep_send(s, c->fd_, c->enc_.iov()->iov_base, c->enc_.iov()->iov_len,
                           MSG_NOSIGNAL | MSG_WAITALL);
      } else {
        c->msg_ = {};
        c->msg_.msg_iov = c->enc_.iov();
        c->msg_.msg_iovlen = c->enc_.iov_count();
        io_uring_prep_sendmsg(s, c->fd_, &c->msg_, MSG_NOSIGNAL | MSG_WAITALL);
      }
      io_uring_sqe_set_data(s, &c->send_wait_);
      int res = co_await io_awaiter(&c->send_wait_);
      if (res == -EINTR || res == -EAGAIN) continue;
      if (res <= 0) {
        if (!c->closing_.load(std::memory_order_relaxed))
          c->fail(send_error(res == 0 ? EPIPE : -res, c->peer_));
        c->write_end_ = true;
        break;
      }
      c->enc_.advance(static_cast<std::size_t>(res));
    }
    c->enc_.clear(c->r_->strings());  // the sent strings' buffers serve the next reads
    c->sending_ = false;
  }
  if (!c->write_end_ && !c->closing_.load(std::memory_order_relaxed)) {
    std::lock_guard lk(c->mu_);
    if (c->fd_ >= 0) ::shutdown(c->fd_, SHUT_WR);  // half-close: the peer sees EOF
  }
  c->write_end_ = true;
  c->writer_done_ = true;
  c->maybe_finish();
}

void stream_conn::maybe_finish() noexcept {
  if (!reader_done_ || !writer_done_ || finished_) return;
  finished_ = true;
  {
    std::lock_guard lk(mu_);
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    ended_ = true;
  }
  in_.close();
  out_.close();
  done_.close();
  r_->remove(this);  // may free this: last
}

// ---- public handles ----

}  // namespace conch::net::detail

namespace conch::net {

socket::socket(std::shared_ptr<detail::stream_conn> c)
    : in(c->in_), out(c->out_), c_(std::move(c)) {}
// A TLS socket (t_ set) answers from its session: sockets/tls.cpp.
address socket::local() const { return t_ ? detail::tls_local(*t_) : c_->local(); }
address socket::peer() const { return t_ ? detail::tls_peer(*t_) : c_->peer(); }
absl::Status socket::status() const { return t_ ? detail::tls_status(*t_) : c_->status(); }
chan<unit> socket::done() const { return t_ ? detail::tls_done(*t_) : c_->done_; }
void socket::close() { t_ ? detail::tls_close(*t_) : c_->close(); }

}  // namespace conch::net
