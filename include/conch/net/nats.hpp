// conch/net/nats.hpp
// A NATS client on conch's sockets: subjects as channels, queue groups, request/reply, reconnect.
//
//   auto nc = co_await conch::nats::connect("nats://127.0.0.1:4222", {.name = "svc"});
//   if (!nc.ok()) co_return report(nc.status());
//   auto sub = co_await nc->subscribe("jobs.*", {.queue = "workers"});
//   co_await nc->publish("jobs.1", "payload");
//   while (std::optional<conch::nats::msg> m = co_await sub->messages.recv())
//     if (!m->reply.empty()) co_await nc->publish(m->reply, "done");
//   auto answer = co_await nc->request("svc.time", "", std::chrono::seconds(1));
//   nc->close();
//
// Threading: a connection's reader (protocol parsing, PONGs, delivery to
// subscriptions, reconnects) runs as go blocks pinned to the loop (thread)
// that awaited connect(), where the socket's I/O runs; every method may be
// called from any thread of any runtime.
// Delivery: each subscription's `messages` is a bounded channel; when it is
// full, subscribe_options::when_full says what happens (drop and count, the
// default as in other NATS clients, or backpressure: the whole connection
// stops reading until there is room, and the server may then cut it off as a
// slow consumer).
// Reconnect: when the connection breaks, the client reconnects (the URLs in
// turn), subscribes again under the same ids and sends the publishes made
// meanwhile, including one the break caught waiting for room (up to
// options::reconnect_buffer bytes; beyond, publish gives kResourceExhausted).
// Publishes already handed to the broken socket may be lost: NATS core is
// at-most-once.
// Lifetime: the connection runs until close(), drain() or a break it cannot
// recover from; dropping every handle does not end it (its go blocks hold
// it until the runtime is destroyed), so close what you connect.
// TLS, as the official clients do it: the server sends INFO in plain text,
// then the client starts TLS on the same connection (net::start_tls) and
// sends CONNECT over it when the INFO says tls_required, when the URL is
// tls://, or when options::tls is set (then a server that offers no TLS is
// kFailedPrecondition). Without options::tls the defaults apply: the system's
// CAs, and the certificate must name the URL's host. Every reconnect
// handshakes again. A failed handshake is kUnavailable naming the server and
// OpenSSL's reason (e.g. "certificate verify failed").
//
//   conch::nats::options o;
//   o.tls = conch::net::tls_options{.ca_file = "ca.pem"};  // named first: GCC 12
//   auto nc = co_await conch::nats::connect("tls://localhost:4222", o);
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "conch/chan/chan.hpp"
#include "conch/core/task.hpp"
#include "conch/net/tls.hpp"

namespace conch::nats {

namespace detail {
class conn_impl;
struct sub_state;
}  // namespace detail

/// Message headers in the order sent (a name may repeat).
using headers = std::vector<std::pair<std::string, std::string>>;

/// A message received.
struct msg {
  std::string subject;   ///< the subject it was published to
  std::string reply;     ///< where to answer (empty: no answer expected)
  std::string data;      ///< the payload
  headers hdrs;          ///< header fields (HMSG), empty otherwise
  int status = 0;        ///< the inline status of a header block (503: no responders), 0 if none
  /// The first value of header `name` (exact match first, then ignoring
  /// case), or nullopt.
  std::optional<std::string_view> header(std::string_view name) const;
};

/// What a subscription does when its `messages` channel is full.
enum class slow_consumer : std::uint8_t {
  drop,          ///< the new message is dropped and counted (subscription::dropped())
  backpressure,  ///< the connection stops reading until there is room
};

/// Options of connect().
struct options {
  std::string name;              ///< the client name the server shows (monitoring, logs)
  std::string user, password;    ///< user/password authentication (or in the URL: nats://u:p@host)
  std::string token;             ///< token authentication (or nats://token@host)
  bool verbose = false;          ///< ask the server for +OK after every op (costs a round trip's worth of bytes)
  bool pedantic = false;         ///< ask the server for strict checking
  bool headers = true;           ///< use HPUB/HMSG (needed by request()'s no-responders answer)
  bool echo = true;              ///< receive our own publishes on our subscriptions
  bool reconnect = true;         ///< reconnect when the connection breaks
  int max_reconnect_attempts = 60;  ///< per break, over all URLs; -1: forever
  std::chrono::milliseconds reconnect_wait{2000};  ///< pause between rounds over the URLs
  std::size_t reconnect_buffer = 8u << 20;  ///< bytes of publishes kept while reconnecting
  std::chrono::milliseconds ping_interval{120000};  ///< keepalive PING period
  int max_pings_out = 2;         ///< PINGs unanswered before the connection counts as stale
  std::chrono::milliseconds connect_timeout{2000};  ///< per address, and for the INFO/TLS/PONG handshake
  /// TLS settings (conch/net/tls.hpp: CA, client certificate, verify, name).
  /// Set: every server must speak TLS. Unset: TLS with the defaults when the
  /// URL is tls:// or the server requires it. server_name defaults to the
  /// URL's host.
  std::optional<net::tls_options> tls;
};

/// Options of subscribe().
struct subscribe_options {
  std::string queue;               ///< a queue group: each message goes to one member
  std::size_t capacity = 8192;     ///< the `messages` buffer (1..2^20)
  slow_consumer when_full = slow_consumer::drop;
};

/// One subscription. Copies share it.
class subscription {
 public:
  /// The messages, in the order the server sent them. Closes after
  /// unsubscribe(), drain() or close() of the connection (messages buffered
  /// before are still delivered), or when the connection is lost for good.
  chan<msg> messages;
  /// Messages dropped because `messages` was full (slow_consumer::drop).
  std::uint64_t dropped() const noexcept;
  /// Messages delivered to `messages`.
  std::uint64_t delivered() const noexcept;
  /// The subject subscribed to.
  const std::string& subject() const noexcept;
  /// Sends UNSUB and closes `messages`. Idempotent; any thread. OK, or the
  /// connection's error when it is closed (the channel closes anyway).
  [[nodiscard]] task<absl::Status> unsubscribe();

