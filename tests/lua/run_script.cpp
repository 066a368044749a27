// tests/lua/run_script.cpp
// conch_lua_run <script.lua>: runs a Lua test script through the embedding
// API on a two-thread runtime, with C++ services on shared channels (see
// tests/lua/share_test.lua). Exits 0 if the script ran without error, 77
// (skipped) if io_uring is unavailable.
#include <cctype>
#include <cstdio>
#include <string>
#include <thread>

#include "conch/conch.hpp"
#include "conch/lua/lua.hpp"
#include "tests/support/test_support.hpp"

#include <lua.hpp>

using conch::chan;
using conch::task;
using conch::lua::value;

namespace {

task<void> upper_service(chan<std::string> in, chan<std::string> out) {
  while (auto s = co_await in.recv()) {
    for (char& c : *s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    co_await out.send(std::move(*s));
  }
  out.close();
}

task<void> sum_service(chan<double> in, chan<double> out) {
  double sum = 0;
  while (auto v = co_await in.recv()) sum += *v;
  co_await out.send(sum);
}

task<void> value_service(chan<value> in) {
  while (auto v = co_await in.recv()) {
    if (!v->is_table()) continue;
    const value* n = v->tbl().find("n");
    const value* reply = v->tbl().find("reply");
    if (n == nullptr || reply == nullptr || !reply->is_chan()) continue;
    if (const chan<value>* r = reply->chan().get_if<value>()) {
      value doubled(static_cast<std::int64_t>(n->integer() * 2));  // named: GCC 12 and co_await temporaries
      co_await r->send(std::move(doubled));
    }
  }
}

task<void> start_services(chan<std::string> ui, chan<std::string> uo, chan<double> di,
                          chan<double> ds, chan<value> vi) {
  conch::go(upper_service(ui, uo));
  conch::go(sum_service(di, ds));
  conch::go(value_service(vi));
  co_return;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s script.lua\n", argv[0]);
    return 2;
  }
  std::string script = argv[1];
  std::string dir = script.substr(0, script.find_last_of('/') + 1);
  int rc = 0;
  conch::test::require_io_uring();
  conch::runtime rt({.threads = 2});
  chan<std::int64_t> ints(16);
  chan<std::string> upper_in, upper_out;
  chan<double> doubles(8), double_sum(1);
  chan<value> values;
  std::thread producer([ints] {
    for (std::int64_t i = 1; i <= 1000; ++i)
      if (!ints.send_blocking(i)) return;
    ints.close();
  });
  rt.block_on(start_services(upper_in, upper_out, doubles, double_sum, values));
  {
    conch::lua::state L(rt);
    L.with([&](lua_State* s) {
      lua_getglobal(s, "package");
      std::string path = dir + "?.lua;" + CONCH_LUA_DIR "/?.lua;";
      lua_getfield(s, -1, "path");
      path += lua_tostring(s, -1);
      lua_pop(s, 1);
      lua_pushstring(s, path.c_str());
      lua_setfield(s, -2, "path");
      lua_pop(s, 1);
    });
    L.set("cpp_ints", ints);
    L.set("cpp_upper_in", upper_in);
    L.set("cpp_upper_out", upper_out);
    L.set("cpp_doubles", doubles);
    L.set("cpp_double_sum", double_sum);
    L.set("cpp_values", values);
    absl::Status st = L.run_file(script);
    if (!st.ok()) {
      std::fprintf(stderr, "%s\n", std::string(st.message()).c_str());
      rc = 1;
    }
  }
  for (auto* c : {&upper_in, &upper_out}) c->close();
  ints.close();
  doubles.close();
  values.close();
  producer.join();
  return rc;
}
