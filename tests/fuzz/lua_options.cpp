// tests/fuzz/lua_options.cpp
// Fuzz target `lua_options`: random option tables and arguments for conch.chan, select, listen, connect, udp (tests/fuzz/lua_options.lua).
#include "tests/fuzz/lua_target.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static conch::fuzz::lua_target t("lua_options.lua");
  t.run(data, size);
  return 0;
}
