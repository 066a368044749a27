// sockets/ipc/ipcio.cpp
// ipcIO server and client (include/conch/net/ipcio.hpp): handshake, per-client sockets, routing, deliveries, reconnect.
//
// Invariants:
// - Every message written is one compact object {"id","command","data","delivery"}
//   in that key order, queued as one frame on a socket's `out` (one write each,
//   what the real library's per-read parser needs).
// - Every message read goes through a json_stream (brace depth outside strings)
//   and then RapidJSON; a malformed one is counted and reported, never fatal.
//   json_stream bounds the depth, so RapidJSON's recursion is bounded too.
// - Server: a name is in `clients` from its handshake until either of its two
//   sockets ends; drop_client removes only the entry it was given (a newer
//   client may hold the name by then) and closes both sockets.
// - Server: one per-client listener per handshake; it accepts one connection
//   (within reply_timeout) and is closed, which removes its file.
// - Client: one manager go block owns the sessions: it forwards `outbox` to the
//   current session's sockets, and after a session ends it retries the whole
//   handshake every reconnect_interval. A message taken from `outbox` whose
//   send failed is kept (`carry`) and sent first on the next session.
// - Client: answers are matched by delivery id (`pending`), discover answers in
//   order (`discovers`); a session's end fails the discovers in flight.
// Lock order: each state's `mu_` is a leaf; no channel operation, socket call or
// handler runs while it is held.
#include "conch/net/ipcio.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <unordered_map>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "conch/chan/go.hpp"
#include "conch/chan/select.hpp"
#include "conch/net/socket.hpp"
#include "sockets/ipc/json_stream.hpp"

namespace conch::ipc {

// ---- JSON helpers ----

json json_parse(std::string_view text) {
  json d;
  d.Parse(text.data(), text.size());
  if (d.HasParseError()) d.SetNull();
  return d;
}

bool json_valid(std::string_view text) {
  json d;
  d.Parse(text.data(), text.size());
  return !d.HasParseError();
}

std::string json_text(const rapidjson::Value& v) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  if (!v.Accept(w)) return "null";  // NaN or Infinity: JSON has no spelling for them
  return std::string(sb.GetString(), sb.GetSize());
}

json json_copy(const rapidjson::Value& v) {
  json d;
  d.CopyFrom(v, d.GetAllocator());
  return d;
}

namespace {

constexpr std::array<std::string_view, 6> reserved_commands = {"handshake", "discover", "broadcast",
                                                               "emit",      "deliver",  "error"};

bool is_reserved(std::string_view c) {
  return std::find(reserved_commands.begin(), reserved_commands.end(), c) != reserved_commands.end();
}

// A random UUIDv4 as 32 lowercase hex digits (ipcio's channel and delivery ids).
std::string random_hex32() {
  thread_local std::mt19937_64 gen{std::random_device{}()};
  std::array<std::uint64_t, 2> r{gen(), gen()};
  r[0] = (r[0] & ~0xf000ull) | 0x4000ull;                                     // version 4
  r[1] = (r[1] & 0x3fffffffffffffffull) | 0x8000000000000000ull;              // variant 10
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(32, '0');
  for (int i = 0; i < 32; ++i) out[static_cast<std::size_t>(i)] = digits[(r[static_cast<std::size_t>(i / 16)] >> (60 - 4 * (i % 16))) & 0xf];
  return out;
}

// One message's text, keys in ipcio's order; null for an absent id/command/delivery.
std::string encode(const std::string* id, std::string_view command, const rapidjson::Value& data,
                   const std::string* delivery) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  w.StartObject();
  w.Key("id");
  if (id != nullptr) w.String(id->data(), static_cast<rapidjson::SizeType>(id->size()));
  else w.Null();
  w.Key("command");
  w.String(command.data(), static_cast<rapidjson::SizeType>(command.size()));
  w.Key("data");
  if (!data.Accept(w)) {
    // NaN/Infinity: the writer stopped mid-value; start over with null data.
    return encode(id, command, rapidjson::Value(), delivery);
  }
  w.Key("delivery");
  if (delivery != nullptr && !delivery->empty())
    w.String(delivery->data(), static_cast<rapidjson::SizeType>(delivery->size()));
  else w.Null();
  w.EndObject();
  return std::string(sb.GetString(), sb.GetSize());
}

std::string encode_string_data(const std::string* id, std::string_view command, const std::string& inner,
                               const std::string* delivery) {
  rapidjson::Value s(rapidjson::StringRef(inner.data(), inner.size()));
  return encode(id, command, s, delivery);
}

// A message read off the wire.
struct wire_msg {
  std::string id, command, delivery;  // "" where the wire had null
  json data;
};

