// conch/net/ipcio.hpp
// ipcIO peers: a server and named clients in a domain, speaking npm ipcio 0.6.2's wire (PROTOCOLS.md §3).
//
//   // server (on a runtime thread)
//   auto srv = conch::ipc::ipcio_server::listen({.domain = "d"});
//   srv->handle("ping", [](conch::ipc::json data, std::string name) -> conch::task<conch::ipc::json> {
//     co_return data;                         // the `deliver` result, if the client asked for one
//   });
//   // client (options named first: GCC 12 mishandles a braced temporary inside co_await)
//   conch::ipc::ipcio_options opts{.domain = "d"};
//   auto cli = co_await conch::ipc::ipcio_client::connect("alpha", opts);
//   conch::ipc::json hello = conch::ipc::json_parse(R"({"seq":1})");
//   auto echoed = co_await cli->deliver("ping", hello);   // StatusOr<json>: {"seq":1}
//
// Wire: a domain socket `<prefix>.<domain>` (prefix /tmp/IPC.io) for the
// handshake, discover, broadcast and client-to-client emit; after the
// handshake one socket `<prefix>.<domain>.<channel>` per client for commands
// both ways. Messages are compact JSON objects `{"id","command","data",
// "delivery"}` written back to back, each in one write, as the real library
// expects. Reading is more robust than the real library's: objects are split
// by brace depth outside strings (a message split across reads is
// reassembled, `}{` inside a string survives) and data arrives as sent (the
// real library turns 0, false and "" into null). A malformed message is
// skipped, counted (`malformed()`) and reported as an "error" event; it ends
// nothing else. Messages are bounded (`max_message` bytes, `max_depth`).
//
// JSON values are RapidJSON documents (`conch::ipc::json`), the library
// conch.util uses. Handlers run as go blocks; handlers and the `events`
// channel may be used from any thread; the objects are cheap handles (copies
// share one peer). Must be created on a runtime thread; their sockets live
// on that thread's loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <rapidjson/document.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "conch/chan/chan.hpp"
#include "conch/core/task.hpp"

namespace conch::ipc {

/// A JSON value: RapidJSON's document (move-only; owns its allocator).
using json = rapidjson::Document;

/// Parses `text`; a malformed text gives a null document (check with
/// json_valid first when that matters).
json json_parse(std::string_view text);
/// Whether `text` is one valid JSON value.
bool json_valid(std::string_view text);
/// The compact text of `v`.
std::string json_text(const rapidjson::Value& v);
/// A document holding a copy of `v`.
json json_copy(const rapidjson::Value& v);

/// Where a domain lives and how much a message may hold.
struct ipcio_options {
  std::string domain = "default";      ///< the socket is <prefix>.<domain>
  std::string prefix = "/tmp/IPC.io";  ///< ipcio hard-codes /tmp/IPC.io; change it only among conch peers
  std::size_t max_message = 1u << 20;  ///< bytes of one message; a longer one is skipped and counted
  std::size_t max_depth = 64;          ///< nesting of one message; a deeper one is skipped and counted
  std::size_t events_capacity = 1024;  ///< `events` buffer; when full, readers wait (backpressure)
  /// Client: the pause between reconnect attempts (ipcio's 2 s).
  std::chrono::milliseconds reconnect_interval = std::chrono::seconds(2);
  /// Client: how long `deliver` and `discover` wait for their answer.
  std::chrono::milliseconds reply_timeout = std::chrono::seconds(10);
};

/// One thing that happened, on an `events` channel.
struct ipcio_event {
  /// "command": a command no handler was registered for (`command`, `data`,
  /// `name` = the sending client on a server, `delivery` when the sender asked
  /// for one: it was answered with null). "connect"/"disconnect": a client
  /// (`name`) joined or left a server, or a client's session began or ended.
  /// "error": a malformed message or protocol fault (`data` is its text as
  /// a JSON string). Lifecycle and error events are dropped when `events`
  /// is full; commands wait.
  std::string kind;
  std::string command;
  json data;
  std::string name;
  std::string delivery;
};

/// A command handler: gets the data and the sender's name (a server: the
/// client's; a client: ""), runs as a go block; its result answers a
/// `deliver` (ignored otherwise).
using ipcio_handler = std::function<task<json>(json data, std::string name)>;

/// What `discover` reports: the clients in the domain, the server's commands.
struct ipcio_discovery {
  std::vector<std::string> clients;
  std::vector<std::string> command_handlers;
};

struct ipcio_server_state;
struct ipcio_client_state;

/// An ipcIO server: owns the domain socket, hands each named client its own
/// socket, routes client-to-client emits and their deliveries.
class ipcio_server {
 public:
  /// Listens on `<prefix>.<domain>` (a stale file is replaced; a live server
  /// there is kAlreadyExists). Call on a runtime thread.
  static absl::StatusOr<ipcio_server> listen(ipcio_options opts = {});

