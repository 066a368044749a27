// tests/sockets/linger_test.cpp
// Nothing queued is lost at exit: destroying a runtime writes what sockets still have on `out`
// (runtime_options::linger), checked byte for byte by a foreign sink (socat); a dead peer cannot
// hold the exit beyond the linger bound; status() after a send to a peer that has gone.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <catch2/catch.hpp>

#include "tests/sockets/net_test_support.hpp"
#include "tests/support/socat_sink.hpp"

namespace net = conch::net;
using namespace conch::net::test;
using conch::task;

namespace {

using conch::test::free_tcp_port;
using conch::test::read_file;
using conch::test::start_socat_sink;
using conch::test::wait_child;

// Frame i of iteration `iter`: its index and a filler whose length varies
// from 1 to ~2 KiB, so the 1,000 frames (~1 MiB) outgrow the socket buffer
// and the writer really has to wait for the sink while the runtime stops.
std::string frame(int iter, int i) {
  std::string f = std::to_string(iter) + ":" + std::to_string(i) + ":";
  f.append(static_cast<std::size_t>((i * 37 + iter) % 2000 + 1), static_cast<char>('a' + i % 26));
  f.push_back(';');
  return f;
}

// Connects to `target`, queues 1,000 frames and returns without awaiting
// done(): when `close_out`, after closing `out`; otherwise leaving it open.
// `cap` is out's capacity (1024: every frame is still queued when the task
// returns). Returns what was sent, or why it could not.
task<std::string> queue_and_return(std::string target, int iter, bool close_out, std::size_t cap) {
  auto s = co_await net::connect(target, {.out_capacity = cap});
  if (!s.ok()) co_return "connect failed: " + s.status().ToString();
  std::string sent;
  for (int i = 0; i < 1000; ++i) {
    std::string f = frame(iter, i);
    sent += f;
    if (!co_await s->out.send(std::move(f))) co_return "send refused at frame " + std::to_string(i);
  }
  if (close_out) s->out.close();
  co_return sent;
}

// One run against a fresh socat sink: returns "" when every byte arrived.
std::string one_run(bool tcp, int iter) {
  const std::string file = "/tmp/conch-test-" + std::to_string(::getpid()) + "-linger.out";
  const std::string path = tcp ? std::string() : temp_socket_path("linger");
  const int port = tcp ? free_tcp_port() : 0;
  if (!tcp) ::unlink(path.c_str());
  pid_t pid = start_socat_sink(path, port, file);
  if (pid < 0) return "socat did not start listening";
  const std::string target = tcp ? "127.0.0.1:" + std::to_string(port) : path;
  std::string sent;
  {
    conch::runtime rt({.threads = 1});
    sent = rt.block_on(queue_and_return(target, iter, iter % 2 == 0, iter % 4 < 2 ? 1024 : 64));
  }  // the runtime is destroyed here: queued frames must still be written
  const int rc = wait_child(pid, std::chrono::seconds(20));
  std::string got = read_file(file);
  ::unlink(file.c_str());
  if (!tcp) ::unlink(path.c_str());
  if (sent.size() < 1000) return sent;  // the task's own failure
  if (rc != 0) return "socat did not see EOF and exit cleanly";
  if (got != sent)
    return "iteration " + std::to_string(iter) + ": sink got " + std::to_string(got.size()) +
           " bytes of " + std::to_string(sent.size());
  return "";
}

}  // namespace

TEST_CASE("destroying the runtime writes every frame still queued on out (100 runs, socat sink)",
          "[sockets][linger]") {
  conch::test::require_io_uring();
  if (!conch::test::have_tool("socat")) conch::test::skip("socat is not installed (apt-get install socat)");
  for (bool tcp : {false, true}) {
    INFO((tcp ? "TCP" : "Unix"));
    int ok = 0;
    for (int iter = 0; iter < 100; ++iter) {
      std::string err = one_run(tcp, iter);
      if (!err.empty()) {
        FAIL_CHECK(err);
      } else {
        ++ok;
      }
    }
    CHECK(ok == 100);
  }
}