std::optional<std::string> string_field(const json& doc, const char* key, bool* bad) {
  auto it = doc.FindMember(key);
  if (it == doc.MemberEnd() || it->value.IsNull()) return std::nullopt;
  if (!it->value.IsString()) {
    *bad = true;
    return std::nullopt;
  }
  return std::string(it->value.GetString(), it->value.GetStringLength());
}

absl::StatusOr<wire_msg> decode(const std::string& text) {
  json doc;
  doc.Parse(text.data(), text.size());
  if (doc.HasParseError() || !doc.IsObject())
    return absl::InvalidArgumentError("ipcio: a malformed message skipped: " + text.substr(0, 80));
  bool bad = false;
  wire_msg m;
  m.id = string_field(doc, "id", &bad).value_or("");
  m.command = string_field(doc, "command", &bad).value_or("");
  m.delivery = string_field(doc, "delivery", &bad).value_or("");
  if (bad)
    return absl::InvalidArgumentError("ipcio: id, command and delivery must be strings or null: " +
                                      text.substr(0, 80));
  auto d = doc.FindMember("data");
  if (d != doc.MemberEnd()) m.data.CopyFrom(d->value, m.data.GetAllocator());
  return m;
}

ipcio_event make_event(std::string kind, std::string name = {}) {
  ipcio_event e;
  e.kind = std::move(kind);
  e.name = std::move(name);
  return e;
}

// Reports a malformed message or protocol fault: counted, and an "error" event if there is room.
void report(std::atomic<std::uint64_t>& counter, chan<ipcio_event>& events, const absl::Status& st,
            std::string name = {}) {
  counter.fetch_add(1, std::memory_order_relaxed);  // a statistic: no ordering needed
  ipcio_event e = make_event("error", std::move(name));
  std::string msg(st.message());
  e.data.SetString(msg.data(), static_cast<rapidjson::SizeType>(msg.size()), e.data.GetAllocator());
  events.try_send(std::move(e));
}

absl::Status check_options(const ipcio_options& o) {
  if (o.domain.empty() || o.domain.find('/') != std::string::npos)
    return absl::InvalidArgumentError("ipcio: the domain must be a non-empty name without '/'");
  if (o.max_depth < 2 || o.max_depth > 512)
    return absl::InvalidArgumentError("ipcio: max_depth must be 2..512");
  if (o.max_message < 64 || o.max_message > (1u << 30))
    return absl::InvalidArgumentError("ipcio: max_message must be 64 bytes..1 GiB");
  if (o.events_capacity < 1 || o.events_capacity > (1u << 20))
    return absl::InvalidArgumentError("ipcio: events_capacity must be 1..2^20");
  return absl::OkStatus();
}

detail::json_stream_limits limits_of(const ipcio_options& o) {
  return {.max_message = o.max_message, .max_depth = o.max_depth};
}

// handle(): sets (or, with an empty h, removes) a handler; takes `mu`. The old one dies outside it.
absl::Status set_handler(std::mutex& mu, std::map<std::string, ipcio_handler>& handlers, std::string command,
                         ipcio_handler h) {
  if (command.empty() || is_reserved(command))
    return absl::InvalidArgumentError("ipcio: '" + command + "' is reserved or empty: no handler for it");
  std::lock_guard lk(mu);
  auto it = handlers.find(command);
  if (it != handlers.end()) {
    std::swap(it->second, h);
    if (!it->second) handlers.erase(it);
  } else if (h) {
    handlers.emplace(std::move(command), std::move(h));
    h = nullptr;
  }
  return absl::OkStatus();
}

// Splits one chunk into decoded messages; faults are reported.
template <class State>
std::vector<wire_msg> split_chunk(State& st, detail::json_stream& js, const std::string& chunk,
                                  const std::string& name) {
  std::vector<std::string> texts;
  js.feed(chunk, [&](std::string&& t) { texts.push_back(std::move(t)); },
          [&](absl::Status e) { report(st.malformed, st.events, e, name); });
  std::vector<wire_msg> out;
  out.reserve(texts.size());
  for (const std::string& t : texts) {
    auto m = decode(t);
    if (m.ok()) out.push_back(std::move(*m));
    else report(st.malformed, st.events, m.status(), name);
  }
  return out;
}

}  // namespace

// ---- server ----

namespace {
struct client_entry {
  client_entry(std::string n, net::socket d) : name(std::move(n)), domain(std::move(d)) {}
  std::string name;
  net::socket domain;            // the client's connection to the domain socket
  std::optional<net::socket> own;  // its per-client socket, once accepted
  chan<unit> settled;            // closed once `own` is set or the handshake failed
};
}  // namespace

