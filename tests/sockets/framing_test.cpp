// tests/sockets/framing_test.cpp
// Framing: the decoder alone (split frames, many per read, limits) and on the wire against plain sockets.
#include <arpa/inet.h>

#include <catch2/catch.hpp>
#include <thread>
#include <vector>

#include "sockets/frame_codec.hpp"
#include "tests/sockets/net_test_support.hpp"

namespace net = conch::net;
using namespace conch::net::test;
using conch::test::recv_within;
using conch::task;
using net::detail::frame_decoder;

namespace {

std::string be32(std::uint32_t n) {
  std::uint32_t v = htonl(n);
  return std::string(reinterpret_cast<const char*>(&v), 4);
}

// Feeds `wire` in pieces of `step` bytes; returns the frames (and the status).
std::vector<std::string> decode(net::framing f, const std::string& wire, std::size_t step,
                                absl::Status* st = nullptr, std::size_t max = 1 << 20) {
  frame_decoder d(f, max);
  std::vector<std::string> out;
  absl::Status s;
  for (std::size_t i = 0; i < wire.size() && s.ok(); i += step)
    s = d.feed(wire.data() + i, std::min(step, wire.size() - i),
               [&](std::string&& x) { out.push_back(std::move(x)); });
  if (s.ok()) s = d.finish([&](std::string&& x) { out.push_back(std::move(x)); });
  if (st != nullptr) *st = s;
  return out;
}

}  // namespace

TEST_CASE("lines: split frames, many per read, CRLF, a last line without newline",
          "[sockets][framing]") {
  std::string wire = "one\r\ntwo\n\nthree\r\nfour";
  std::vector<std::string> want = {"one", "two", "", "three", "four"};
  for (std::size_t step : {1, 2, 3, 5, 100}) CHECK(decode(net::framing::lines(), wire, step) == want);
}

TEST_CASE("lines: max_frame counts the line, not its CR LF end", "[sockets][framing]") {
  for (std::size_t step : {1, 2, 3, 4, 5, 100}) {
    absl::Status st;
    CHECK(decode(net::framing::lines(), "abc\r\nxyz\n", step, &st, 3) ==
          std::vector<std::string>{"abc", "xyz"});
    CHECK(st.ok());
    decode(net::framing::lines(), "abcd\r\n", step, &st, 3);
    CHECK(st.code() == absl::StatusCode::kResourceExhausted);
    decode(net::framing::lines(), "abc\rx\n", step, &st, 3);  // a '\r' inside a line counts
    CHECK(st.code() == absl::StatusCode::kResourceExhausted);
  }
}

TEST_CASE("lines with line_end::lf_cr_crlf: LF, CR LF and a lone CR end a line, as readLine",
          "[sockets][framing]") {
  const auto any = net::framing::lines(net::framing::line_end::lf_cr_crlf);
  // Every step size splits "\r\n" across two reads somewhere, and leaves a
  // read ending in '\r' whose '\n' comes in the next one.
  std::string wire = "a\rb\r\nc\nd\r\re\r\n\r\nf";
  std::vector<std::string> want = {"a", "b", "c", "d", "", "e", "", "f"};
  for (std::size_t step = 1; step <= wire.size(); ++step) CHECK(decode(any, wire, step) == want);
  absl::Status st;
  for (std::size_t step : {1, 2, 3, 4, 5}) {
    CHECK(decode(any, "abc\r\nxyz\r", step, &st, 3) == std::vector<std::string>{"abc", "xyz"});
    CHECK(st.ok());
    decode(any, "abcd\r", step, &st, 3);
    CHECK(st.code() == absl::StatusCode::kResourceExhausted);
  }
  // The default stays as it was: a lone '\r' is part of the line.
  CHECK(decode(net::framing::lines(), "a\rb\n", 1) == std::vector<std::string>{"a\rb"});
}