TEST_CASE("a peer that never reads holds the exit no longer than the linger bound",
          "[sockets][linger]") {
  conch::test::require_io_uring();
  // A listener nobody accepts from: the kernel completes the connection and
  // buffers a little, then the writer's send waits forever.
  for (bool tcp : {false, true}) {
    INFO((tcp ? "TCP" : "Unix"));
    int lfd = ::socket(tcp ? AF_INET : AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(lfd >= 0);
    std::string target;
    if (tcp) {
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      socklen_t len = sizeof a;
      REQUIRE(::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
      REQUIRE(::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
      target = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
    } else {
      target = temp_socket_path("dead-peer");
      ::unlink(target.c_str());
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      std::snprintf(a.sun_path, sizeof a.sun_path, "%s", target.c_str());
      REQUIRE(::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    }
    REQUIRE(::listen(lfd, 4) == 0);
    const auto linger = std::chrono::milliseconds(300);
    const auto t0 = std::chrono::steady_clock::now();
    bool queued = false;
    {
      conch::runtime rt({.threads = 1, .linger = linger});
      queued = rt.block_on([](std::string t) -> task<bool> {
        auto s = co_await net::connect(t, {.out_capacity = 64});
        if (!s.ok()) co_return false;
        // 32 MiB: far more than both kernels' socket buffers hold.
        for (int i = 0; i < 32; ++i)
          if (!co_await s->out.send(std::string(1 << 20, 'z'))) co_return false;
        co_return true;
      }(target));
    }
    const auto took = std::chrono::steady_clock::now() - t0;
    ::close(lfd);
    if (!tcp) ::unlink(target.c_str());
    REQUIRE(queued);
    // It waited for the writes (the output could not drain), then gave up.
    CHECK(took >= linger);
    CHECK(took < linger + std::chrono::seconds(20));  // generous: a loaded machine
  }
}

TEST_CASE("status() names the peer and the errno once a send fails after the peer closed",
          "[sockets][errors]") {
  conch::test::require_io_uring();
  for (bool tcp : {false, true}) {
    INFO((tcp ? "TCP" : "Unix"));
    conch::test::run_on(1, [](bool use_tcp) -> task<void> {
      std::string where = use_tcp ? std::string("127.0.0.1:0") : temp_socket_path("epipe");
      if (!use_tcp) ::unlink(where.c_str());
      auto srv = net::listen(where);
      REQUIRE(srv.ok());
      auto c = co_await net::connect(srv->local().to_string());
      REQUIRE(c.ok());
      {
        // The server takes the connection and closes it at once.
        auto a = co_await conch::test::recv_within(srv->connections, conch::test::patience);
        REQUIRE(a.has_value());
        REQUIRE(a->has_value());
        (**a).close();
      }
      // The client reads EOF: a clean end so far.
      auto eof = co_await conch::test::recv_within(c->in, conch::test::patience);
      REQUIRE(eof.has_value());
      CHECK(!eof->has_value());
      CHECK(c->status().ok());
      // Sending now fails (EPIPE, or ECONNRESET once TCP's reset came back);
      // `out` then refuses more. Bounded: a few thousand tries at most.
      bool refused = false;
      for (int i = 0; i < 5000 && !refused; ++i) {
        refused = !co_await c->out.send(std::string(1024, 'q'));
        if (!refused) co_await conch::sleep(std::chrono::milliseconds(1));  // pace the tries
      }
      REQUIRE(refused);
      absl::Status st = c->status();
      INFO(st.ToString());
      CHECK(!st.ok());
      const std::string msg(st.message());
      CHECK(msg.find(c->peer().to_string()) != std::string::npos);
      CHECK((msg.find("EPIPE") != std::string::npos || msg.find("ECONNRESET") != std::string::npos));
      srv->close();
      if (!use_tcp) ::unlink(where.c_str());
    }(tcp));
  }
}
