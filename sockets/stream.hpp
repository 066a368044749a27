// sockets/stream.hpp
// stream_conn (one TCP/Unix connection) and listener (one server): state machines on the home loop.
//
// Invariants (stream_conn):
//  - At most one multishot recv is armed (recv_armed_); it is re-armed only
//    after its final completion (no IORING_CQE_F_MORE) and only while nothing
//    waits in pending_, so frames reach `in` in stream order.
//  - pending_ is non-empty only while `in` is full (or was when the frame
//    came): then the recv is cancelled and reader_pump parks on in.send; it
//    re-arms the recv once pending_ is drained. Memory per connection: `in`
//    (in_capacity frames) + pending_ (frames of the completions already
//    posted when the cancel took effect) + one partial frame (<= max_frame)
//    + one send batch (<= 64 frames taken from `out`).
//  - The fd is closed only once the read side is done (no recv armed, no
//    pump, `in` closed) and the writer coroutine has ended: no operation is
//    in flight on a closed (or reused) fd.
//  - status_ is written once (ended_), before `in` is closed, so a consumer
//    that sees `in` end reads the final status; the one exception: the OK of
//    a clean EOF turns into the write side's error when a later send fails
//    (the peer has gone: EPIPE, ECONNRESET).
//  - While the runtime is destroyed, the home loop lingers as long as
//    unsent() (frames on `out` or a batch in flight), up to
//    runtime_options::linger; then teardown() drops what is left.
// Thread ownership: everything not marked otherwise belongs to the home loop
// thread. close(), status() and the address getters run on any thread: they
// use mu_ (status_, ended_, fd_ for shutdown) and the closing_ atomic.
// Lock order: mu_ is a leaf (channels are never closed while holding it).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "conch/chan/chan.hpp"
#include "conch/net/socket.hpp"
#include "sockets/frame_codec.hpp"
#include "sockets/reactor.hpp"

namespace conch::net::detail {

/// An io_op that knows its owner.
template <class Owner>
struct owned_op : io_op {
  Owner* owner = nullptr;
};

class stream_conn final : public endpoint, public std::enable_shared_from_this<stream_conn> {
 public:
  /// Wraps connected-or-connecting `fd` and registers it on `r`. Loop thread.
  static std::shared_ptr<stream_conn> make(reactor& r, buffer_ring* bufs, int fd,
                                           const options& o);
  stream_conn(reactor& r, buffer_ring* bufs, int fd, const options& o);
  ~stream_conn() override;

  /// Connects (io_uring connect); returns 0 or -errno. With
  /// options::connect_timeout set, a linked timeout cancels the connect once
  /// it has passed, giving -ETIME. Loop thread, once.
  task<int> connect_to(address a);
  /// Records the addresses, arms the recv and starts the writer. Loop thread.
  void start();
  /// Gives up on a connection that never started (failed connect).
  void abandon() noexcept;
  /// start_tls's checks (home loop thread): the frames cut as raw chunks,
  /// and received bytes not yet taken from `in` (in `in` or pending_).
  bool raw() const noexcept { return raw_; }
  bool unread() const noexcept { return !pending_.empty() || in_.size() > 0; }
  bool closing() const noexcept { return closing_.load(std::memory_order_acquire); }
  loop* home() const noexcept { return r_->home(); }

  // ---- any thread ----
  void close() noexcept;
  absl::Status status() const;
  address local() const { return local_; }
  address peer() const { return peer_; }
  void teardown() noexcept override;
  /// Frames queued on `out` or a batch being sent, and the writer still
  /// going (not failed, not close()d). Home loop thread.
  bool unsent() const noexcept override;

  chan<std::string> in_;
  chan<std::string> out_;
  chan<unit> done_;  // closed when the connection is finished

 private:
  friend conch::detail::root reader_pump(std::shared_ptr<stream_conn> c);
  friend conch::detail::root writer_loop(std::shared_ptr<stream_conn> c);

  // reader (loop thread)
  void arm_recv() noexcept;
  void stop_recv() noexcept;
  static void on_recv(io_op* op, int res, std::uint32_t flags) noexcept;
  void consume(std::uint16_t bid, std::size_t n) noexcept;
  void deliver(std::string&& f) noexcept;
  void after_recv_stopped() noexcept;
  void on_eof() noexcept;
  void fail(absl::Status st) noexcept;
  void set_status(absl::Status st) noexcept;
  void maybe_finish() noexcept;

