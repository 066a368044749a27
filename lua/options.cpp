// lua/options.cpp
// Strict option tables: every key is one the function takes, every value has the type it needs.
//
// Each option-taking function of the module (conch.chan, select, listen,
// connect, udp, nats) checks its table here before it reads any option, so an
// unknown or misplaced key, a wrong type or an extra argument is an error
// naming the function and the key, never silently ignored (API.md §6).
//
// Invariants:
//  - Everything here may raise (luaL_error); nothing holds a C++ object with
//    a destructor, so a raise (a longjmp under the C lua5.4) leaks nothing.
//  - The option table is only read (lua_next over an unmodified table).
// Lock order: no lock is held here.
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "lua/bridge.hpp"

namespace conch::lua::detail {

namespace {

bool is_one_of(const char* key, const option_names& names) noexcept {
  for (const char* const* n = names.takes; *n != nullptr; ++n)
    if (std::strcmp(*n, key) == 0) return true;
  return false;
}

// Pushes "a, b, c" for the null-terminated list `names` (may raise).
void push_name_list(lua_State* L, const char* const* names) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (const char* const* n = names; *n != nullptr; ++n) {
    if (n != names) luaL_addstring(&b, ", ");
    luaL_addstring(&b, *n);
  }
  luaL_pushresult(&b);
}

// Raises "<fn>: unknown option '<key>' (<hint>; it takes a, b)" for the key
// on top of the stack (pushed as a value, so a key with a zero byte shows whole).
[[noreturn]] void raise_unknown(lua_State* L, const option_names& names, const char* key) {
  int key_idx = lua_gettop(L);
  const char* hint = names.hint != nullptr ? names.hint(key) : nullptr;
  luaL_where(L, 1);
  lua_pushfstring(L, "%s: unknown option '", names.fn);
  lua_pushvalue(L, key_idx);
  lua_pushfstring(L, "' (%s%sit takes ", hint != nullptr ? hint : "", hint != nullptr ? "; " : "");
  push_name_list(L, names.takes);
  lua_pushliteral(L, ")");
  lua_concat(L, 6);
  lua_error(L);
  std::abort();  // lua_error does not return
}

}  // namespace

void check_option_keys(lua_State* L, int idx, const option_names& names, bool allow_cases) {
  idx = lua_absindex(L, idx);
  luaL_checkstack(L, 12, nullptr);  // lua_next, and an error message in parts
  lua_Integer ncases = allow_cases ? static_cast<lua_Integer>(lua_rawlen(L, idx)) : 0;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_pop(L, 1);  // the value; the key stays for lua_next
    int kt = lua_type(L, -1);
    if (kt == LUA_TSTRING) {
      const char* key = lua_tostring(L, -1);
      if (is_one_of(key, names)) continue;
      raise_unknown(L, names, key);
    }
    if (allow_cases && lua_isinteger(L, -1)) {
      lua_Integer i = lua_tointeger(L, -1);
      if (i >= 1 && i <= ncases) continue;  // a case
      luaL_error(L, "%s: key %d is not a case (cases are 1..%d, without holes)", names.fn,
                 static_cast<int>(i), static_cast<int>(ncases));
    }
    // A key that is no name: say what it is.
    if (kt == LUA_TNUMBER)
      luaL_error(L, "%s: option key %s is not a name (an option table has only named keys)", names.fn,
                 luaL_tolstring(L, -1, nullptr));
    luaL_error(L, "%s: option key of type %s is not a name (an option table has only named keys)",
               names.fn, luaL_typename(L, -1));
  }
}

void check_max_args(lua_State* L, int max, const char* fn) {
  int n = lua_gettop(L);
  if (n > max)
    luaL_error(L, "%s: unexpected argument #%d (a %s; it takes at most %d)", fn, max + 1,
               luaL_typename(L, max + 1), max);
}

int raise_option_type(lua_State* L, const char* fn, const char* key, const char* expected, int got_idx) {
  return luaL_error(L, "%s: option '%s' must be %s (got %s)", fn, key, expected, luaL_typename(L, got_idx));
}

bool opt_integer(lua_State* L, int idx, const char* fn, const char* key, lua_Integer min, lua_Integer max,
                 lua_Integer* out) {
  if (lua_getfield(L, idx, key) == LUA_TNIL) {
    lua_pop(L, 1);
    return false;  // absent
  }
  int isnum = 0;
  lua_Integer v = lua_tointegerx(L, -1, &isnum);  // floats with an exact integer value too
  if (lua_type(L, -1) != LUA_TNUMBER || isnum == 0) raise_option_type(L, fn, key, "an integer", -1);
  if (v > max && max < LUA_MAXINTEGER)  // a limit, not a range: say so (capacities, lua/chanlib.cpp)
    luaL_error(L, "%s: option '%s' of %I is over the limit of %I; it must be between %I and %I", fn, key, v,
               max, min, max);
  if (v < min || v > max)
    luaL_error(L, "%s: option '%s' must be between %I and %I (got %I)", fn, key, min, max, v);
  lua_pop(L, 1);
  *out = v;
  return true;
}

// Reads opts.tls (true, or {cert=, key=, ca=, verify=, server_name=}; every
// other key is an error naming it) from the options table at idx, if any.
void check_tls(lua_State* L, int idx, lua_tls& t) {
  if (lua_isnoneornil(L, idx) || !lua_istable(L, idx)) return;
  int type = lua_getfield(L, idx, "tls");
  if (type == LUA_TBOOLEAN) {
    t.set = lua_toboolean(L, -1) != 0;  // tls=true: a client with the defaults
  } else if (type == LUA_TTABLE) {
    t.set = true;
    int tt = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, tt) != 0) {
      const char* k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : nullptr;
      std::string_view key = k != nullptr ? k : "";
      const char** field = key == "cert"          ? &t.cert
                           : key == "key"         ? &t.key
                           : key == "ca"          ? &t.ca
                           : key == "server_name" ? &t.server_name
                                                  : nullptr;
      if (field != nullptr) {
        std::size_t n = 0;
        const char* v = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : nullptr;
        if (v == nullptr || std::strlen(v) != n) luaL_error(L, "conch: tls.%s must be a string", k);
        *field = v;  // the string stays referenced by the option table
      } else if (key == "verify") {
        if (!lua_isboolean(L, -1)) luaL_error(L, "conch: tls.verify must be a boolean");
        t.verify = lua_toboolean(L, -1) != 0;
      } else {
        luaL_error(L, "conch: unknown tls option '%s' (cert, key, ca, verify, server_name)",
                   k != nullptr ? k : luaL_typename(L, -2));
      }
      lua_pop(L, 1);
    }
  } else if (type != LUA_TNIL) {
    luaL_error(L, "conch: tls must be true or a table {cert=, key=, ca=, verify=, server_name=}");
  }
  lua_pop(L, 1);
}

bool apply_tls(const lua_tls& t, std::optional<conch::net::tls_options>& out) noexcept {
  if (!t.set) return true;
  try {
    conch::net::tls_options& x = out.emplace();
    if (t.cert != nullptr) x.cert_file = t.cert;
    if (t.key != nullptr) x.key_file = t.key;
    if (t.ca != nullptr) x.ca_file = t.ca;
    if (t.server_name != nullptr) x.server_name = t.server_name;
    x.verify = t.verify;
    return true;
  } catch (...) {
    return false;
  }
}

}  // namespace conch::lua::detail
