// conch/net/socket.hpp
// socket and server: TCP and Unix stream connections as an `in` and an `out` channel.
//
//   auto srv = conch::net::listen("127.0.0.1:0", {.frame = conch::net::framing::lines()});
//   while (auto s = co_await srv->connections.recv())
//     conch::go([](conch::net::socket s) -> conch::task<> {
//       while (auto line = co_await s.in.recv()) co_await s.out.send(*line);  // echo
//       s.out.close();   // flush, then half-close
//     }, *s);
//
//   auto c = co_await conch::net::connect("/tmp/app.sock");   // Unix path
//   if (!c.ok()) report(c.status());
//
// Threading: a socket's I/O runs on the loop thread where it was connected
// or accepted (its io_uring ring accepts submissions from that thread only);
// `in` and `out` are ordinary channels, usable from any thread or runtime.
// Lifetime: a connection lives until it ends (EOF and `out` closed, an
// error, or close()), not until the last handle is dropped; destroying the
// runtime first lets sockets write what is queued on `out` (at most
// runtime_options::linger, default 3 s), then closes every socket it still has.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "conch/chan/chan.hpp"
#include "conch/core/task.hpp"
#include "conch/net/address.hpp"
#include "conch/net/framing.hpp"

namespace conch::net {

namespace detail {
class stream_conn;
class listener;
class tls_conn;
}  // namespace detail

/// Which side of the TLS handshake start_tls() plays.
enum class tls_role : unsigned char { client, server };

/// One stream connection (TCP or Unix). Copies share the connection.
struct socket {
  /// Frames from the peer, cut by options::frame. Closes once the peer has
  /// closed its side (EOF) or on an error, after the frames received before;
  /// status() then says which. When `in` is full the socket stops reading.
  chan<std::string> in;
  /// Frames to the peer, written in order; queued frames are coalesced into
  /// one send. Closing `out` writes what is queued, then shuts the write side
  /// (the peer sees EOF; `in` keeps receiving: half-close). Sends return
  /// false once the connection has failed or been closed.
  chan<std::string> out;

  /// The local address (for Unix sockets: the listening path).
  address local() const;
  /// The peer's address (empty for an unnamed Unix client).
  address peer() const;
  /// Why the connection ended: OK while it runs and after a clean EOF (until
  /// a later send fails because the peer has gone: "send to PEER: Broken
  /// pipe (EPIPE)", or ECONNRESET); kCancelled after close(); kResourceExhausted after a frame over
  /// max_frame; kDataLoss if EOF cut a length-prefixed frame short; the
  /// errno status (kUnavailable for ECONNRESET/EPIPE, ...) after an I/O error.
  absl::Status status() const;
  /// A channel that closes once the connection is over in both directions:
  /// everything queued on `out` was written (or dropped by an error or
  /// close()), the read side ended, and the descriptor is closed. Destroying
  /// the runtime writes what is queued anyway (runtime_options::linger);
  /// await done() to know the socket has ended, or to wait longer than that.
  chan<unit> done() const;
  /// Ends both directions now: `in` and `out` close (frames already in `in`
  /// can still be received; frames still queued on `out` are dropped) and the
  /// socket is shut down. Idempotent; any thread.
  void close();

  /// Wraps an implementation object (used by listen/connect).
  explicit socket(std::shared_ptr<detail::stream_conn> c);
  /// A TLS session over connection c (sockets/tls.hpp): `in`/`out` carry plaintext.
  explicit socket(std::shared_ptr<detail::tls_conn> t);

 private:
  friend task<absl::StatusOr<socket>> start_tls(socket plain, options opts, tls_role role);
  std::shared_ptr<detail::stream_conn> c_;  // null for a TLS socket
  std::shared_ptr<detail::tls_conn> t_;     // null for a plain one
};

/// A listening TCP or Unix stream server.
struct server {
  /// Accepted connections (buffered to options::in_capacity; when it is full
  /// the server stops accepting and the kernel backlog holds newcomers).
  /// Closes when the server is closed.
  chan<socket> connections;

  /// The bound address; for port 0 the port the kernel picked.
  address local() const;
  /// Stops accepting and closes `connections`; sockets already accepted keep
  /// running. Removes the Unix socket file it created. Idempotent; any thread.
  void close();

