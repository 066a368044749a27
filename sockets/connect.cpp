// sockets/connect.cpp
// connect(): parse or resolve the address, then try each candidate with an io_uring connect.
//
// Runs on the awaiting coroutine's loop; the new connection's home is that loop.
// options::connect_timeout bounds each candidate (a timeout linked to the
// connect SQE, see stream_conn::connect_to).
#include <sys/socket.h>

#include <cerrno>
#include <string>
#include <vector>

#include "conch/core/status.hpp"
#include "sockets/address_util.hpp"
#include "sockets/stream.hpp"
#include "sockets/tls.hpp"

namespace conch::net {

namespace {

task<absl::StatusOr<socket>> connect_impl(std::string text, options opts) {
  conch::detail::loop* l = conch::detail::current_loop();
  CONCH_CHECK(l != nullptr, "conch::net::connect() awaited outside a runtime thread");
  CONCH_CO_RETURN_IF_ERROR(detail::check_options(opts, "connect"));
  CONCH_CO_ASSIGN_OR_RETURN(detail::address_spec spec, detail::parse_spec(text, true));
  CONCH_CO_RETURN_IF_ERROR(detail::load_tls(opts, false, "connect to " + text));
  const options transport = opts.tls ? detail::transport_options(opts) : opts;
  std::vector<address> candidates;
  if (spec.k != detail::address_spec::kind::inet || spec.numeric) {
    candidates.push_back(spec.addr);
  } else {
    CONCH_CO_ASSIGN_OR_RETURN(candidates, co_await resolve(text));
  }
  detail::reactor& r = detail::reactor::of(l);
  CONCH_CO_ASSIGN_OR_RETURN(detail::buffer_ring * bufs, r.stream_buffers());
  absl::Status last;
  for (const address& a : candidates) {
    int fd = ::socket(a.family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last = detail::errno_status(errno, "connect to " + a.to_string() + ": socket");
      continue;
    }
    std::shared_ptr<detail::stream_conn> c = detail::stream_conn::make(r, bufs, fd, transport);
    int res = co_await c->connect_to(a);
    if (res == -ETIME) {  // options::connect_timeout passed; the kernel's connect was cancelled
      last = absl::DeadlineExceededError(detail::describe("connect to", a, text) +
                                         ": no answer within " +
                                         std::to_string(opts.connect_timeout.count()) + " ms");
      c->abandon();
      continue;
    }
    if (res < 0) {
      last = detail::errno_status(-res, detail::describe("connect to", a, text));
      c->abandon();
      continue;
    }
    c->start();
    if (!opts.tls) co_return socket(std::move(c));
    // TLS: the socket is handed out once the handshake is over; a failed
    // handshake is connect()'s error (the next address is not tried: the
    // peer answered).
    std::shared_ptr<detail::tls_conn> t = detail::start_tls(std::move(c), opts, false, text);
    co_await detail::tls_handshaken(*t).recv();
    absl::Status hs = detail::tls_handshake_status(*t);
    if (!hs.ok()) co_return hs;
    co_return socket(std::move(t));
  }
  co_return last;
}

}  // namespace

task<absl::StatusOr<socket>> connect(std::string_view address, options opts) {
  return connect_impl(std::string(address), opts);  // copies the string into the frame
}

}  // namespace conch::net