struct ipcio_server_state {
  ipcio_options opts;
  std::string path;
  std::optional<net::server> srv;
  chan<ipcio_event> events;
  std::atomic<std::uint64_t> malformed{0};
  std::atomic<bool> closed{false};

  mutable std::mutex mu;  // guards the three maps and each client_entry's `own` while it is being set
  std::map<std::string, std::shared_ptr<client_entry>> clients;  // by name, handshake to end
  std::map<std::string, ipcio_handler> handlers;                 // sorted: discover lists them
  std::unordered_map<std::string, std::string> deliveries;       // client-to-client delivery id -> sender

  explicit ipcio_server_state(ipcio_options o) : opts(std::move(o)), events(opts.events_capacity) {}

  std::shared_ptr<client_entry> find(const std::string& name) {
    std::lock_guard lk(mu);
    auto it = clients.find(name);
    if (it == clients.end() || !it->second->own) return nullptr;  // unknown, or still handshaking
    return it->second;
  }
};

namespace {
// The client named `name`, waiting for a handshake in progress to settle (a
// client's connect returns when the kernel accepted its own socket, maybe
// before the server did): nullptr if there is none or it failed.
task<std::shared_ptr<client_entry>> find_settled(std::shared_ptr<ipcio_server_state> st, std::string name) {
  std::optional<chan<unit>> wait;
  {
    std::lock_guard lk(st->mu);
    auto it = st->clients.find(name);
    if (it == st->clients.end()) co_return nullptr;
    if (it->second->own) co_return it->second;
    wait = it->second->settled;
  }
  co_await wait->recv();  // closed, never sent on; on_handshake bounds the wait by reply_timeout
  co_return st->find(name);
}
}  // namespace

