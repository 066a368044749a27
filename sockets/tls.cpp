// sockets/tls.cpp
// TLS sessions: OpenSSL over memory BIOs between a transport socket's ciphertext and the user's plaintext.
//
// A session has two coroutines on the transport's home loop (started with
// start_on, never stolen):
//   reader: transport `in` (ciphertext) -> rbio -> SSL_do_handshake /
//           SSL_read -> frame decoder -> session `in`; whatever OpenSSL
//           writes meanwhile (handshake flights, alerts) -> transport `out`;
//   writer: waits for the handshake, then session `out` -> frame encoder ->
//           SSL_write -> wbio -> transport `out`; when `out` closes it sends
//           close_notify and closes the transport's `out` (flush, half-close).
//
// Invariants:
//  - ssl_, the BIOs, dec_, enc_ and every non-atomic field without a lock
//    note belong to the home loop; OpenSSL calls never run elsewhere, and
//    never park: both coroutines only park between OpenSSL calls, so the
//    two never interleave inside one.
//  - What OpenSSL writes to wbio is taken out whole and sent as one string
//    before the next OpenSSL call of the same coroutine; transport `out` is
//    a FIFO channel, so records reach the peer in the order produced.
//  - handshaken_ closes exactly once (handshake done or failed), after hs_ok_
//    is final; the writer and connect() read hs_ok_ only after it closed.
//  - status_ is written once (ended_), before the session's `in` closes.
//  - Backpressure: the reader parks on the session's `in`; meanwhile it does
//    not take from the transport's `in`, which fills, and the transport
//    stops reading the socket.
//  - done_ closes after both coroutines ended and the transport is done; a
//    frame destroyed at runtime teardown closes every session channel.
//  - start_tls (net::start_tls) checks "raw framing, nothing unread, not
//    closed" and starts the session in one step on the transport's home
//    loop (begin_upgrade; posted there when awaited elsewhere): receive
//    completions run on that thread too, so no byte slips between the check
//    and the session taking the transport's `in`. Frames still queued on the
//    transport's `out` go before the ClientHello (`out` is FIFO).
// Lock order: mu_ is a leaf (channels are closed after releasing it).
#include "sockets/tls.hpp"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include "conch/chan/go.hpp"
#include "conch/chan/select.hpp"
#include "conch/core/status.hpp"
#include "sockets/address_util.hpp"
#include "sockets/frame_codec.hpp"
#include "sockets/reactor.hpp"
#include "sockets/stream.hpp"

namespace conch::net::detail {

// ---- contexts ----

class tls_context {
 public:
  explicit tls_context(SSL_CTX* ctx) noexcept : ctx_(ctx) {}
  ~tls_context() { SSL_CTX_free(ctx_); }
  tls_context(const tls_context&) = delete;
  tls_context& operator=(const tls_context&) = delete;
  SSL_CTX* get() const noexcept { return ctx_; }

 private:
  SSL_CTX* ctx_;
};

namespace {

// Plaintext is handed to SSL_write in pieces of at most one TLS record.
constexpr std::size_t kRecord = 16u << 10;
// The writer sends what OpenSSL produced once this much has piled up.
constexpr std::size_t kFlushBytes = 256u << 10;

// OpenSSL's reason for the last failure on this thread ("" if none), and clears the queue.
std::string openssl_reason() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    // "error:0A000086:SSL routines::certificate verify failed": keep the words.
    const char* words = buf;
    for (int colons = 0; *words != '\0' && colons < 4; ++words)
      if (*words == ':') ++colons;
    if (*words == '\0') words = buf;
    if (!out.empty()) out += "; ";
    out += words;
  }
  return out;
}

absl::Status file_error(std::string_view what, const char* kind, const std::string& file) {
  std::string reason = openssl_reason();
  return absl::InvalidArgumentError(std::string(what) + ": TLS " + kind + " '" + file + "': " +
                                    (reason.empty() ? "cannot be used" : reason));
}

}  // namespace