  subscription(std::shared_ptr<detail::conn_impl> c, std::shared_ptr<detail::sub_state> s);

 private:
  std::shared_ptr<detail::conn_impl> c_;
  std::shared_ptr<detail::sub_state> s_;
};

/// What the server said about itself in its INFO.
struct server_info {
  std::string server_id, server_name, version;
  std::size_t max_payload = 1u << 20;
  bool headers = false, auth_required = false, tls_required = false;
  bool tls_available = false;  ///< TLS offered but not required (allow_non_tls)
};

/// A client connection. Copies share it; close() ends it for all.
class connection {
 public:
  /// Publishes `data` to `subject`, with an optional reply subject and
  /// headers. Parks while the socket's send queue is full. Results: OK once
  /// queued (not acknowledged: NATS core is at-most-once); kInvalidArgument
  /// for a bad subject, reply, header or a payload over the server's
  /// max_payload; kResourceExhausted when reconnecting and the reconnect
  /// buffer is full; kFailedPrecondition once closed or draining.
  [[nodiscard]] task<absl::Status> publish(std::string subject, std::string data, std::string reply,
                                           headers hdrs);
  // The shorter forms forward (plain functions: GCC 12 may destroy a default
  // argument with a destructor twice when the call sits inside co_await).
  [[nodiscard]] task<absl::Status> publish(std::string subject, std::string data) {
    return publish(std::move(subject), std::move(data), std::string(), headers());
  }
  [[nodiscard]] task<absl::Status> publish(std::string subject, std::string data, std::string reply) {
    return publish(std::move(subject), std::move(data), std::move(reply), headers());
  }
  /// Subscribes to `subject` (wildcards '*' and '>' allowed), optionally in a
  /// queue group. Errors: kInvalidArgument (subject, queue, capacity),
  /// kFailedPrecondition once closed.
  [[nodiscard]] task<absl::StatusOr<subscription>> subscribe(std::string subject, subscribe_options opts);
  [[nodiscard]] task<absl::StatusOr<subscription>> subscribe(std::string subject) {
    return subscribe(std::move(subject), subscribe_options());
  }
  /// Publishes to `subject` with a reply subject on the connection's one
  /// inbox subscription and waits for the first answer. kDeadlineExceeded
  /// after `timeout`; kUnavailable when the server says no one listens (503,
  /// needs options::headers); the publish errors above.
  [[nodiscard]] task<absl::StatusOr<msg>> request(std::string subject, std::string data,
                                                  std::chrono::milliseconds timeout, headers hdrs);
  [[nodiscard]] task<absl::StatusOr<msg>> request(std::string subject, std::string data,
                                                  std::chrono::milliseconds timeout) {
    return request(std::move(subject), std::move(data), timeout, headers());
  }
  /// Round trip to the server (PING/PONG): once OK, everything published
  /// before has been processed by the server. kDeadlineExceeded after
  /// `timeout`; kUnavailable while disconnected or if the connection breaks.
  [[nodiscard]] task<absl::Status> flush(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  /// Unsubscribes everything, waits (up to `timeout`) until the server has
  /// sent what it had for us, closes every subscription's channel (buffered
  /// messages stay receivable), then closes the connection after the
  /// publishes queued so far. OK, or the flush's error (closed anyway).
  [[nodiscard]] task<absl::Status> drain(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  /// Ends the connection now: no reconnect, every subscription's channel and
  /// pending request ends. Idempotent; any thread.
  void close();
  /// A channel that closes once the connection has ended for good.
  chan<unit> closed() const;
  /// OK while running; after the end, why (kCancelled after close()).
  absl::Status status() const;
  /// The last -ERR the server sent (OK if none).
  absl::Status last_error() const;
  /// Successful reconnects so far.
  std::uint64_t reconnects() const;
  /// Whether the connection is up now (false while reconnecting).
  bool connected() const;
  /// The INFO of the server now connected.
  server_info info() const;

  explicit connection(std::shared_ptr<detail::conn_impl> c);

 private:
  std::shared_ptr<detail::conn_impl> c_;
};

/// Connects to `url`: "nats://[user:pass@|token@]host[:port]" (port 4222 by
/// default; "tls://" for TLS), "host:port", or several of them separated by commas (tried in
/// order; reconnects go through them in turn). Returns once the server has
/// accepted CONNECT (a PING answered). Errors: kInvalidArgument for a bad URL;
/// the socket's error for the last address tried; kPermissionDenied when
/// the server refuses the credentials; kDeadlineExceeded when the server
/// does not answer within options::connect_timeout; kUnavailable for a failed
/// TLS handshake; kFailedPrecondition when TLS is asked for and the server
/// offers none. Must be awaited on a runtime thread.
task<absl::StatusOr<connection>> connect(std::string url, options opts);
/// connect(url) with the default options.
inline task<absl::StatusOr<connection>> connect(std::string url) { return connect(std::move(url), options()); }

}  // namespace conch::nats