namespace {

using server_ptr = std::shared_ptr<ipcio_server_state>;

// Removes `e` if it still holds its name, closes both its sockets, says so.
void drop_client(const server_ptr& st, const std::shared_ptr<client_entry>& e) {
  bool was = false;
  std::optional<net::socket> own;  // read under `mu`: on_handshake sets it under `mu`
  {
    std::lock_guard lk(st->mu);
    auto it = st->clients.find(e->name);
    if (it != st->clients.end() && it->second == e) {
      st->clients.erase(it);
      was = e->own.has_value();
    }
    own = e->own;
  }
  e->settled.close();
  e->domain.close();
  if (own) own->close();
  if (was) st->events.try_send(make_event("disconnect", e->name));
}

// Runs a handler; answers its delivery (null if it threw, reported as an error).
task<void> run_server_handler(server_ptr st, ipcio_handler h, json data, std::string name,
                              std::string delivery, chan<std::string> out) {
  json result;
  try {
    result = co_await h(std::move(data), name);
  } catch (const std::exception& ex) {
    report(st->malformed, st->events, absl::InternalError(std::string("ipcio: a handler threw: ") + ex.what()), name);
    result.SetNull();
  }
  if (!delivery.empty()) co_await out.send(encode(nullptr, "deliver", result, &delivery));
}

// A command from a client: its handler as a go block, else an event.
task<void> dispatch_server(server_ptr st, std::shared_ptr<client_entry> e, wire_msg m) {
  ipcio_handler h;
  {
    std::lock_guard lk(st->mu);
    auto it = st->handlers.find(m.command);
    if (it != st->handlers.end()) h = it->second;
  }
  chan<std::string> out = e->own->out;
  if (h) {
    conch::go(run_server_handler(st, std::move(h), std::move(m.data), e->name, m.delivery, out));
    co_return;
  }
  ipcio_event ev = make_event("command", e->name);
  ev.command = m.command;
  ev.data = std::move(m.data);
  ev.delivery = m.delivery;
  co_await st->events.send(std::move(ev));  // backpressure: this client's reader waits
  if (!m.delivery.empty()) {
    const rapidjson::Value null_value;
    co_await out.send(encode(nullptr, "deliver", null_value, &m.delivery));  // answered: nobody handles it
  }
}

// Reads a client's own socket until it ends.
task<void> serve_client(server_ptr st, std::shared_ptr<client_entry> e) {
  detail::json_stream js(limits_of(st->opts));
  net::socket own = *e->own;
  while (std::optional<std::string> chunk = co_await own.in.recv()) {
    for (wire_msg& m : split_chunk(*st, js, *chunk, e->name)) {
      if (m.command == "deliver") {
        // The answer of a client-to-client delivery: back to whoever asked.
        std::string sender;
        {
          std::lock_guard lk(st->mu);
          auto it = st->deliveries.find(m.delivery);
          if (it != st->deliveries.end()) {
            sender = std::move(it->second);
            st->deliveries.erase(it);
          }
        }
        std::shared_ptr<client_entry> to = sender.empty() ? nullptr : st->find(sender);
        if (to) co_await to->own->out.send(encode(nullptr, "deliver", m.data, &m.delivery));
      } else if (m.command.empty() || is_reserved(m.command)) {
        report(st->malformed, st->events,
               absl::InvalidArgumentError("ipcio: command '" + m.command + "' is not for a client socket"), e->name);
      } else {
        co_await dispatch_server(st, e, std::move(m));
      }
    }
  }
  drop_client(st, e);
}

// A handshake on a domain connection: reserve the name, open the per-client
// socket, answer, accept the client there.
task<void> on_handshake(server_ptr st, net::socket sock, wire_msg m, std::shared_ptr<client_entry>* mine) {
  if (*mine || !m.data.IsString() || m.data.GetStringLength() == 0) {
    report(st->malformed, st->events, absl::InvalidArgumentError("ipcio: a bad or second handshake ignored"));
    co_return;
  }
  auto e = std::make_shared<client_entry>(std::string(m.data.GetString(), m.data.GetStringLength()), sock);
  bool taken = false;
  {
    std::lock_guard lk(st->mu);
    taken = !st->clients.emplace(e->name, e).second;
  }
  if (taken) {
    const rapidjson::Value code(201);
    co_await sock.out.send(encode(&e->name, "error", code, nullptr));
    co_return;
  }
  const std::string channel = random_hex32();
  auto l = net::listen(st->path + "." + channel);
  if (!l.ok()) {
    drop_client(st, e);
    report(st->malformed, st->events, l.status(), e->name);
    co_return;
  }
  const std::string reply = encode_string_data(&e->name, "handshake", channel, nullptr);
  co_await sock.out.send(reply);
  chan<unit> deadline = timeout(st->opts.reply_timeout);
  auto r = co_await select(recv(l->connections), recv(deadline));
  l->close();  // exactly one connection per handshake; removes the file
  if (r.index() != 0 || !std::get<0>(r)) {
    drop_client(st, e);
    report(st->malformed, st->events,
           absl::DeadlineExceededError("ipcio: client '" + e->name + "' never connected its own socket"), e->name);
    co_return;
  }
  {
    std::lock_guard lk(st->mu);
    e->own = std::move(*std::get<0>(r));
  }
  e->settled.close();
  *mine = e;
  if (st->closed.load()) e->own->close();  // close() raced the handshake
  st->events.try_send(make_event("connect", e->name));
  conch::go(serve_client(st, e));
}

// Reads one domain connection until it ends.
task<void> serve_domain(server_ptr st, net::socket sock) {
  detail::json_stream js(limits_of(st->opts));
  std::shared_ptr<client_entry> mine;
  while (std::optional<std::string> chunk = co_await sock.in.recv()) {
    for (wire_msg& m : split_chunk(*st, js, *chunk, mine ? mine->name : std::string())) {
      if (m.command == "handshake") {
        co_await on_handshake(st, sock, std::move(m), &mine);
      } else if (m.command == "discover") {
        json d;
        d.SetObject();
        auto& a = d.GetAllocator();
        rapidjson::Value names(rapidjson::kArrayType), cmds(rapidjson::kArrayType);
        {
          std::lock_guard lk(st->mu);
          for (const auto& [n, e] : st->clients)
            if (e->own) names.PushBack(rapidjson::Value(n.c_str(), static_cast<rapidjson::SizeType>(n.size()), a), a);
          for (const auto& [c, h] : st->handlers)
            cmds.PushBack(rapidjson::Value(c.c_str(), static_cast<rapidjson::SizeType>(c.size()), a), a);
        }
        d.AddMember("clients", names, a);
        d.AddMember("command_handlers", cmds, a);
        co_await sock.out.send(encode(&m.id, "discover", d, nullptr));
      } else if (m.command == "broadcast" || m.command == "emit") {
        // The inner message is a JSON string (ipcio); an object is taken as is.
        std::string inner_text = m.data.IsString() ? std::string(m.data.GetString(), m.data.GetStringLength())
                                                   : json_text(m.data);
        auto inner = decode(inner_text);
        if (!inner.ok() || inner->command.empty()) {
          report(st->malformed, st->events,
                 absl::InvalidArgumentError("ipcio: a " + m.command + " without a valid inner message"), m.id);
          continue;
        }
        const std::string out = encode(nullptr, inner->command, inner->data, &inner->delivery);
        if (m.command == "broadcast") {
          std::vector<chan<std::string>> outs;
          {
            std::lock_guard lk(st->mu);
            for (const auto& [n, e] : st->clients)
              if (e->own) outs.push_back(e->own->out);
          }
          for (auto& o : outs) co_await o.send(out);  // the sender too, as the real server does
        } else {
          std::shared_ptr<client_entry> to = co_await find_settled(st, inner->id);
          if (!to) {
            report(st->malformed, st->events,
                   absl::NotFoundError("ipcio: emit to unknown client '" + inner->id + "'"), m.id);
            continue;
          }
          if (!m.delivery.empty()) {
            std::lock_guard lk(st->mu);
            st->deliveries[m.delivery] = m.id;
          }
          co_await to->own->out.send(out);
        }
      } else {
        report(st->malformed, st->events,
               absl::InvalidArgumentError("ipcio: command '" + m.command + "' is not for the domain socket"));
      }
    }
  }
  if (mine) {
    std::optional<net::socket> own;
    {
      std::lock_guard lk(st->mu);
      own = mine->own;
    }
    if (own) {
      // The client left by its domain socket, and what it sent on its own
      // socket just before may still be unread (the two arrive in either
      // order): half-close ours, and let serve_client read to the client's
      // end of it and drop the client then.
      sock.close();
      own->out.close();
      co_return;
    }
    drop_client(st, mine);
  }
  sock.close();
}

task<void> accept_loop(server_ptr st) {
  chan<net::socket> conns = st->srv->connections;
  while (std::optional<net::socket> s = co_await conns.recv()) conch::go(serve_domain(st, std::move(*s)));
}

}  // namespace

