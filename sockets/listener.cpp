// sockets/listener.cpp
// listen() and listener: multishot accept feeding `connections`, stale Unix socket files, EMFILE back-off.
//
// Invariants and thread ownership: see stream.hpp. At most one multishot
// accept is armed; it is re-armed only after its final completion, while
// nothing waits in pending_ and no back-off is due. When `connections` is
// full the accept is cancelled (the kernel backlog holds newcomers) and
// accept_pump parks on `connections`; after EMFILE/ENFILE the pump sleeps
// (5 ms doubling to 1 s, cut short by close()) before re-arming, so a
// descriptor shortage neither spins nor ends the server.
// Lock order: mu_ is a leaf.
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "conch/chan/go.hpp"
#include "conch/chan/select.hpp"
#include "conch/core/status.hpp"
#include "sockets/address_util.hpp"
#include "sockets/stream.hpp"
#include "sockets/tls.hpp"

namespace conch::net::detail {

namespace {
constexpr std::chrono::milliseconds kBackoffMin{5};
constexpr std::chrono::milliseconds kBackoffMax{1000};
}  // namespace

listener::listener(reactor& r, buffer_ring* bufs, int fd, const options& o, address local)
    : conns_(o.in_capacity), r_(&r), bufs_(bufs), opts_(o), local_(local), fd_(fd), wake_(1) {
  accept_op_.owner = this;
  accept_op_.complete = &listener::on_accept;
}

listener::~listener() {
  if (fd_ >= 0) ::close(fd_);
}

void listener::own_file(std::string path, std::uint64_t dev, std::uint64_t ino) {
  path_ = std::move(path);
  dev_ = dev;
  ino_ = ino;
}

void listener::start() { arm_accept(); }

void listener::arm_accept() noexcept {
  io_uring_sqe* s = r_->sqe();
  io_uring_prep_multishot_accept(s, fd_, nullptr, nullptr, SOCK_CLOEXEC);
  io_uring_sqe_set_data(s, &accept_op_);
  accept_armed_ = true;
  cancel_sent_ = false;
}

void listener::stop_accept() noexcept {
  if (accept_armed_ && !cancel_sent_) {
    r_->cancel(&accept_op_);
    cancel_sent_ = true;
  }
}

void listener::on_accept(io_op* op, int res, std::uint32_t flags) noexcept {
  listener* l = static_cast<owned_op<listener>*>(op)->owner;
  if ((flags & IORING_CQE_F_MORE) == 0) l->accept_armed_ = false;
  if (res >= 0) {
    l->backoff_ = std::chrono::milliseconds(0);
    l->handoff(res);
  } else if (res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM) {
    // Out of descriptors (or memory): stop, wait, try again. Connections
    // stay queued in the kernel backlog meanwhile.
    l->backoff_needed_ = true;
    l->stop_accept();
  }
  // Anything else (ECONNABORTED, EPERM from a firewall, EPROTO, ECANCELED,
  // EINVAL after close) concerns one connection or our own stop: go on.
  if (!l->accept_armed_) l->after_accept_stopped();  // may free l: last
}

void listener::handoff(int fd) noexcept {
  if (closing_.load(std::memory_order_acquire)) {
    ::close(fd);
    return;
  }
  if (spread_) {  // server::serve: to the next loop, not to `connections`
    spread(fd);
    return;
  }
  auto c = stream_conn::make(*r_, bufs_, fd, opts_.tls ? transport_options(opts_) : opts_);
  c->start();
  socket s = accepted_socket(std::move(c), opts_);  // with options::tls, a TLS session over c
  if (pending_.empty() && try_send_keep(conns_, s)) return;
  if (conns_.closed()) {
    s.close();
    return;
  }
  pending_.push_back(std::move(s));
  stop_accept();
  start_pump();
}

void listener::start_pump() noexcept {
  if (pump_running_) return;
  pump_running_ = true;
  start_on(r_->home(), accept_pump(shared_from_this()));
}

void listener::after_accept_stopped() noexcept {
  if (closing_.load(std::memory_order_acquire)) {
    if (!pump_running_) finish();  // may free this: last
    return;
  }
  if (pending_.empty() && !backoff_needed_)
    arm_accept();
  else
    start_pump();
}

root accept_pump(std::shared_ptr<listener> l) {
  for (;;) {
    while (!l->pending_.empty()) {
      socket s = std::move(l->pending_.front());
      l->pending_.pop_front();
      socket keep = s;
      if (!co_await l->conns_.send(std::move(s))) {  // `connections` closed
        keep.close();
        break;
      }
      while (!l->pending_.empty() && try_send_keep(l->conns_, l->pending_.front()))
        l->pending_.pop_front();
    }
    if (l->closing_.load(std::memory_order_acquire) || !l->backoff_needed_) break;
    l->backoff_needed_ = false;
    l->backoff_ = std::clamp(l->backoff_ * 2, kBackoffMin, kBackoffMax);
    // Sleep, unless close() closes wake_ first.
    co_await conch::select(conch::recv(l->wake_), conch::recv(conch::timeout(l->backoff_)));
  }
  l->pump_running_ = false;
  if (l->closing_.load(std::memory_order_acquire)) {
    for (socket& s : l->pending_) s.close();
    l->pending_.clear();
  }
  if (!l->accept_armed_) l->after_accept_stopped();
}

void listener::close() noexcept {
  {
    std::lock_guard lk(mu_);
    if (close_called_ || dead_) return;
    close_called_ = true;
    // Release the address now, so a new server can take it at once: a TCP
    // listener leaves the LISTEN state on shutdown (the multishot accept
    // ends with -EINVAL); a Unix socket file is removed (the listening fd
    // itself goes when the accept's cancel completes).
    if (fd_ >= 0 && local_.is_ip()) ::shutdown(fd_, SHUT_RD);
    remove_file_locked();
  }
  closing_.store(true, std::memory_order_release);
  conns_.close();
  wake_.close();
  // The accept can only be cancelled from the loop thread (single issuer);
  // a Unix listener is not woken by shutdown(), so always go through the loop.
  auto self = shared_from_this();
  auto stop = [self] {
    if (self->accept_armed_)
      self->stop_accept();
    else if (!self->pump_running_)
      self->finish();
  };
  if (conch::detail::current_loop() == r_->home())
    stop();
  else
    post(r_->home(), std::move(stop));
}

void listener::remove_file_locked() noexcept {
  if (path_.empty()) return;
  struct stat st {};
  // Only if the file is still the one we bound (a new server may own the path).
  if (lstat(path_.c_str(), &st) == 0 && static_cast<std::uint64_t>(st.st_dev) == dev_ &&
      static_cast<std::uint64_t>(st.st_ino) == ino_)
    ::unlink(path_.c_str());
  path_.clear();
}

void listener::finish() noexcept {
  if (finished_) return;
  finished_ = true;
  for (socket& s : pending_) s.close();
  pending_.clear();
  {
    std::lock_guard lk(mu_);
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    remove_file_locked();
  }
  conns_.close();
  r_->remove(this);  // may free this: last
}

void listener::teardown() noexcept {
  {
    std::lock_guard lk(mu_);
    dead_ = true;
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    remove_file_locked();
  }
  closing_.store(true, std::memory_order_release);
  conns_.close();
  wake_.close();
  pending_.clear();
}

}  // namespace conch::net::detail

