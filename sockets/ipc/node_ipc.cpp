// sockets/ipc/node_ipc.cpp
// conch::ipc: node-ipc 9.x servers and clients over conch's '\f'-framed sockets.
//
// Invariants:
// - One reader go block per connection (server: serve_conn; client: run)
//   takes frames from the socket's `in` in order and dispatches each event
//   completely (every handler's go block awaited, or the `events` send
//   done) before taking the next: events of one sender are never reordered,
//   and a slow consumer stops reading from that sender only.
// - A malformed frame becomes one "error" event and a count; the connection
//   goes on. An oversized frame ends the connection (the socket layer's
//   max_frame), since the framer cannot resynchronise without reading it.
// - server_impl::conns_ holds exactly the connections whose reader runs; a
//   connection is added before its "connect" event and removed before its
//   "socket.disconnected" event.
// - The client sends only from its pump (one per connection), so frames
//   leave in emit order; emit only queues (queue_), so emitting while
//   disconnected waits for the next connection instead of failing.
//
// Ownership and threads (every public member function may be called from
// any thread: a loop's, another runtime's loop, or a plain thread):
// - server_impl::conns and server_impl::closed belong to server_impl::mu.
//   The readers (serve_conn, on whichever loop accepted the socket) add and
//   remove their own entry under it; connections(), broadcast() and close()
//   copy the list under it and use the copy outside it. Nothing else
//   touches them.
// - The handler map belongs to handler_table::mu_. on() replaces a type's
//   list with a new one (copy on write); dispatch takes the current list's
//   shared_ptr under the lock and runs the handlers outside it, so a handler
//   added mid-event applies from the next event on.
// - conn_state::id belongs to conn_state::mu (written by its reader, read
//   by connection::id() anywhere); client_impl::status to client_impl::mu.
// - Everything else is fixed before the first go block starts (opts,
//   listener, target) or is a channel or an atomic.
// The locks are std::mutex, not absl::Mutex: Debian's libabsl is not built
// with TSan, so TSan cannot see absl::Mutex's ordering and reports every
// access it guards as a race (CI's TSan stage, session 25).
//
// Lock order: server_impl::mu, client_impl::mu, conn_state::mu and
// handler_table::mu_ are leaves: no channel operation, no other lock, no
// handler runs while one is held.
#include <algorithm>
#include <atomic>
#include <limits>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "conch/chan/go.hpp"
#include "conch/chan/select.hpp"
#include "rapidjson/error/en.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"
#include "sockets/ipc/node_ipc_codec.hpp"

namespace conch::ipc {

// ---- codec ----

namespace detail {

std::string encode(std::string_view type, const json_value& data) {
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  w.StartObject();
  w.Key("type", 4);
  w.String(type.data(), static_cast<rapidjson::SizeType>(type.size()));
  w.Key("data", 4);
  data.Accept(w);
  w.EndObject();
  return std::string(buf.GetString(), buf.GetSize());  // the socket's framing adds the '\f'
}

bool depth_within(std::string_view text, unsigned max_depth) noexcept {
  unsigned depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;  // the escaped byte cannot end the string
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) return false;
    } else if ((c == '}' || c == ']') && depth > 0) {
      --depth;  // unbalanced closers are the parser's to reject
    }
  }
  return true;
}

const std::shared_ptr<const json>& null_data() {
  static const std::shared_ptr<const json> null = std::make_shared<const json>();
  return null;
}

std::string data_id(const json_value& data) {
  if (!data.IsObject()) return {};
  auto it = data.FindMember("id");
  if (it == data.MemberEnd()) return {};
  const json_value& id = it->value;
  // JavaScript truthiness: node-ipc ignores null, false, 0 and "".
  if (id.IsNull() || id.IsFalse()) return {};
  if (id.IsString()) return std::string(id.GetString(), id.GetStringLength());
  if (id.IsNumber() && id.GetDouble() == 0) return {};
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  id.Accept(w);
  return std::string(buf.GetString(), buf.GetSize());
}

