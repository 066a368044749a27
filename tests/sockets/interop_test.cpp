// tests/sockets/interop_test.cpp
// Interop with peers that are not ours: socat (Debian) and node's stock `net` module check our bytes.
// Each test skips with a message when the tool is missing.
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>

#include "tests/sockets/net_test_support.hpp"

namespace net = conch::net;
using namespace conch::net::test;
using conch::test::recv_within;
using conch::task;

namespace {

bool have(const char* tool) {
  std::string cmd = std::string("command -v ") + tool + " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

// Runs a shell command (with a hard time limit) and returns its stdout.
std::string run_capture(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(("timeout 10 " + cmd).c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  return out;
}

std::string write_script(const char* tag, const std::string& body) {
  std::string path = "/tmp/conch-test-" + std::to_string(::getpid()) + "-" + tag + ".js";
  std::ofstream(path) << body;
  return path;
}

}  // namespace

TEST_CASE("socat as a client of our line echo server (TCP and Unix)", "[sockets][interop]") {
  if (!have("socat")) conch::test::skip("socat is not installed (apt-get install socat)");
  std::string path = temp_socket_path("socat");
  conch::run([](std::string upath) -> task<void> {
    net::options o{.frame = net::framing::lines()};
    auto tcp = net::listen("127.0.0.1:0", o);
    auto unx = net::listen(upath, o);
    REQUIRE(tcp.ok());
    REQUIRE(unx.ok());
    conch::go(echo_server(*tcp));
    conch::go(echo_server(*unx));
    std::string tcp_cmd = "sh -c \"printf 'one\\r\\ntwo\\nthree\\n' | socat -t 2 - TCP:" +
                          tcp->local().to_string() + "\"";
    std::string unix_cmd = "sh -c \"printf 'alpha\\nbeta\\n' | socat -t 2 - UNIX-CONNECT:" + upath + "\"";
    auto job = [tcp_cmd, unix_cmd] { return run_capture(tcp_cmd) + "|" + run_capture(unix_cmd); };
    auto out = conch::thread(std::move(job));
    auto got = co_await out.recv();
    REQUIRE(got.has_value());
    CHECK(*got == "one\ntwo\nthree\n|alpha\nbeta\n");  // CR stripped by `lines`, '\n' re-added
    tcp->close();
    unx->close();
  }(path), {.threads = 1});
}

TEST_CASE("socat as a server for our client (Unix, cat echo)", "[sockets][interop]") {
  if (!have("socat")) conch::test::skip("socat is not installed (apt-get install socat)");
  std::string path = temp_socket_path("socat-srv");
  ::unlink(path.c_str());
  conch::run([](std::string upath) -> task<void> {
    std::string cmd = "socat UNIX-LISTEN:" + upath + " EXEC:cat";
    auto job = [cmd] { return run_capture(cmd); };
    auto server_done = conch::thread(std::move(job));
    absl::StatusOr<net::socket> c = absl::UnavailableError("not yet");
    const auto give_up = std::chrono::steady_clock::now() + conch::test::patience;
    while (!c.ok() && std::chrono::steady_clock::now() < give_up) {  // until socat listens
      c = co_await net::connect(upath, {.frame = net::framing::length_prefixed()});
      if (!c.ok()) co_await conch::sleep(10ms);
    }
    REQUIRE(c.ok());
    std::string big(100000, 'x');
    co_await c->out.send("hello");
    co_await c->out.send(big);
    c->out.close();  // EOF to cat: it exits, socat closes
    auto a = co_await recv_within(c->in, 5s);
    auto b = co_await recv_within(c->in, 5s);
    auto end = co_await recv_within(c->in, 5s);
    REQUIRE(a.has_value());
    REQUIRE(b.has_value());
    REQUIRE(end.has_value());
    CHECK(a->value_or("?") == "hello");
    CHECK(b->value_or("?") == big);
    CHECK(!end->has_value());
    co_await server_done.recv();
  }(path), {.threads = 1});
  ::unlink(path.c_str());
}

TEST_CASE("node's net module talks to our server: node-ipc style form-feed JSON frames",
          "[sockets][interop]") {
  if (!have("node")) conch::test::skip("node is not installed (apt-get install nodejs)");
  // The client sends node-ipc messages (JSON + '\f'), in odd chunks, and
  // checks that every message comes back whole; it prints one summary line.
  std::string script = write_script("ipc-client", R"js(
const net = require('net');
const [target, count] = [process.argv[2], +process.argv[3]];
const s = target.includes('/') ? net.connect(target) : net.connect(+target.split(':')[1], '127.0.0.1');
let buf = '', seen = 0, bad = 0;
s.on('connect', () => {
  let wire = '';
  for (let i = 0; i < count; i++) wire += JSON.stringify({type: 'message', data: {id: 'n', seq: i}}) + '\f';
  for (let i = 0; i < wire.length; i += 7) s.write(wire.slice(i, i + 7));
});
s.on('data', d => {
  buf += d.toString();
  let k;
  while ((k = buf.indexOf('\f')) >= 0) {
    const m = JSON.parse(buf.slice(0, k));
    buf = buf.slice(k + 1);
    if (m.type !== 'message' || m.data.seq !== seen) bad++;
    if (++seen === count) { console.log(`ok ${seen} bad ${bad}`); s.end(); }
  }
});
s.on('error', e => { console.log('error ' + e.message); });
)js");
  std::string path = temp_socket_path("node");
  conch::run([](std::string js, std::string upath) -> task<void> {
    net::options o{.frame = net::framing::delimited('\f')};
    auto tcp = net::listen("127.0.0.1:0", o);
    auto unx = net::listen(upath, o);
    REQUIRE(tcp.ok());
    REQUIRE(unx.ok());
    conch::go(echo_server(*tcp));
    conch::go(echo_server(*unx));
    std::string c1 = "node " + js + " " + tcp->local().to_string() + " 500";
    std::string c2 = "node " + js + " " + upath + " 500";
    auto job = [c1, c2] { return run_capture(c1) + run_capture(c2); };
    auto out = conch::thread(std::move(job));
    auto got = co_await out.recv();
    REQUIRE(got.has_value());
    CHECK(*got == "ok 500 bad 0\nok 500 bad 0\n");
    tcp->close();
    unx->close();
  }(script, path), {.threads = 2});
  ::unlink(script.c_str());
}

TEST_CASE("our client against a node server: length-prefixed frames checked by node",
          "[sockets][interop]") {
  if (!have("node")) conch::test::skip("node is not installed (apt-get install nodejs)");
  // The server parses u32 big-endian length prefixes with readUInt32BE and
  // answers each frame with its reverse, framed the same way.
  std::string script = write_script("lp-server", R"js(
const net = require('net');
const srv = net.createServer(s => {
  let buf = Buffer.alloc(0);
  s.on('data', d => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
      const n = buf.readUInt32BE(0);
      const body = Buffer.from(buf.subarray(4, 4 + n)).reverse();
      buf = buf.subarray(4 + n);
      const h = Buffer.alloc(4); h.writeUInt32BE(n);
      s.write(Buffer.concat([h, body]));
    }
  });
  s.on('end', () => { s.end(); srv.close(); });
});
srv.listen(0, '127.0.0.1', () => console.log(srv.address().port));
)js");
  conch::run([](std::string js) -> task<void> {
    // Start node; its first output line is the port.
    std::string cmd = "timeout 20 node " + js;
    FILE* p = ::popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    auto read_port = [p] {
      char line[64] = {};
      return std::fgets(line, sizeof line, p) != nullptr ? std::atoi(line) : 0;
    };
    auto port_ch = conch::thread(std::move(read_port));
    auto port = co_await port_ch.recv();
    REQUIRE(port.value_or(0) > 0);
    auto c = co_await net::connect("127.0.0.1:" + std::to_string(*port),
                                   {.frame = net::framing::length_prefixed()});
    REQUIRE(c.ok());
    std::vector<std::string> sent;
    for (int i = 0; i < 50; ++i) sent.push_back(std::string(static_cast<std::size_t>(i * 997 % 20000), 'a') + "z" + std::to_string(i));
    for (const std::string& f : sent) co_await c->out.send(f);
    c->out.close();
    int good = 0;
    for (const std::string& f : sent) {
      auto r = co_await recv_within(c->in, 5s);
      if (r && *r && std::string(f.rbegin(), f.rend()) == **r) ++good;
    }
    CHECK(good == 50);
    auto end = co_await recv_within(c->in, 5s);
    CHECK((end.has_value() && !end->has_value()));
    auto wait_node = [p] { return ::pclose(p); };
    auto closed = conch::thread(std::move(wait_node));
    co_await closed.recv();
  }(script), {.threads = 1});
  ::unlink(script.c_str());
}
