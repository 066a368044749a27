// sockets/nats/client.cpp
// The NATS client: handshake, the reader that dispatches server ops, keepalive, reconnect, requests.
//
// Ownership (which thread may touch which part of conn_impl). Every public
// member function of connection and subscription may be called from any
// thread: a go block on any loop of any runtime, or a plain thread.
// - Fixed at construction, read by anyone without a lock: opts_, urls_,
//   inbox_prefix_, and the stop_/closed_ channel handles (channels are
//   thread-safe objects; only their handles must not change).
// - The reader go block (run(), on the loop that awaited connect(); a
//   coroutine never leaves its loop) alone owns the decoder, the live
//   socket's `in`, url_index_ (set by connect() before the reader starts)
//   and the reconnect loop. Only it replaces sock_ or ends the connection
//   (finish()); only the pinger and close() may also cut the socket.
// - Everything else -- state_, user_closed_, draining_, sock_, pending_,
//   subs_, next_sid_, pongs_, pings_out_, requests_, next_request_,
//   info_, status_, last_error_, last_break_, reconnects_ -- is guarded
//   by mu_, whoever the caller is. mu_ is a std::mutex (held for a few
//   lines, never across a co_await): TSan sees std::mutex, while an
//   absl::Mutex from Debian's uninstrumented libabsl is invisible to it,
//   which is how CI's TSan stage reported these fields as raced although
//   every access held the lock.
// - A sub_state's sid, subject, queue and when_full are fixed before it is
//   published in subs_ (under mu_); its channel is thread-safe; its counters
//   are relaxed atomics (statistics).
// - Anyone may send on sock_->out, after copying the handle under mu_.
//
// Invariants:
// - state_ == connected iff sock_ holds the live socket. While reconnecting,
//   writes that may be buffered go to pending_ (<= opts_.reconnect_buffer
//   bytes); the reader sends SUBs for every live subscription, then pending_,
//   as the new socket's first frame, under mu_ and before state_ becomes
//   connected, so nothing published later overtakes them.
// - pongs_ holds one entry per PING sent on the live socket, in order (a
//   flush waiter, or nullopt for a keepalive PING); each PONG completes the
//   front entry. A break fails them all (their channels close).
// - Subscription ids are never reused, so a MSG for an unsubscribed sid
//   finds nothing and is dropped.
// - The request inbox is subscription sid 1 ("_INBOX.<random>.*"), made in
//   the first handshake and resubscribed like any other; requests_ maps a
//   reply subject to the promise of its waiter.
// Lock order: mu_ is taken alone; channel operations under it are try_*
// or close() (channel locks are leaves).
#include <algorithm>
#include <deque>
#include <mutex>
#include <random>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "conch/chan/go.hpp"
#include "conch/chan/select.hpp"
#include "conch/core/runtime.hpp"
#include "conch/core/status.hpp"
#include "conch/net/nats.hpp"
#include "conch/net/socket.hpp"
#include "rapidjson/document.h"
#include "sockets/nats/protocol.hpp"

namespace conch::nats {
namespace detail {

namespace {
absl::string_view av(std::string_view s) { return absl::string_view(s.data(), s.size()); }
constexpr std::uint64_t inbox_sid = 1;
}  // namespace

/// One server of the URL list, with the credentials its URL carried.
struct server_url {
  std::string address;  // host:port for net::connect
  std::string host;     // the host alone (no brackets): TLS's name check
  std::string user, password, token;
  std::string text;     // as given, for messages
  bool tls = false;     // tls:// (TLS even if the server does not require it)
};

// Parses "nats://user:pass@host:port,host2" into servers.
absl::StatusOr<std::vector<server_url>> parse_urls(std::string_view text) {
  std::vector<server_url> out;
  for (absl::string_view part : absl::StrSplit(av(text), ',')) {
    part = absl::StripAsciiWhitespace(part);
    if (part.empty()) continue;
    server_url u;
    u.text = std::string(part);
    if (absl::ConsumePrefix(&part, "tls://")) {
      u.tls = true;
    } else if (!absl::ConsumePrefix(&part, "nats://")) {
      if (part.find("://") != absl::string_view::npos)
        return absl::InvalidArgumentError(absl::StrCat("nats: unknown URL scheme: ", u.text));
    }
    if (!part.empty() && part.back() == '/') part.remove_suffix(1);
    if (std::size_t at = part.rfind('@'); at != absl::string_view::npos) {
      absl::string_view cred = part.substr(0, at);
      part = part.substr(at + 1);
      if (std::size_t colon = cred.find(':'); colon != absl::string_view::npos) {
        u.user = std::string(cred.substr(0, colon));
        u.password = std::string(cred.substr(colon + 1));
      } else {
        u.token = std::string(cred);
      }
    }
    if (part.empty()) return absl::InvalidArgumentError(absl::StrCat("nats: no host in URL: ", u.text));
    // A port is present if the text after the last ':' is all digits and not inside [].
    const std::size_t colon = part.rfind(':');
    const std::size_t bracket = part.rfind(']');
    const bool has_port = colon != absl::string_view::npos &&
                          (bracket == absl::string_view::npos || colon > bracket) &&
                          (part.front() == '[' || part.find(':') == colon);
    if (has_port) {
      int port = 0;
      if (!absl::SimpleAtoi(part.substr(colon + 1), &port) || port <= 0 || port > 65535)
        return absl::InvalidArgumentError(absl::StrCat("nats: bad port in URL: ", u.text));
      u.address = std::string(part);
      u.host = std::string(part.substr(0, colon));
    } else if (part.front() == '[' || part.find(':') == absl::string_view::npos) {
      u.address = absl::StrCat(part, ":4222");
    } else {
      u.address = absl::StrCat("[", part, "]:4222");  // a bare IPv6 address
    }
    if (u.host.empty()) u.host = std::string(part);
    if (u.host.size() > 1 && u.host.front() == '[' && u.host.back() == ']') u.host = u.host.substr(1, u.host.size() - 2);
    out.push_back(std::move(u));
  }
  if (out.empty()) return absl::InvalidArgumentError("nats: no server URL given");
  return out;
}

/// A subscription's shared state.
struct sub_state {
  std::uint64_t sid = 0;
  std::string subject, queue;
  chan<msg> ch;
  slow_consumer when_full = slow_consumer::drop;
  std::atomic<std::uint64_t> dropped{0}, delivered{0};
};

/// What a successful handshake hands the reader.
struct opened {
  net::socket sock;
  decoder dec;
  std::vector<server_op> ops;  // decoded after the PONG, not yet dispatched
  server_info info;
};

class conn_impl : public std::enable_shared_from_this<conn_impl> {
 public:
  conn_impl(options o, std::vector<server_url> urls) : opts_(std::move(o)), urls_(std::move(urls)) {
    std::random_device rd;
    std::mt19937_64 g((static_cast<std::uint64_t>(rd()) << 32) ^ rd());
    static constexpr char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    inbox_prefix_ = "_INBOX.";
    for (int i = 0; i < 22; ++i) inbox_prefix_ += alphabet[g() % 62];
    inbox_prefix_ += '.';
  }