absl::StatusOr<ipcio_server> ipcio_server::listen(ipcio_options opts) {
  if (absl::Status c = check_options(opts); !c.ok()) return c;
  auto st = std::make_shared<ipcio_server_state>(std::move(opts));
  st->path = st->opts.prefix + "." + st->opts.domain;
  auto srv = net::listen(st->path);
  if (!srv.ok()) return srv.status();
  st->srv = std::move(*srv);
  conch::go(accept_loop(st));
  return ipcio_server(st);
}

absl::Status ipcio_server::handle(std::string command, ipcio_handler h) {
  return set_handler(s_->mu, s_->handlers, std::move(command), std::move(h));
}

namespace {
task<bool> send_to(server_ptr st, std::string name, std::string text) {
  std::shared_ptr<client_entry> e = co_await find_settled(st, name);
  if (!e) co_return false;
  co_return co_await e->own->out.send(std::move(text));
}

task<std::size_t> send_all(server_ptr st, std::string text) {
  std::vector<chan<std::string>> outs;
  {
    std::lock_guard lk(st->mu);
    for (const auto& [n, e] : st->clients)
      if (e->own) outs.push_back(e->own->out);
  }
  std::size_t reached = 0;
  for (auto& o : outs)
    if (co_await o.send(text)) ++reached;
  co_return reached;
}
}  // namespace

// Encoded now, so `data` need not outlive the call.
task<bool> ipcio_server::emit(std::string name, std::string command, const rapidjson::Value& data) {
  return send_to(s_, std::move(name), encode(nullptr, command, data, nullptr));
}

task<std::size_t> ipcio_server::broadcast(std::string command, const rapidjson::Value& data) {
  return send_all(s_, encode(nullptr, command, data, nullptr));
}

std::vector<std::string> ipcio_server::clients() const {
  std::vector<std::string> out;
  std::lock_guard lk(s_->mu);
  for (const auto& [n, e] : s_->clients)
    if (e->own) out.push_back(n);
  return out;
}

std::string ipcio_server::path() const { return s_->path; }
std::uint64_t ipcio_server::malformed() const { return s_->malformed.load(std::memory_order_relaxed); }
chan<ipcio_event> ipcio_server::events() const { return s_->events; }

void ipcio_server::close() {
  if (s_->closed.exchange(true)) return;
  s_->srv->close();
  std::vector<net::socket> socks;
  std::map<std::string, ipcio_handler> handlers;  // destroyed after the lock
  {
    std::lock_guard lk(s_->mu);
    for (auto& [n, e] : s_->clients) {
      socks.push_back(e->domain);
      // `own` is read under `mu` (a handshake on another loop sets it under
      // `mu`); one set after this sees `closed` and closes itself.
      if (e->own) socks.push_back(*e->own);
    }
    handlers.swap(s_->handlers);  // a handler holding this server would keep it alive forever
  }
  for (auto& s : socks) s.close();
  s_->events.close();
}

// ---- client ----

