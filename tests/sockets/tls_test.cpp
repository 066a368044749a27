// tests/sockets/tls_test.cpp
// TLS sockets (options::tls): round trips with ourselves, openssl s_client/s_server and socat; bad certificates.
// Certificates are made at test time with Debian's `openssl` command; a test
// skips with a message when a tool is missing.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "tests/sockets/net_test_support.hpp"
#include "tests/support/test_cert.hpp"

namespace net = conch::net;
using namespace conch::net::test;
using conch::chan;
using conch::task;
using conch::test::recv_within;

namespace {

bool have(const char* tool) {
  std::string cmd = std::string("command -v ") + tool + " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

// Runs a shell command (with a hard time limit); returns its stdout and sets *rc to its exit status.
std::string run_capture(const std::string& cmd, int* rc = nullptr) {
  std::string out;
  FILE* p = ::popen(("timeout 20 " + cmd).c_str(), "r");
  if (p == nullptr) return out;
  char buf[65536];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int st = ::pclose(p);
  if (rc != nullptr) *rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

// A throwaway self-signed certificate (its own CA) for localhost and 127.0.0.1.
using cert = conch::test::test_cert;
cert make_cert(const std::string& name) { return conch::test::make_test_cert(name); }
std::string temp_dir() { return conch::test::test_cert_dir(); }

void require_openssl() {
  if (!have("openssl")) conch::test::skip("the openssl command is not installed (apt-get install openssl)");
}

net::options server_opts(const cert& c, net::framing f) {
  net::options o{.frame = f};
  o.tls = net::tls_options{.cert_file = c.crt, .key_file = c.key};
  return o;
}

net::options client_opts(const std::string& ca, net::framing f) {
  net::options o{.frame = f};
  o.tls = net::tls_options{.ca_file = ca};
  return o;
}

std::string big_payload(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 13) % 26);
  return s;
}

// Receives raw chunks until `n` bytes or the end.
task<std::string> read_bytes(net::socket s, std::size_t n) {
  std::string got;
  while (got.size() < n) {
    auto r = co_await recv_within(s.in, 10s);
    if (!r.has_value() || !r->has_value()) break;
    got += **r;
  }
  co_return got;
}

// Connects to `addr`, retrying while a foreign server starts.
task<absl::StatusOr<net::socket>> connect_retry(std::string addr, net::options o) {
  absl::StatusOr<net::socket> c = absl::UnavailableError("not yet");
  const auto give_up = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < give_up) {
    c = co_await net::connect(addr, o);
    if (c.ok() || c.status().code() != absl::StatusCode::kUnavailable ||
        c.status().message().find("TLS") != std::string_view::npos)
      break;  // connected, or an answer other than "nobody listens yet"
    co_await conch::sleep(20ms);
  }
  co_return c;
}

// A free loopback port (bound and released at once) for a foreign server.
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

}  // namespace

TEST_CASE("TLS between our server and our client: lines and 1 MB both ways", "[sockets][tls]") {
  require_openssl();
  cert self = make_cert("self");
  conch::run([](cert c) -> task<void> {
    auto lines = net::listen("127.0.0.1:0", server_opts(c, net::framing::lines()));
    REQUIRE(lines.ok());
    conch::go(echo_server(*lines));
    auto s = co_await net::connect(lines->local().to_string(), client_opts(c.crt, net::framing::lines()));
    REQUIRE(s.ok());
    for (std::string w : {"hello", "", "w\xc3\xb6rld"}) co_await s->out.send(w);
    for (std::string w : {"hello", "", "w\xc3\xb6rld"}) {
      auto r = co_await recv_within(s->in);
      REQUIRE(r.has_value());
      CHECK(r->value_or("<closed>") == w);
    }
    s->out.close();  // close_notify, half-close: the echo server closes too
    auto end = co_await recv_within(s->in);
    REQUIRE(end.has_value());
    CHECK(!end->has_value());
    CHECK(s->status().ok());

    auto raw = net::listen("127.0.0.1:0", server_opts(c, net::framing::raw()));
    REQUIRE(raw.ok());
    conch::go(echo_server(*raw));
    auto b = co_await net::connect("localhost:" + std::to_string(raw->local().port()),
                                   client_opts(c.crt, net::framing::raw()));
    REQUIRE(b.ok());
    const std::string payload = big_payload(1u << 20);
    co_await b->out.send(payload);
    b->out.close();
    std::string back = co_await read_bytes(*b, payload.size() + 1);
    CHECK(back.size() == payload.size());
    CHECK(back == payload);
    CHECK(b->status().ok());
    auto done = co_await recv_within(b->done());
    CHECK(done.has_value());
    lines->close();
    raw->close();
  }(self), {.threads = 2});
}