  // ---- the handshake ----

  // Connects to `u`, reads INFO, sends CONNECT + PING and waits for the PONG.
  task<absl::StatusOr<opened>> open(const server_url& u) {
    net::options so;
    so.connect_timeout = opts_.connect_timeout;
    so.out_capacity = 1024;
    auto s = co_await net::connect(u.address, so);
    if (!s.ok()) co_return s.status();
    net::socket sock = *s;
    decoder dec;
    std::vector<server_op> ops;
    const auto deadline = std::chrono::steady_clock::now() + opts_.connect_timeout;
    std::optional<server_info> info;
    bool sent_connect = false;
    bool tls = false;  // the socket speaks TLS now
    for (;;) {
      std::size_t i = 0;
      for (; i < ops.size(); ++i) {
        server_op& op = ops[i];
        if (op.type == server_op::kind::info) {
          auto parsed = parse_info(op.payload);
          if (!parsed.ok()) {
            sock.close();
            co_return parsed.status();
          }
          info = *parsed;
          dec.set_max_payload(info->max_payload + 64 * 1024);
        } else if (op.type == server_op::kind::err) {
          sock.close();
          co_return error_status(op.payload, u.text);
        } else if (op.type == server_op::kind::pong && sent_connect) {
          ++i;
          break;
        } else if (op.type == server_op::kind::ping) {
          std::string pong = "PONG\r\n";
          co_await sock.out.send(std::move(pong));
        } else if (!info) {
          sock.close();
          co_return absl::UnavailableError(absl::StrCat("nats: ", u.text, " sent no INFO first"));
        }
        if (info && !sent_connect) {
          // TLS as the official clients do it: after the plain INFO, when
          // the server requires it or the client asks (tls://, options::tls).
          const bool want_tls = u.tls || opts_.tls.has_value();
          if (want_tls && !info->tls_required && !info->tls_available) {
            sock.close();
            co_return absl::FailedPreconditionError(
                absl::StrCat("nats: ", u.text, " does not offer TLS, which the client asked for (",
                             u.tls ? "tls:// URL" : "options::tls", ")"));
          }
          if (want_tls || info->tls_required) {
            auto upgraded = co_await upgrade(sock, u, deadline);
            if (!upgraded.ok()) co_return upgraded.status();
            sock = *upgraded;
            tls = true;
          }
          std::string hello = connect_json(u, *info, tls);
          hello += "PING\r\n";
          sent_connect = true;
          if (!co_await sock.out.send(std::move(hello))) break;
        }
      }
      if (sent_connect && i <= ops.size() && i > 0 && ops[i - 1].type == server_op::kind::pong) {
        ops.erase(ops.begin(), ops.begin() + static_cast<std::ptrdiff_t>(i));
        co_return opened{sock, std::move(dec), std::move(ops), *info};
      }
      ops.clear();
      const auto now = std::chrono::steady_clock::now();
      if (now >= deadline) break;
      auto r = co_await select(recv(sock.in), recv(timeout(deadline - now)));
      if (r.index() == 1) break;
      std::optional<std::string> chunk = std::get<0>(std::move(r));
      if (!chunk) {
        absl::Status why = sock.status();
        co_return absl::UnavailableError(absl::StrCat("nats: ", u.text, " closed the connection during the handshake",
                                                      why.ok() ? "" : ": ", why.ok() ? "" : why.message()));
      }
      if (absl::Status st = dec.feed(*chunk, ops); !st.ok()) {
        sock.close();
        co_return st;
      }
    }
    sock.close();
    co_return absl::DeadlineExceededError(
        absl::StrCat("nats: ", u.text, " did not complete the handshake within ", opts_.connect_timeout.count(), " ms"));
  }