namespace conch::net {

namespace {

// bind() found `path` in use: replace it if nobody listens there.
absl::Status replace_stale_socket(const std::string& path, const address& a) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();  // gone meanwhile: retry
    return detail::errno_status(errno, "listen on " + path + ": lstat");
  }
  if (!S_ISSOCK(st.st_mode))
    return absl::AlreadyExistsError("listen on " + path +
                                    ": the path exists and is not a socket (left untouched)");
  int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (probe < 0) return detail::errno_status(errno, "listen on " + path + ": socket");
  int rc = ::connect(probe, a.data(), a.size());
  int err = rc == 0 ? 0 : errno;
  ::close(probe);
  if (rc == 0 || err == EAGAIN || err == EINPROGRESS)
    return absl::AlreadyExistsError("listen on " + path +
                                    ": another process is listening on this socket");
  if (err == ECONNREFUSED) {  // a stale file left by a dead process
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
      return detail::errno_status(errno, "listen on " + path + ": removing the stale socket");
    return absl::OkStatus();
  }
  if (err == ENOENT) return absl::OkStatus();
  return detail::errno_status(err, "listen on " + path + ": probing the existing socket");
}

// A listening socket bound to one candidate address, before it has a listener.
struct bound_socket {
  int fd = -1;
  std::string path;  // the Unix socket file we created, if any
  std::uint64_t dev = 0, ino = 0;
};