TEST_CASE("openssl s_client and socat talk to our TLS server", "[sockets][tls][interop]") {
  require_openssl();
  cert srv_cert = make_cert("srv");
  conch::run([](cert c) -> task<void> {
    // Lines: the handler answers two lines, then closes (close_notify) and s_client exits.
    auto srv = net::listen("127.0.0.1:0", server_opts(c, net::framing::lines()));
    REQUIRE(srv.ok());
    chan<absl::Status> statuses(4);
    auto handler = [statuses](net::socket s) -> task<void> {
      for (int i = 0; i < 2; ++i) {
        auto line = co_await s.in.recv();
        if (!line) break;
        std::string reply = "got " + *line;
        co_await s.out.send(reply);
      }
      s.out.close();
      co_await s.done().recv();
      statuses.try_send(s.status());
    };
    auto serve = [](net::server listening, decltype(handler) h) -> task<void> {
      while (auto s = co_await listening.connections.recv()) conch::go(h, std::move(*s));
    };
    conch::go(serve, *srv, handler);
    std::string cmd = "sh -c \"printf 'one\\ntwo\\n' | openssl s_client -quiet -verify_return_error -CAfile " + c.crt +
                      " -connect " + srv->local().to_string() + " 2>/dev/null\"";
    auto job = [cmd] { return run_capture(cmd); };
    auto out = co_await conch::thread(std::move(job)).recv();
    REQUIRE(out.has_value());
    CHECK(*out == "got one\ngot two\n");
    auto st = co_await recv_within(statuses);
    REQUIRE(st.has_value());
    CHECK(st->value_or(absl::UnknownError("none")).ok());
    srv->close();

    // 1 MB through socat's OPENSSL client (verifying us), echoed by a raw server.
    if (!have("socat")) co_return;
    auto raw = net::listen("127.0.0.1:0", server_opts(c, net::framing::raw()));
    REQUIRE(raw.ok());
    conch::go(echo_server(*raw));
    std::string in_file = temp_dir() + "/payload";
    const std::string payload = big_payload(1u << 20);
    std::ofstream(in_file, std::ios::binary) << payload;
    std::string scmd = "socat -t 30 - OPENSSL:" + raw->local().to_string() + ",cafile=" + c.crt + " < " + in_file;
    auto sjob = [scmd] { return run_capture(scmd); };
    auto echoed = co_await conch::thread(std::move(sjob)).recv();
    REQUIRE(echoed.has_value());
    CHECK(echoed->size() == payload.size());
    CHECK(*echoed == payload);
    raw->close();
  }(srv_cert), {.threads = 1});
}

