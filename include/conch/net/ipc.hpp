// conch/net/ipc.hpp
// node-ipc peers: a server and a client that speak node-ipc 9.x's wire format with real node-ipc processes.
//
//   auto srv = conch::ipc::server::listen({.id = "world"});        // Unix path /tmp/app.world
//   srv->on("message", [srv = *srv](conch::ipc::event e) mutable -> conch::task<> {
//     co_await srv.emit(*e.from, "message", *e.data);              // echo to the sender
//   });
//   auto cli = conch::ipc::client::connect({.id = "hello", .server = "world"});
//   rapidjson::Document d(rapidjson::kObjectType);
//   d.AddMember("id", "hello", d.GetAllocator());
//   co_await cli->emit("message", d);
//
// Wire (PROTOCOLS.md §1): every event is the JSON text {"type":T,"data":D}
// followed by a form feed (0x0C). Raw mode (`raw = true`) sends and delivers
// bytes as they are, with no JSON and no delimiter. JSON values are
// RapidJSON's (`json`, `json_value`).
//
// Dispatch: an event whose type has handlers (`on`) goes to them, one after
// another, each as a go block the reader awaits; an event whose type has none
// goes to `events`. So events of one connection are handled in the order they
// were sent, nothing is dropped, and a handler or an unread `events` channel
// that does not keep up stops reading from that peer (backpressure), never
// from the others. Local events (never on the wire): server "connect",
// "socket.disconnected" (data: the id, or false), client "connect",
// "disconnect", "destroy" (gave up retrying); both "error" for a malformed
// message (data {"message":..., "response": the text}; the connection goes on).
//
// Threading: listen()/connect() must be called on a runtime thread; every
// member function is thread-safe. Copies share one server or client.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "conch/chan/chan.hpp"
#include "conch/core/task.hpp"
#include "conch/net/address.hpp"
#include "conch/net/socket.hpp"
#include "rapidjson/document.h"

namespace conch::ipc {

/// A parsed JSON document (owns its allocator).
using json = rapidjson::Document;
/// Any JSON value (what emit takes: a document or a part of one).
using json_value = rapidjson::Value;

namespace detail {
struct server_impl;
struct conn_state;
struct client_impl;
}  // namespace detail

/// Bounds on what a peer may send; a message over them is malformed (an
/// "error" event) except an over-long one, which ends its connection (the
/// `\f` framer cannot skip it without reading it).
struct limits {
  /// The largest message, in bytes without the delimiter. A peer that sends
  /// more loses its connection (kResourceExhausted on the socket's status).
  std::size_t max_message = 16u << 20;
  /// The deepest nesting of objects and arrays accepted (the envelope
  /// object counts as 1); deeper messages are malformed.
  unsigned max_depth = 64;
};

/// One client as the server sees it (node-ipc's `socket`). Copies share it;
/// == compares identity.
class connection {
 public:
  /// The last truthy `data.id` this client sent (strings as they are, other
  /// JSON values as their JSON text); empty if none yet.
  std::string id() const;
  /// The underlying socket (its status() says why it ended).
  net::socket socket() const;
  bool operator==(const connection& o) const { return s_ == o.s_; }

  explicit connection(std::shared_ptr<detail::conn_state> s) : s_(std::move(s)) {}

 private:
  friend class server;
  std::shared_ptr<detail::conn_state> s_;
};

/// One event: from the wire, or local (see the banner).
struct event {
  /// The event name ("message", or a local one such as "connect").
  std::string type;
  /// Its data; never null (Null when the message had none, and for raw mode).
  std::shared_ptr<const json> data;
  /// Raw mode: the bytes read (chunk boundaries are not preserved). For an
  /// "error" event: the malformed message's text.
  std::string bytes;
  /// Server side: the client it came from (or that connected/disconnected).
  std::optional<connection> from;
};

/// A handler: runs as a go block for each matching event.
using handler = std::function<task<void>(event)>;

/// Where a server listens or a client connects. Exactly one of `path`,
/// `address` or the default path (socket_root + appspace + id) is used:
/// `path` if set, else `address` (API.md §5: "127.0.0.1:8000", "[::1]:0",
/// "@abstract"...), else the default.
struct server_options {
  /// node-ipc's config.id: names the default path. Required unless path or address is set.
  std::string id;
  std::string path;
  std::string address;
  std::string socket_root = "/tmp/";
  std::string appspace = "app.";
  /// node-ipc's rawBuffer: bytes, no JSON, no delimiter; events are "data".
  bool raw = false;
  limits bounds;
  /// Capacity of `events` and of each connection's socket channels.
  std::size_t events_capacity = 256;
  std::size_t socket_capacity = 256;
};

/// A node-ipc server: any number of node-ipc (or conch) clients.
class server {
 public:
  /// Starts listening. Errors: kInvalidArgument (no id/path/address, or an
  /// id with '/'), listen()'s errors (kAlreadyExists for a path a live
  /// server holds; a stale socket file is replaced).
  static absl::StatusOr<server> listen(server_options opts);

