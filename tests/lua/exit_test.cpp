// tests/lua/exit_test.cpp
// Nothing lost when a script ends: a Lua script that connects, sends on `output` and just ends
// delivers every byte to a foreign sink (socat), run by the stock lua5.4 with conch.so and through
// the embedding API (state, then runtime destroyed), over Unix and TCP; sock:done().
#include <catch2/catch.hpp>
#include <string>

#include "conch/conch.hpp"
#include "conch/lua/lua.hpp"
#include "tests/support/socat_sink.hpp"
#include "tests/support/test_support.hpp"

namespace {

using conch::test::free_tcp_port;
using conch::test::read_file;
using conch::test::start_socat_sink;
using conch::test::wait_child;

// The user's script, verbatim but for the address: connect, send, end.
std::string short_script(const std::string& target) {
  return "local conch = require 'conch'\n"
         "local s = assert(conch.connect('" + target + "')); s.output:send('A;')\n";
}
const std::string short_bytes = "A;";

// A longer burst: 1,000 frames (~500 KB, more than a socket buffer holds).
std::string burst_script(const std::string& target) {
  return "local conch = require 'conch'\n"
         "local s = assert(conch.connect('" + target + "'))\n"
         "for i = 1, 1000 do s.output:send(i .. ':' .. string.rep('x', i) .. ';') end\n";
}
std::string burst_bytes() {
  std::string out;
  for (int i = 1; i <= 1000; ++i) out += std::to_string(i) + ":" + std::string(static_cast<std::size_t>(i), 'x') + ";";
  return out;
}

enum class how { stock, embedded };

// Runs `script_for(target)` once against a fresh socat sink: "" if the sink
// received exactly `want`, else what went wrong.
template <class Script>
std::string one_run(how h, bool tcp, Script script_for, const std::string& want) {
  const std::string file = "/tmp/conch-test-" + std::to_string(::getpid()) + "-lua-exit.out";
  const std::string path = tcp ? std::string() : "/tmp/conch-test-" + std::to_string(::getpid()) + "-lua-exit.sock";
  const int port = tcp ? free_tcp_port() : 0;
  if (!tcp) ::unlink(path.c_str());
  pid_t sink = start_socat_sink(path, port, file);
  if (sink < 0) return "socat did not start listening";
  const std::string target = tcp ? "127.0.0.1:" + std::to_string(port) : path;
  std::string err;
  if (h == how::stock) {
    pid_t lua = conch::test::spawn(
        {CONCH_TEST_LUA54, "-e", std::string("package.cpath = '") + CONCH_TEST_MODULE_DIR + "/?.so'",
         "-e", script_for(target)});
    if (lua < 0 || wait_child(lua, std::chrono::seconds(30)) != 0) err = "lua5.4 failed or hung";
  } else {
    conch::runtime rt({.threads = 2});
    {
      conch::lua::state L(rt);
      absl::Status st = L.run_string(script_for(target));
      if (!st.ok()) err = "script failed: " + st.ToString();
    }  // the state first, then the runtime: the same flush at the runtime's end
  }
  const int rc = wait_child(sink, std::chrono::seconds(20));
  const std::string got = read_file(file);
  ::unlink(file.c_str());
  if (!tcp) ::unlink(path.c_str());
  if (!err.empty()) return err;
  if (rc != 0) return "socat did not see EOF and exit cleanly";
  if (got != want) return "the sink got " + std::to_string(got.size()) + " bytes of " + std::to_string(want.size());
  return "";
}

void require_stock_lua() {
  conch::test::require_io_uring();
  if (!conch::test::have_tool("socat")) conch::test::skip("socat is not installed (apt-get install socat)");
  if (CONCH_TEST_SANITIZED)
    conch::test::skip("a sanitizer build's conch.so cannot be loaded into the uninstrumented lua5.4");
  if (std::string(CONCH_TEST_LUA54).find("NOTFOUND") != std::string::npos)
    conch::test::skip("lua5.4 is not installed (apt-get install lua5.4)");
}

// Runs `n` times over Unix, then over TCP; every run must deliver everything.
template <class Script>
void runs(how h, int n, Script script_for, const std::string& want) {
  for (bool tcp : {false, true}) {
    INFO((tcp ? "TCP" : "Unix"));
    int ok = 0;
    for (int i = 0; i < n; ++i) {
      std::string err = one_run(h, tcp, script_for, want);
      if (err.empty())
        ++ok;
      else
        FAIL_CHECK("run " << i << ": " << err);
    }
    CHECK(ok == n);
  }
}

}  // namespace

TEST_CASE("stock lua5.4: a script that sends and ends loses nothing (100 runs)", "[lua][exit]") {
  require_stock_lua();
  runs(how::stock, 100, short_script, short_bytes);
}

TEST_CASE("stock lua5.4: a burst queued at the script's end all arrives", "[lua][exit]") {
  require_stock_lua();
  runs(how::stock, 20, burst_script, burst_bytes());
}

TEST_CASE("embedding: destroying the state and then the runtime loses nothing", "[lua][exit]") {
  conch::test::require_io_uring();
  if (!conch::test::have_tool("socat")) conch::test::skip("socat is not installed (apt-get install socat)");
  runs(how::embedded, 50, short_script, short_bytes);
  runs(how::embedded, 10, burst_script, burst_bytes());
}

TEST_CASE("sock:done() parks until the socket has ended, in and out of go blocks", "[lua][exit]") {
  conch::test::require_io_uring();
  conch::runtime rt({.threads = 2});
  conch::lua::state L(rt);
  absl::Status st = L.run_string(R"(
    local conch = require 'conch'
    local srv = assert(conch.listen('127.0.0.1:0'))
    local addr = srv:address()
    -- The server side echoes one connection, then waits in a go block
    -- (done() parks it) until that connection has ended.
    local served = conch.go(function()
      local c = srv.connections:recv()
      for f in c.input:iter() do c.output:send(f) end
      c.output:close()
      local r = c:done()
      return r and c.input:closed() and c:status()
    end)
    local s = assert(conch.connect(addr))
    s.output:send('ping')
    s.output:close()
    -- Outside a go block done() blocks until the echo came back and the
    -- server's end arrived: the read side is over when it returns.
    assert(s:done() == true, 'done')
    assert(s.input:closed(), 'input closed once done')
    assert(s.input:recv() == 'ping', 'the echo stays receivable')
    assert(s.input:recv() == nil)
    assert(s:status() == true)
    assert(served:recv() == true, 'the server block saw its socket end')
    -- A socket ended by close() is done as well.
    local t = assert(conch.connect(addr))
    t:close()
    assert(t:done() == true, 'done after close')
    srv:close()
  )");
  INFO(st.ToString());
  CHECK(st.ok());
}
