// sockets/serve.cpp
// server::serve: accepted connections spread over the runtime's loops, each handled where its socket lives.
//
// Thread ownership: listener::spread_ belongs to the listener's home loop
// (installed there by a post); spread() runs there, on each accept, and
// places the connection on the least busy loop (conch/core/placement.hpp).
// A connection bound for another loop travels as a descriptor inside a posted
// function (closed by fd_owner if the runtime is torn down first); its
// stream_conn is made, started and registered on the target loop's reactor,
// and the handler starts there with start_on (never stolen), so the socket's
// I/O and its handler share one thread.
#include <unistd.h>

#include <memory>
#include <optional>
#include <utility>

#include "sockets/stream.hpp"
#include "sockets/tls.hpp"

namespace conch::net::detail {

namespace {

root run_handler(std::shared_ptr<const serve_fn> h, socket s) {
  try {
    co_await (*h)(std::move(s));
  } catch (...) {
    conch::detail::report_exception(std::current_exception());
  }
}

/// Owns a descriptor in flight to another loop.
class fd_owner {
 public:
  explicit fd_owner(int fd) noexcept : fd_(fd) {}
  fd_owner(fd_owner&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  fd_owner& operator=(fd_owner&&) = delete;
  ~fd_owner() {
    if (fd_ >= 0) ::close(fd_);
  }
  int release() noexcept { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

/// On loop `t` (its thread): wraps `fd` and starts `h` on it.
void start_served(loop* t, int fd, const options& o, const std::shared_ptr<const serve_fn>& h) {
  reactor& r = reactor::of(t);
  absl::StatusOr<buffer_ring*> bufs = r.stream_buffers();
  if (!bufs.ok()) {  // no receive buffers on that loop: drop the connection
    ::close(fd);
    return;
  }
  std::shared_ptr<stream_conn> c = stream_conn::make(r, *bufs, fd, o.tls ? transport_options(o) : o);
  c->start();
  start_on(t, run_handler(h, accepted_socket(std::move(c), o)));  // with options::tls, TLS over c
}

}  // namespace

void listener::serve_with(std::shared_ptr<const serve_fn> h) {
  post(r_->home(), [self = shared_from_this(), h = std::move(h)]() mutable { self->spread_ = std::move(h); });
}

void listener::spread(int fd) noexcept {
  // The loop with the fewest live go blocks (each connection keeps its
  // reader, writer and handler there), ties round robin.
  loop* t = conch::detail::pick_loop(r_->home(), placement::least_busy());
  if (t == r_->home()) {
    start_served(t, fd, opts_, spread_);
    return;
  }
  post(t, [t, fd = fd_owner(fd), o = opts_, h = spread_]() mutable { start_served(t, fd.release(), o, h); });
}

}  // namespace conch::net::detail

namespace conch::net {

task<void> server::serve(std::function<task<void>(socket)> handler) {
  auto h = std::make_shared<const detail::serve_fn>(std::move(handler));
  l_->serve_with(h);
  // Connections accepted before the listener switched over: handled on its
  // loop, where their sockets live.
  conch::detail::loop* home = l_->home();
  while (std::optional<socket> s = co_await connections.recv())
    detail::start_on(home, detail::run_handler(h, std::move(*s)));
}

}  // namespace conch::net
