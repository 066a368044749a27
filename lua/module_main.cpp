// lua/module_main.cpp
// luaopen_conch: the entry point of conch.so for `require "conch"` in the
// stock lua5.4 interpreter (built as C: Lua errors are longjmps here).
//
// The first require in a state starts a runtime with one loop thread owned
// by that state; the state's main thread stays the outside thread. The
// runtime stops when the state closes (lua_close, or os.exit(code, true)).
#include "lua/bridge.hpp"
#include "lua/util.hpp"

extern "C" __attribute__((visibility("default"))) int luaopen_conch(lua_State* L) {
  return conch::lua::detail::open_standalone(L);
}

// luaopen_conch_util: `require "conch.util"` (slua's helpers, lua/util.hpp).
// Lua's all-in-one C loader finds it here: for "conch.util" it opens conch.so
// from LUA_CPATH and calls luaopen_conch_util. It starts no runtime.
extern "C" __attribute__((visibility("default"))) int luaopen_conch_util(lua_State* L) {
  return conch::lua::open_util(L);
}