  // Layout: what every frame touches comes first, in as few cache lines as
  // possible; addresses, mutex and status (cold) last (bench/NOTES.md,
  // "stream_conn layout").
  reactor* r_;
  buffer_ring* bufs_;      // the ring the armed recv takes buffers from
  int fd_;                 // written under mu_ (loop thread / teardown)
  std::atomic<bool> closing_{false};  // close() was called
  bool raw_;  // framing::raw: large chunks are handed out without a copy
  // read side
  bool recv_armed_ = false;
  reactor::recv_mode armed_mode_ = reactor::recv_mode::single;  // of the armed recv
  bool cancel_sent_ = false;
  bool read_end_ = false;      // no more reading: EOF, error, close, `in` closed
  bool pump_running_ = false;
  bool reader_done_ = false;
  bool started_ = false;
  // write side
  bool write_end_ = false;     // failed or closed: drop what is left on `out`
  bool writer_done_ = false;
  bool sending_ = false;       // the writer holds a batch (unsent() while lingering)
  bool finished_ = false;
  owned_op<stream_conn> recv_op_;
  io_wait send_wait_;
  msghdr msg_{};
  frame_decoder dec_;
  frame_encoder enc_;  // its length headers last
  std::deque<std::string> pending_;
  options opts_;

  // cold
  address local_, peer_;   // set by start(), read-only afterwards
  mutable std::mutex mu_;
  absl::Status status_;    // guarded by mu_
  bool ended_ = false;     // guarded by mu_: status_ is final
  bool close_called_ = false;  // guarded by mu_
  bool dead_ = false;      // guarded by mu_: torn down with its runtime
  io_wait connect_wait_;   // connect
  address connect_addr_;
};

/// What server::serve runs for each connection.
using serve_fn = std::function<task<void>(socket)>;

class listener final : public endpoint, public std::enable_shared_from_this<listener> {
 public:
  listener(reactor& r, buffer_ring* bufs, int fd, const options& o, address local);
  ~listener() override;

  /// Arms the multishot accept. Loop thread.
  void start();
  /// Remembers the Unix socket file to remove on close (if still ours).
  void own_file(std::string path, std::uint64_t dev, std::uint64_t ino);

  // ---- any thread ----
  void close() noexcept;
  address local() const { return local_; }
  void teardown() noexcept override;
  loop* home() const noexcept { return r_->home(); }
  /// From now on, hand accepted connections to the runtime's loops in turn
  /// and run `h` on each there (server::serve; serve.cpp).
  void serve_with(std::shared_ptr<const serve_fn> h);

  chan<socket> conns_;

 private:
  friend conch::detail::root accept_pump(std::shared_ptr<listener> l);

  void arm_accept() noexcept;
  void stop_accept() noexcept;
  static void on_accept(io_op* op, int res, std::uint32_t flags) noexcept;
  void handoff(int fd) noexcept;
  void spread(int fd) noexcept;  // serve mode: fd to the next loop, handler there
  void after_accept_stopped() noexcept;
  void start_pump() noexcept;
  void finish() noexcept;
  void remove_file_locked() noexcept;  // mu_ held

  reactor* r_;
  buffer_ring* bufs_;
  options opts_;
  address local_;
  std::string path_;           // Unix socket file we created ("" if none); mu_
  std::uint64_t dev_ = 0, ino_ = 0;

  mutable std::mutex mu_;
  int fd_;                     // guarded by mu_
  bool close_called_ = false;  // guarded by mu_
  bool dead_ = false;          // guarded by mu_
  std::atomic<bool> closing_{false};
  chan<unit> wake_;            // closed by close(): cuts a back-off sleep short

  owned_op<listener> accept_op_;
  std::deque<socket> pending_;  // accepted, not yet taken by `connections`
  bool accept_armed_ = false;
  bool cancel_sent_ = false;
  bool pump_running_ = false;
  bool backoff_needed_ = false;  // EMFILE/ENFILE/ENOBUFS/ENOMEM: wait, then re-arm
  std::chrono::milliseconds backoff_{0};
  bool finished_ = false;
  std::shared_ptr<const serve_fn> spread_;  // serve mode (home loop)
};

}  // namespace conch::net::detail