  // Starts TLS on `plain` (the server's INFO read, nothing else pending), as
  // a client of u's host, within what is left of the handshake's time.
  task<absl::StatusOr<net::socket>> upgrade(net::socket plain, const server_url& u,
                                            std::chrono::steady_clock::time_point deadline) {
    net::options o;
    o.out_capacity = 1024;
    o.tls = opts_.tls.value_or(net::tls_options{});
    // The certificate must name the URL's host unless the caller chose a name.
    if (o.tls->server_name.empty()) o.tls->server_name = u.host;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    o.connect_timeout = std::max(left, std::chrono::milliseconds(1));
    auto t = co_await net::start_tls(plain, o);
    if (!t.ok()) {
      plain.close();
      co_return absl::Status(t.status().code(), absl::StrCat("nats: ", u.text, ": ", t.status().message()));
    }
    co_return *t;
  }

  static absl::StatusOr<server_info> parse_info(const std::string& json) {
    rapidjson::Document d;
    d.Parse(json.data(), json.size());
    if (d.HasParseError() || !d.IsObject())
      return absl::InvalidArgumentError("nats: the server's INFO is not a JSON object");
    server_info i;
    auto str = [&](const char* k, std::string& out) {
      auto it = d.FindMember(k);
      if (it != d.MemberEnd() && it->value.IsString()) out.assign(it->value.GetString(), it->value.GetStringLength());
    };
    auto boolean = [&](const char* k, bool& out) {
      auto it = d.FindMember(k);
      if (it != d.MemberEnd() && it->value.IsBool()) out = it->value.GetBool();
    };
    str("server_id", i.server_id);
    str("server_name", i.server_name);
    str("version", i.version);
    boolean("headers", i.headers);
    boolean("auth_required", i.auth_required);
    boolean("tls_required", i.tls_required);
    boolean("tls_available", i.tls_available);
    auto mp = d.FindMember("max_payload");
    if (mp != d.MemberEnd() && mp->value.IsUint64() && mp->value.GetUint64() > 0)
      i.max_payload = static_cast<std::size_t>(std::min<std::uint64_t>(mp->value.GetUint64(), 1u << 30));
    return i;
  }

  std::string connect_json(const server_url& u, const server_info& info, bool tls) const {
    std::string j = "CONNECT {\"verbose\":";
    j += opts_.verbose ? "true" : "false";
    j += ",\"pedantic\":";
    j += opts_.pedantic ? "true" : "false";
    j += ",\"tls_required\":";
    j += tls ? "true" : "false";
    j += ",\"lang\":\"c++/conch\",\"version\":\"0.1\",\"protocol\":1,\"echo\":";
    j += opts_.echo ? "true" : "false";
    const bool hdrs = opts_.headers && info.headers;
    j += ",\"headers\":";
    j += hdrs ? "true" : "false";
    j += ",\"no_responders\":";
    j += hdrs ? "true" : "false";
    auto field = [&](const char* k, const std::string& v) {
      if (v.empty()) return;
      j += ",\"";
      j += k;
      j += "\":";
      append_json_string(j, v);
    };
    field("name", opts_.name);
    field("user", u.user.empty() ? opts_.user : u.user);
    field("pass", u.user.empty() ? opts_.password : u.password);
    field("auth_token", u.token.empty() ? opts_.token : u.token);
    j += "}\r\n";
    return j;
  }

  static absl::Status error_status(std::string_view text, std::string_view who) {
    const std::string m = absl::StrCat("nats: ", av(who), ": ", av(text));
    const std::string lower = absl::AsciiStrToLower(av(text));
    auto has = [&](const char* w) { return lower.find(w) != std::string::npos; };
    if (has("authorization") || has("authentication") || has("permissions")) return absl::PermissionDeniedError(m);
    if (has("maximum payload")) return absl::InvalidArgumentError(m);
    return absl::UnavailableError(m);
  }

  // ---- writing ----