decoded decode(std::string_view frame, const limits& bounds) {
  decoded d;
  if (!depth_within(frame, bounds.max_depth)) {
    d.error = "message nests deeper than " + std::to_string(bounds.max_depth);
    return d;
  }
  auto doc = std::make_shared<json>();
  // kParseStopWhenDoneFlag is not set: trailing garbage is an error.
  doc->Parse<rapidjson::kParseFullPrecisionFlag>(frame.data(), frame.size());
  if (doc->HasParseError()) {
    d.error = std::string("Invalid JSON: ") + rapidjson::GetParseError_En(doc->GetParseError()) + " at offset " +
              std::to_string(doc->GetErrorOffset());
    return d;
  }
  if (!doc->IsObject()) {
    d.error = "message is not a JSON object";
    return d;
  }
  auto t = doc->FindMember("type");
  if (t == doc->MemberEnd() || !t->value.IsString()) {
    d.error = "message has no string \"type\"";
    return d;
  }
  d.type.assign(t->value.GetString(), t->value.GetStringLength());
  auto m = doc->FindMember("data");
  if (m == doc->MemberEnd()) {
    d.data = null_data();  // node-ipc delivers undefined; we say Null
    return d;
  }
  // Move the data value to the root of a document of its own, so the
  // event's document is exactly `data` (same allocator, no copy).
  json_value v(std::move(m->value));
  json_value& root = *doc;
  root = std::move(v);
  d.data = std::move(doc);
  return d;
}

}  // namespace detail

namespace {

std::shared_ptr<const json> error_data(std::string_view message, std::string_view response) {
  auto doc = std::make_shared<json>(rapidjson::kObjectType);
  auto& a = doc->GetAllocator();
  doc->AddMember("message", json_value(message.data(), static_cast<rapidjson::SizeType>(message.size()), a), a);
  doc->AddMember("response", json_value(response.data(), static_cast<rapidjson::SizeType>(response.size()), a), a);
  return doc;
}

std::shared_ptr<const json> string_data(std::string_view s) {
  auto doc = std::make_shared<json>();
  doc->SetString(s.data(), static_cast<rapidjson::SizeType>(s.size()), doc->GetAllocator());
  return doc;
}

std::shared_ptr<const json> bool_data(bool b) {
  auto doc = std::make_shared<json>();
  doc->SetBool(b);
  return doc;
}

/// One frame as an event, for the server's and the client's readers: the
/// bytes (raw mode), the decoded event (its sender's truthy data.id into
/// *id when id is given), or an "error" event counted in `malformed`.
event frame_event(std::string frame, bool raw, const limits& bounds, std::atomic<std::uint64_t>& malformed,
                  std::string* id) {
  event ev;
  if (raw) {
    ev.type = "data";
    ev.data = detail::null_data();
    ev.bytes = std::move(frame);
    return ev;
  }
  detail::decoded d = detail::decode(frame, bounds);
  if (!d.error.empty()) {
    malformed.fetch_add(1, std::memory_order_relaxed);  // a statistic: no ordering needed
    ev.type = "error";
    ev.data = error_data(d.error, frame);
    ev.bytes = std::move(frame);
    return ev;
  }
  if (id) *id = detail::data_id(*d.data);
  ev.type = std::move(d.type);
  ev.data = std::move(d.data);
  return ev;
}

/// Handlers by event type; readers take a snapshot per event (copy on write).
class handler_table {
 public:
  using list = std::vector<handler>;

  void add(std::string type, handler h) {
    std::lock_guard l(mu_);
    auto& slot = map_[type];
    auto next = slot ? std::make_shared<list>(*slot) : std::make_shared<list>();
    next->push_back(std::move(h));
    slot = std::move(next);
  }
  /// Drops every handler (close(): handlers often hold the object itself).
  void clear() {
    std::lock_guard l(mu_);
    map_.clear();
  }
  std::shared_ptr<const list> find(const std::string& type) const {
    std::lock_guard l(mu_);
    auto it = map_.find(type);
    return it == map_.end() ? nullptr : it->second;
  }

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<const list>> map_;
};

/// Delivers one event: to its handlers (each a go block, awaited in turn,
/// so one sender's events are handled in order) or else to `events`.
task<void> dispatch(const handler_table& table, chan<event> events, event ev) {
  auto hs = table.find(ev.type);
  if (!hs) {
    co_await events.send(std::move(ev));  // false once closed: the object is closing
    co_return;
  }
  for (const handler& h : *hs) {
    chan<unit> done = go(h(ev));  // an exception is reported like any go block's
    co_await done.recv();
  }
}

net::options socket_options(bool raw, const limits& bounds, std::size_t capacity) {
  net::options o;
  o.frame = raw ? net::framing::raw() : net::framing::delimited('\f');
  o.in_capacity = capacity;
  o.out_capacity = capacity;
  o.max_frame = bounds.max_message;
  return o;
}

/// path, else address, else socket_root + appspace + name.
absl::StatusOr<std::string> where(const std::string& path, const std::string& address, const std::string& root,
                                  const std::string& appspace, const std::string& name, const char* what) {
  if (!path.empty()) return path;
  if (!address.empty()) return address;
  if (name.empty())
    return absl::InvalidArgumentError(std::string(what) + ": give an id (default path /tmp/app.<id>), a path or an address");
  std::string p = root + appspace + name;
  if (p.find('/') == std::string::npos) p = "./" + p;  // a bare name would not read as a Unix path
  return p;
}

}  // namespace

