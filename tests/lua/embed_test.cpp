// tests/lua/embed_test.cpp
// The embedding API: conch::lua::state on a runtime, sharing channels with C++.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "conch/conch.hpp"
#include "conch/lua/lua.hpp"

using namespace std::chrono_literals;
using conch::chan;
using conch::task;
using conch::lua::value;

namespace {
void require_ok(const absl::Status& st) {
  INFO(st.ToString());
  REQUIRE(st.ok());
}
}  // namespace

TEST_CASE("C++ coroutines and Lua go blocks share channels both ways on two threads",
          "[lua][embed]") {
  conch::runtime rt({.threads = 2});
  conch::lua::state L(rt);
  chan<std::int64_t> to_lua(8), from_lua(8);
  L.set("to_lua", to_lua);
  L.set("from_lua", from_lua);
  // A Lua go block doubles what C++ sends, until C++ closes to_lua.
  require_ok(L.run_string(R"(
    local conch = require "conch"
    conch.go(function()
      for v in function() return to_lua:recv() end do from_lua:send(v * 2) end
      from_lua:close()
    end))"));
  // The go block keeps running after run_string returned: C++ drives it from
  // a coroutine on the runtime (co_await), and from a plain thread (blocking).
  auto total = rt.block_on([](chan<std::int64_t> in, chan<std::int64_t> out) -> task<std::int64_t> {
    std::int64_t sum = 0;
    for (std::int64_t i = 1; i <= 500; ++i) {
      co_await in.send(i);
      sum += *co_await out.recv();
    }
    co_return sum;
  }(to_lua, from_lua));
  CHECK(total == 2 * 500 * 501 / 2);
  std::thread plain([&] {
    for (std::int64_t i = 1; i <= 100; ++i) {
      to_lua.send_blocking(i);
      CHECK(from_lua.recv_blocking() == 2 * i);
    }
    to_lua.close();
    CHECK(from_lua.recv_blocking() == std::nullopt);  // Lua closed it
  });
  plain.join();
}

TEST_CASE("a channel created in Lua is a chan<value> in C++", "[lua][embed]") {
  conch::runtime rt({.threads = 2});
  conch::lua::state L(rt);
  require_ok(L.run_string(R"(
    local conch = require "conch"
    shared = conch.chan(4)
    shared:send({ name = "x", list = { 1, 2, 3 }, ok = true, ratio = 0.5 })
  )"));
  std::optional<chan<value>> ch = L.get_chan<value>("shared");
  REQUIRE(ch.has_value());
  CHECK_FALSE(L.get_chan<std::string>("shared").has_value());
  CHECK_FALSE(L.get_chan<value>("no_such_global").has_value());
  std::optional<value> v = ch->try_recv();
  REQUIRE(v.has_value());
  REQUIRE(v->is_table());
  CHECK(v->tbl().find("name")->string() == "x");
  CHECK(v->tbl().find("ok")->boolean());
  CHECK(v->tbl().find("ratio")->number() == 0.5);
  const value* list = v->tbl().find("list");
  REQUIRE(list != nullptr);
  CHECK(list->tbl().find(std::int64_t{3})->integer() == 3);
  // And back: C++ sends, a Lua go block answers on a C++ channel.
  chan<std::string> answer(1);
  L.set("answer", answer);
  require_ok(L.run_string(R"(
    local conch = require "conch"
    conch.go(function() answer:send("got " .. shared:recv()) end))"));
  ch->send_blocking(value("hello"));
  CHECK(answer.recv_blocking() == "got hello");
}

TEST_CASE("run_string reports errors as Status", "[lua][embed]") {
  conch::runtime rt({.threads = 1});
  conch::lua::state L(rt);
  absl::Status syntax = L.run_string("this is not lua");
  CHECK(syntax.code() == absl::StatusCode::kInvalidArgument);
  absl::Status runtime_error = L.run_string("error('bad thing')", "=mychunk");
  CHECK(runtime_error.code() == absl::StatusCode::kUnknown);
  CHECK(runtime_error.message().find("bad thing") != std::string_view::npos);
  CHECK(runtime_error.message().find("traceback") != std::string_view::npos);
  CHECK(L.run_file("/no/such/file.lua").code() == absl::StatusCode::kNotFound);
  require_ok(L.run_string("x = 1"));  // still usable
}

TEST_CASE("errors escaping go blocks go to on_error, the process carries on", "[lua][embed]") {
  conch::runtime rt({.threads = 2});
  std::mutex mu;
  std::vector<std::string> errors;
  conch::lua::state_options opts;
  opts.on_error = [&](std::string_view msg) {
    std::lock_guard lk(mu);
    errors.emplace_back(msg);
  };
  conch::lua::state L(rt, opts);
  chan<std::int64_t> done(1);
  L.set("done", done);
  require_ok(L.run_string(R"(
    local conch = require "conch"
    local r = conch.go(function() conch.sleep(1); error("inside go") end)
    conch.go(function() done:send(r:recv() == nil and 1 or 0) end))"));
  CHECK(done.recv_blocking() == 1);
  std::lock_guard lk(mu);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].find("inside go") != std::string::npos);
}

TEST_CASE("destroying a state stops its parked go blocks and closes their results",
          "[lua][embed]") {
  conch::runtime rt({.threads = 2});
  chan<std::int64_t> never(1);
  std::optional<chan<value>> result;
  {
    conch::lua::state L(rt);
    L.set("never", never);
    require_ok(L.run_string(R"(
      local conch = require "conch"
      result = conch.go(function() return never:recv() end)     -- parked on a C++ channel
      for i = 1, 100 do conch.go(function() conch.sleep(60000) end) end  -- parked on timers
      conch.go(function() while true do conch.sleep(0) end end)          -- always runnable
    )"));
    result = L.get_chan<value>("result");
    REQUIRE(result.has_value());
    std::this_thread::sleep_for(10ms);
  }
  CHECK(result->recv_blocking() == std::nullopt);
  // The C++ channel no longer has a Lua waiter: a value sent now stays buffered.
  CHECK(never.try_send(5));
  CHECK(never.try_recv() == 5);
}

TEST_CASE("many states on one runtime, each with its own go blocks", "[lua][embed]") {
  conch::runtime rt({.threads = 2});
  chan<std::int64_t> out(64);
  std::vector<std::unique_ptr<conch::lua::state>> states;
  for (int i = 0; i < 4; ++i) {
    states.push_back(std::make_unique<conch::lua::state>(rt));
    states.back()->set("out", out);
    require_ok(states.back()->run_string(
        "local conch = require 'conch'\n"
        "for i = 1, 10 do conch.go(function() conch.sleep(1); out:send(" + std::to_string(i) + ") end) end"));
  }
  std::int64_t sum = 0;
  for (int k = 0; k < 40; ++k) sum += *out.recv_blocking();
  CHECK(sum == 10 * (0 + 1 + 2 + 3));
}

TEST_CASE("Lua states on one runtime spread over its loops and run side by side", "[lua][embed][placement]") {
  // Each state's go block holds its loop (it never parks) until it sees the
  // other state's go block running: two states homed on one loop could not
  // both get there, and would give up after 10 s of CPU.
  conch::runtime rt({.threads = 2});
  conch::lua::state a(rt), b(rt);
  chan<std::int64_t> a_up(1), b_up(1), done(2);
  const char* spin = R"(
    local conch = require "conch"
    conch.go(function()
      mine:send(1)
      local t0 = os.clock()
      while not theirs:try_recv() do
        if os.clock() - t0 > 10 then done:send(0) return end
      end
      done:send(1)
    end))";
  a.set("mine", a_up);
  a.set("theirs", b_up);
  a.set("done", done);
  b.set("mine", b_up);
  b.set("theirs", a_up);
  b.set("done", done);
  require_ok(a.run_string(spin));
  require_ok(b.run_string(spin));
  CHECK(done.recv_blocking() == std::optional<std::int64_t>(1));
  CHECK(done.recv_blocking() == std::optional<std::int64_t>(1));
}

TEST_CASE("state_options::place keeps states on the loop it names", "[lua][embed][placement]") {
  // The same two spinners, both placed on loop 1: one spins alone until it
  // gives up (after `limit` s of CPU), then the other runs and finds the
  // first one's flag at once.
  conch::runtime rt({.threads = 2});
  conch::lua::state a(rt, {.place = conch::placement::loop(1)});
  conch::lua::state b(rt, {.place = conch::placement::loop(1)});
  chan<std::int64_t> a_up(1), b_up(1), done(2);
  const char* spin = R"(
    local conch = require "conch"
    conch.go(function()
      mine:send(1)
      local t0 = os.clock()
      while not theirs:try_recv() do
        if os.clock() - t0 > 0.3 then done:send(0) return end
      end
      done:send(1)
    end))";
  a.set("mine", a_up);
  a.set("theirs", b_up);
  a.set("done", done);
  b.set("mine", b_up);
  b.set("theirs", a_up);
  b.set("done", done);
  require_ok(a.run_string(spin));
  require_ok(b.run_string(spin));
  std::optional<std::int64_t> first = done.recv_blocking(), second = done.recv_blocking();
  CHECK(first == std::optional<std::int64_t>(0));   // spun alone: the other could not run
  CHECK(second == std::optional<std::int64_t>(1));
}

TEST_CASE("a cyclic, shared Lua table arrives in C++ as a graph and goes back intact",
          "[lua][embed][values]") {
  conch::runtime rt({.threads = 2});
  conch::lua::state L(rt);
  chan<value> to_cpp(1), to_lua(1);
  L.set("to_cpp", to_cpp);
  L.set("to_lua", to_lua);
  require_ok(L.run_string(R"(
    local shared = {x = 1}
    local t = {a = shared, b = shared}
    t.self = t
    to_cpp:send(t))"));
  auto v = to_cpp.recv_blocking();
  REQUIRE(v.has_value());
  REQUIRE(v->is_table());
  const conch::lua::table& t = v->tbl();
  const value* a = t.find("a");
  const value* b = t.find("b");
  const value* self = t.find("self");
  REQUIRE((a != nullptr && b != nullptr && self != nullptr));
  CHECK(&a->tbl() == &b->tbl());  // one copy, reachable twice
  CHECK(self->is_table());
  CHECK(&self->tbl() == &t);  // the cycle: a back reference to the table itself
  // C++ -> Lua: the same graph, shared and cyclic, arrives in Lua.
  REQUIRE(to_lua.send_blocking(*v));
  require_ok(L.run_string(R"(
    local r = to_lua:recv()
    assert(rawequal(r.self, r), "cycle")
    assert(rawequal(r.a, r.b), "sharing")
    assert(r.a.x == 1))"));
}

TEST_CASE("a table built in C++ with a shared sub-table arrives shared in Lua", "[lua][embed][values]") {
  conch::runtime rt({.threads = 1});
  conch::lua::state L(rt);
  chan<value> to_lua(1);
  L.set("to_lua", to_lua);
  auto inner = std::make_shared<conch::lua::table>();
  inner->entries.emplace_back(value("k"), value(std::int64_t{7}));
  auto outer = std::make_shared<conch::lua::table>();
  outer->entries.emplace_back(value(std::int64_t{1}), value(value::table_ptr(inner)));
  outer->entries.emplace_back(value(std::int64_t{2}), value(value::table_ptr(inner)));
  REQUIRE(to_lua.try_send(value(value::table_ptr(outer))));
  require_ok(L.run_string(R"(
    local r = to_lua:recv()
    assert(rawequal(r[1], r[2]) and r[1].k == 7))"));
}

TEST_CASE("a socket crosses from one Lua state to another on the same runtime, and to C++",
          "[lua][embed][values]") {
  conch::runtime rt({.threads = 2});
  conch::lua::state A(rt), B(rt);
  chan<value> pass(1), to_cpp(1);
  A.set("pass", pass);
  B.set("pass", pass);
  B.set("to_cpp", to_cpp);
  chan<std::string> seen(1);
  A.set("seen", seen);
  // A listens and connects; it hands its client socket to B and keeps the
  // accepted end, which reports what arrives.
  require_ok(A.run_string(R"(
    local conch = require "conch"
    local srv = assert(conch.listen("127.0.0.1:0", {framing = "lines"}))
    local c = assert(conch.connect(srv:address(), {framing = "lines"}))
    local peer = srv.connections:recv()
    pass:send({sock = c, note = "yours"})
    conch.go(function()
      seen:send(peer.input:recv())
      seen:send(peer.input:recv())
      peer:close()
      srv:close()
    end))"));
  // B uses the socket and hands it on to C++.
  require_ok(B.run_string(R"(
    local conch = require "conch"
    local got = pass:recv()
    assert(getmetatable(got.sock).__name == "conch.socket", "a socket object in B")
    assert(got.sock.output:send("from B"))
    to_cpp:send(got.sock))"));
  CHECK(seen.recv_blocking() == std::optional<std::string>("from B"));
  auto v = to_cpp.recv_blocking();
  REQUIRE(v.has_value());
  REQUIRE(v->is_socket());
  conch::net::socket s = v->socket();
  REQUIRE(s.out.send_blocking("from C++"));
  CHECK(seen.recv_blocking() == std::optional<std::string>("from C++"));
  s.close();
}