  // Sends `bytes` on the live socket; while reconnecting, keeps them in
  // pending_ if `bufferable` (publishes; SUB/UNSUB are resent anyway). A
  // send that the break of the socket refuses (parked on a full queue, or
  // made before the reader saw the break) goes to pending_ too, or to the
  // next socket if the reader has already made one.
  task<absl::Status> write(std::string bytes, bool bufferable) {
    const bool may_buffer = bufferable && opts_.reconnect;
    for (;;) {
      std::optional<net::socket> s;
      std::uint64_t gen = 0;
      {
        std::lock_guard<std::mutex> l(mu_);
        if (state_ == state::closed || user_closed_)
          co_return absl::FailedPreconditionError("nats: the connection is closed");
        if (state_ != state::connected) co_return buffer_locked(bytes, bufferable);
        s = sock_;
        gen = sock_gen_;
      }
      // A copy for pending_ in case the socket refuses it (the send consumes
      // its argument either way).
      std::string spare;
      if (may_buffer) spare = bytes;
      if (co_await s->out.send(std::move(bytes))) co_return absl::OkStatus();
      if (!opts_.reconnect) co_return absl::UnavailableError("nats: the connection broke while sending");
      bytes = std::move(spare);
      std::lock_guard<std::mutex> l(mu_);
      if (state_ == state::closed || user_closed_)
        co_return absl::FailedPreconditionError("nats: the connection is closed");
      // SUB/UNSUB: the next socket gets the subscription table as it is
      // (a resume() after our capture of sock_ already included it).
      if (!bufferable) co_return absl::OkStatus();
      if (state_ == state::connected && sock_gen_ != gen) continue;  // already reconnected: send there
      // Reconnecting, or the reader has not seen the break yet: resume()
      // sends pending_ on the next socket either way.
      co_return buffer_locked(bytes, bufferable);
    }
  }

  // Keeps `bytes` for the next socket. Caller holds mu_.
  absl::Status buffer_locked(const std::string& bytes, bool bufferable) {
    if (!bufferable) return absl::OkStatus();  // resent from the subscription table
    if (pending_.size() + bytes.size() > opts_.reconnect_buffer)
      return absl::ResourceExhaustedError(absl::StrCat(
          "nats: reconnecting, and the reconnect buffer (", opts_.reconnect_buffer, " bytes) is full"));
    pending_ += bytes;
    return absl::OkStatus();
  }

  // ---- the reader ----

  static task<void> run(std::shared_ptr<conn_impl> self, opened first) {
    net::socket sock = first.sock;
    decoder dec = std::move(first.dec);
    std::vector<server_op> ops = std::move(first.ops);
    for (;;) {
      // Dispatch until the socket ends.
      for (;;) {
        for (server_op& op : ops) co_await self->dispatch(op, sock);
        ops.clear();
        std::optional<std::string> chunk = co_await sock.in.recv();
        if (!chunk) break;
        if (absl::Status st = dec.feed(*chunk, ops); !st.ok()) {
          for (server_op& op : ops) co_await self->dispatch(op, sock);
          ops.clear();
          self->note_break(st);
          sock.close();
          break;
        }
      }
      // The socket is over: close it, so that senders parked on its full
      // `out` wake (and buffer their bytes), then reconnect unless closed
      // or not wanted.
      sock.close();
      if (!self->begin_reconnect(sock)) break;
      bool reopened = false;
      int attempts = 0;
      const int max = self->opts_.max_reconnect_attempts;
      while (!reopened && (max < 0 || attempts < max)) {
        for (std::size_t k = 0; k < self->urls_.size() && (max < 0 || attempts < max); ++k) {
          if (self->stopping()) break;
          const std::size_t idx = (self->url_index_ + 1 + k) % self->urls_.size();
          ++attempts;
          auto o = co_await self->open(self->urls_[idx]);
          if (!o.ok()) {
            self->note_break(o.status());
            continue;
          }
          if (!self->resume(*o)) {
            o->sock.close();
            break;
          }
          self->url_index_ = idx;
          sock = o->sock;
          dec = std::move(o->dec);
          ops = std::move(o->ops);
          reopened = true;
          break;
        }
        if (reopened || self->stopping()) break;
        // A round over every URL failed: wait, unless close() comes first.
        auto w = co_await select(recv(self->stop_), recv(timeout(self->opts_.reconnect_wait)));
        (void)w;
      }
      if (!reopened) break;
    }
    self->finish();
  }

  // Handles one op from the live socket `sock`.
  task<void> dispatch(server_op& op, net::socket& sock) {
    switch (op.type) {
      case server_op::kind::msg: {
        std::shared_ptr<sub_state> sub;
        {
          std::lock_guard<std::mutex> l(mu_);
          auto it = subs_.find(op.sid);
          if (it == subs_.end()) co_return;  // unsubscribed meanwhile
          if (op.sid == inbox_sid) {
            auto r = requests_.find(op.subject);
            if (r == requests_.end()) co_return;  // its waiter gave up
            r->second.try_send(to_msg(op));
            requests_.erase(r);
            co_return;
          }
          sub = it->second;
        }
        msg m = to_msg(op);
        if (sub->when_full == slow_consumer::drop) {
          if (sub->ch.try_send(std::move(m)))
            sub->delivered.fetch_add(1, std::memory_order_relaxed);  // a statistic: no ordering needed
          else if (!sub->ch.closed())
            sub->dropped.fetch_add(1, std::memory_order_relaxed);
        } else if (co_await sub->ch.send(std::move(m))) {
          sub->delivered.fetch_add(1, std::memory_order_relaxed);
        }
        co_return;
      }
      case server_op::kind::ping: {
        std::string pong = "PONG\r\n";
        co_await sock.out.send(std::move(pong));
        co_return;
      }
      case server_op::kind::pong: {
        std::optional<chan<bool>> waiter;
        {
          std::lock_guard<std::mutex> l(mu_);
          pings_out_ = 0;
          if (!pongs_.empty()) {
            waiter = std::move(pongs_.front());
            pongs_.pop_front();
          }
        }
        if (waiter) waiter->try_send(true);
        co_return;
      }
      case server_op::kind::info: {
        auto parsed = parse_info(op.payload);
        if (parsed.ok()) {
          std::lock_guard<std::mutex> l(mu_);
          info_ = *parsed;
        }
        co_return;
      }
      case server_op::kind::err: {
        std::lock_guard<std::mutex> l(mu_);
        last_error_ = error_status(op.payload, "server");
        co_return;
      }
      case server_op::kind::ok:
        co_return;
    }
  }

