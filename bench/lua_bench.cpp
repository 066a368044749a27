// bench/lua_bench.cpp
// conch_bench_lua <A|B> <n>: runs bench/lua/run.lua through the embedding
// API (a conch::lua::state on a one-thread runtime), so the Lua workloads
// can be compared with the same ones run by the stock lua5.4 + conch.so, by
// C++ conch (conch_bench_channels) and by Go (bench/go). See bench/run_lua.sh.
#include <cstdio>
#include <string>

#include "conch/conch.hpp"
#include "conch/lua/lua.hpp"

#include <lua.hpp>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s <A|B> <n>\n", argv[0]);
    return 2;
  }
  conch::runtime rt({.threads = 1});
  conch::lua::state L(rt);
  std::string a1 = argv[1], a2 = argv[2];
  L.with([&](lua_State* s) {
    lua_createtable(s, 3, 0);
    lua_pushstring(s, a1.c_str());
    lua_rawseti(s, -2, 1);
    lua_pushstring(s, a2.c_str());
    lua_rawseti(s, -2, 2);
    lua_pushstring(s, "lua-embed");
    lua_rawseti(s, -2, 3);
    lua_setglobal(s, "arg");
  });
  absl::Status st = L.run_file(CONCH_BENCH_LUA_DIR "/run.lua");
  if (!st.ok()) {
    std::fprintf(stderr, "%s\n", std::string(st.message()).c_str());
    return 1;
  }
  return 0;
}
