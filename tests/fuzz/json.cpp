// tests/fuzz/json.cpp
// Fuzz target `json`: bytes to conch.util's json.decode; what it accepts goes through json.encode and back.
//
// Oracles, per input x:
//  - decode never raises and never hangs: it returns one value, or nil and a
//    message "json.decode: ..." of bounded length, and leaves the stack as it
//    found it;
//  - every number it returns is finite (JSON has no NaN or infinity; an
//    overflowing literal is an error, not inf), and json.encode accepts every
//    value it returns (strings included: decode yields valid UTF-8 only);
//  - decode(encode(decode(x))) equals decode(x) as a tree: same types, same
//    integer/float subtype, same numbers bit for bit (-0.0 included), same
//    strings, same keys, and an empty array still marked as one;
//  - nesting: if decode(x) has depth d (a scalar 0, [] 1), then x wrapped in
//    1000 - d more arrays is accepted and in one more is refused with the
//    nesting message (the bound is 1000, as lua-cjson's); checked for inputs
//    whose size is a multiple of 8 and for every input nested 984 deep or more.
// A plain Lua state with only conch.util: no runtime, so no io_uring needed.
#include <lua.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lua/util.hpp"
#include "tests/fuzz/fuzz_check.hpp"

namespace {

constexpr int kMaxDepth = 1000;  // lua/util.cpp's bound

// The state, with json.decode and json.encode in the registry-anchored
// globals D and E.
lua_State* state() {
  static lua_State* L = [] {
    lua_State* s = luaL_newstate();
    FUZZ_CHECK(s != nullptr, "luaL_newstate");
    luaL_openlibs(s);
    luaL_requiref(s, "conch.util", conch::lua::open_util, 0);
    lua_getfield(s, -1, "json");
    lua_getfield(s, -1, "decode");
    lua_setglobal(s, "D");
    lua_getfield(s, -1, "encode");
    lua_setglobal(s, "E");
    lua_pop(s, 2);
    return s;
  }();
  return L;
}

// Calls json.decode on `text`: true and the value on top, or false and the
// message checked (nothing pushed).
bool decode(lua_State* L, std::string_view text) {
  const int top = lua_gettop(L);
  lua_getglobal(L, "D");
  lua_pushlstring(L, text.data(), text.size());
  const int rc = lua_pcall(L, 1, 2, 0);
  FUZZ_CHECK(rc == LUA_OK, lua_tostring(L, -1));
  FUZZ_CHECK(lua_gettop(L) == top + 2, "decode returned a stack of another size");
  if (!lua_isnil(L, -2) || lua_isnil(L, -1)) {  // a value (json.null is a light userdata)
    FUZZ_CHECK(lua_isnil(L, -1), "decode returned a value and a second result");
    lua_pop(L, 1);
    return true;
  }
  FUZZ_CHECK(lua_type(L, -1) == LUA_TSTRING, "decode's refusal is not a message");
  std::size_t n = 0;
  const char* msg = lua_tolstring(L, -1, &n);
  FUZZ_CHECK(n < 200, msg);
  FUZZ_CHECK(std::string_view(msg, n).starts_with("json.decode: "), msg);
  lua_pop(L, 2);
  return false;
}

// json.encode of the value at `idx`: must succeed; the text is pushed.
void encode(lua_State* L, int idx) {
  idx = lua_absindex(L, idx);
  lua_getglobal(L, "E");
  lua_pushvalue(L, idx);
  const int rc = lua_pcall(L, 1, 1, 0);
  FUZZ_CHECK(rc == LUA_OK, lua_tostring(L, -1));
  FUZZ_CHECK(lua_type(L, -1) == LUA_TSTRING, "encode returned no string");
}

// Whether the scalars at a and b are the same JSON value, bit for bit.
bool same_scalar(lua_State* L, int a, int b) {
  if (lua_type(L, a) != lua_type(L, b)) return false;
  if (lua_type(L, a) != LUA_TNUMBER) return lua_rawequal(L, a, b);
  if (lua_isinteger(L, a) != lua_isinteger(L, b)) return false;
  if (lua_isinteger(L, a)) return lua_tointeger(L, a) == lua_tointeger(L, b);
  const double x = lua_tonumber(L, a), y = lua_tonumber(L, b);
  FUZZ_CHECK(std::isfinite(x) && std::isfinite(y), "decode returned NaN or infinity");
  return std::memcmp(&x, &y, sizeof x) == 0;
}

// Compares the trees at a and b without recursion (depth reaches 1000):
// every (a, b) pair of tables is walked once. Returns the depth of a, or -1
// if they differ. Uses the stack freely; restores it.
int same_tree(lua_State* L, int a, int b) {
  const int top = lua_gettop(L);
  a = lua_absindex(L, a);
  b = lua_absindex(L, b);
  // Pending pairs as stack slots: (slot of x, slot of y, depth of x).
  std::vector<std::pair<std::pair<int, int>, int>> pending{{{a, b}, 0}};
  int depth = 0;
  bool same = true;
  while (same && !pending.empty()) {
    auto [xy, d] = pending.back();
    pending.pop_back();
    auto [x, y] = xy;
    if (lua_type(L, x) != LUA_TTABLE || lua_type(L, y) != LUA_TTABLE) {
      same = same_scalar(L, x, y);
      depth = std::max(depth, d);
      continue;
    }
    depth = std::max(depth, d + 1);
    // Same metatable (the empty-array marker, or none).
    const bool mx = lua_getmetatable(L, x), my = lua_getmetatable(L, y);
    if (mx != my || (mx && !lua_rawequal(L, -1, -2))) same = false;
    lua_pop(L, int(mx) + int(my));
    if (!same) break;
    // Same key count, and every key of x in y with an equal value.
    std::size_t nx = 0, ny = 0;
    lua_pushnil(L);
    while (lua_next(L, y) != 0) {
      lua_pop(L, 1);
      ++ny;
    }
    FUZZ_CHECK(lua_checkstack(L, 8), "out of Lua stack");
    lua_pushnil(L);
    while (same && lua_next(L, x) != 0) {
      ++nx;
      // Stack: key, xv. Keep xv and yv as slots for later comparison; the
      // key goes back on top for lua_next.
      lua_pushvalue(L, -2);
      lua_rawget(L, y);  // key, xv, yv
      if (lua_isnil(L, -1)) {
        same = false;
        lua_pop(L, 3);
        break;
      }
      const int xv = lua_gettop(L) - 1, yv = lua_gettop(L);
      FUZZ_CHECK(lua_checkstack(L, 4), "out of Lua stack");
      lua_pushvalue(L, xv - 1);  // the key again, on top
      pending.push_back({{xv, yv}, d + 1});
    }
    if (same && nx != ny) same = false;
  }
  lua_settop(L, top);
  return same ? depth : -1;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  lua_State* L = state();
  const int top = lua_gettop(L);
  const std::string_view x(reinterpret_cast<const char*>(data), size);
  if (!decode(L, x)) {
    FUZZ_CHECK(lua_gettop(L) == top, "a refusal left something on the stack");
    return 0;
  }
  const int v = lua_gettop(L);  // decode(x)
  encode(L, v);
  std::size_t n = 0;
  const char* text = lua_tolstring(L, -1, &n);
  const std::string encoded(text, n);
  lua_pop(L, 1);
  FUZZ_CHECK(decode(L, encoded), ("decode refused what encode wrote: " + encoded.substr(0, 200)).c_str());
  const int depth = same_tree(L, v, -1);
  FUZZ_CHECK(depth >= 0, ("decode(encode(decode(x))) differs from decode(x); encode wrote: " +
                          encoded.substr(0, 200)).c_str());
  FUZZ_CHECK(depth <= kMaxDepth, "decode accepted nesting beyond its bound");
  lua_settop(L, top);
  // The bound, exactly: 1000 - depth more levels are fine, one more is not.
  // Building 2000 tables per input would cut the run rate tenfold, so this
  // looks at one input in eight (by size) and at every deep one.
  if (size % 8 != 0 && depth < kMaxDepth - 16) return 0;
  const std::size_t k = static_cast<std::size_t>(kMaxDepth - depth);
  std::string wrapped = std::string(k, '[') + std::string(x) + std::string(k, ']');
  FUZZ_CHECK(decode(L, wrapped), "decode refused nesting within its bound");
  lua_settop(L, top);
  wrapped = "[" + wrapped + "]";
  lua_getglobal(L, "D");
  lua_pushlstring(L, wrapped.data(), wrapped.size());
  FUZZ_CHECK(lua_pcall(L, 1, 2, 0) == LUA_OK, "decode raised");
  FUZZ_CHECK(lua_isnil(L, -2) && lua_type(L, -1) == LUA_TSTRING, "decode accepted nesting beyond its bound");
  FUZZ_CHECK(std::strstr(lua_tostring(L, -1), "nesting deeper than 1000") != nullptr, lua_tostring(L, -1));
  lua_settop(L, top);
  return 0;
}