  static msg to_msg(server_op& op) {
    msg m;
    m.subject = std::move(op.subject);
    m.reply = std::move(op.reply);
    m.data = std::move(op.payload);
    if (op.has_headers) {
      auto h = parse_headers(op.headers);
      if (h.ok()) {
        m.hdrs = std::move(h->fields);
        m.status = h->status;
      }
    }
    return m;
  }

  // Records why the socket broke (the connection's status stays OK while it
  // may still reconnect).
  void note_break(const absl::Status& st) {
    std::lock_guard<std::mutex> l(mu_);
    last_break_ = st;
  }

  // Called by the reader when the socket has ended: false if the connection
  // ends (closed by the user, or no reconnect wanted).
  bool begin_reconnect(const net::socket& sock) {
    std::deque<std::optional<chan<bool>>> pongs;
    bool go_on = false;
    {
      std::lock_guard<std::mutex> l(mu_);
      sock_.reset();
      pongs.swap(pongs_);
      pings_out_ = 0;
      if (user_closed_) {
        status_ = absl::CancelledError("nats: closed");
      } else if (!opts_.reconnect) {
        absl::Status why = sock.status();
        if (why.ok()) why = last_break_;
        status_ = absl::UnavailableError(absl::StrCat("nats: the connection was lost",
                                                      why.ok() ? "" : ": ", why.ok() ? "" : why.message()));
      } else {
        state_ = state::reconnecting;
        go_on = true;
      }
    }
    for (auto& p : pongs)
      if (p) p->close();  // the flush that waited on it fails
    return go_on;
  }

  bool stopping() {
    std::lock_guard<std::mutex> l(mu_);
    return user_closed_;
  }

  // Makes `o` the live socket: resubscribes and sends the buffered publishes
  // as its first frame. False if close() came first.
  bool resume(opened& o) {
    std::lock_guard<std::mutex> l(mu_);
    if (user_closed_) return false;
    std::string first;
    std::vector<std::uint64_t> sids;
    for (const auto& [sid, s] : subs_) sids.push_back(sid);
    std::sort(sids.begin(), sids.end());  // in subscription order
    for (std::uint64_t sid : sids) append_sub(first, *subs_[sid]);
    first += pending_;
    pending_.clear();
    pending_.shrink_to_fit();
    if (!first.empty() && !o.sock.out.try_send(std::move(first))) return false;  // a fresh out is empty
    info_ = o.info;
    sock_ = o.sock;
    ++sock_gen_;
    state_ = state::connected;
    ++reconnects_;
    return true;
  }

  static void append_sub(std::string& out, const sub_state& s) {
    absl::StrAppend(&out, "SUB ", s.subject, " ", s.queue, s.queue.empty() ? "" : " ", s.sid, "\r\n");
  }

  // The connection is over: close every channel and wake every waiter.
  void finish() {
    absl::flat_hash_map<std::uint64_t, std::shared_ptr<sub_state>> subs;
    absl::flat_hash_map<std::string, chan<msg>> reqs;
    std::deque<std::optional<chan<bool>>> pongs;
    {
      std::lock_guard<std::mutex> l(mu_);
      state_ = state::closed;
      if (status_.ok()) {
        status_ = absl::UnavailableError(absl::StrCat("nats: could not reconnect",
                                                      last_break_.ok() ? "" : ": ", last_break_.message()));
      }
      subs.swap(subs_);
      reqs.swap(requests_);
      pongs.swap(pongs_);
      sock_.reset();
      pending_.clear();
    }
    for (auto& [sid, s] : subs) s->ch.close();
    for (auto& [k, c] : reqs) c.close();
    for (auto& p : pongs)
      if (p) p->close();
    stop_.close();
    closed_.close();
  }

  // ---- keepalive ----

