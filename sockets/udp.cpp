// sockets/udp.cpp
// udp_endpoint: one recvmsg at a time feeding `in`, a writer coroutine sending `out`; multicast membership.
//
// Invariants:
//  - At most one recvmsg is in flight, into this socket's own 64 KiB buffer;
//    it is re-armed after each datagram unless `in` is full (then udp_pump
//    parks on `in` with the one datagram held, and re-arms once it is in):
//    memory is `in` + one datagram + the buffer.
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

#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>

#include "conch/core/status.hpp"
#include "conch/net/udp.hpp"
#include "sockets/address_util.hpp"
#include "sockets/reactor.hpp"

namespace conch::net::detail {

namespace {
constexpr std::size_t kMaxDatagram = 65536;
}  // namespace

class udp_endpoint final : public endpoint, public std::enable_shared_from_this<udp_endpoint> {
 public:
  udp_endpoint(reactor& r, int fd, const options& o, address local)
      : in_(o.in_capacity), out_(o.out_capacity), r_(&r), local_(local), fd_(fd),
        buf_(new char[kMaxDatagram]) {
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
      if (self->recv_armed_) {
        self->r_->cancel(&self->recv_wait_);
      } else {
        self->maybe_finish();
      }
    };
    if (conch::detail::current_loop() == r_->home())
      stop();
    else
      post(r_->home(), std::move(stop));
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
    pending_.reset();
  }

  absl::Status membership(std::string_view group, std::string_view iface, bool join) {
    const char* verb = join ? "join_multicast" : "leave_multicast";
    std::string where = std::string(verb) + "('" + std::string(group) + "')";
    auto spec = parse_spec(group, false);
    if (!spec.ok() || spec->k != address_spec::kind::inet || !spec->numeric)
      return absl::InvalidArgumentError(where + ": the group must be a numeric IPv4 or IPv6 address");
    unsigned ifindex = 0;
    if (!iface.empty()) {
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
    riov_.iov_base = buf_.get();
    riov_.iov_len = kMaxDatagram;
    rmsg_ = {};
    rmsg_.msg_name = &from_;
    rmsg_.msg_namelen = sizeof from_;
    rmsg_.msg_iov = &riov_;
    rmsg_.msg_iovlen = 1;
    io_uring_sqe* s = r_->sqe();
    io_uring_prep_recvmsg(s, fd_, &rmsg_, 0);
    io_uring_sqe_set_data(s, &recv_wait_);
    recv_armed_ = true;
  }

  void record_error(int err, const char* what) {
    std::lock_guard lk(mu_);
    last_error_ = errno_status(err, std::string(what) + " on " + local_.to_string());
  }

  static void on_recv(io_op* op, int res, std::uint32_t) noexcept {
    udp_endpoint* u = static_cast<recv_op*>(op)->owner;
    u->recv_armed_ = false;
    bool stopping = u->closing_.load(std::memory_order_acquire);
    if (res >= 0 && !stopping) {
      datagram d{std::string(u->buf_.get(), static_cast<std::size_t>(res)),
                 address::from_sockaddr(reinterpret_cast<sockaddr*>(&u->from_), u->rmsg_.msg_namelen)};
      if (!try_send_keep(u->in_, d)) {
        if (u->in_.closed()) {
          stopping = true;
        } else {  // `in` full: hold it, stop reading until there is room
          u->pending_.emplace(std::move(d));
          u->pump_running_ = true;
          start_on(u->r_->home(), pump(u->shared_from_this()));
          return;
        }
      }
    } else if (res < 0 && res != -ECANCELED && res != -EINTR && res != -EAGAIN && !stopping) {
      // ICMP errors (ECONNREFUSED...) concern one peer, not the socket.
      u->record_error(-res, "recvmsg");
    }
    if (stopping) {
      u->maybe_finish();  // may free u: last
      return;
    }
    u->arm_recv();
  }

  static root pump(std::shared_ptr<udp_endpoint> u) {
    datagram d = std::move(*u->pending_);
    u->pending_.reset();
    bool ok = co_await u->in_.send(std::move(d));
    u->pump_running_ = false;
    if (ok && !u->closing_.load(std::memory_order_acquire))
      u->arm_recv();
    else
      u->maybe_finish();
  }

  static root writer(std::shared_ptr<udp_endpoint> u) {
    while (std::optional<datagram> d = co_await u->out_.recv()) {
      if (u->closing_.load(std::memory_order_relaxed)) continue;
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
  address local_;
  mutable std::mutex mu_;
  int fd_;                     // guarded by mu_ for writes
  absl::Status last_error_;    // guarded by mu_
  bool close_called_ = false;  // guarded by mu_
  bool dead_ = false;          // guarded by mu_
  std::atomic<bool> closing_{false};

  // read side (loop thread)
  std::unique_ptr<char[]> buf_;
  sockaddr_storage from_{};
  iovec riov_{};
  msghdr rmsg_{};
  recv_op recv_wait_;
  std::optional<datagram> pending_;
  bool recv_armed_ = false;
  bool pump_running_ = false;

  // write side (loop thread)
  datagram wdata_;
  iovec wiov_{};
  msghdr wmsg_{};
  io_wait send_wait_;
  bool writer_done_ = false;
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
  conch::detail::loop* l = conch::detail::current_loop();
  if (l == nullptr)
    return absl::FailedPreconditionError(
        "conch::net::bind_udp() must be called on a runtime thread (in block_on or a go block)");
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
  CONCH_ASSIGN_OR_RETURN(int fd, detail::first_ok<int>(candidates, bind_one));
  detail::reactor& r = detail::reactor::of(l);
  auto e = std::make_shared<detail::udp_endpoint>(r, fd, opts, detail::sock_name(fd));
  r.add(e);
  e->start();
  return udp_socket(std::move(e));
}

}  // namespace conch::net
