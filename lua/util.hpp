// lua/util.hpp
// slua's helper functions (API.md §7): json, hashes, iconv, pcre, epoch, usleep, ls, stat, eprint.
//
// Two ways in:
//   - the `conch` program calls install_slua_globals(L) once per state, which
//     sets the globals under slua's names (json, eprint, string.md5/sha1/
//     sha256/sha512/iconv/pcrematch/epoch, os.usleep, io.ls, io.stat);
//   - stock lua5.4 does `local util = require "conch.util"` (conch.so exports
//     luaopen_conch_util, which Lua's all-in-one C loader finds next to
//     conch.so on LUA_CPATH; embedded states have it in package.preload).
//     `util.install()` sets the same globals as install_slua_globals.
//
// Every helper is a thin wrapper over a Debian library: JSON over RapidJSON
// (chosen by measurement, bench/NOTES.md "JSON"), hashes over OpenSSL's
// libcrypto, iconv over glibc, regular expressions over PCRE2, epoch over
// strptime(3). The functions are longjmp-safe (the stock lua5.4 is C).
#pragma once

struct lua_State;

namespace conch::lua {

/// Sets slua's globals in L: `json` (encode, decode, null), `eprint`,
/// `string.md5/sha1/sha256/sha512/iconv/pcrematch/epoch`, `os.usleep`,
/// `io.ls`, `io.stat`. Creates `string`, `os` and `io` if the state lacks
/// them. Call it after luaL_openlibs. Raises a Lua error only when out of
/// memory, so call it in protected mode (lua_pcall) or at set-up, where a
/// panic is acceptable.
void install_slua_globals(lua_State* L);

/// lua_CFunction that returns the `conch.util` table (luaopen_conch_util).
int open_util(lua_State* L);

}  // namespace conch::lua
