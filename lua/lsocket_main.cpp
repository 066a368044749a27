// lua/lsocket_main.cpp
// luaopen_lsocket: lsocket.so, the entry point of `require "lsocket"` in the stock lua5.4 interpreter.
//
// A shim: it requires "conch" (conch.so beside it on LUA_CPATH, which starts
// the state's conch runtime and registers package.preload.lsocket), then
// returns what that opener builds (lua/lsocketlib.cpp). So lsocket and conch
// share one copy of conch and one runtime per state, and lsocket.select can
// park a conch go block. Links no Lua (it uses the interpreter's) and no conch.
#include <lua.hpp>

extern "C" __attribute__((visibility("default"))) int luaopen_lsocket(lua_State* L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "conch");
  lua_call(L, 1, 0);
  if (lua_getglobal(L, "package") != LUA_TTABLE || lua_getfield(L, -1, "preload") != LUA_TTABLE ||
      lua_getfield(L, -1, "lsocket") != LUA_TFUNCTION)
    return luaL_error(L, "lsocket: the conch module did not provide lsocket (package.preload.lsocket)");
  lua_pushvalue(L, 1);  // the module name, as require passes it
  lua_call(L, 1, 1);
  return 1;
}