TEST_CASE("delimited: node-ipc form feed frames", "[sockets][framing]") {
  std::string wire = "{\"type\":\"message\",\"data\":1}\f{\"type\":\"x\",\"data\":{}}\f";
  std::vector<std::string> want = {"{\"type\":\"message\",\"data\":1}", "{\"type\":\"x\",\"data\":{}}"};
  for (std::size_t step : {1, 7, 1000}) CHECK(decode(net::framing::delimited('\f'), wire, step) == want);
}

TEST_CASE("length_prefixed: big-endian u32 lengths, empty frames, headers split",
          "[sockets][framing]") {
  std::string big(70000, 'z');
  std::string wire = be32(3) + "abc" + be32(0) + be32(static_cast<std::uint32_t>(big.size())) + big;
  std::vector<std::string> want = {"abc", "", big};
  for (std::size_t step : {1, 3, 4096, 1 << 20})
    CHECK(decode(net::framing::length_prefixed(), wire, step) == want);
  absl::Status st;
  decode(net::framing::length_prefixed(), be32(10) + "abc", 2, &st);
  CHECK(st.code() == absl::StatusCode::kDataLoss);
}

TEST_CASE("frames over max_frame are refused early", "[sockets][framing]") {
  absl::Status st;
  decode(net::framing::lines(), std::string(100, 'x'), 10, &st, 16);  // no newline ever comes
  CHECK(st.code() == absl::StatusCode::kResourceExhausted);
  CHECK(std::string(st.message()).find("max_frame") != std::string::npos);
  decode(net::framing::length_prefixed(), be32(1000), 4, &st, 16);
  CHECK(st.code() == absl::StatusCode::kResourceExhausted);
  auto ok = decode(net::framing::lines(), std::string(16, 'x') + "\n", 3, &st, 16);
  CHECK(st.ok());
  CHECK(ok.size() == 1);
  auto raw = decode(net::framing::raw(), std::string(40, 'r'), 40, &st, 16);  // raw: cut, not refused
  CHECK(st.ok());
  CHECK(raw.size() == 3);
}

TEST_CASE("the string pool hands sent buffers back out, small and large, with the new bytes",
          "[sockets][framing]") {
  net::detail::string_pool pool;
  // A small heap string (a 64-byte frame) serves the next small frame.
  std::string small(64, 's');
  const char* small_buf = small.data();
  pool.give(std::move(small));
  std::string a = pool.make("0123456789012345678901234567890123456789", 40);
  CHECK(a == "0123456789012345678901234567890123456789");
  CHECK(a.data() == small_buf);
  // A frame larger than every kept small string gets its own buffer.
  std::string b = pool.make(std::string(100, 'b').data(), 100);
  CHECK(b == std::string(100, 'b'));
  CHECK(b.data() != small_buf);
  // A large buffer serves a large frame and a blank ring slot.
  std::string big(16384, 'x');
  const char* big_buf = big.data();
  pool.give(std::move(big));
  std::string c = pool.make(std::string(9000, 'c').data(), 9000);
  CHECK(c == std::string(9000, 'c'));
  CHECK(c.data() == big_buf);
  pool.give(std::move(c));
  std::string d = pool.blank(16384);
  CHECK(d.size() == 16384);
  CHECK(d.data() == big_buf);
  // Short strings live inside the string object: there is nothing to keep.
  pool.give(std::string("tiny"));
  std::string e = pool.make("0123456789abcdefghij", 20);
  CHECK(e == "0123456789abcdefghij");
}

