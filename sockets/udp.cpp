// sockets/udp.cpp
// udp_endpoint: multishot recvmsg feeding `in`, a writer coroutine sending `out`; multicast membership.
//
// Invariants:
//  - At most one multishot recvmsg is armed (recv_armed_), taking buffers
//    from the loop's datagram ring (reactor::datagram_buffers); each
//    completion's datagram is copied out and its buffer recycled at once. It
//    is re-armed only after its final completion (no IORING_CQE_F_MORE:
//    -ENOBUFS, -ECANCELED, an error) and only while pending_ is empty.
//  - Backpressure: a datagram that does not fit in `in` goes to pending_,
//    the recvmsg is cancelled and pump parks on `in`; it re-arms once
//    pending_ is drained. Datagrams reach `in` in the order received. Memory:
//    `in` + pending_ (what the kernel had posted before the cancel landed;
//    one round of the kernel's is bounded by the ring's 16 buffers).
//  - The fd is closed only when no recvmsg is armed, no pump runs and the
//    writer has ended.
// Thread ownership: the read/write state belongs to the home loop thread;
// close(), join/leave_multicast and last_error() run on any thread (mu_).
// Lock order: mu_ is a leaf.
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>

#include "conch/core/status.hpp"
#include "conch/net/udp.hpp"
#include "sockets/address_util.hpp"
#include "sockets/reactor.hpp"

namespace conch::net::detail {

// A datagram buffer holds the recvmsg header, the peer address (room for
// any: msg_namelen is sizeof(sockaddr_storage)) and a payload of up to 64 KiB.
static_assert(reactor::datagram_buffer_size >=
              sizeof(io_uring_recvmsg_out) + sizeof(sockaddr_storage) + 65536);

class udp_endpoint final : public endpoint, public std::enable_shared_from_this<udp_endpoint> {
 public:
  udp_endpoint(reactor& r, buffer_ring* bufs, int fd, const options& o, address local)
      : in_(o.in_capacity), out_(o.out_capacity), r_(&r), bufs_(bufs), local_(local), fd_(fd) {
    rmsg_.msg_namelen = sizeof(sockaddr_storage);  // the layout of every buffer; no iov, no control
    recv_wait_.owner = this;
    recv_wait_.complete = &udp_endpoint::on_recv;
  }
  ~udp_endpoint() override {
    if (fd_ >= 0) ::close(fd_);
  }

  void start() {
    arm_recv();
    start_on(r_->home(), writer(shared_from_this()));
  }

  address local() const { return local_; }

  absl::Status last_error() const {
    std::lock_guard lk(mu_);
    return last_error_;
  }

  void close() noexcept {
    {
      std::lock_guard lk(mu_);
      if (close_called_ || dead_) return;
      close_called_ = true;
    }
    closing_.store(true, std::memory_order_release);
    in_.close();
    out_.close();
    auto self = shared_from_this();
    auto stop = [self] {
      if (self->recv_armed_)
        self->stop_recv();  // its final completion finishes
      else
        self->maybe_finish();
    };
    if (conch::detail::current_loop() == r_->home())
      stop();
    else
      post(r_->home(), std::move(stop));
  }

  // Datagrams queued on `out` or one being sent: a stopping loop lingers.
  bool unsent() const noexcept override {
    if (writer_done_ || closing_.load(std::memory_order_relaxed)) return false;
    return sending_ || out_.size() != 0;
  }

  void teardown() noexcept override {
    {
      std::lock_guard lk(mu_);
      dead_ = true;
      if (fd_ >= 0) ::close(fd_);
      fd_ = -1;
    }
    closing_.store(true, std::memory_order_release);
    in_.close();
    out_.close();
    pending_.clear();
  }