TEST_CASE("our TLS client talks to openssl s_server and to socat OPENSSL-LISTEN", "[sockets][tls][interop]") {
  require_openssl();
  cert peer_cert = make_cert("peer");
  conch::run([](cert c) -> task<void> {
    // s_server -rev answers every line reversed; -naccept 1 ends it after us.
    int port = free_port();
    std::string cmd = "openssl s_server -quiet -rev -naccept 1 -accept 127.0.0.1:" + std::to_string(port) +
                      " -cert " + c.crt + " -key " + c.key + " >/dev/null 2>&1";
    auto server_done = conch::thread([cmd] { return run_capture(cmd); });
    auto s = co_await connect_retry("127.0.0.1:" + std::to_string(port), client_opts(c.crt, net::framing::lines()));
    REQUIRE(s.ok());
    co_await s->out.send(std::string("hello tls"));
    auto r = co_await recv_within(s->in, 10s);
    REQUIRE(r.has_value());
    CHECK(r->value_or("<closed>") == "slt olleh");
    s->close();
    co_await server_done.recv();

    // 1 MB each way through socat's TLS server running cat.
    if (!have("socat")) co_return;
    port = free_port();
    std::string scmd = "socat -t 30 OPENSSL-LISTEN:" + std::to_string(port) + ",bind=127.0.0.1,reuseaddr,cert=" +
                       c.crt + ",key=" + c.key + ",verify=0 EXEC:cat";
    auto socat_done = conch::thread([scmd] { return run_capture(scmd); });
    auto b = co_await connect_retry("127.0.0.1:" + std::to_string(port), client_opts(c.crt, net::framing::raw()));
    REQUIRE(b.ok());
    const std::string payload = big_payload(1u << 20);
    co_await b->out.send(payload);
    b->out.close();  // close_notify: cat sees EOF, socat closes after the echo
    std::string back = co_await read_bytes(*b, payload.size() + 1);
    CHECK(back.size() == payload.size());
    CHECK(back == payload);
    co_await socat_done.recv();
  }(peer_cert), {.threads = 1});
}

TEST_CASE("an untrusted or wrong certificate fails the handshake cleanly on both sides", "[sockets][tls][errors]") {
  require_openssl();
  cert good_cert = make_cert("good");
  cert other_cert = make_cert("other");
  conch::run([](cert good, cert other) -> task<void> {
    auto srv = net::listen("127.0.0.1:0", server_opts(good, net::framing::lines()));
    REQUIRE(srv.ok());
    std::string addr = srv->local().to_string();

    // A CA that did not sign the server's certificate.
    auto bad = co_await net::connect(addr, client_opts(other.crt, net::framing::lines()));
    REQUIRE(!bad.ok());
    CHECK(bad.status().code() == absl::StatusCode::kUnavailable);
    CHECK(bad.status().message().find("TLS handshake with " + addr + " failed") != std::string_view::npos);
    CHECK(bad.status().message().find("certificate verify failed") != std::string_view::npos);
    // The server's side of that connection ends with a status naming the handshake and the client.
    auto accepted = co_await recv_within(srv->connections);
    REQUIRE(accepted.has_value());
    REQUIRE(accepted->has_value());
    net::socket s = **accepted;
    auto end = co_await recv_within(s.in);
    REQUIRE(end.has_value());
    CHECK(!end->has_value());
    CHECK(s.status().code() == absl::StatusCode::kUnavailable);
    CHECK(s.status().message().find("TLS handshake with 127.0.0.1:") != std::string_view::npos);

    // The right CA, but a name the certificate does not carry.
    net::options wrong_name = client_opts(good.crt, net::framing::lines());
    wrong_name.tls->server_name = "wrong.example";
    auto named = co_await net::connect(addr, wrong_name);
    REQUIRE(!named.ok());
    CHECK(named.status().message().find("hostname mismatch") != std::string_view::npos);
    co_await recv_within(srv->connections);

    // verify = false accepts any certificate.
    net::options lax = client_opts(other.crt, net::framing::lines());
    lax.tls->verify = false;
    auto ok = co_await net::connect(addr, lax);
    CHECK(ok.ok());
    auto lax_side = co_await recv_within(srv->connections);
    REQUIRE(lax_side.has_value());
    if (ok.ok()) ok->close();

    // s_client with the wrong CA gives up; so does a client that speaks no TLS.
    // (On the blocking pool: this loop must keep serving the handshake.)
    std::string cmd = "sh -c \"echo hi | openssl s_client -quiet -verify_return_error -CAfile " + other.crt +
                      " -connect " + addr + " >/dev/null 2>&1\"";
    auto job = [cmd] {
      int rc = 0;
      run_capture(cmd, &rc);
      return rc;
    };
    auto rc = co_await conch::thread(std::move(job)).recv();
    REQUIRE(rc.has_value());
    CHECK(*rc == 1);  // s_client's verify failure (timeout's 124 would mean it hung)
    auto refused = co_await recv_within(srv->connections);  // its connection on our side
    REQUIRE(refused.has_value());
    REQUIRE(refused->has_value());
    auto refused_end = co_await recv_within((*refused)->in);
    REQUIRE(refused_end.has_value());
    CHECK(!refused_end->has_value());
    CHECK((*refused)->status().message().find("TLS handshake with 127.0.0.1:") != std::string_view::npos);
    auto plain = co_await net::connect(addr, {.frame = net::framing::lines()});
    REQUIRE(plain.ok());
    co_await plain->out.send(std::string("GET / HTTP/1.0"));
    auto plain_end = co_await recv_within(plain->in);
    REQUIRE(plain_end.has_value());
    CHECK(!plain_end->has_value());  // the server hung up
    srv->close();
  }(good_cert, other_cert), {.threads = 1});
}