// ---- server ----

namespace detail {

struct conn_state {
  explicit conn_state(net::socket s) : sock(std::move(s)) {}
  net::socket sock;
  mutable std::mutex mu;
  std::string id;  // guarded by mu
};

struct server_impl {
  server_options opts;
  std::optional<net::server> listener;
  handler_table handlers;
  chan<event> events;
  std::atomic<std::uint64_t> malformed{0};
  mutable std::mutex mu;
  std::vector<std::shared_ptr<conn_state>> conns;  // guarded by mu
  bool closed = false;                             // guarded by mu
};

}  // namespace detail

namespace {

event local_event(std::string type, std::shared_ptr<const json> data, std::optional<connection> from) {
  event e;
  e.type = std::move(type);
  e.data = std::move(data);
  e.from = std::move(from);
  return e;
}

/// The reader of one accepted connection (a go block on the socket's loop).
task<void> serve_conn(std::shared_ptr<detail::server_impl> impl, net::socket sock) {
  if (!impl) co_return;
  auto st = std::make_shared<detail::conn_state>(sock);
  {
    std::lock_guard l(impl->mu);
    if (impl->closed) {
      sock.close();
      co_return;
    }
    impl->conns.push_back(st);
  }
  connection me(st);
  // Named first: GCC 12 destroys a temporary with a destructor made inside a co_await twice.
  event hello = local_event("connect", detail::null_data(), me);
  co_await dispatch(impl->handlers, impl->events, std::move(hello));
  while (auto frame = co_await sock.in.recv()) {
    std::string id;
    event ev = frame_event(std::move(*frame), impl->opts.raw, impl->opts.bounds, impl->malformed, &id);
    ev.from = me;
    if (!id.empty()) {
      std::lock_guard l(st->mu);
      st->id = std::move(id);
    }
    co_await dispatch(impl->handlers, impl->events, std::move(ev));
  }
  // The peer has gone (or we closed): finish our side too, as node's
  // sockets do (allowHalfOpen is off), then say so.
  sock.out.close();
  {
    std::lock_guard l(impl->mu);
    auto& v = impl->conns;
    v.erase(std::remove(v.begin(), v.end(), st), v.end());
  }
  std::string id = me.id();
  event bye = local_event("socket.disconnected", id.empty() ? bool_data(false) : string_data(id), me);
  co_await dispatch(impl->handlers, impl->events, std::move(bye));
}

task<void> accept_loop(std::shared_ptr<detail::server_impl> impl) {
  net::server l = *impl->listener;
  // A weak reference: the listener keeps this function, and impl keeps the listener.
  std::weak_ptr<detail::server_impl> weak = impl;
  impl.reset();
  std::function<task<void>(net::socket)> each = [weak](net::socket s) -> task<void> {
    if (auto strong = weak.lock()) return serve_conn(std::move(strong), std::move(s));
    s.close();  // the server is gone
    return serve_conn(nullptr, std::move(s));
  };
  co_await l.serve(std::move(each));  // named: GCC 12 and capturing lambdas in co_await
}

task<bool> send_frame(chan<std::string> out, std::string frame) { co_return co_await out.send(std::move(frame)); }

task<bool> ready(bool v) { co_return v; }

task<std::size_t> send_all(std::vector<connection> to, std::string frame) {
  std::size_t n = 0;
  for (auto& c : to) {
    std::string copy = frame;
    if (co_await c.socket().out.send(std::move(copy))) ++n;
  }
  co_return n;
}

}  // namespace

std::string connection::id() const {
  std::lock_guard l(s_->mu);
  return s_->id;
}

net::socket connection::socket() const { return s_->sock; }