  /// Registers (or replaces) the handler of `command`, at any time. The
  /// reserved names (handshake, discover, broadcast, emit, deliver, error)
  /// are kInvalidArgument.
  absl::Status handle(std::string command, ipcio_handler h);
  /// Sends `command` with `data` to the client named `name`; false if there
  /// is no such client or its socket ended. Waits while its socket is full.
  task<bool> emit(std::string name, std::string command, const rapidjson::Value& data);
  /// Sends `command` to every client; gives how many it reached.
  task<std::size_t> broadcast(std::string command, const rapidjson::Value& data);
  /// The names of the connected clients, sorted.
  std::vector<std::string> clients() const;
  /// The domain socket's path.
  std::string path() const;
  /// Malformed messages seen so far (each skipped).
  std::uint64_t malformed() const;
  /// Unhandled commands and lifecycle events (see ipcio_event).
  chan<ipcio_event> events() const;
  /// Stops listening (removes the socket file), ends every client's sockets,
  /// drops the handlers (so one that holds this server frees it) and closes
  /// `events`. Handlers keep the server alive until then: close() it.
  /// Idempotent; any thread.
  void close();

 private:
  explicit ipcio_server(std::shared_ptr<ipcio_server_state> s) : s_(std::move(s)) {}
  std::shared_ptr<ipcio_server_state> s_;
};

/// An ipcIO client: a name in a domain. After the first handshake it keeps
/// reconnecting (every reconnect_interval) whenever a socket ends, and what
/// is sent meanwhile is queued and sent after the next handshake.
class ipcio_client {
 public:
  /// Connects and handshakes as `name` ("" = a random 32-hex name). Errors:
  /// the connect's (no server: kNotFound/kUnavailable), kAlreadyExists when
  /// the name is taken (ipcio's error 201), kDeadlineExceeded when the
  /// server does not answer within reply_timeout, kInvalidArgument for a
  /// name that is not a plain string of 1..255 bytes.
  static task<absl::StatusOr<ipcio_client>> connect(std::string name, ipcio_options opts = {});

  /// Registers (or replaces) the handler of `command` (commands from the
  /// server, or emitted by other clients). Reserved names are kInvalidArgument.
  absl::Status handle(std::string command, ipcio_handler h);
  /// Sends `command` to the server's handler. Queued while reconnecting;
  /// false once close()d.
  task<bool> send(std::string command, const rapidjson::Value& data);
  /// Sends `command` and waits for the server handler's result. Errors:
  /// kDeadlineExceeded after reply_timeout, kCancelled once close()d.
  task<absl::StatusOr<json>> deliver(std::string command, const rapidjson::Value& data);
  /// Sends `command` to the client named `target`, through the server.
  task<bool> emit(std::string target, std::string command, const rapidjson::Value& data);
  /// Sends `command` to `target` and waits for its handler's result.
  task<absl::StatusOr<json>> deliver_to(std::string target, std::string command, const rapidjson::Value& data);
  /// Asks the server to send `command` to every client (this one included,
  /// as the real server does).
  task<bool> broadcast(std::string command, const rapidjson::Value& data);
  /// The domain's clients and the server's commands (kDeadlineExceeded,
  /// kUnavailable if the session ended before the answer).
  task<absl::StatusOr<ipcio_discovery>> discover();
  /// This client's name.
  const std::string& name() const;
  /// Whether a session is up now.
  bool connected() const;
  /// Malformed messages seen so far.
  std::uint64_t malformed() const;
  /// Unhandled commands, "connect"/"disconnect" of sessions, errors.
  chan<ipcio_event> events() const;
  /// Sends what is queued, then half-closes both sockets; stops
  /// reconnecting, fails waiting delivers and discovers (kCancelled), drops
  /// the handlers; `events` closes once the session has ended. Idempotent;
  /// any thread.
  void close();

 private:
  explicit ipcio_client(std::shared_ptr<ipcio_client_state> s) : s_(std::move(s)) {}
  std::shared_ptr<ipcio_client_state> s_;
};

}  // namespace conch::ipc