TEST_CASE("TLS settings that cannot work are listen/connect errors naming the file", "[sockets][tls][errors]") {
  require_openssl();
  cert good_cert = make_cert("files");
  cert other_cert = make_cert("files2");
  conch::run([](cert good, cert other) -> task<void> {
    net::options missing;
    missing.tls = net::tls_options{.cert_file = "/nonexistent/c.pem", .key_file = good.key};
    auto a = net::listen("127.0.0.1:0", missing);
    REQUIRE(!a.ok());
    CHECK(a.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(a.status().message().find("/nonexistent/c.pem") != std::string_view::npos);

    net::options mismatch;
    mismatch.tls = net::tls_options{.cert_file = good.crt, .key_file = other.key};
    auto b = net::listen("127.0.0.1:0", mismatch);
    REQUIRE(!b.ok());
    CHECK(b.status().message().find(other.key) != std::string_view::npos);

    net::options no_cert;
    no_cert.tls = net::tls_options{};
    auto d = net::listen("127.0.0.1:0", no_cert);
    REQUIRE(!d.ok());
    CHECK(d.status().message().find("needs cert_file and key_file") != std::string_view::npos);

    net::options bad_ca;
    bad_ca.tls = net::tls_options{.ca_file = "/nonexistent/ca.pem"};
    auto e = co_await net::connect("127.0.0.1:1", bad_ca);
    REQUIRE(!e.ok());
    CHECK(e.status().message().find("/nonexistent/ca.pem") != std::string_view::npos);
  }(good_cert, other_cert), {.threads = 1});
}

namespace {

task<bool> tls_client(std::string addr, std::string ca, int id) {
  auto c = co_await net::connect(addr, client_opts(ca, net::framing::lines()));
  if (!c.ok()) co_return false;
  for (int i = 0; i < 5; ++i) {
    std::string m = std::to_string(id) + ":" + std::to_string(i);
    if (!co_await c->out.send(m)) co_return false;
    auto r = co_await recv_within(c->in, 10s);
    if (!r || !*r || **r != m) co_return false;
  }
  c->out.close();
  auto end = co_await recv_within(c->in, 10s);
  co_return end.has_value() && !end->has_value() && c->status().ok();
}

}  // namespace

TEST_CASE("server::serve hands TLS connections to the runtime's threads", "[sockets][tls][serve]") {
  require_openssl();
  cert serve_cert = make_cert("serve");
  conch::run([](cert c) -> task<void> {
    auto srv = net::listen("127.0.0.1:0", server_opts(c, net::framing::lines()));
    REQUIRE(srv.ok());
    auto handler = [](net::socket s) { return echo_conn(std::move(s)); };
    conch::chan<conch::unit> served = conch::go(srv->serve(handler));
    const std::string addr = srv->local().to_string();
    // The clients run on a runtime of their own, on a blocking-pool thread.
    auto clients = [addr, ca = c.crt] {
      return conch::run([](std::string a, std::string ca_file) -> task<int> {
        std::vector<conch::chan<bool>> each;
        for (int i = 0; i < 10; ++i) each.push_back(conch::go(tls_client(a, ca_file, i)));
        int ok = 0;
        for (auto& ch : each) {
          auto r = co_await recv_within(ch, 30s);
          if (r && *r && **r) ++ok;
        }
        co_return ok;
      }(addr, ca), {.threads = 1});
    };
    auto ok = co_await conch::thread(std::move(clients)).recv();
    REQUIRE(ok.has_value());
    CHECK(*ok == 10);
    srv->close();
    co_await served.recv();
  }(serve_cert), {.threads = 2});
}

// ---- start_tls: upgrading a connected plain socket ----

namespace {

// The client half of a toy STARTTLS protocol: "STARTTLS" in plain text, wait
// for "GO", then upgrade (client role) and exchange lines.
task<absl::StatusOr<net::socket>> starttls_client(std::string addr, std::string ca) {
  auto plain = co_await net::connect(addr);  // raw framing: the bytes become ciphertext
  if (!plain.ok()) co_return plain.status();
  co_await plain->out.send(std::string("STARTTLS\n"));
  std::string got;
  while (got.size() < 3) {
    auto chunk = co_await recv_within(plain->in, 10s);
    if (!chunk.has_value() || !chunk->has_value()) co_return absl::UnavailableError("no GO");
    got += **chunk;
  }
  if (got != "GO\n") co_return absl::UnavailableError("expected GO, got " + got);
  co_return co_await net::start_tls(*plain, client_opts(ca, net::framing::lines()));
}

}  // namespace

TEST_CASE("start_tls upgrades a plain connection on both sides, what was queued going first in plain text",
          "[sockets][tls][starttls]") {
  require_openssl();
  cert tls_cert = make_cert("starttls");
  conch::run([](cert c) -> task<void> {
    auto srv = net::listen("127.0.0.1:0");
    REQUIRE(srv.ok());
    const std::string addr = srv->local().to_string();
    auto client = conch::go(starttls_client(addr, c.crt));
    auto accepted = co_await recv_within(srv->connections);
    REQUIRE(accepted.has_value());
    REQUIRE(accepted->has_value());
    net::socket plain = **accepted;
    std::string hello;
    while (hello.size() < 9) {
      auto chunk = co_await recv_within(plain.in, 10s);
      REQUIRE(chunk.has_value());
      REQUIRE(chunk->has_value());
      hello += **chunk;
    }
    CHECK(hello == "STARTTLS\n");
    // "GO" is still queued (not yet written) when the server role starts: it must reach the client first.
    co_await plain.out.send(std::string("GO\n"));
    auto server_side = co_await net::start_tls(plain, server_opts(c, net::framing::lines()), net::tls_role::server);
    REQUIRE(server_side.ok());
    auto client_side = co_await recv_within(client, 10s);
    REQUIRE(client_side.has_value());
    REQUIRE(client_side->has_value());
    REQUIRE((*client_side)->ok());
    net::socket cs = ***client_side;
    net::socket ss = *server_side;
    co_await cs.out.send(std::string("ping over tls"));
    auto at_server = co_await recv_within(ss.in);
    REQUIRE(at_server.has_value());
    CHECK(at_server->value_or("<closed>") == "ping over tls");
    const std::string big = big_payload(300000);  // several records, one line
    co_await ss.out.send(big);
    auto at_client = co_await recv_within(cs.in, 10s);
    REQUIRE(at_client.has_value());
    CHECK(at_client->value_or("<closed>") == big);
    // Closing the TLS socket ends the connection cleanly (close_notify, then EOF on the other side).
    cs.out.close();
    auto end = co_await recv_within(ss.in);
    REQUIRE(end.has_value());
    CHECK(!end->has_value());
    CHECK(ss.status().ok());
    ss.out.close();
    co_await recv_within(cs.done(), 10s);
    srv->close();
  }(tls_cert), {.threads = 1});
}

TEST_CASE("start_tls against openssl s_server, awaited on another loop than the socket's", "[sockets][tls][starttls][interop]") {
  require_openssl();
  cert tls_cert = make_cert("starttls-peer");
  conch::run([](cert c) -> task<void> {
    int port = free_port();
    std::string cmd = "openssl s_server -quiet -rev -naccept 1 -accept 127.0.0.1:" + std::to_string(port) +
                      " -cert " + c.crt + " -key " + c.key + " >/dev/null 2>&1";
    auto server_done = conch::thread([cmd] { return run_capture(cmd); });
    net::options plain_opts;  // raw, no TLS yet
    auto plain = co_await connect_retry("127.0.0.1:" + std::to_string(port), plain_opts);
    REQUIRE(plain.ok());
    // Upgrade from a go block on the other loop: the session still runs on the socket's loop.
    auto upgrade = [](net::socket p, std::string ca) -> task<absl::StatusOr<net::socket>> {
      co_return co_await net::start_tls(p, client_opts(ca, net::framing::lines()));
    };
    auto t = co_await recv_within(conch::go_on(conch::placement::loop(1), upgrade, *plain, c.crt), 10s);
    REQUIRE(t.has_value());
    REQUIRE(t->has_value());
    REQUIRE((*t)->ok());
    net::socket s = ***t;
    co_await s.out.send(std::string("hello starttls"));
    auto r = co_await recv_within(s.in, 10s);
    REQUIRE(r.has_value());
    CHECK(r->value_or("<closed>") == "slttrats olleh");
    // A TLS socket cannot be upgraded again.
    auto again = co_await net::start_tls(s, client_opts(c.crt, net::framing::lines()));
    CHECK(again.status().code() == absl::StatusCode::kFailedPrecondition);
    s.close();
    co_await server_done.recv();
  }(tls_cert), {.threads = 2});
}

TEST_CASE("start_tls failures: untrusted certificate, no answer, closed meanwhile, unread bytes, wrong framing",
          "[sockets][tls][starttls][errors]") {
  require_openssl();
  cert good_cert = make_cert("st-good");
  cert other_cert = make_cert("st-other");
  conch::run([](cert good, cert other) -> task<void> {
    // An untrusted certificate: kUnavailable naming the peer and OpenSSL's reason.
    {
      int port = free_port();
      std::string cmd = "openssl s_server -quiet -naccept 1 -accept 127.0.0.1:" + std::to_string(port) +
                        " -cert " + good.crt + " -key " + good.key + " >/dev/null 2>&1";
      auto server_done = conch::thread([cmd] { return run_capture(cmd); });
      const std::string addr = "127.0.0.1:" + std::to_string(port);
      net::options plain_opts;
      auto plain = co_await connect_retry(addr, plain_opts);
      REQUIRE(plain.ok());
      auto t = co_await net::start_tls(*plain, client_opts(other.crt, net::framing::raw()));
      REQUIRE(!t.ok());
      CHECK(t.status().code() == absl::StatusCode::kUnavailable);
      CHECK(t.status().message().find("TLS handshake with " + addr + " failed") != std::string_view::npos);
      CHECK(t.status().message().find("certificate verify failed") != std::string_view::npos);
      co_await recv_within(plain->done(), 10s);  // the connection is over
      co_await server_done.recv();
    }
    auto srv = net::listen("127.0.0.1:0");  // plain: accepts, then never speaks TLS
    REQUIRE(srv.ok());
    const std::string addr = srv->local().to_string();
    // A peer that never answers the handshake: connect_timeout bounds it.
    {
      auto plain = co_await net::connect(addr);
      REQUIRE(plain.ok());
      auto peer = co_await recv_within(srv->connections);
      REQUIRE(peer.has_value());
      REQUIRE(peer->has_value());
      net::options o = client_opts(good.crt, net::framing::raw());
      o.connect_timeout = 300ms;
      auto t = co_await net::start_tls(*plain, o);
      REQUIRE(!t.ok());
      CHECK(t.status().code() == absl::StatusCode::kDeadlineExceeded);
      CHECK(t.status().message().find(addr) != std::string_view::npos);
      auto gone = co_await recv_within((*peer)->in, 10s);  // the peer sees the ClientHello, then the end
      while (gone.has_value() && gone->has_value()) gone = co_await recv_within((*peer)->in, 10s);
      CHECK(gone.has_value());
      co_await recv_within(plain->done(), 10s);
    }
    // Closed from elsewhere during the handshake: kCancelled. The peer closes
    // the client's socket once the ClientHello has reached it.
    {
      auto plain = co_await net::connect(addr);
      REQUIRE(plain.ok());
      auto peer = co_await recv_within(srv->connections);
      REQUIRE(peer.has_value());
      REQUIRE(peer->has_value());
      auto closer = [](net::socket at_server, net::socket client) -> task<bool> {
        auto hello = co_await recv_within(at_server.in, 10s);
        client.close();
        co_return hello.has_value() && hello->has_value();
      };
      auto closed = conch::go(closer, **peer, *plain);
      auto t = co_await net::start_tls(*plain, client_opts(good.crt, net::framing::raw()));
      REQUIRE(!t.ok());
      CHECK(t.status().code() == absl::StatusCode::kCancelled);
      std::optional<bool> saw_hello = co_await closed.recv();
      CHECK(saw_hello == std::optional<bool>(true));
    }
    // Plain bytes not yet read: refused, and the plain socket keeps working.
    {
      auto plain = co_await net::connect(addr);
      REQUIRE(plain.ok());
      auto peer = co_await recv_within(srv->connections);
      REQUIRE(peer.has_value());
      REQUIRE(peer->has_value());
      co_await (*peer)->out.send(std::string("early"));
      // Wait until the bytes are on our side, unread.
      const bool arrived = co_await conch::test::eventually([&]() { return plain->in.size() > 0; });
      REQUIRE(arrived);
      auto t = co_await net::start_tls(*plain, client_opts(good.crt, net::framing::raw()));
      REQUIRE(!t.ok());
      CHECK(t.status().code() == absl::StatusCode::kFailedPrecondition);
      CHECK(t.status().message().find("unread") != std::string_view::npos);
      auto early = co_await recv_within(plain->in);
      REQUIRE(early.has_value());
      CHECK(early->value_or("<closed>") == "early");
      co_await plain->out.send(std::string("still plain"));
      auto echoed = co_await recv_within((*peer)->in);
      REQUIRE(echoed.has_value());
      CHECK(echoed->value_or("<closed>") == "still plain");
      plain->close();
    }
    // A framed plain socket, and options without tls.
    {
      net::options lines_opts{.frame = net::framing::lines()};  // named: GCC 12 and braced temporaries
      auto lines = co_await net::connect(addr, lines_opts);
      REQUIRE(lines.ok());
      auto t = co_await net::start_tls(*lines, client_opts(good.crt, net::framing::raw()));
      CHECK(t.status().code() == absl::StatusCode::kFailedPrecondition);
      CHECK(t.status().message().find("framing::raw()") != std::string_view::npos);
      net::options none;
      auto u = co_await net::start_tls(*lines, none);
      CHECK(u.status().code() == absl::StatusCode::kInvalidArgument);
      lines->close();
    }
    srv->close();
  }(good_cert, other_cert), {.threads = 1});
}