server::server(std::shared_ptr<detail::server_impl> i) : events(i->events), i_(std::move(i)) {}

absl::StatusOr<server> server::listen(server_options opts) {
  auto at = where(opts.path, opts.address, opts.socket_root, opts.appspace, opts.id, "ipc::server");
  if (!at.ok()) return at.status();
  if (opts.bounds.max_depth == 0) return absl::InvalidArgumentError("ipc::server: limits::max_depth must be at least 1");
  auto impl = std::make_shared<detail::server_impl>();
  impl->events = chan<event>(opts.events_capacity);
  auto l = net::listen(*at, socket_options(opts.raw, opts.bounds, opts.socket_capacity));
  if (!l.ok()) return l.status();
  impl->listener = std::move(*l);
  impl->opts = std::move(opts);
  go(accept_loop(impl));
  return server(std::move(impl));
}

void server::on(std::string type, handler h) { i_->handlers.add(std::move(type), std::move(h)); }

task<bool> server::emit(connection to, std::string type, const json_value& data) {
  if (i_->opts.raw) return ready(false);  // raw mode carries bytes: emit_raw
  return send_frame(to.socket().out, detail::encode(type, data));
}

task<bool> server::emit_raw(connection to, std::string bytes) {
  if (!i_->opts.raw) return ready(false);  // bytes without framing would corrupt the stream
  return send_frame(to.socket().out, std::move(bytes));
}

task<std::size_t> server::broadcast(std::string type, const json_value& data) {
  if (i_->opts.raw) return send_all({}, {});
  return send_all(connections(), detail::encode(type, data));
}

task<std::size_t> server::broadcast_raw(std::string bytes) {
  if (!i_->opts.raw) return send_all({}, {});
  return send_all(connections(), std::move(bytes));
}

std::vector<connection> server::connections() const {
  std::lock_guard l(i_->mu);
  std::vector<connection> out;
  out.reserve(i_->conns.size());
  for (auto& c : i_->conns) out.emplace_back(c);
  return out;
}

net::address server::local() const { return i_->listener->local(); }

std::uint64_t server::malformed() const { return i_->malformed.load(std::memory_order_relaxed); }

void server::close() {
  std::vector<std::shared_ptr<detail::conn_state>> conns;
  {
    std::lock_guard l(i_->mu);
    if (i_->closed) return;
    i_->closed = true;
    conns = i_->conns;
  }
  i_->listener->close();
  // Graceful: what is queued is written, then the peer sees EOF.
  for (auto& c : conns) c->sock.out.close();
  i_->events.close();
  i_->handlers.clear();  // breaks handler -> server cycles
}

// ---- client ----

namespace detail {

struct client_impl {
  client_options opts;
  std::string target;
  handler_table handlers;
  chan<event> events;
  chan<std::string> queue;  // frames waiting for the pump
  chan<unit> stop;          // closed by close()
  std::atomic<bool> connected{false};
  std::atomic<std::uint64_t> malformed{0};
  mutable std::mutex mu;
  absl::Status status;  // guarded by mu
};

}  // namespace detail