namespace {
struct outgoing {
  bool domain = false;  // the domain socket (discover, broadcast, emit), else the own socket
  std::string text;
};

struct session {
  net::socket dom, own;
  detail::json_stream dom_js;  // what followed the handshake answer stays framed
};
}  // namespace

struct ipcio_client_state {
  ipcio_options opts;
  std::string name;
  chan<ipcio_event> events;
  chan<outgoing> outbox{buffer::fixed(4096)};
  std::atomic<std::uint64_t> malformed{0};
  std::atomic<bool> connected{false};
  std::atomic<bool> closed{false};
  chan<unit> closing;  // closed by close(): stops reconnecting

  std::mutex mu;  // guards what follows
  std::map<std::string, ipcio_handler> handlers;
  std::unordered_map<std::string, chan<json>> pending;  // delivery id -> its one answer
  std::deque<chan<json>> discovers;                     // discover answers come in order
  std::optional<net::socket> dom, own;                  // the current session's

  ipcio_client_state(ipcio_options o, std::string n)
      : opts(std::move(o)), name(std::move(n)), events(opts.events_capacity) {}
};

namespace {

using client_ptr = std::shared_ptr<ipcio_client_state>;

task<bool> enqueue(client_ptr st, bool domain, std::string text) {
  outgoing o{domain, std::move(text)};
  co_return co_await st->outbox.send(std::move(o));
}

// Connects, handshakes as st->name, connects the own socket.
task<absl::StatusOr<session>> handshake(const ipcio_options& opts, std::string name,
                                        std::atomic<std::uint64_t>* malformed) {
  const std::string path = opts.prefix + "." + opts.domain;
  auto d = co_await net::connect(path);
  if (!d.ok()) co_return d.status();
  net::socket dom = std::move(*d);
  rapidjson::Value n(rapidjson::StringRef(name.data(), name.size()));
  co_await dom.out.send(encode(nullptr, "handshake", n, nullptr));
  detail::json_stream js(limits_of(opts));
  chan<unit> deadline = timeout(opts.reply_timeout);
  std::string channel;
  absl::Status failed;
  while (channel.empty() && failed.ok()) {
    auto r = co_await select(recv(dom.in), recv(deadline));
    if (r.index() == 1) {
      failed = absl::DeadlineExceededError("ipcio: no handshake answer from " + path);
      break;
    }
    std::optional<std::string> chunk = std::get<0>(std::move(r));
    if (!chunk) {
      failed = absl::UnavailableError("ipcio: " + path + " closed during the handshake");
      break;
    }
    std::vector<std::string> texts;
    js.feed(*chunk, [&](std::string&& t) { texts.push_back(std::move(t)); },
            [&](absl::Status) { malformed->fetch_add(1, std::memory_order_relaxed); });
    for (const std::string& t : texts) {
      auto m = decode(t);
      if (!m.ok()) continue;
      if (m->command == "handshake" && m->id == name && m->data.IsString()) {
        channel.assign(m->data.GetString(), m->data.GetStringLength());
        break;
      }
      if (m->command == "error" && (m->id == name || m->id.empty()) && m->data.IsInt() && m->data.GetInt() == 201) {
        failed = absl::AlreadyExistsError("ipcio: the name '" + name + "' is taken in domain '" + opts.domain +
                                          "' (error 201)");
        break;
      }
    }
  }
  if (!failed.ok()) {
    dom.close();
    co_return failed;
  }
  auto o = co_await net::connect(path + "." + channel);
  if (!o.ok()) {
    dom.close();
    co_return o.status();
  }
  co_return session{std::move(dom), std::move(*o), std::move(js)};
}

task<void> run_client_handler(client_ptr st, ipcio_handler h, json data, std::string delivery) {
  json result;
  try {
    result = co_await h(std::move(data), std::string());
  } catch (const std::exception& ex) {
    report(st->malformed, st->events, absl::InternalError(std::string("ipcio: a handler threw: ") + ex.what()));
    result.SetNull();
  }
  if (!delivery.empty()) co_await enqueue(st, false, encode(nullptr, "deliver", result, &delivery));
}

// Reads one socket of a session until it ends, then closes `ended`.
task<void> client_reader(client_ptr st, net::socket sock, detail::json_stream js, chan<unit> ended) {
  while (std::optional<std::string> chunk = co_await sock.in.recv()) {
    for (wire_msg& m : split_chunk(*st, js, *chunk, std::string())) {
      if (m.command == "deliver") {
        std::optional<chan<json>> waiter;
        {
          std::lock_guard lk(st->mu);
          auto it = st->pending.find(m.delivery);
          if (it != st->pending.end()) waiter = it->second;
        }
        if (waiter) waiter->try_send(std::move(m.data));
      } else if (m.command == "discover") {
        std::optional<chan<json>> waiter;
        {
          std::lock_guard lk(st->mu);
          if (!st->discovers.empty()) {
            waiter = st->discovers.front();
            st->discovers.pop_front();
          }
        }
        if (waiter) waiter->try_send(std::move(m.data));
      } else if (m.command == "handshake") {
        // a late answer of an earlier attempt: nothing to do
      } else if (m.command == "error" || m.command.empty()) {
        report(st->malformed, st->events,
               absl::InvalidArgumentError("ipcio: the server sent error " + json_text(m.data)));
      } else {
        ipcio_handler h;
        {
          std::lock_guard lk(st->mu);
          auto it = st->handlers.find(m.command);
          if (it != st->handlers.end()) h = it->second;
        }
        if (h) {
          conch::go(run_client_handler(st, std::move(h), std::move(m.data), m.delivery));
        } else {
          ipcio_event ev = make_event("command");
          ev.command = m.command;
          ev.data = std::move(m.data);
          ev.delivery = m.delivery;
          co_await st->events.send(std::move(ev));
          if (!m.delivery.empty()) {
            const rapidjson::Value null_value;
            co_await enqueue(st, false, encode(nullptr, "deliver", null_value, &m.delivery));
          }
        }
      }
    }
  }
  ended.close();
}

// The sessions: forward `outbox`, and after each session's end retry the handshake.
task<void> manage_client(client_ptr st, session s) {
  std::optional<outgoing> carry;
  for (;;) {
    {
      std::lock_guard lk(st->mu);
      st->dom = s.dom;
      st->own = s.own;
    }
    st->connected.store(true);
    st->events.try_send(make_event("connect", st->name));
    chan<unit> ended;
    conch::go(client_reader(st, s.dom, std::move(s.dom_js), ended));
    conch::go(client_reader(st, s.own, detail::json_stream(limits_of(st->opts)), ended));
    bool drained = false;  // close(): the outbox ended and everything in it went out
    for (;;) {
      if (carry) {
        chan<std::string> out = carry->domain ? s.dom.out : s.own.out;
        std::string text = carry->text;  // a copy: a failed send must not lose it
        auto r = co_await select(send(out, std::move(text)), recv(ended));
        if (r.index() != 0 || !std::get<0>(r)) break;
        carry.reset();
      }
      auto r = co_await select(recv(st->outbox), recv(ended));
      if (r.index() == 1) break;
      std::optional<outgoing> next = std::get<0>(std::move(r));
      if (!next) {
        drained = true;
        break;
      }
      carry = std::move(next);
    }
    st->connected.store(false);
    std::deque<chan<json>> lost;
    {
      std::lock_guard lk(st->mu);
      lost.swap(st->discovers);
      st->dom.reset();
      st->own.reset();
    }
    for (auto& w : lost) w.close();
    if (drained) {
      s.dom.out.close();  // flush, then half-close: the server sees us leave
      s.own.out.close();
      break;
    }
    s.dom.close();
    s.own.close();
    st->events.try_send(make_event("disconnect", st->name));
    if (st->closed.load()) break;
    // Reconnect: the whole handshake, every reconnect_interval, until it works or close().
    bool stop = false;
    for (;;) {
      chan<unit> pause = timeout(st->opts.reconnect_interval);
      auto w = co_await select(recv(pause), recv(st->closing));
      if (w.index() == 1) {
        stop = true;
        break;
      }
      auto again = co_await handshake(st->opts, st->name, &st->malformed);
      if (again.ok()) {
        s = std::move(*again);
        break;
      }
    }
    if (stop) break;
  }
  st->events.close();
}

task<absl::StatusOr<json>> await_answer(client_ptr st, chan<json> answer, std::string delivery) {
  chan<unit> deadline = timeout(st->opts.reply_timeout);
  auto r = co_await select(recv(answer), recv(deadline));
  if (!delivery.empty()) {
    std::lock_guard lk(st->mu);
    st->pending.erase(delivery);
  }
  if (r.index() == 1) co_return absl::DeadlineExceededError("ipcio: no answer within reply_timeout");
  std::optional<json> v = std::get<0>(std::move(r));
  if (!v) {
    co_return st->closed.load() ? absl::CancelledError("ipcio: the client was closed")
                                : absl::UnavailableError("ipcio: the session ended before the answer");
  }
  co_return std::move(*v);
}

task<absl::StatusOr<json>> deliver_text(client_ptr st, std::string delivery, bool domain, std::string text) {
  chan<json> answer(1);
  {
    std::lock_guard lk(st->mu);
    st->pending[delivery] = answer;
  }
  if (!co_await enqueue(st, domain, std::move(text))) {
    std::lock_guard lk(st->mu);
    st->pending.erase(delivery);
    co_return absl::CancelledError("ipcio: the client was closed");
  }
  co_return co_await await_answer(st, answer, delivery);
}

task<absl::StatusOr<ipcio_discovery>> discover_text(client_ptr st, std::string text) {
  chan<json> answer(1);
  {
    std::lock_guard lk(st->mu);
    st->discovers.push_back(answer);
  }
  if (!co_await enqueue(st, true, std::move(text))) co_return absl::CancelledError("ipcio: the client was closed");
  auto r = co_await await_answer(st, answer, std::string());
  if (!r.ok()) co_return r.status();
  ipcio_discovery out;
  auto list = [](const json& d, const char* key, std::vector<std::string>& into) {
    if (!d.IsObject()) return;
    auto it = d.FindMember(key);
    if (it == d.MemberEnd() || !it->value.IsArray()) return;
    for (const auto& v : it->value.GetArray())
      if (v.IsString()) into.emplace_back(v.GetString(), v.GetStringLength());
  };
  list(*r, "clients", out.clients);
  list(*r, "command_handlers", out.command_handlers);
  co_return out;
}

}  // namespace

