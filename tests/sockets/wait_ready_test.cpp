// tests/sockets/wait_ready_test.cpp
// net::wait_ready: poll(2) readiness of caller-owned descriptors, awaited on the loop's ring.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>

#include <catch2/catch.hpp>

#include "conch/conch.hpp"
#include "conch/net/wait_ready.hpp"
#include "tests/support/test_support.hpp"

using conch::task;
using namespace std::chrono_literals;

namespace {

// A connected AF_UNIX stream pair, closed at scope exit.
struct sock_pair {
  int fd[2] = {-1, -1};
  sock_pair() { REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fd) == 0); }
  ~sock_pair() {
    ::close(fd[0]);
    ::close(fd[1]);
  }
  void write_one(char c = 'x') const { REQUIRE(::write(fd[1], &c, 1) == 1); }
};

task<void> ready_at_once_and_time_out() {
  sock_pair p;
  pollfd fds[1] = {{p.fd[0], POLLIN, 0}};
  absl::StatusOr<int> n = co_await conch::net::wait_ready(fds, 0ns);
  REQUIRE(n.ok());
  CHECK(*n == 0);  // zero: just look
  n = co_await conch::net::wait_ready(fds, 20ms);
  REQUIRE(n.ok());
  CHECK(*n == 0);  // nothing came: the time ran out
  p.write_one();
  n = co_await conch::net::wait_ready(fds, -1ns);
  REQUIRE(n.ok());
  CHECK(*n == 1);
  CHECK((fds[0].revents & POLLIN) != 0);
}

task<void> write_later(int fd, std::atomic<bool>* wrote) {
  co_await conch::sleep(2ms);
  char c = 'y';
  REQUIRE(::write(fd, &c, 1) == 1);
  wrote->store(true);
}

// One loop: the writer can only run if the wait parks instead of blocking the thread.
task<void> wakes_when_another_go_block_writes() {
  sock_pair a, b;
  std::atomic<bool> wrote{false};
  conch::go(write_later(b.fd[1], &wrote));
  pollfd fds[3] = {{a.fd[0], POLLIN, 0}, {-1, POLLIN, 0}, {b.fd[0], POLLIN, 0}};
  absl::StatusOr<int> n = co_await conch::net::wait_ready(fds, 5s);
  REQUIRE(n.ok());
  CHECK(*n == 1);
  CHECK(wrote.load());
  CHECK(fds[0].revents == 0);
  CHECK(fds[1].revents == 0);  // a negative fd is ignored, as poll(2) does
  CHECK((fds[2].revents & POLLIN) != 0);
}

// The data a wait woke for is taken before the waiter looks: it waits again
// rather than answering "ready" with nothing ready.
task<void> take_then_refill(int rfd, int wfd) {
  co_await conch::sleep(2ms);
  char c = 'z';
  REQUIRE(::write(wfd, &c, 1) == 1);
  REQUIRE(::read(rfd, &c, 1) == 1);  // taken at once, in the same turn
  co_await conch::sleep(2ms);
  REQUIRE(::write(wfd, &c, 1) == 1);
}

task<void> writable_and_hangup() {
  sock_pair p;
  pollfd out[1] = {{p.fd[1], POLLOUT, 0}};
  absl::StatusOr<int> n = co_await conch::net::wait_ready(out, 1s);
  REQUIRE(n.ok());
  CHECK((out[0].revents & POLLOUT) != 0);
  ::shutdown(p.fd[1], SHUT_RDWR);
  pollfd in[1] = {{p.fd[0], POLLIN, 0}};
  n = co_await conch::net::wait_ready(in, 5s);
  REQUIRE(n.ok());
  CHECK((in[0].revents & (POLLIN | POLLHUP)) != 0);  // end of stream is readable
}

// Holds `token` while parked: its count says whether the frame was freed.
task<void> parked_forever(int fd, std::shared_ptr<int> token, conch::test::arrivals armed) {
  pollfd fds[1] = {{fd, POLLIN, 0}};
  armed.arrive();
  (void)co_await conch::net::wait_ready(fds, -1ns);
  (void)token;
}

task<void> start_parked(int fd, std::shared_ptr<int> token) {
  conch::test::arrivals armed;
  conch::go(parked_forever(fd, std::move(token), armed));
  bool parked = co_await conch::test::arrived(armed, 1);  // one loop: counted means parked
  CHECK(parked);
}

}  // namespace

TEST_CASE("wait_ready looks, times out with 0, and reports a ready descriptor", "[wait_ready]") {
  conch::test::run_on(1, ready_at_once_and_time_out());
}

TEST_CASE("a wait parks its go block: others on the same loop run and wake it", "[wait_ready]") {
  conch::test::run_on(1, wakes_when_another_go_block_writes());
}

TEST_CASE("a wake whose data was taken meanwhile waits again", "[wait_ready]") {
  conch::test::run_on(1, []() -> task<void> {
    sock_pair p;
    conch::go(take_then_refill(p.fd[0], p.fd[1]));
    pollfd fds[1] = {{p.fd[0], POLLIN, 0}};
    absl::StatusOr<int> n = co_await conch::net::wait_ready(fds, 5s);
    REQUIRE(n.ok());
    CHECK(*n == 1);
    char c = 0;
    CHECK(::read(p.fd[0], &c, 1) == 1);  // the second byte: a real answer, not a stale one
  }());
}

TEST_CASE("wait_ready reports writable and end of stream", "[wait_ready]") {
  conch::test::run_on(1, writable_and_hangup());
}

TEST_CASE("a wait still parked when its runtime ends is freed with it", "[wait_ready][teardown]") {
  conch::test::require_io_uring();
  sock_pair p;
  auto token = std::make_shared<int>(0);
  {
    conch::runtime rt({.threads = 1});
    rt.block_on(start_parked(p.fd[0], token));
    CHECK(token.use_count() == 2);  // the parked frame holds it
  }  // the parked frame and its in-flight wait go here (ASan reports a leak otherwise)
  CHECK(token.use_count() == 1);
}