  static task<void> pinger(std::shared_ptr<conn_impl> self) {
    for (;;) {
      auto r = co_await select(recv(self->stop_), recv(timeout(self->opts_.ping_interval)));
      if (r.index() == 0) {
        // close() or the end: give the server a moment to answer our EOF,
        // then cut the socket so the reader finishes anyway.
        auto w = co_await select(recv(self->closed_), recv(timeout(std::chrono::seconds(2))));
        if (w.index() == 1) {
          std::optional<net::socket> s;
          {
            std::lock_guard<std::mutex> l(self->mu_);
            s = self->sock_;
          }
          if (s) s->close();
        }
        co_return;
      }
      std::optional<net::socket> s;
      bool stale = false;
      if (!self->ping_turn_.try_send(unit{})) continue;  // a flush is queuing its PING: skip this round
      {
        std::lock_guard<std::mutex> l(self->mu_);
        if (self->state_ != state::connected) {
          (void)self->ping_turn_.try_recv();
          continue;
        }
        s = self->sock_;
        if (self->pings_out_ >= self->opts_.max_pings_out) {
          stale = true;
        } else {
          ++self->pings_out_;
          self->pongs_.emplace_back(std::nullopt);
          std::string ping = "PING\r\n";
          if (!s->out.try_send(std::move(ping))) self->pongs_.pop_back();  // full: skip this round
        }
      }
      (void)self->ping_turn_.try_recv();
      if (stale) {
        self->note_break(absl::DeadlineExceededError("nats: stale connection (no PONG)"));
        s->close();  // the reader reconnects
      }
    }
  }

  // ---- public operations ----

  // One PING with its pongs_ entry. The entry goes in before the PING is
  // queued and only the holder of ping_turn_ queues PINGs, so pongs_ is in
  // the order of the PINGs on the wire even when a send must wait for room.
  task<absl::Status> flush(std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    auto too_late = [&] {
      return absl::DeadlineExceededError(absl::StrCat("nats: no PONG within ", limit.count(), " ms"));
    };
    {
      // Named first: no braced temporary inside the co_await (GCC 12).
      auto expired = timeout(limit);
      const unit turn{};
      auto t = co_await select(send(ping_turn_, turn), recv(expired));
      if (t.index() == 1) co_return too_late();
    }
    chan<bool> done = promise_chan<bool>();
    std::optional<net::socket> s;
    std::uint64_t gen = 0;
    bool queued = false;
    absl::Status refused;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (state_ == state::closed || user_closed_) {
        refused = absl::FailedPreconditionError("nats: the connection is closed");
      } else if (state_ != state::connected) {
        refused = absl::UnavailableError("nats: not connected (reconnecting)");
      } else {
        s = sock_;
        gen = sock_gen_;
        pongs_.emplace_back(done);
        std::string ping = "PING\r\n";
        queued = s->out.try_send(std::move(ping));
      }
    }
    if (!refused.ok()) {
      (void)ping_turn_.try_recv();
      co_return refused;
    }
    if (!queued) {
      // The send queue is full: wait for room, still holding the turn.
      std::string ping = "PING\r\n";
      auto r = co_await select(send(s->out, std::move(ping)),
                               recv(timeout(deadline - std::chrono::steady_clock::now())));
      if (r.index() == 1 || !std::get<0>(r)) {
        // Not queued: take our entry back unless a break already failed it
        // (holding the turn, ours is the last entry of this socket).
        {
          std::lock_guard<std::mutex> l(mu_);
          if (sock_gen_ == gen && !pongs_.empty() && pongs_.back() && *pongs_.back() == done) pongs_.pop_back();
        }
        (void)ping_turn_.try_recv();
        if (r.index() == 1) co_return too_late();
        co_return absl::UnavailableError("nats: the connection broke before the PING");
      }
    }
    (void)ping_turn_.try_recv();
    auto r = co_await select(recv(done), recv(timeout(deadline - std::chrono::steady_clock::now())));
    if (r.index() == 1) co_return too_late();
    if (!std::get<0>(r)) co_return absl::UnavailableError("nats: the connection broke before the PONG");
    co_return absl::OkStatus();
  }

  void close() {
    std::optional<net::socket> s;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (user_closed_) return;
      user_closed_ = true;
      s = sock_;
    }
    stop_.close();  // ends the keepalive and any reconnect wait
    // Write what is queued, then EOF: the server closes its side and the
    // reader finishes (the pinger cuts the socket if the server does not).
    if (s) s->out.close();
  }

  options opts_;
  std::vector<server_url> urls_;
  std::size_t url_index_ = 0;  // reader only: the server now (or last) connected
  std::string inbox_prefix_;
  chan<unit> stop_;    // closed by close() and finish()
  chan<unit> closed_;  // closed by finish()
  // Holding its one slot is the right to queue a PING (flush, keepalive):
  // with the pongs_ entry pushed first, PINGs and entries keep one order.
  chan<unit> ping_turn_{1};

  enum class state : std::uint8_t { connected, reconnecting, closed };
  mutable std::mutex mu_;
  state state_ = state::connected;
  bool user_closed_ = false;
  bool draining_ = false;
  std::optional<net::socket> sock_;
  std::uint64_t sock_gen_ = 0;  // +1 each time sock_ becomes a new live socket
  std::string pending_;
  absl::flat_hash_map<std::uint64_t, std::shared_ptr<sub_state>> subs_;
  std::uint64_t next_sid_ = inbox_sid + 1;
  std::deque<std::optional<chan<bool>>> pongs_;
  int pings_out_ = 0;
  absl::flat_hash_map<std::string, chan<msg>> requests_;
  std::uint64_t next_request_ = 1;
  absl::Status status_, last_error_, last_break_;
  server_info info_;
  std::uint64_t reconnects_ = 0;
};

}  // namespace detail
}  // namespace conch::nats