  absl::Status membership(std::string_view group, std::string_view iface, bool join) {
    const char* verb = join ? "join_multicast" : "leave_multicast";
    std::string where = std::string(verb) + "('" + std::string(group) + "')";
    auto spec = parse_spec(group, false);
    if (!spec.ok())  // malformed (a bad zone, say): pass on what the parser found
      return absl::InvalidArgumentError(where + ": " + std::string(spec.status().message()));
    if (spec->k != address_spec::kind::inet || !spec->numeric)
      return absl::InvalidArgumentError(where + ": the group must be a numeric IPv4 or IPv6 address");
    unsigned ifindex = 0;
    if (!iface.empty()) {
      // IF_NAMESIZE counts the NUL; a NUL inside would shorten the name looked up.
      if (iface.size() < IF_NAMESIZE && iface.find('\0') == std::string_view::npos)
        ifindex = if_nametoindex(std::string(iface).c_str());
      if (ifindex == 0)
        return absl::InvalidArgumentError(where + ": no interface named '" + std::string(iface) + "'");
    }
    std::lock_guard lk(mu_);
    if (fd_ < 0) return absl::FailedPreconditionError(where + ": the socket is closed");
    const address& g = spec->addr;
    if (g.family() == AF_INET) {
      auto* sin = reinterpret_cast<const sockaddr_in*>(g.data());
      if (!IN_MULTICAST(ntohl(sin->sin_addr.s_addr)))
        return absl::InvalidArgumentError(where + ": not a multicast address");
      ip_mreqn m{};
      m.imr_multiaddr = sin->sin_addr;
      m.imr_ifindex = static_cast<int>(ifindex);
      if (setsockopt(fd_, IPPROTO_IP, join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP, &m, sizeof m) != 0)
        return errno_status(errno, where);
      if (join && ifindex != 0) {  // send our multicast out of the same interface
        ip_mreqn out{};
        out.imr_ifindex = static_cast<int>(ifindex);
        if (setsockopt(fd_, IPPROTO_IP, IP_MULTICAST_IF, &out, sizeof out) != 0)
          return errno_status(errno, where + ": IP_MULTICAST_IF");
      }
      return absl::OkStatus();
    }
    auto* sin6 = reinterpret_cast<const sockaddr_in6*>(g.data());
    if (!IN6_IS_ADDR_MULTICAST(&sin6->sin6_addr))
      return absl::InvalidArgumentError(where + ": not a multicast address");
    ipv6_mreq m{};
    m.ipv6mr_multiaddr = sin6->sin6_addr;
    m.ipv6mr_interface = ifindex;
    if (setsockopt(fd_, IPPROTO_IPV6, join ? IPV6_JOIN_GROUP : IPV6_LEAVE_GROUP, &m, sizeof m) != 0)
      return errno_status(errno, where);
    if (join && ifindex != 0 &&
        setsockopt(fd_, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof ifindex) != 0)
      return errno_status(errno, where + ": IPV6_MULTICAST_IF");
    return absl::OkStatus();
  }

  chan<datagram> in_;
  chan<datagram> out_;

 private:
  struct recv_op : io_op {
    udp_endpoint* owner = nullptr;
  };

  void arm_recv() noexcept {
    io_uring_sqe* s = r_->sqe();
    io_uring_prep_recvmsg_multishot(s, fd_, &rmsg_, 0);
    s->flags |= IOSQE_BUFFER_SELECT;
    s->buf_group = bufs_->bgid();
    io_uring_sqe_set_data(s, &recv_wait_);
    recv_armed_ = true;
    cancel_sent_ = false;
  }

  void stop_recv() noexcept {
    if (recv_armed_ && !cancel_sent_) {
      r_->cancel(&recv_wait_);
      cancel_sent_ = true;
    }
  }

  void record_error(int err, const char* what) {
    std::lock_guard lk(mu_);
    last_error_ = errno_status(err, std::string(what) + " on " + local_.to_string());
  }