  /// Serves every connection with `handler`, spread over the runtime's
  /// threads: from now on each accepted connection goes to the loop with the
  /// fewest live go blocks (placement::least_busy()), where its socket lives and `handler(socket)` runs as a go block
  /// that stays on that thread (socket I/O and handler never cross threads;
  /// with `connections`, every socket lives on the listening thread).
  /// Connections already waiting on `connections` are handled on the
  /// listening thread. Completes when the server is closed; handlers keep
  /// running. Call it once and do not also take from `connections`. An
  /// exception escaping a handler is reported like a go block's and ends
  /// only that connection's handler. Accepting is not paced by handlers.
  task<void> serve(std::function<task<void>(socket)> handler);

  explicit server(std::shared_ptr<detail::listener> l);

 private:
  std::shared_ptr<detail::listener> l_;
};

/// Listens on `address` (see address.hpp for the forms). Must be called on a
/// runtime thread; accepted sockets run on that thread's loop. For a Unix
/// path, a stale socket file (no process listening) is replaced, a live one
/// gives kAlreadyExists, and a non-socket file is never touched; the new file
/// gets options::unix_mode permissions.
///
/// A host name ("myhost:8080") is looked up with getaddrinfo inside this
/// call: it **blocks the calling thread, and so its loop, while the name is
/// resolved** (a DNS query can take seconds). Each address found is tried in
/// order until one binds. "localhost" means 127.0.0.1 without a lookup; to
/// keep the loop responsive, resolve() a name first and listen on the
/// numeric address. Failures: kNotFound naming the host for an unknown name
/// (kUnavailable for a temporary resolver failure); otherwise the errno
/// status of socket/bind/listen for the last address tried, naming it and
/// the text given.
absl::StatusOr<server> listen(std::string_view address, options opts = {});

/// Connects to `address` (names are resolved on the blocking pool; each
/// resolved address is tried in turn). The socket runs on the awaiting
/// coroutine's loop. The error says which address failed and why
/// (kUnavailable for ECONNREFUSED, kNotFound for an unknown name or a missing
/// Unix socket file, ...). With options::connect_timeout set, an address
/// that has not answered within it is given up (the kernel's connect is
/// cancelled) and the next one is tried; if that was the last, the result is
/// kDeadlineExceeded naming it. Must be awaited on a runtime thread.
task<absl::StatusOr<socket>> connect(std::string_view address, options opts = {});

/// Starts TLS on the connected plain socket `plain` (STARTTLS: protocols
/// such as NATS or SMTP begin in plain text, then upgrade) and returns the
/// TLS socket once the handshake is done; its `in`/`out` carry plaintext.
///
///   conch::net::options o;                       // framing of the plaintext
///   o.tls = conch::net::tls_options{.ca_file = "ca.pem", .server_name = "example.test"};
///   auto t = co_await conch::net::start_tls(*plain, o);   // client role
///
/// `opts.tls` is required (kInvalidArgument otherwise; for the server role it
/// needs cert_file and key_file); the frame, capacities and max_frame of
/// `opts` apply to the TLS socket; `opts.connect_timeout` (if not 0) bounds
/// the handshake. Client role: the name checked (and sent as SNI) is
/// tls_options::server_name, else the peer's IP address.
/// The contract around the switch:
/// - `plain` must be a plain socket made with framing::raw() (its bytes are
///   ciphertext from now on) and its `in` must hold nothing unread:
///   otherwise kFailedPrecondition and `plain` is left as it was. (Bytes
///   that came before the upgrade are the plain protocol's: read them first.)
/// - Frames already queued on `plain.out` are sent, in plain text, before
///   the handshake's first record (a STARTTLS server's "go ahead").
/// - Afterwards `plain`'s `in` and `out` belong to the TLS session: use only
///   the returned socket (closing either closes the connection).
/// - A failed handshake is kUnavailable naming the peer and OpenSSL's reason;
///   no answer within connect_timeout is kDeadlineExceeded; `plain.close()`
///   from elsewhere during the handshake is kCancelled. In each case the
///   connection is closed.
/// Awaitable on any thread: the session runs on `plain`'s home loop.
task<absl::StatusOr<socket>> start_tls(socket plain, options opts, tls_role role = tls_role::client);

}  // namespace conch::net
