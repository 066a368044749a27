// tests/fuzz/lua_values.cpp
// Fuzz target `lua_values`: Lua values of every type, nested, shared and cyclic, copied through channels (tests/fuzz/lua_values.lua).
#include "tests/fuzz/lua_target.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static conch::fuzz::lua_target t("lua_values.lua");
  t.run(data, size);
  return 0;
}