  static void on_recv(io_op* op, int res, std::uint32_t flags) noexcept {
    udp_endpoint* u = static_cast<recv_op*>(op)->owner;
    if ((flags & IORING_CQE_F_MORE) == 0) u->recv_armed_ = false;
    if (res >= 0 && (flags & IORING_CQE_F_BUFFER) != 0) {
      u->take(static_cast<std::uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT), res);
    } else if (res < 0 && res != -ECANCELED && res != -ENOBUFS && res != -EINTR &&
               res != -EAGAIN && !u->closing_.load(std::memory_order_acquire)) {
      // -ENOBUFS: the loop's datagram buffers were all taken in one round;
      // re-armed below, the datagrams wait in the socket. ICMP errors
      // (ECONNREFUSED...) concern one peer, not the socket: re-armed too.
      // Errors that would come back at once (a kernel without multishot
      // recvmsg gives -EINVAL) end the receiving: `in` closes.
      u->record_error(-res, "recvmsg");
      if (res == -EINVAL || res == -EBADF || res == -ENOTSOCK || res == -EOPNOTSUPP)
        u->recv_failed_ = true;
    }
    if (!u->recv_armed_) u->after_recv_stopped();  // may free u: last
  }

  // Copies the datagram out of buffer `bid` (`len` bytes used), recycles the
  // buffer and hands the datagram on.
  void take(std::uint16_t bid, int len) noexcept {
    auto* o = io_uring_recvmsg_validate(bufs_->buffer(bid), len, &rmsg_);
    std::optional<datagram> d;
    if (o != nullptr && !closing_.load(std::memory_order_acquire)) {
      auto namelen = static_cast<socklen_t>(std::min<std::uint32_t>(o->namelen, rmsg_.msg_namelen));
      d.emplace(datagram{
          std::string(static_cast<const char*>(io_uring_recvmsg_payload(o, &rmsg_)),
                      io_uring_recvmsg_payload_length(o, len, &rmsg_)),
          address::from_sockaddr(static_cast<const sockaddr*>(io_uring_recvmsg_name(o)), namelen)});
    }
    bufs_->recycle(bid);
    if (d) deliver(*d);
  }

  void deliver(datagram& d) noexcept {
    if (pending_.empty() && try_send_keep(in_, d)) return;
    if (in_.closed()) {  // nobody will take it: stop reading
      stop_recv();
      return;
    }
    pending_.push_back(std::move(d));  // `in` full: hold it, stop reading until there is room
    stop_recv();
    if (!pump_running_) {
      pump_running_ = true;
      start_on(r_->home(), pump(shared_from_this()));
    }
  }

  // The recvmsg has ended, or the pump has: re-arm, or finish if closing.
  void after_recv_stopped() noexcept {
    if (recv_armed_ || pump_running_) return;  // whichever ends last comes back here
    if (closing_.load(std::memory_order_acquire) || in_.closed() || recv_failed_) {
      pending_.clear();  // (empty unless `in` was closed: the pump drains it otherwise)
      if (recv_failed_) in_.close();
      maybe_finish();  // may free this: last
      return;
    }
    arm_recv();
  }

  static root pump(std::shared_ptr<udp_endpoint> u) {
    bool ok = true;
    while (ok && !u->pending_.empty()) {
      datagram d = std::move(u->pending_.front());
      u->pending_.pop_front();
      ok = co_await u->in_.send(std::move(d));
      while (ok && !u->pending_.empty() && try_send_keep(u->in_, u->pending_.front()))
        u->pending_.pop_front();
    }
    u->pump_running_ = false;
    if (!ok) u->stop_recv();  // `in` closed
    u->after_recv_stopped();
  }

  static root writer(std::shared_ptr<udp_endpoint> u) {
    while (std::optional<datagram> d = co_await u->out_.recv()) {
      if (u->closing_.load(std::memory_order_relaxed)) continue;
      u->sending_ = true;
      u->wdata_ = std::move(*d);
      u->wiov_.iov_base = u->wdata_.data.data();
      u->wiov_.iov_len = u->wdata_.data.size();
      u->wmsg_ = {};
      u->wmsg_.msg_name = const_cast<sockaddr*>(u->wdata_.peer.data());
      u->wmsg_.msg_namelen = u->wdata_.peer.size();
      u->wmsg_.msg_iov = &u->wiov_;
      u->wmsg_.msg_iovlen = 1;
      io_uring_sqe* s = u->r_->sqe();
      io_uring_prep_sendmsg(s, u->fd_, &u->wmsg_, MSG_NOSIGNAL);
      io_uring_sqe_set_data(s, &u->send_wait_);
      int res = co_await io_awaiter(&u->send_wait_);
      if (res < 0) u->record_error(-res, ("sendmsg to " + u->wdata_.peer.to_string()).c_str());
      u->sending_ = false;
    }
    u->writer_done_ = true;
    u->maybe_finish();
  }