task<absl::StatusOr<ipcio_client>> ipcio_client::connect(std::string name, ipcio_options opts) {
  if (absl::Status c = check_options(opts); !c.ok()) co_return c;
  if (name.empty()) name = random_hex32();
  if (name.size() > 255) co_return absl::InvalidArgumentError("ipcio: a client name is 1..255 bytes");
  auto st = std::make_shared<ipcio_client_state>(std::move(opts), std::move(name));
  auto s = co_await handshake(st->opts, st->name, &st->malformed);
  if (!s.ok()) co_return s.status();
  conch::go(manage_client(st, std::move(*s)));
  co_return ipcio_client(st);
}

absl::Status ipcio_client::handle(std::string command, ipcio_handler h) {
  return set_handler(s_->mu, s_->handlers, std::move(command), std::move(h));
}

// Each message is encoded before returning, so `data` need not outlive the call.
task<bool> ipcio_client::send(std::string command, const rapidjson::Value& data) {
  return enqueue(s_, false, encode(nullptr, command, data, nullptr));
}

task<absl::StatusOr<json>> ipcio_client::deliver(std::string command, const rapidjson::Value& data) {
  std::string d = random_hex32();
  std::string text = encode(nullptr, command, data, &d);
  return deliver_text(s_, std::move(d), false, std::move(text));
}

