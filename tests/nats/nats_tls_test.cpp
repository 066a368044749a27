// tests/nats/nats_tls_test.cpp
// conch::nats over TLS against a real nats-server with a TLS config: pub/sub/request, untrusted certificates, reconnect.
// The server's certificate is made at test time (tests/support/test_cert.hpp).
#include <string>
#include <thread>

#include "conch/conch.hpp"
#include "conch/net/nats.hpp"
#include "tests/support/nats_server.hpp"
#include "tests/support/test_cert.hpp"
#include "tests/support/test_support.hpp"

using namespace std::chrono_literals;
using conch::task;
namespace nats = conch::nats;
using conch::test::recv_within;

namespace {

// A nats-server configuration that requires TLS with certificate `c`.
std::string tls_config(const conch::test::test_cert& c) {
  return conch::test::nats_config_file(
      "tls", "tls {\n  cert_file: \"" + c.crt + "\"\n  key_file: \"" + c.key + "\"\n  timeout: 5\n}\n");
}

// Client options that trust certificate `c`.
nats::options trusting(const conch::test::test_cert& c) {
  nats::options o;
  o.tls = conch::net::tls_options{.ca_file = c.crt};
  return o;
}

}  // namespace

TEST_CASE("over TLS: publish, subscribe and request against a server that requires TLS", "[nats][tls]") {
  conch::test::test_cert c = conch::test::make_test_cert("nats-server");
  conch::test::nats_server srv({"-c", tls_config(c)});
  const std::string srv_url = "nats://localhost:" + std::to_string(srv.port());  // the certificate names localhost
  conch::test::run_on(2, [](std::string url, nats::options o) -> task<int> {
    auto a = co_await nats::connect(url, o);
    REQUIRE(a.ok());
    auto b = co_await nats::connect(url, o);
    REQUIRE(b.ok());
    CHECK(a->info().tls_required);
    auto sub = co_await b->subscribe("tls.*");
    REQUIRE(sub.ok());
    auto svc = co_await b->subscribe("svc.echo");
    REQUIRE(svc.ok());
    auto flushed = co_await b->flush();
    REQUIRE(flushed.ok());
    nats::headers h = {{"Trace-Id", "t-9"}};
    auto sent = co_await a->publish("tls.one", "secret", "", h);
    CHECK(sent.ok());
    std::string big(200 * 1024, 'z');  // spans several TLS records
    auto sent_big = co_await a->publish("tls.big", big);
    CHECK(sent_big.ok());
    auto m1 = co_await recv_within(sub->messages);
    REQUIRE(m1.value);
    CHECK(m1.value->subject == "tls.one");
    CHECK(m1.value->data == "secret");
    CHECK(m1.value->header("Trace-Id") == std::optional<std::string_view>("t-9"));
    auto m2 = co_await recv_within(sub->messages);
    REQUIRE(m2.value);
    CHECK(m2.value->data == big);
    // A responder on b, a request from a.
    conch::go([](nats::connection nc, nats::subscription s) -> task<void> {
      while (auto m = co_await s.messages.recv()) {
        std::string answer = "re:" + m->data;
        if (!(co_await nc.publish(m->reply, std::move(answer))).ok()) break;
      }
    }(*b, *svc));
    auto r = co_await a->request("svc.echo", "ping", 5s);
    REQUIRE(r.ok());
    CHECK(r->data == "re:ping");
    a->close();
    b->close();
    co_return 0;
  }(srv_url, trusting(c)));
}

TEST_CASE("TLS errors: an untrusted server certificate, and TLS asked of a server without it", "[nats][tls][errors]") {
  conch::test::test_cert c = conch::test::make_test_cert("nats-untrusted");
  conch::test::test_cert other = conch::test::make_test_cert("nats-other");
  conch::test::nats_server tls_srv({"-c", tls_config(c)});
  conch::test::nats_server plain_srv;
  const std::string secure_url = "nats://localhost:" + std::to_string(tls_srv.port());
  conch::test::run_on(1, [](std::string tls_url, std::string plain_url, nats::options wrong_ca) -> task<int> {
    nats::options quick{.reconnect = false, .connect_timeout = 5000ms};
    // The server requires TLS; the client has no TLS settings: the system's
    // CAs, which do not know this self-signed certificate.
    auto a = co_await nats::connect(tls_url, quick);
    REQUIRE(!a.ok());
    CHECK(a.status().code() == absl::StatusCode::kUnavailable);
    CHECK(a.status().message().find(tls_url) != std::string_view::npos);
    CHECK(a.status().message().find("certificate verify failed") != std::string_view::npos);
    // A CA that did not sign it.
    auto b = co_await nats::connect(tls_url, wrong_ca);
    REQUIRE(!b.ok());
    CHECK(b.status().code() == absl::StatusCode::kUnavailable);
    CHECK(b.status().message().find("certificate verify failed") != std::string_view::npos);
    // tls:// (or options::tls) against a server that offers no TLS.
    std::string tls_scheme = "tls://" + plain_url.substr(std::string("nats://").size());
    auto d = co_await nats::connect(tls_scheme, quick);
    REQUIRE(!d.ok());
    CHECK(d.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK(d.status().message().find("does not offer TLS") != std::string_view::npos);
    co_return 0;
  }(secure_url, plain_srv.url(), trusting(other)));
}

TEST_CASE("over TLS: after the server restarts, the client handshakes again and its subscription resumes",
          "[nats][tls][reconnect]") {
  conch::test::test_cert c = conch::test::make_test_cert("nats-restart");
  conch::test::nats_server srv({"-c", tls_config(c)});
  conch::test::require_io_uring();
  conch::runtime rt({.threads = 2});
  nats::options o = trusting(c);
  o.reconnect_wait = 50ms;
  o.max_reconnect_attempts = -1;
  // tls:// with the server's name: the same checks on every reconnect.
  auto nc_or = rt.block_on(nats::connect("tls://localhost:" + std::to_string(srv.port()), o));
  REQUIRE(nc_or.ok());
  nats::connection nc = *nc_or;
  auto s = rt.block_on(nc.subscribe("r.*"));
  REQUIRE(s.ok());
  nats::subscription sub = *s;
  REQUIRE(rt.block_on(nc.publish("r.before", "1")).ok());
  auto first = rt.block_on(recv_within(sub.messages, 10s));
  REQUIRE(first.value);
  CHECK(first.value->data == "1");

  srv.kill();
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (nc.connected() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  REQUIRE(!nc.connected());
  REQUIRE(rt.block_on(nc.publish("r.during", "2")).ok());  // kept in the reconnect buffer
  srv.start();
  auto during = rt.block_on(recv_within(sub.messages, 20s));
  REQUIRE(during.value);
  CHECK(during.value->data == "2");
  CHECK(nc.reconnects() >= 1);
  CHECK(nc.info().tls_required);
  REQUIRE(rt.block_on(nc.publish("r.after", "3")).ok());
  auto after = rt.block_on(recv_within(sub.messages, 10s));
  REQUIRE(after.value);
  CHECK(after.value->data == "3");
  nc.close();
}