  void maybe_finish() noexcept {
    if (!closing_.load(std::memory_order_acquire) || recv_armed_ || pump_running_ ||
        !writer_done_ || finished_)
      return;
    finished_ = true;
    {
      std::lock_guard lk(mu_);
      if (fd_ >= 0) ::close(fd_);
      fd_ = -1;
    }
    r_->remove(this);  // may free this: last
  }

  reactor* r_;
  buffer_ring* bufs_;  // the loop's datagram ring
  address local_;
  mutable std::mutex mu_;
  int fd_;                     // guarded by mu_ for writes
  absl::Status last_error_;    // guarded by mu_
  bool close_called_ = false;  // guarded by mu_
  bool dead_ = false;          // guarded by mu_
  std::atomic<bool> closing_{false};

  // read side (loop thread)
  msghdr rmsg_{};  // the buffer layout for the kernel and the recvmsg_out helpers
  recv_op recv_wait_;
  std::deque<datagram> pending_;
  bool recv_armed_ = false;
  bool cancel_sent_ = false;
  bool recv_failed_ = false;  // the recvmsg cannot work: no re-arming
  bool pump_running_ = false;

  // write side (loop thread)
  datagram wdata_;
  iovec wiov_{};
  msghdr wmsg_{};
  io_wait send_wait_;
  bool writer_done_ = false;
  bool sending_ = false;  // a datagram is being sent (unsent())
  bool finished_ = false;
};

}  // namespace conch::net::detail

namespace conch::net {

udp_socket::udp_socket(std::shared_ptr<detail::udp_endpoint> e)
    : in(e->in_), out(e->out_), e_(std::move(e)) {}
address udp_socket::local() const { return e_->local(); }
absl::Status udp_socket::join_multicast(std::string_view group, std::string_view iface) {
  return e_->membership(group, iface, true);
}
absl::Status udp_socket::leave_multicast(std::string_view group, std::string_view iface) {
  return e_->membership(group, iface, false);
}
absl::Status udp_socket::last_error() const { return e_->last_error(); }
void udp_socket::close() { e_->close(); }

absl::StatusOr<udp_socket> bind_udp(std::string_view text, options opts) {
  CONCH_RETURN_IF_ERROR(detail::check_options(opts, "bind_udp"));
  CONCH_ASSIGN_OR_RETURN(conch::detail::loop * l, detail::calling_loop("bind_udp"));
  CONCH_ASSIGN_OR_RETURN(std::vector<address> candidates,
                         detail::local_addresses(text, "bind_udp"));
  if (!candidates.front().is_ip())
    return absl::InvalidArgumentError("bind_udp('" + std::string(text) +
                                      "'): UDP needs an IPv4 or IPv6 address");
  auto bind_one = [&](const address& a) -> absl::StatusOr<int> {
    const std::string where = detail::describe("bind_udp on", a, text);
    int fd = ::socket(a.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return detail::errno_status(errno, where + ": socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // several group members per port
    if (::bind(fd, a.data(), a.size()) != 0) {
      int err = errno;
      ::close(fd);
      return detail::errno_status(err, where + ": bind");
    }
    return fd;
  };
  detail::reactor& r = detail::reactor::of(l);
  CONCH_ASSIGN_OR_RETURN(detail::buffer_ring * bufs, r.datagram_buffers());
  CONCH_ASSIGN_OR_RETURN(int fd, detail::first_ok<int>(candidates, bind_one));
  auto e = std::make_shared<detail::udp_endpoint>(r, bufs, fd, opts, detail::sock_name(fd));
  r.add(e);
  e->start();
  return udp_socket(std::move(e));
}

}  // namespace conch::net