task<bool> ipcio_client::emit(std::string target, std::string command, const rapidjson::Value& data) {
  const std::string inner = encode(&target, command, data, nullptr);
  return enqueue(s_, true, encode_string_data(&s_->name, "emit", inner, nullptr));
}

task<absl::StatusOr<json>> ipcio_client::deliver_to(std::string target, std::string command,
                                                    const rapidjson::Value& data) {
  std::string d = random_hex32();
  const std::string inner = encode(&target, command, data, &d);
  std::string text = encode_string_data(&s_->name, "emit", inner, &d);
  return deliver_text(s_, std::move(d), true, std::move(text));
}

task<bool> ipcio_client::broadcast(std::string command, const rapidjson::Value& data) {
  const std::string inner = encode(nullptr, command, data, nullptr);
  return enqueue(s_, true, encode_string_data(&s_->name, "broadcast", inner, nullptr));
}

task<absl::StatusOr<ipcio_discovery>> ipcio_client::discover() {
  const rapidjson::Value null_value;
  return discover_text(s_, encode(&s_->name, "discover", null_value, nullptr));
}

const std::string& ipcio_client::name() const { return s_->name; }
bool ipcio_client::connected() const { return s_->connected.load(); }
std::uint64_t ipcio_client::malformed() const { return s_->malformed.load(std::memory_order_relaxed); }
chan<ipcio_event> ipcio_client::events() const { return s_->events; }

void ipcio_client::close() {
  if (s_->closed.exchange(true)) return;
  s_->outbox.close();   // what is queued still goes out, then the sockets half-close
  s_->closing.close();  // no more reconnecting
  std::vector<chan<json>> waiting;
  std::map<std::string, ipcio_handler> handlers;  // destroyed after the lock
  {
    std::lock_guard lk(s_->mu);
    for (auto& [d, w] : s_->pending) waiting.push_back(w);
    for (auto& w : s_->discovers) waiting.push_back(w);
    handlers.swap(s_->handlers);  // a handler holding this client would keep it alive forever
  }
  for (auto& w : waiting) w.close();
}

}  // namespace conch::ipc