namespace {

void set_status(detail::client_impl& c, absl::Status s) {
  std::lock_guard l(c.mu);
  c.status = std::move(s);
}

/// Moves queued frames to one connection until it ends (`ended` closes) or
/// the client is closed (queue closed and drained: then half-close).
task<void> pump(std::shared_ptr<detail::client_impl> c, net::socket sock, chan<unit> ended) {
  for (;;) {
    auto r = co_await select_in_order(recv(ended), recv(c->queue));
    if (r.index() == 0) co_return;  // the connection is over
    auto frame = std::get<1>(std::move(r));
    if (!frame) {
      sock.out.close();  // close(): everything queued is written; flush and half-close
      co_return;
    }
    if (!co_await sock.out.send(std::move(*frame))) co_return;
  }
}

/// Waits `d`, or less if the client is closed; true if it was closed.
task<bool> wait_retry(std::shared_ptr<detail::client_impl> c, std::chrono::milliseconds d) {
  auto r = co_await select(recv(c->stop), recv(timeout(d)));
  co_return r.index() == 0;
}

task<void> run_client(std::shared_ptr<detail::client_impl> c) {
  const unsigned max = c->opts.max_retries.value_or(std::numeric_limits<unsigned>::max());
  unsigned retries_left = max;
  const net::options so = socket_options(c->opts.raw, c->opts.bounds, 256);
  for (;;) {
    if (c->stop.closed()) break;
    auto s = co_await net::connect(c->target, so);
    if (s.ok()) {
      net::socket sock = *s;
      retries_left = max;
      set_status(*c, absl::OkStatus());
      c->connected.store(true);
      chan<unit> ended;
      chan<unit> pumped = go(pump(c, sock, ended));
      event up = local_event("connect", detail::null_data(), std::nullopt);  // named: see serve_conn
      co_await dispatch(c->handlers, c->events, std::move(up));
      while (auto frame = co_await sock.in.recv()) {
        event ev = frame_event(std::move(*frame), c->opts.raw, c->opts.bounds, c->malformed, nullptr);
        co_await dispatch(c->handlers, c->events, std::move(ev));
      }
      ended.close();
      co_await pumped.recv();
      sock.out.close();
      c->connected.store(false);
      absl::Status why = sock.status();
      set_status(*c, why.ok() ? absl::UnavailableError("ipc::client: the server closed the connection") : why);
      event down = local_event("disconnect", detail::null_data(), std::nullopt);
      co_await dispatch(c->handlers, c->events, std::move(down));
    } else {
      set_status(*c, s.status());
      if (c->stop.closed()) break;
      std::string msg(s.status().message());
      event ev = local_event("error", error_data(msg, ""), std::nullopt);
      if (c->handlers.find("error"))
        co_await dispatch(c->handlers, c->events, std::move(ev));
      else
        c->events.try_send(std::move(ev));  // unread `events` must not stop the retries; status() keeps the reason
    }
    if (c->stop.closed()) break;
    if (c->opts.stop_retrying || retries_left == 0) {
      event gone = local_event("destroy", detail::null_data(), std::nullopt);
      co_await dispatch(c->handlers, c->events, std::move(gone));
      break;
    }
    if (co_await wait_retry(c, c->opts.retry)) break;
    if (retries_left != std::numeric_limits<unsigned>::max()) --retries_left;  // max = forever
  }
  c->queue.close();
  c->events.close();
  c->handlers.clear();  // breaks handler -> client cycles
}

}  // namespace

client::client(std::shared_ptr<detail::client_impl> i) : events(i->events), i_(std::move(i)) {}

absl::StatusOr<client> client::connect(client_options opts) {
  auto at = where(opts.path, opts.address, opts.socket_root, opts.appspace, opts.server, "ipc::client");
  if (!at.ok()) return at.status();
  if (opts.bounds.max_depth == 0) return absl::InvalidArgumentError("ipc::client: limits::max_depth must be at least 1");
  if (opts.queue_capacity == 0) return absl::InvalidArgumentError("ipc::client: queue_capacity must be at least 1");
  auto impl = std::make_shared<detail::client_impl>();
  impl->target = std::move(*at);
  impl->events = chan<event>(opts.events_capacity);
  impl->queue = chan<std::string>(opts.queue_capacity);
  impl->status = absl::UnavailableError("ipc::client: not connected yet");
  impl->opts = std::move(opts);
  go(run_client(impl));
  return client(std::move(impl));
}

void client::on(std::string type, handler h) { i_->handlers.add(std::move(type), std::move(h)); }

task<bool> client::emit(std::string type, const json_value& data) {
  if (i_->opts.raw) return ready(false);
  return send_frame(i_->queue, detail::encode(type, data));
}

task<bool> client::emit_raw(std::string bytes) {
  if (!i_->opts.raw) return ready(false);
  return send_frame(i_->queue, std::move(bytes));
}

bool client::connected() const { return i_->connected.load(); }

std::uint64_t client::malformed() const { return i_->malformed.load(std::memory_order_relaxed); }

absl::Status client::status() const {
  std::lock_guard l(i_->mu);
  return i_->status;
}

void client::close() {
  i_->stop.close();
  i_->queue.close();
}

absl::StatusOr<json> parse(std::string_view text) {
  json doc;
  doc.Parse<rapidjson::kParseFullPrecisionFlag>(text.data(), text.size());
  if (doc.HasParseError())
    return absl::InvalidArgumentError(std::string("ipc::parse: ") + rapidjson::GetParseError_En(doc.GetParseError()) +
                                      " at offset " + std::to_string(doc.GetErrorOffset()));
  return doc;
}

}  // namespace conch::ipc