// socket + bind + listen on `a`; `where` names the address for errors.
absl::StatusOr<bound_socket> bind_and_listen(const address& a, const std::string& where,
                                             const options& opts) {
  int fd = ::socket(a.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return detail::errno_status(errno, where + ": socket");
  struct fd_guard {
    int fd;
    ~fd_guard() {
      if (fd >= 0) ::close(fd);
    }
  } guard{fd};

  if (a.is_ip()) {
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  }
  const bool unix_file = a.is_unix() && !a.is_abstract();
  bound_socket b;
  if (unix_file) b.path = a.host();
  if (::bind(fd, a.data(), a.size()) != 0) {
    int err = errno;
    if (err == EADDRINUSE && unix_file) {
      CONCH_RETURN_IF_ERROR(replace_stale_socket(b.path, a));
      if (::bind(fd, a.data(), a.size()) != 0) return detail::errno_status(errno, where + ": bind");
    } else if (err == EADDRINUSE && a.is_abstract()) {
      return absl::AlreadyExistsError(where + ": the abstract name is in use");
    } else {
      return detail::errno_status(err, where + ": bind");
    }
  }
  if (unix_file) {
    // Before listen(): nobody can connect yet, so there is no window in which
    // the file has the umask's wider permissions and accepts connections.
    if (::chmod(b.path.c_str(), static_cast<mode_t>(opts.unix_mode)) != 0) {
      int err = errno;
      ::unlink(b.path.c_str());
      return detail::errno_status(err, where + ": chmod");
    }
    struct stat st {};
    if (::stat(b.path.c_str(), &st) == 0) {
      b.dev = static_cast<std::uint64_t>(st.st_dev);
      b.ino = static_cast<std::uint64_t>(st.st_ino);
    }
  }
  if (::listen(fd, opts.backlog) != 0) {
    int err = errno;
    if (unix_file) ::unlink(b.path.c_str());
    return detail::errno_status(err, where + ": listen");
  }
  b.fd = fd;
  guard.fd = -1;  // the caller owns it now
  return b;
}

}  // namespace

server::server(std::shared_ptr<detail::listener> l) : connections(l->conns_), l_(std::move(l)) {}
address server::local() const { return l_->local(); }
void server::close() { l_->close(); }

absl::StatusOr<server> listen(std::string_view text, options opts) {
  CONCH_RETURN_IF_ERROR(detail::check_options(opts, "listen"));
  CONCH_RETURN_IF_ERROR(detail::load_tls(opts, true, "listen on " + std::string(text)));
  CONCH_ASSIGN_OR_RETURN(conch::detail::loop * l, detail::calling_loop("listen"));
  CONCH_ASSIGN_OR_RETURN(std::vector<address> candidates, detail::local_addresses(text, "listen"));
  detail::reactor& r = detail::reactor::of(l);
  CONCH_ASSIGN_OR_RETURN(detail::buffer_ring * bufs, r.stream_buffers());
  auto bind_one = [&](const address& a) {
    return bind_and_listen(a, detail::describe("listen on", a, text), opts);
  };
  CONCH_ASSIGN_OR_RETURN(bound_socket b, detail::first_ok<bound_socket>(candidates, bind_one));
  address local = detail::sock_name(b.fd);
  auto lst = std::make_shared<detail::listener>(r, bufs, b.fd, opts, local);
  if (!b.path.empty()) lst->own_file(b.path, b.dev, b.ino);
  r.add(lst);
  lst->start();
  return server(std::move(lst));
}

}  // namespace conch::net