absl::Status load_tls(options& o, bool server, std::string_view what) {
  if (!o.tls || o.tls->context) return absl::OkStatus();
  tls_options& t = *o.tls;
  if (server && (t.cert_file.empty() || t.key_file.empty()))
    return absl::InvalidArgumentError(std::string(what) + ": a TLS server needs cert_file and key_file");
  if (t.cert_file.empty() != t.key_file.empty())
    return absl::InvalidArgumentError(std::string(what) + ": TLS cert_file and key_file go together");
  ERR_clear_error();
  SSL_CTX* raw = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (raw == nullptr) return absl::ResourceExhaustedError(std::string(what) + ": SSL_CTX_new: " + openssl_reason());
  auto ctx = std::make_shared<tls_context>(raw);
  SSL_CTX_set_min_proto_version(raw, TLS1_2_VERSION);
  // Memory BIOs: a record is written whole; keep our buffers movable.
  SSL_CTX_set_mode(raw, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (server) SSL_CTX_set_num_tickets(raw, 0);  // no resumption: no tickets to send
  if (!t.cert_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(raw, t.cert_file.c_str()) != 1)
      return file_error(what, "certificate file", t.cert_file);
    if (SSL_CTX_use_PrivateKey_file(raw, t.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
      return file_error(what, "key file", t.key_file);
    if (SSL_CTX_check_private_key(raw) != 1) return file_error(what, "key file (does not match the certificate)", t.key_file);
  }
  if (!t.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(raw, t.ca_file.c_str(), nullptr) != 1)
      return file_error(what, "CA file", t.ca_file);
  } else if (!server && t.verify) {
    SSL_CTX_set_default_verify_paths(raw);  // the system's CAs
  }
  if (t.verify && (!server || !t.ca_file.empty())) {
    // Client: the server must prove itself. Server with a CA file: clients must too.
    SSL_CTX_set_verify(raw, server ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER, nullptr);
  }
  t.context = std::move(ctx);
  return absl::OkStatus();
}

options transport_options(const options& o) {
  options t;
  t.frame = framing::raw();
  t.in_capacity = 4;  // ciphertext chunks; the session's `in` is the real buffer
  t.out_capacity = 4;
  t.max_frame = 64u << 10;
  t.backlog = o.backlog;
  t.unix_mode = o.unix_mode;
  t.connect_timeout = o.connect_timeout;
  return t;
}

// ---- the session ----

class tls_conn : public std::enable_shared_from_this<tls_conn> {
 public:
  tls_conn(socket transport, const options& o, bool server)
      : transport_(std::move(transport)),
        in_(o.in_capacity),
        out_(o.out_capacity),
        dec_(o.frame, o.max_frame),
        enc_(o.frame),
        ctx_(o.tls->context),
        server_(server) {}
  ~tls_conn() {
    if (ssl_ != nullptr) SSL_free(ssl_);  // frees the BIOs too
  }

  // Creates ssl_ and its BIOs; false when out of memory (status set).
  bool init();

  absl::Status status() const {
    std::lock_guard lk(mu_);
    return status_;
  }
  void set_status(absl::Status st) {
    std::lock_guard lk(mu_);
    if (ended_) return;
    status_ = std::move(st);
    ended_ = true;
  }
  void close() {
    set_status(absl::CancelledError("socket closed by close()"));
    closing_.store(true, std::memory_order_release);  // release: pairs with the coroutines' acquire
    in_.close();
    out_.close();
    transport_.close();
  }
  // Closes every session channel (teardown, or a session that never started).
  void close_all() {
    in_.close();
    out_.close();
    handshaken_.close();
    done_.close();
  }

  // Everything OpenSSL wrote to wbio, as one string ("" if nothing).
  std::string take_output() {
    std::string s;
    std::size_t n = BIO_ctrl_pending(wbio_);
    if (n == 0) return s;
    s.resize(n);
    BIO_read(wbio_, s.data(), static_cast<int>(n));
    return s;
  }
  // "TLS handshake with <peer> failed: <why>".
  absl::Status handshake_error(const std::string& why) const {
    return absl::UnavailableError("TLS handshake with " + peer_text() + " failed: " + why);
  }
  std::string peer_text() const {
    std::string p = transport_.peer().to_string();
    return p.empty() ? std::string("the peer") : p;
  }
  // OpenSSL's reason for a failed call that returned `ret`, with the
  // certificate check's verdict when that is what failed.
  std::string reason(int ret) {
    int e = SSL_get_error(ssl_, ret);
    std::string r = openssl_reason();
    long v = SSL_get_verify_result(ssl_);
    if (v != X509_V_OK) r += std::string(r.empty() ? "" : " (") + X509_verify_cert_error_string(v) + (r.empty() ? "" : ")");
    if (r.empty()) r = e == SSL_ERROR_SYSCALL ? "the connection ended during the handshake" : "error " + std::to_string(e);
    return r;
  }

  socket transport_;
  chan<std::string> in_;
  chan<std::string> out_;
  chan<unit> done_;
  chan<unit> handshaken_;
  frame_decoder dec_;
  frame_encoder enc_;
  std::shared_ptr<const tls_context> ctx_;
  SSL* ssl_ = nullptr;
  BIO* rbio_ = nullptr;  // network -> OpenSSL
  BIO* wbio_ = nullptr;  // OpenSSL -> network
  bool server_;
  bool hs_ok_ = false;       // final once handshaken_ is closed
  bool write_end_ = false;   // the writer drops what is left on `out`
  int running_ = 2;          // coroutines not yet ended
  std::atomic<bool> closing_{false};
  std::string plain_;        // the writer's plaintext batch
  char buf_[kRecord];        // the reader's SSL_read buffer

 private:
  mutable std::mutex mu_;
  absl::Status status_;  // guarded by mu_
  bool ended_ = false;   // guarded by mu_
};

bool tls_conn::init() {
  ssl_ = SSL_new(ctx_->get());
  rbio_ = BIO_new(BIO_s_mem());
  wbio_ = BIO_new(BIO_s_mem());
  if (ssl_ == nullptr || rbio_ == nullptr || wbio_ == nullptr) {
    if (rbio_ != nullptr) BIO_free(rbio_);
    if (wbio_ != nullptr) BIO_free(wbio_);
    rbio_ = wbio_ = nullptr;
    set_status(absl::ResourceExhaustedError("TLS: out of memory"));
    return false;
  }
  // An empty rbio means "wait for more" (WANT_READ), not EOF.
  BIO_set_mem_eof_return(rbio_, -1);
  SSL_set_bio(ssl_, rbio_, wbio_);
  if (server_) {
    SSL_set_accept_state(ssl_);
    return true;
  }
  SSL_set_connect_state(ssl_);
  return true;
}

namespace {

// Runs on a coroutine frame's destruction: a session whose coroutine never
// finished normally (runtime teardown) leaves no channel open.
struct frame_guard {
  tls_conn* t;
  bool finished = false;
  ~frame_guard() {
    if (!finished) t->close_all();
  }
};

// One handshake step: 1 done, 0 needs more input, -1 failed (status set).
int handshake_step(tls_conn* t) {
  ERR_clear_error();
  int r = SSL_do_handshake(t->ssl_);
  if (r == 1) return 1;
  int e = SSL_get_error(t->ssl_, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
  t->set_status(t->handshake_error(t->reason(r)));
  return -1;
}

root tls_reader(std::shared_ptr<tls_conn> t) {
  frame_guard guard{t.get()};
  bool hs_done = false;
  bool failed = false;
  bool peer_closed = false;  // close_notify received
  bool in_closed = false;    // the user closed the session's `in`
  if (!t->server_) handshake_step(t.get());  // the ClientHello
  {
    std::string hello = t->take_output();
    if (!hello.empty()) co_await t->transport_.out.send(std::move(hello));
  }
  std::vector<std::string> frames;
  for (;;) {
    std::optional<std::string> chunk = co_await t->transport_.in.recv();
    if (!chunk) break;
    BIO_write(t->rbio_, chunk->data(), static_cast<int>(chunk->size()));
    if (!hs_done) {
      int r = handshake_step(t.get());
      if (r != 0) {
        // Done or failed: either way the writer and connect() may look now.
        hs_done = r > 0;
        t->hs_ok_ = hs_done;
        t->handshaken_.close();
        failed = r < 0;
      }
    }
    if (hs_done && !failed) {
      // Every record the chunk completed, cut into frames.
      for (;;) {
        ERR_clear_error();
        int n = SSL_read(t->ssl_, t->buf_, static_cast<int>(sizeof t->buf_));
        if (n > 0) {
          absl::Status st = t->dec_.feed(t->buf_, static_cast<std::size_t>(n),
                                         [&frames](std::string&& f) { frames.push_back(std::move(f)); });
          if (!st.ok()) {
            t->set_status(std::move(st));
            failed = true;
            break;
          }
          continue;
        }
        int e = SSL_get_error(t->ssl_, n);
        if (e == SSL_ERROR_WANT_READ) break;
        if (e == SSL_ERROR_ZERO_RETURN) {
          peer_closed = true;
          break;
        }
        t->set_status(absl::DataLossError("TLS from " + t->peer_text() + ": " + t->reason(n)));
        failed = true;
        break;
      }
    }
    // Handshake flights, alerts, replies to post-handshake messages.
    std::string reply = t->take_output();
    if (!reply.empty()) co_await t->transport_.out.send(std::move(reply));
    for (std::string& f : frames) {
      if (!co_await t->in_.send(std::move(f))) {
        in_closed = true;
        break;
      }
    }
    frames.clear();
    if (failed || peer_closed || in_closed) break;
  }
  if (!hs_done && !failed) {
    // The transport ended first.
    absl::Status st = t->transport_.status();
    t->set_status(t->handshake_error(st.ok() ? "the peer closed the connection" : std::string(st.message())));
    failed = true;
    t->handshaken_.close();
  }
  if (failed) {
    // Nothing more goes either way; the alert (if any) was sent above.
    t->write_end_ = true;
    t->out_.close();
    t->transport_.out.close();
    t->transport_.in.close();
  } else if (peer_closed || in_closed) {
    if (peer_closed) t->set_status(t->dec_.finish([&frames](std::string&& f) { frames.push_back(std::move(f)); }));
    t->transport_.in.close();  // no more reading
  } else {
    // EOF without close_notify: the transport's status (OK for a clean EOF).
    absl::Status st = t->transport_.status();
    if (st.ok()) st = t->dec_.finish([&frames](std::string&& f) { frames.push_back(std::move(f)); });
    t->set_status(std::move(st));
  }
  for (std::string& f : frames)
    if (!co_await t->in_.send(std::move(f))) break;
  t->set_status(absl::OkStatus());  // no-op when set above
  t->in_.close();
  guard.finished = true;
  if (--t->running_ == 0) {
    co_await t->transport_.done().recv();
    t->done_.close();
  }
}

root tls_writer(std::shared_ptr<tls_conn> t) {
  frame_guard guard{t.get()};
  co_await t->handshaken_.recv();  // closed when the handshake is over
  if (t->hs_ok_) {
    for (;;) {
      std::optional<std::string> v = co_await t->out_.recv();
      if (!v) break;  // closed and drained
      if (t->write_end_ || t->closing_.load(std::memory_order_acquire)) continue;  // dropped
      t->enc_.add(std::move(*v));
      while (!t->enc_.full() && t->enc_.bytes() < kFlushBytes) {
        std::optional<std::string> w = t->out_.try_recv();
        if (!w) break;
        t->enc_.add(std::move(*w));
      }
      t->enc_.build();
      // Small frames are gathered into records; a large one goes in record-sized pieces.
      bool ok = true;
      std::string pending;
      for (std::size_t i = 0; ok && i < t->enc_.iov_count(); ++i) {
        const iovec& v2 = t->enc_.iov()[i];
        const char* p = static_cast<const char*>(v2.iov_base);
        std::size_t n = v2.iov_len;
        while (ok && n > 0) {
          std::size_t room = kRecord - t->plain_.size();
          std::size_t k = n < room ? n : room;
          t->plain_.append(p, k);
          p += k;
          n -= k;
          if (t->plain_.size() == kRecord) {
            ERR_clear_error();
            ok = SSL_write(t->ssl_, t->plain_.data(), static_cast<int>(t->plain_.size())) > 0;
            t->plain_.clear();
            if (ok && BIO_ctrl_pending(t->wbio_) >= kFlushBytes) {
              std::string c = t->take_output();
              ok = co_await t->transport_.out.send(std::move(c));
            }
          }
        }
      }
      if (ok && !t->plain_.empty()) {
        ERR_clear_error();
        ok = SSL_write(t->ssl_, t->plain_.data(), static_cast<int>(t->plain_.size())) > 0;
        t->plain_.clear();
      }
      t->enc_.clear();
      if (ok) {
        std::string c = t->take_output();
        if (!c.empty()) ok = co_await t->transport_.out.send(std::move(c));
      }
      if (!ok) {
        // The transport failed (its status says why) or OpenSSL refused: stop writing.
        std::string why = openssl_reason();
        if (!why.empty()) t->set_status(absl::DataLossError("TLS to " + t->peer_text() + ": " + why));
        t->write_end_ = true;
      }
    }
    if (!t->write_end_ && !t->closing_.load(std::memory_order_acquire)) {
      // Everything queued is written: say goodbye (close_notify), then half-close.
      ERR_clear_error();
      SSL_shutdown(t->ssl_);
      std::string bye = t->take_output();
      if (!bye.empty()) co_await t->transport_.out.send(std::move(bye));
    }
  }
  t->write_end_ = true;
  t->out_.close();
  t->transport_.out.close();  // the transport flushes, then shuts its write side
  guard.finished = true;
  if (--t->running_ == 0) {
    co_await t->transport_.done().recv();
    t->done_.close();
  }
}

// The host part of connect()'s address text ("" for a Unix address).
std::string host_of(std::string_view text) {
  absl::StatusOr<address_spec> spec = parse_spec(text, true);
  if (!spec.ok() || spec->k != address_spec::kind::inet) return {};
  return spec->host;
}

}  // namespace

std::shared_ptr<tls_conn> start_tls(std::shared_ptr<stream_conn> c, const options& o, bool server,
                                     std::string_view host) {
  auto t = std::make_shared<tls_conn>(socket(std::move(c)), o, server);
  if (!t->init()) {
    t->transport_.close();
    t->close_all();
    return t;
  }
  if (!server) {
    const tls_options& opt = *o.tls;
    std::string name = opt.server_name.empty() ? host_of(host) : opt.server_name;
    unsigned char ip[16];
    bool is_ip = !name.empty() && (inet_pton(AF_INET, name.c_str(), ip) == 1 || inet_pton(AF_INET6, name.c_str(), ip) == 1);
    if (!name.empty() && !is_ip) SSL_set_tlsext_host_name(t->ssl_, name.c_str());  // SNI carries names only
    if (opt.verify && !name.empty()) {
      X509_VERIFY_PARAM* param = SSL_get0_param(t->ssl_);
      if (is_ip) {
        X509_VERIFY_PARAM_set1_ip_asc(param, name.c_str());
      } else {
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        X509_VERIFY_PARAM_set1_host(param, name.c_str(), name.size());
      }
    }
  }
  loop* home = conch::detail::current_loop();
  start_on(home, tls_reader(t));
  start_on(home, tls_writer(t));
  return t;
}

namespace {

// What start_tls's step on the home loop hands back to the awaiting task.
struct upgrade_result {
  absl::Status st;
  std::shared_ptr<tls_conn> t;
};

// start_tls's checks and the session's start, on c's home loop (there only
// can pending_ be read and a consistent "nothing unread" be seen: every
// receive completion is handled on that thread too).
upgrade_result begin_upgrade(std::shared_ptr<stream_conn> c, const options& o, bool server) {
  const std::string who = "start_tls with " + c->peer().to_string();
  if (c->closing()) return {absl::FailedPreconditionError(who + ": the socket is closed"), nullptr};
  if (!c->raw())
    return {absl::FailedPreconditionError(who + ": the plain socket must use framing::raw() (its bytes "
                                          "become ciphertext; opts.frame frames the TLS socket)"),
            nullptr};
  if (c->unread())
    return {absl::FailedPreconditionError(who + ": bytes received in plain text are still unread on `in`"),
            nullptr};
  // The peer's IP address for the name check when no server_name is set.
  std::string host = c->peer().to_string();
  std::shared_ptr<tls_conn> t = start_tls(std::move(c), o, server, host);
  return {absl::OkStatus(), std::move(t)};
}

}  // namespace

socket accepted_socket(std::shared_ptr<stream_conn> c, const options& o) {
  if (!o.tls) return socket(std::move(c));
  return socket(start_tls(std::move(c), o, true, {}));
}

chan<unit> tls_handshaken(const tls_conn& t) { return t.handshaken_; }
absl::Status tls_handshake_status(const tls_conn& t) {
  if (t.hs_ok_) return absl::OkStatus();
  absl::Status st = t.status();
  return st.ok() ? absl::UnavailableError("TLS handshake failed") : st;
}
address tls_local(const tls_conn& t) { return t.transport_.local(); }
address tls_peer(const tls_conn& t) { return t.transport_.peer(); }
absl::Status tls_status(const tls_conn& t) { return t.status(); }
chan<unit> tls_done(const tls_conn& t) { return t.done_; }
void tls_close(tls_conn& t) { t.close(); }

}  // namespace conch::net::detail

namespace conch::net {

socket::socket(std::shared_ptr<detail::tls_conn> t) : in(t->in_), out(t->out_), t_(std::move(t)) {}

task<absl::StatusOr<socket>> start_tls(socket plain, options opts, tls_role role) {
  const bool server = role == tls_role::server;
  if (!opts.tls) co_return absl::InvalidArgumentError("start_tls: options::tls is not set");
  if (plain.t_) co_return absl::FailedPreconditionError("start_tls: the socket already speaks TLS");
  std::shared_ptr<detail::stream_conn> c = plain.c_;
  const std::string peer = c->peer().to_string();
  CONCH_CO_RETURN_IF_ERROR(detail::check_options(opts, "start_tls"));
  CONCH_CO_RETURN_IF_ERROR(detail::load_tls(opts, server, "start_tls with " + peer));
  detail::upgrade_result up;
  detail::loop* home = c->home();
  if (conch::detail::current_loop() == home) {
    up = detail::begin_upgrade(std::move(c), opts, server);
  } else {
    // Another thread: run the step on the socket's loop and wait for it.
    auto result = std::make_shared<detail::upgrade_result>();
    chan<unit> ready;
    detail::post(home, [c = std::move(c), opts, server, result, ready]() mutable {
      *result = detail::begin_upgrade(std::move(c), opts, server);
      ready.close();  // the channel's lock orders *result before the waiter's read
    });
    co_await ready.recv();
    up = std::move(*result);
  }
  if (!up.st.ok()) co_return up.st;
  std::shared_ptr<detail::tls_conn> t = std::move(up.t);
  chan<unit> handshaken = detail::tls_handshaken(*t);
  if (opts.connect_timeout.count() > 0) {
    chan<unit> limit = timeout(opts.connect_timeout);
    auto r = co_await select(recv(handshaken), recv(limit));
    if (r.index() == 1) {
      // No answer in time: end the session and its connection (its reader
      // then ends the handshake and the coroutines finish by themselves).
      detail::tls_close(*t);
      co_return absl::DeadlineExceededError("start_tls with " + peer + ": no TLS handshake within " +
                                            std::to_string(opts.connect_timeout.count()) + " ms");
    }
  } else {
    co_await handshaken.recv();
  }
  absl::Status hs = detail::tls_handshake_status(*t);
  if (!hs.ok()) {
    if (plain.status().code() == absl::StatusCode::kCancelled)
      co_return absl::CancelledError("start_tls with " + peer + ": the socket was closed during the handshake");
    co_return hs;
  }
  co_return socket(std::move(t));
}

}  // namespace conch::net