  /// Adds a handler for `type` (any time; several per type run in the order
  /// added). From now on events of that type no longer go to `events`.
  void on(std::string type, handler h);
  /// Events of types without handlers. Closes when the server is closed.
  chan<event> events;

  /// Sends one event to `to`: parks while its socket's `out` is full; false
  /// if that client has gone (or in raw mode: use emit_raw).
  task<bool> emit(connection to, std::string type, const json_value& data);
  /// Raw mode: sends `bytes` as they are.
  task<bool> emit_raw(connection to, std::string bytes);
  /// Sends one event to every client connected now; returns how many took it.
  task<std::size_t> broadcast(std::string type, const json_value& data);
  /// Raw mode: broadcast bytes.
  task<std::size_t> broadcast_raw(std::string bytes);

  /// The clients connected now.
  std::vector<connection> connections() const;
  /// The bound address (the Unix path, or host:port with the real port).
  net::address local() const;
  /// How many malformed messages arrived (each also an "error" event).
  std::uint64_t malformed() const;
  /// Stops listening, closes every connection and `events`, removes the
  /// socket file, drops the handlers. Idempotent; any thread. Call it: a
  /// server left open lives until its runtime ends.
  void close();

  explicit server(std::shared_ptr<detail::server_impl> i);

 private:
  std::shared_ptr<detail::server_impl> i_;
};

struct client_options {
  /// This client's id (node-ipc's config.id). Not sent by itself: node-ipc
  /// clients identify themselves by putting it in `data.id` of what they emit.
  std::string id;
  /// The server's id, naming the default path socket_root + appspace + server.
  std::string server;
  std::string path;
  std::string address;
  std::string socket_root = "/tmp/";
  std::string appspace = "app.";
  /// Delay before each reconnect attempt (node-ipc's retry, 500 ms).
  std::chrono::milliseconds retry{500};
  /// Attempts after a failure or disconnect before giving up ("destroy");
  /// nullopt = forever (node-ipc's maxRetries = Infinity). Reset on connect.
  std::optional<unsigned> max_retries;
  /// node-ipc's stopRetrying: never reconnect (the first failure is final).
  bool stop_retrying = false;
  bool raw = false;
  limits bounds;
  std::size_t events_capacity = 256;
  /// Events emitted while not connected wait here (emit parks when it is full).
  std::size_t queue_capacity = 1024;
};

/// A node-ipc client: connects in the background and keeps reconnecting.
class client {
 public:
  /// Starts connecting (returns at once). kInvalidArgument for options that
  /// name no server.
  static absl::StatusOr<client> connect(client_options opts);

  void on(std::string type, handler h);
  /// Events of types without handlers. Closes after "destroy" or close().
  chan<event> events;

  /// Queues one event for the server (sent as soon as connected, in order).
  /// Parks while the queue is full; false once the client is closed or gave
  /// up. An event written to a connection that then broke is not resent.
  task<bool> emit(std::string type, const json_value& data);
  task<bool> emit_raw(std::string bytes);

  /// Whether a connection is up now.
  bool connected() const;
  std::uint64_t malformed() const;
  /// Why the last connection or attempt ended (OK while connected).
  absl::Status status() const;
  /// Stops reconnecting and closes the connection after writing what is
  /// queued on it. Idempotent; any thread.
  void close();

  explicit client(std::shared_ptr<detail::client_impl> i);

 private:
  std::shared_ptr<detail::client_impl> i_;
};

/// Parses a JSON text into a document (kInvalidArgument with RapidJSON's
/// message and offset on bad input). A convenience for building emit data.
absl::StatusOr<json> parse(std::string_view text);

}  // namespace conch::ipc