namespace {

// A server with framing `f` that answers each frame with its size as text,
// and a plain socket peer that writes `wire` in `step`-byte writes.
task<void> frames_over_the_wire(net::framing f, std::string wire, std::size_t step,
                                std::vector<std::string> want) {
  auto srv = net::listen("127.0.0.1:0", {.frame = f});
  REQUIRE(srv.ok());
  net::address a = srv->local();
  auto peer = conch::thread([a, wire, step] {
    int fd = raw_connect(a);
    for (std::size_t i = 0; i < wire.size(); i += step) {
      write_all(fd, wire.substr(i, step));
      if (step < 16 && i < 64) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    ::shutdown(fd, SHUT_WR);
    wait_eof(fd);
    ::close(fd);
    return 0;
  });
  auto s = co_await recv_within(srv->connections, 5s);
  REQUIRE(s.has_value());
  REQUIRE(s->has_value());
  std::vector<std::string> got;
  for (;;) {
    auto m = co_await recv_within((*s)->in, 5s);
    INFO("frames so far: " << got.size() << " of " << want.size());
    REQUIRE(m.has_value());
    if (!m->has_value()) break;
    got.push_back(std::move(**m));
  }
  CHECK((*s)->status().ok());
  (*s)->out.close();
  CHECK(got == want);
  co_await peer.recv();
  srv->close();
}

}  // namespace

TEST_CASE("framings on the wire: frames split across reads and many in one read",
          "[sockets][framing]") {
  std::string lines;
  std::vector<std::string> many;
  for (int i = 0; i < 2000; ++i) {
    lines += "line " + std::to_string(i) + "\r\n";
    many.push_back("line " + std::to_string(i));
  }
  std::string big(100000, 'b');
  std::string prefixed = be32(5) + "hello" + be32(static_cast<std::uint32_t>(big.size())) + big;
  // GCC 12: no braced lists inside co_await expressions (LANDSCAPE.md §3.8): name them.
  std::vector<std::string> abc = {"ab", "cd", "ef"}, xyz = {"x", "yy", "", "z"},
                           hello = {"hello", big};
  conch::run([&]() -> task<void> {
    co_await frames_over_the_wire(net::framing::lines(), lines, lines.size(), many);  // one write
    co_await frames_over_the_wire(net::framing::lines(), "ab\ncd\r\nef", 1, abc);
    co_await frames_over_the_wire(net::framing::delimited('\f'), "x\fyy\f\fz", 2, xyz);
    co_await frames_over_the_wire(net::framing::length_prefixed(), prefixed, 3, hello);
    co_await frames_over_the_wire(net::framing::length_prefixed(), prefixed, prefixed.size(),
                                  hello);
  }(), {.threads = 2});
}

TEST_CASE("the writer adds delimiters and length prefixes", "[sockets][framing]") {
  conch::run([]() -> task<void> {
    struct kase {
      net::framing f;
      std::vector<std::string> frames;
      std::string wire;
    };
    std::vector<kase> cases = {
        {net::framing::raw(), {"ab", "cd"}, "abcd"},
        {net::framing::lines(), {"ab", "", "cd"}, "ab\n\ncd\n"},
        {net::framing::delimited('\f'), {"{}", "[]"}, "{}\f[]\f"},
        {net::framing::length_prefixed(), {"abc", ""}, be32(3) + "abc" + be32(0)},
    };
    for (const kase& k : cases) {
      auto srv = net::listen("127.0.0.1:0", {.frame = k.f});
      REQUIRE(srv.ok());
      net::address a = srv->local();
      std::size_t n = k.wire.size();
      auto peer = conch::thread([a, n] {
        int fd = raw_connect(a);
        std::string got = read_some(fd, n + 1);  // n bytes, then EOF
        ::close(fd);
        return got;
      });
      auto s = co_await srv->connections.recv();
      REQUIRE(s.has_value());
      for (const std::string& f : k.frames) co_await s->out.send(f);
      s->out.close();  // flush, then EOF
      auto got = co_await peer.recv();
      REQUIRE(got.has_value());
      CHECK(*got == k.wire);
      s->close();
      srv->close();
    }
  }(), {.threads = 1});
}

TEST_CASE("a burst queued on out goes out in several sends, every byte once and in order",
          "[sockets][framing]") {
  // More than one send batch (64 frames or 64 KiB) waits on `out` before the
  // writer first runs: runs of tiny frames, frames around the byte cap and
  // frames far over it, each filled with its own byte so a frame that is
  // lost, repeated or out of place changes the wire.
  std::vector<std::string> frames;
  std::uint32_t rng = 12345;
  for (int i = 0; i < 600; ++i) {
    rng = rng * 1103515245u + 12345u;
    std::size_t n = i % 100 < 70 ? (rng >> 16) % 40                // runs of tiny frames
                    : i % 7 == 0 ? 60000 + (rng >> 16) % 10000     // near the 64 KiB cap
                    : i % 11 == 0 ? 200000 + (rng >> 16) % 50000   // a batch on its own
                                  : (rng >> 16) % 20000;
    frames.emplace_back(n, static_cast<char>('A' + i % 53));
  }
  std::vector<net::framing> kinds = {net::framing::raw(), net::framing::length_prefixed()};
  conch::run([&]() -> task<void> {
    for (net::framing f : kinds) {
      const bool prefixed = f.type == net::framing::kind::length_prefixed;
      std::string wire;
      for (const std::string& x : frames) {
        if (prefixed) wire += be32(static_cast<std::uint32_t>(x.size()));
        wire += x;
      }
      auto srv = net::listen("127.0.0.1:0", {.frame = f, .out_capacity = frames.size()});
      REQUIRE(srv.ok());
      net::address a = srv->local();
      int fd = raw_connect(a);
      REQUIRE(fd >= 0);
      auto s = co_await srv->connections.recv();
      REQUIRE(s.has_value());
      for (const std::string& x : frames) CHECK(s->out.try_send(std::string(x)));  // no writer turn yet
      s->out.close();  // flush, then EOF
      std::size_t n = wire.size();
      auto peer = conch::thread([fd, n] {
        std::string got = read_some(fd, n + 1);  // everything, then EOF
        ::close(fd);
        return got;
      });
      auto got = co_await peer.recv();
      REQUIRE(got.has_value());
      CHECK(got->size() == wire.size());
      CHECK((*got == wire));  // not decomposed: a failure would print megabytes
      auto finished = co_await recv_within(s->done(), 10s);  // the peer's close ends `in`
      CHECK(finished.has_value());
      CHECK(s->status().ok());
      srv->close();
    }
  }(), {.threads = 1});
}

TEST_CASE("a frame over max_frame ends that connection, the server keeps serving",
          "[sockets][framing][limits]") {
  conch::run([]() -> task<void> {
    net::options o{.frame = net::framing::lines(), .max_frame = 64};
    auto srv = net::listen("127.0.0.1:0", o);
    REQUIRE(srv.ok());
    auto bad = co_await net::connect(srv->local().to_string(), o);
    REQUIRE(bad.ok());
    auto bs = co_await srv->connections.recv();
    REQUIRE(bs.has_value());
    co_await bad->out.send("fine");
    co_await bad->out.send(std::string(1000, 'x'));
    auto first = co_await recv_within(bs->in, 5s);
    REQUIRE(first.has_value());
    CHECK(first->value_or("?") == "fine");
    auto end = co_await recv_within(bs->in, 5s);
    REQUIRE(end.has_value());
    CHECK(!end->has_value());
    CHECK(bs->status().code() == absl::StatusCode::kResourceExhausted);
    INFO(std::string(bs->status().message()));
    CHECK(std::string(bs->status().message()).find("max_frame") != std::string::npos);
    // The offender sees its connection end.
    auto gone = co_await recv_within(bad->in, 5s);
    REQUIRE(gone.has_value());
    CHECK(!gone->has_value());
    // Another client is served as before.
    conch::go(echo_server(*srv));
    auto good = co_await net::connect(srv->local().to_string(), o);
    REQUIRE(good.ok());
    co_await good->out.send("still here");
    auto echo = co_await recv_within(good->in, 5s);
    REQUIRE(echo.has_value());
    CHECK(echo->value_or("?") == "still here");
    srv->close();
  }(), {.threads = 1});
}
