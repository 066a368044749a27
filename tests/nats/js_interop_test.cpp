// tests/nats/js_interop_test.cpp
// conch::nats and the official NATS JavaScript client (npm nats, pinned) through one nats-server, both ways.
//
// The JS peer is tests/nats/js/peer.js, installed by the nats_js_install
// fixture into CONCH_NATS_JS_DIR; without node or the package the test skips.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "conch/conch.hpp"
#include "conch/net/nats.hpp"
#include "tests/support/nats_server.hpp"
#include "tests/support/test_support.hpp"

using namespace std::chrono_literals;
using conch::task;
namespace nats = conch::nats;

namespace {

// Starts `node peer.js url` with NODE_PATH set; the pid.
pid_t start_peer(const std::string& url) {
  const std::string dir = CONCH_NATS_JS_DIR;
  if (::access((dir + "/node_modules/nats/package.json").c_str(), R_OK) != 0)
    conch::test::skip("the NATS JavaScript client is not installed in " + dir + " (the nats_js_install test does it)");
  std::string node = "/usr/bin/node";
  if (::access(node.c_str(), X_OK) != 0) conch::test::skip("node is not installed");
  ::setenv("NODE_PATH", (dir + "/node_modules").c_str(), 1);
  std::string script = CONCH_NATS_JS_PEER;
  std::string u = url;
  char* argv[] = {node.data(), script.data(), u.data(), nullptr};
  pid_t pid = -1;
  REQUIRE(posix_spawn(&pid, node.c_str(), nullptr, nullptr, argv, environ) == 0);
  return pid;
}

// Waits (bounded) for the peer to exit; its exit status, or -1 if killed.
int wait_peer(pid_t pid) {
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(10ms);  // polling a condition, bounded
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

task<void> conch_echo(nats::connection c, nats::subscription s) {
  while (auto m = co_await s.messages.recv()) {
    std::string answer = "conch:" + m->data;
    // A failed answer shows up as the JS side's request timing out.
    if (!m->reply.empty()) (void)co_await c.publish(m->reply, std::move(answer));
  }
}

}  // namespace

TEST_CASE("conch and the official JavaScript client publish, request and answer each other, with headers",
          "[nats][interop][js]") {
  conch::test::nats_server srv;
  pid_t peer = start_peer(srv.url());
  conch::test::run_on(2, [](std::string url) -> task<int> {
    auto c = co_await nats::connect(url);
    REQUIRE(c.ok());
    nats::connection nc = *c;
    auto from_js = co_await nc.subscribe("from.js");
    REQUIRE(from_js.ok());
    auto echo = co_await nc.subscribe("conch.echo");
    REQUIRE(echo.ok());
    REQUIRE((co_await nc.flush()).ok());
    conch::go(conch_echo(nc, *echo));
    // Wait until the peer answers (node takes a moment to start): bounded.
    absl::StatusOr<nats::msg> first = absl::UnknownError("not asked");
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline) {
      first = co_await nc.request("js.echo", "hello", 500ms);
      if (first.ok()) break;
    }
    REQUIRE(first.ok());
    // conch -> JS: request/reply.
    CHECK(first->data == "js:hello");
    // conch -> JS with a header; JS -> conch with a header.
    nats::headers h = {{"X-From", "conch"}};
    REQUIRE((co_await nc.publish("to.js", "ping", "", h)).ok());
    auto fwd = co_await conch::test::recv_within(from_js->messages, 10s);
    REQUIRE(fwd.value);
    CHECK(fwd.value->data == "js saw ping header conch");
    CHECK(fwd.value->header("Seen-By") == std::optional<std::string_view>("js"));
    // JS -> conch: the JS client requests, conch answers.
    REQUIRE((co_await nc.publish("to.js", "ask")).ok());
    auto ans = co_await conch::test::recv_within(from_js->messages, 10s);
    REQUIRE(ans.value);
    CHECK(ans.value->data == "answer conch:from-js");
    REQUIRE((co_await nc.publish("to.js", "quit")).ok());
    REQUIRE((co_await nc.flush()).ok());
    nc.close();
    co_return 0;
  }(srv.url()));
  CHECK(wait_peer(peer) == 0);
}