// ---- the public surface ----

namespace conch::nats {

using detail::conn_impl;
using detail::server_op;

std::optional<std::string_view> msg::header(std::string_view name) const {
  for (const auto& [k, v] : hdrs)
    if (k == name) return std::string_view(v);
  for (const auto& [k, v] : hdrs)
    if (absl::AsciiStrToLower(detail::av(k)) == absl::AsciiStrToLower(detail::av(name))) return std::string_view(v);
  return std::nullopt;
}

subscription::subscription(std::shared_ptr<conn_impl> c, std::shared_ptr<detail::sub_state> s)
    : messages(s->ch), c_(std::move(c)), s_(std::move(s)) {}
std::uint64_t subscription::dropped() const noexcept { return s_->dropped.load(std::memory_order_relaxed); }
std::uint64_t subscription::delivered() const noexcept { return s_->delivered.load(std::memory_order_relaxed); }
const std::string& subscription::subject() const noexcept { return s_->subject; }

task<absl::Status> subscription::unsubscribe() {
  bool was_live = false;
  {
    std::lock_guard<std::mutex> l(c_->mu_);
    was_live = c_->subs_.erase(s_->sid) > 0;
  }
  s_->ch.close();
  if (!was_live) co_return absl::OkStatus();
  // Not bufferable: while reconnecting, leaving it out of subs_ is enough.
  co_return co_await c_->write(absl::StrCat("UNSUB ", s_->sid, "\r\n"), false);
}

connection::connection(std::shared_ptr<conn_impl> c) : c_(std::move(c)) {}

task<absl::Status> connection::publish(std::string subject, std::string data, std::string reply, headers hdrs) {
  CONCH_CO_RETURN_IF_ERROR(detail::check_subject(subject, false, "subject"));
  if (!reply.empty()) CONCH_CO_RETURN_IF_ERROR(detail::check_subject(reply, false, "reply subject"));
  std::string hblock;
  if (!hdrs.empty()) {
    auto h = detail::encode_headers(hdrs);
    if (!h.ok()) co_return h.status();
    hblock = std::move(*h);
  }
  std::size_t max_payload = 0;
  bool draining = false, server_headers = true;
  {
    std::lock_guard<std::mutex> l(c_->mu_);
    max_payload = c_->info_.max_payload;
    draining = c_->draining_;
    server_headers = c_->info_.headers && c_->opts_.headers;
  }
  if (draining) co_return absl::FailedPreconditionError("nats: the connection is draining");
  if (!hblock.empty() && !server_headers)
    co_return absl::FailedPreconditionError("nats: headers are off (options::headers) or the server has none");
  if (hblock.size() + data.size() > max_payload)
    co_return absl::InvalidArgumentError(absl::StrCat("nats: a payload of ", hblock.size() + data.size(),
                                                      " bytes is over the server's max_payload of ", max_payload));
  std::string wire;
  detail::encode_pub(wire, subject, reply, hblock, data);
  co_return co_await c_->write(std::move(wire), true);
}

task<absl::StatusOr<subscription>> connection::subscribe(std::string subject, subscribe_options opts) {
  CONCH_CO_RETURN_IF_ERROR(detail::check_subject(subject, true, "subject"));
  if (!opts.queue.empty()) CONCH_CO_RETURN_IF_ERROR(detail::check_subject(opts.queue, false, "queue group"));
  if (opts.capacity == 0 || opts.capacity > (std::size_t{1} << 20))
    co_return absl::InvalidArgumentError(
        absl::StrCat("nats: subscription capacity must be 1..1048576, not ", opts.capacity));
  auto s = std::make_shared<detail::sub_state>();
  s->subject = std::move(subject);
  s->queue = std::move(opts.queue);
  s->when_full = opts.when_full;
  s->ch = chan<msg>(opts.capacity);
  std::string wire;
  {
    std::lock_guard<std::mutex> l(c_->mu_);
    if (c_->state_ == conn_impl::state::closed || c_->user_closed_ || c_->draining_)
      co_return absl::FailedPreconditionError("nats: the connection is closed");
    s->sid = c_->next_sid_++;
    c_->subs_.emplace(s->sid, s);
    conn_impl::append_sub(wire, *s);
  }
  // While reconnecting the subscription is sent with the others by resume().
  absl::Status st = co_await c_->write(std::move(wire), false);
  if (!st.ok()) {
    std::lock_guard<std::mutex> l(c_->mu_);
    c_->subs_.erase(s->sid);
    co_return st;
  }
  co_return subscription(c_, s);
}

task<absl::StatusOr<msg>> connection::request(std::string subject, std::string data,
                                              std::chrono::milliseconds limit, headers hdrs) {
  chan<msg> answer = promise_chan<msg>();
  std::string reply;
  {
    std::lock_guard<std::mutex> l(c_->mu_);
    reply = absl::StrCat(c_->inbox_prefix_, c_->next_request_++);
    c_->requests_.emplace(reply, answer);
  }
  const std::string target = subject;
  absl::Status st = co_await publish(std::move(subject), std::move(data), reply, std::move(hdrs));
  if (st.ok()) {
    auto r = co_await select(recv(answer), recv(timeout(limit)));
    if (r.index() == 0) {
      std::optional<msg> m = std::get<0>(std::move(r));
      if (!m) co_return absl::UnavailableError("nats: the connection ended before the answer");
      if (m->status == 503 && m->data.empty())
        co_return absl::UnavailableError(absl::StrCat("nats: no responders for ", target));
      co_return std::move(*m);
    }
    st = absl::DeadlineExceededError(absl::StrCat("nats: no answer from ", target, " within ", limit.count(), " ms"));
  }
  std::lock_guard<std::mutex> l(c_->mu_);
  c_->requests_.erase(reply);
  co_return st;
}

task<absl::Status> connection::flush(std::chrono::milliseconds limit) { return c_->flush(limit); }

task<absl::Status> connection::drain(std::chrono::milliseconds limit) {
  std::vector<std::shared_ptr<detail::sub_state>> subs;
  {
    std::lock_guard<std::mutex> l(c_->mu_);
    if (c_->state_ == conn_impl::state::closed || c_->user_closed_ || c_->draining_)
      co_return absl::FailedPreconditionError("nats: the connection is closed or draining");
    for (const auto& [sid, s] : c_->subs_)
      if (sid != detail::inbox_sid) subs.push_back(s);
  }
  std::string unsubs;
  for (const auto& s : subs) absl::StrAppend(&unsubs, "UNSUB ", s->sid, "\r\n");
  absl::Status st = absl::OkStatus();
  if (!unsubs.empty()) st = co_await c_->write(std::move(unsubs), false);
  {
    std::lock_guard<std::mutex> l(c_->mu_);
    c_->draining_ = true;  // no new publishes or subscriptions from here
  }
  // After the PONG the server has sent every message for those subscriptions.
  absl::Status fl = co_await c_->flush(limit);
  if (st.ok()) st = fl;
  {
    std::lock_guard<std::mutex> l(c_->mu_);
    for (const auto& s : subs) c_->subs_.erase(s->sid);
  }
  for (const auto& s : subs) s->ch.close();
  c_->close();
  co_return st;
}

void connection::close() { c_->close(); }
chan<unit> connection::closed() const { return c_->closed_; }

absl::Status connection::status() const {
  std::lock_guard<std::mutex> l(c_->mu_);
  return c_->state_ == conn_impl::state::closed ? c_->status_ : absl::OkStatus();
}
absl::Status connection::last_error() const {
  std::lock_guard<std::mutex> l(c_->mu_);
  return c_->last_error_;
}
std::uint64_t connection::reconnects() const {
  std::lock_guard<std::mutex> l(c_->mu_);
  return c_->reconnects_;
}
bool connection::connected() const {
  std::lock_guard<std::mutex> l(c_->mu_);
  return c_->state_ == conn_impl::state::connected && !c_->user_closed_;
}
server_info connection::info() const {
  std::lock_guard<std::mutex> l(c_->mu_);
  return c_->info_;
}

task<absl::StatusOr<connection>> connect(std::string url, options opts) {
  auto urls = detail::parse_urls(url);
  if (!urls.ok()) co_return urls.status();
  if (opts.connect_timeout.count() <= 0) opts.connect_timeout = std::chrono::seconds(2);
  auto c = std::make_shared<conn_impl>(std::move(opts), std::move(*urls));
  absl::Status last;
  for (std::size_t i = 0; i < c->urls_.size(); ++i) {
    auto o = co_await c->open(c->urls_[i]);
    if (!o.ok()) {
      last = o.status();
      // Credentials or TLS will not get better on the next server.
      if (last.code() == absl::StatusCode::kPermissionDenied) break;
      continue;
    }
    {
      std::lock_guard<std::mutex> l(c->mu_);
      c->url_index_ = i;
      c->info_ = o->info;
      // The inbox for request(): one wildcard subscription for all requests.
      auto inbox = std::make_shared<detail::sub_state>();
      inbox->sid = detail::inbox_sid;
      inbox->subject = c->inbox_prefix_ + "*";
      c->subs_.emplace(inbox->sid, inbox);
      std::string sub;
      conn_impl::append_sub(sub, *inbox);
      o->sock.out.try_send(std::move(sub));  // the first frame of a fresh socket: room is certain
      c->sock_ = o->sock;
      c->state_ = conn_impl::state::connected;
    }
    // Pinned to this loop, where the socket's I/O runs: a go() block may be
    // taken by an idle loop, and then every message crosses threads twice
    // (a sequential request/reply's latency was mostly those wake-ups).
    conch::go_on(placement::here(), conn_impl::run(c, std::move(*o)));
    conch::go_on(placement::here(), conn_impl::pinger(c));
    co_return connection(c);
  }
  co_return last;
}

}  // namespace conch::nats
