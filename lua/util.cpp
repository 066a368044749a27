// lua/util.cpp
// slua's helpers for Lua (API.md §7): json, hashes, iconv, pcrematch, epoch, usleep, ls, stat, eprint.
//
// Each helper wraps a Debian library: RapidJSON (SAX reader straight into Lua
// tables, writer straight from them), OpenSSL libcrypto (EVP digests), glibc
// iconv and strptime, PCRE2. lua/util.hpp has the two entry points.
//
// Invariants:
//  - Longjmp-safe (the stock lua5.4 is C): arguments are checked first; any
//    C or C++ resource that lives across a Lua call that may raise (a push
//    can run out of memory, a finalizer can run) is owned by a *box*, a
//    userdata whose __gc releases it, so a raise leaks nothing.
//  - JSON decoding and encoding run no Lua code (raw table access only), so
//    a cached decoder/encoder box is never re-entered; its `busy` flag only
//    guards against a finalizer calling json.* while one is in use (then a
//    fresh box is made).
//  - Nesting is bounded by kMaxDepth in both directions: deeper input is an
//    error, never a C stack overflow.
// Lock order: no locks.
#include "lua/util.hpp"

#include <dirent.h>
#include <iconv.h>
#include <locale.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <clocale>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <new>
#include <string>
#include <vector>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <lua.hpp>
#include <openssl/evp.h>
#include <pcre2.h>
#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace conch::lua {

namespace {

// JSON nesting bound (objects and arrays), as lua-cjson's default.
constexpr int kMaxDepth = 1000;

// Registry names of the box metatables and of the empty-array marker.
constexpr const char* kArrayMeta = "conch.util.json.array";

// ---- boxes: C++ state owned by a userdata, released by __gc ----

template <class T>
int box_gc(lua_State* L) {
  static_cast<T*>(lua_touserdata(L, 1))->~T();
  return 0;
}

// Pushes a userdata holding a default-constructed T whose __gc destroys it.
// May raise (out of memory) before T exists, which leaks nothing.
template <class T>
T* new_box(lua_State* L) {
  void* p = lua_newuserdatauv(L, sizeof(T), 0);
  T* t = new (p) T();
  lua_createtable(L, 0, 1);  // a raise here leaks only T's empty state
  lua_pushcfunction(L, &box_gc<T>);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  return t;
}

// ---- JSON (RapidJSON) ----

// Numbers come as text (RawNumber below), not through RapidJSON 1.1's own
// conversion: that one reads past its table of powers for a long mantissa
// with a big exponent, and returned -1.3e-141 for "0e-324".
constexpr unsigned kParseFlags = rapidjson::kParseNumbersAsStringsFlag | rapidjson::kParseIterativeFlag |
                                 rapidjson::kParseValidateEncodingFlag;

// SAX handler that builds the Lua value on the stack of L.
struct json_decoder {
  lua_State* L = nullptr;
  bool busy = false;
  bool too_deep = false;
  bool no_stack = false;
  bool lone_surrogate = false;
  bool infinite = false;
  int depth = 0;
  // Per open container: the last array index stored, or -1 for an object.
  lua_Integer index[kMaxDepth + 1] = {};
  rapidjson::Reader reader;

  // Stores the value on top into the open container (nothing at the root).
  bool add() {
    if (depth == 0) return true;
    lua_Integer& i = index[depth];
    if (i < 0) {
      lua_rawset(L, -3);  // container, key, value
    } else {
      lua_rawseti(L, -2, ++i);
    }
    return true;
  }
  bool open(lua_Integer kind) {
    if (depth >= kMaxDepth) {
      too_deep = true;
      return false;
    }
    if (!lua_checkstack(L, 4)) {
      no_stack = true;
      return false;
    }
    lua_createtable(L, 0, 0);
    index[++depth] = kind;
    return true;
  }
  bool Null() {
    lua_pushlightuserdata(L, nullptr);  // json.null, as lua-cjson's
    return add();
  }
  bool Bool(bool b) {
    lua_pushboolean(L, b);
    return add();
  }
  bool Int(int v) {
    lua_pushinteger(L, v);
    return add();
  }
  bool Uint(unsigned v) {
    lua_pushinteger(L, static_cast<lua_Integer>(v));
    return add();
  }
  bool Int64(int64_t v) {
    lua_pushinteger(L, static_cast<lua_Integer>(v));
    return add();
  }
  bool Uint64(uint64_t v) {
    // Beyond a Lua integer: the nearest float, as Lua's own reader does.
    if (v > static_cast<uint64_t>(LUA_MAXINTEGER)) {
      lua_pushnumber(L, static_cast<lua_Number>(v));
    } else {
      lua_pushinteger(L, static_cast<lua_Integer>(v));
    }
    return add();
  }
  bool Double(double v) {
    lua_pushnumber(L, v);
    return add();
  }
  // A number's text (NUL-terminated, already checked as JSON): an integer
  // that fits a Lua integer stays one; anything else is the nearest double
  // (glibc's strtod_l in the C locale: correctly rounded, whatever locale
  // the program set), as Lua's own reader does. One that rounds to infinity
  // (1.7976931348624e308, just over the largest double) is refused: JSON
  // cannot hold it.
  bool RawNumber(const char* s, rapidjson::SizeType n, bool) {
    if (std::strpbrk(s, ".eE") == nullptr) {
      lua_Integer i = 0;
      auto [end, ec] = std::from_chars(s, s + n, i);
      if (ec == std::errc() && end == s + n) {
        lua_pushinteger(L, i);
        return add();
      }
    }
    static const locale_t c_locale = newlocale(LC_ALL_MASK, "C", static_cast<locale_t>(0));
    const double v = strtod_l(s, nullptr, c_locale);
    if (!std::isfinite(v)) {
      infinite = true;
      return false;
    }
    lua_pushnumber(L, v);
    return add();
  }
  // RapidJSON 1.1 turns a lone \uDC00..\uDFFF escape into the bytes ED B0..BF
  // xx, which are not UTF-8 (json.encode would then refuse the string): such
  // a string is refused, as RapidJSON refuses a lone high surrogate. Valid
  // UTF-8 never has ED followed by A0..BF, so looking at each ED suffices.
  bool valid_utf8(const char* s, rapidjson::SizeType n) {
    const char* end = s + n;
    for (const char* p = s; (p = static_cast<const char*>(std::memchr(p, 0xED, end - p))) != nullptr; ++p) {
      if (p + 1 < end && static_cast<unsigned char>(p[1]) >= 0xA0) {
        lone_surrogate = true;
        return false;
      }
    }
    return true;
  }
  bool String(const char* s, rapidjson::SizeType n, bool) {
    if (!valid_utf8(s, n)) return false;
    lua_pushlstring(L, s, n);
    return add();
  }
  bool Key(const char* s, rapidjson::SizeType n, bool) {
    if (!valid_utf8(s, n)) return false;
    lua_pushlstring(L, s, n);
    return true;
  }
  bool StartObject() { return open(-1); }
  bool StartArray() { return open(0); }
  bool EndObject(rapidjson::SizeType) {
    --depth;
    return add();
  }
  bool EndArray(rapidjson::SizeType n) {
    // An empty array remembers it was one, so it encodes back as [].
    if (n == 0) luaL_setmetatable(L, kArrayMeta);
    --depth;
    return add();
  }
};

// json.decode(s) -> value | nil, message. Upvalue 1: the cached decoder box.
int json_decode(lua_State* L) {
  size_t n = 0;
  const char* s = luaL_checklstring(L, 1, &n);
  lua_settop(L, 1);
  auto* d = static_cast<json_decoder*>(lua_touserdata(L, lua_upvalueindex(1)));
  bool cached = !d->busy;
  if (!cached) d = new_box<json_decoder>(L);  // a finalizer's nested call: a box of its own
  d->busy = true;
  d->L = L;
  d->depth = 0;
  d->too_deep = d->no_stack = d->lone_surrogate = d->infinite = false;
  rapidjson::MemoryStream ms(s, n);
  rapidjson::ParseResult r = d->reader.Parse<kParseFlags>(ms, *d);
  d->busy = !cached;
  if (r && ms.Tell() == n) return 1;  // the root value is on top
  if (r) {
    // RapidJSON's streams end at a NUL byte: "1\0garbage" parsed as 1.
    lua_settop(L, 1);
    lua_pushnil(L);
    lua_pushfstring(L, "json.decode: a NUL byte after the value at offset %d", static_cast<int>(ms.Tell()));
    return 2;
  }
  lua_pushnil(L);
  if (d->too_deep) {
    lua_pushfstring(L, "json.decode: nesting deeper than %d at offset %d", kMaxDepth,
                    static_cast<int>(r.Offset()));
  } else if (d->no_stack) {
    lua_pushfstring(L, "json.decode: out of Lua stack at offset %d", static_cast<int>(r.Offset()));
  } else if (d->infinite) {
    lua_pushfstring(L, "json.decode: a number too big for a double before offset %d", static_cast<int>(r.Offset()));
  } else if (d->lone_surrogate) {
    lua_pushfstring(L, "json.decode: a lone low surrogate (\\uDC00..\\uDFFF) in a string before offset %d",
                    static_cast<int>(r.Offset()));
  } else {
    lua_pushfstring(L, "json.decode: %s at offset %d", rapidjson::GetParseError_En(r.Code()),
                    static_cast<int>(r.Offset()));
  }
  return 2;
}

using json_writer = rapidjson::Writer<rapidjson::StringBuffer, rapidjson::UTF8<>, rapidjson::UTF8<>,
                                      rapidjson::CrtAllocator, rapidjson::kWriteValidateEncodingFlag>;

struct json_encoder {
  bool busy = false;
  rapidjson::StringBuffer buf;
  json_writer w{buf};
  char error[160] = {};
};

bool encode_value(lua_State* L, int idx, json_encoder* e, int depth);

bool fail(json_encoder* e, const char* what) {
  std::snprintf(e->error, sizeof e->error, "%s", what);
  return false;
}

// Writes the key on top of the stack (a copy of lua_next's key) as a JSON
// object key: strings as they are, numbers in Lua's own notation.
bool encode_key(lua_State* L, json_encoder* e) {
  int t = lua_type(L, -1);
  if (t != LUA_TSTRING && t != LUA_TNUMBER) {
    std::snprintf(e->error, sizeof e->error, "json.encode: a table key of type %s cannot be a JSON key",
                  lua_typename(L, t));
    return false;
  }
  size_t n = 0;
  const char* s = lua_tolstring(L, -1, &n);  // on a copy: lua_next's key stays untouched
  if (!e->w.Key(s, static_cast<rapidjson::SizeType>(n))) return fail(e, "json.encode: a key is not valid UTF-8");
  return true;
}

bool encode_table(lua_State* L, int idx, json_encoder* e, int depth) {
  if (depth >= kMaxDepth) {
    std::snprintf(e->error, sizeof e->error, "json.encode: nesting deeper than %d (or a cycle)", kMaxDepth);
    return false;
  }
  if (!lua_checkstack(L, 4)) return fail(e, "json.encode: out of Lua stack");
  // An array is a table whose keys are exactly 1..n (n may be 0 only with
  // the empty-array marker json.decode sets); anything else is an object.
  lua_Integer count = 0, max = 0;
  bool ints = true;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_pop(L, 1);
    if (ints && lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
      max = std::max(max, lua_tointeger(L, -1));
    } else {
      ints = false;
    }
    ++count;
  }
  bool array = ints && count == max;
  if (count == 0) {
    array = false;
    if (lua_getmetatable(L, idx)) {
      luaL_getmetatable(L, kArrayMeta);
      array = lua_rawequal(L, -1, -2);
      lua_pop(L, 2);
    }
  }
  if (array) {
    e->w.StartArray();
    for (lua_Integer i = 1; i <= max; ++i) {
      lua_rawgeti(L, idx, i);
      bool ok = encode_value(L, lua_gettop(L), e, depth + 1);
      lua_pop(L, 1);
      if (!ok) return false;
    }
    e->w.EndArray();
    return true;
  }
  e->w.StartObject();
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_pushvalue(L, -2);
    bool ok = encode_key(L, e);
    lua_pop(L, 1);
    ok = ok && encode_value(L, lua_gettop(L), e, depth + 1);
    lua_pop(L, 1);
    if (!ok) {
      lua_pop(L, 1);  // the key
      return false;
    }
  }
  e->w.EndObject();
  return true;
}

bool encode_value(lua_State* L, int idx, json_encoder* e, int depth) {
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
      return e->w.Null();
    case LUA_TBOOLEAN:
      return e->w.Bool(lua_toboolean(L, idx) != 0);
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) return e->w.Int64(lua_tointeger(L, idx));
      if (!std::isfinite(lua_tonumber(L, idx))) return fail(e, "json.encode: NaN and infinity have no JSON form");
      return e->w.Double(lua_tonumber(L, idx));
    case LUA_TSTRING: {
      size_t n = 0;
      const char* s = lua_tolstring(L, idx, &n);
      if (!e->w.String(s, static_cast<rapidjson::SizeType>(n))) return fail(e, "json.encode: a string is not valid UTF-8");
      return true;
    }
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == nullptr) return e->w.Null();  // json.null
      break;
    case LUA_TTABLE:
      return encode_table(L, idx, e, depth);
    default:
      break;
  }
  std::snprintf(e->error, sizeof e->error, "json.encode: a %s has no JSON form", luaL_typename(L, idx));
  return false;
}

// json.encode(v) -> string. Upvalue 1: the cached encoder box.
int json_encode(lua_State* L) {
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  auto* e = static_cast<json_encoder*>(lua_touserdata(L, lua_upvalueindex(1)));
  bool cached = !e->busy;
  if (!cached) e = new_box<json_encoder>(L);
  e->busy = true;
  e->buf.Clear();
  e->w.Reset(e->buf);
  bool ok = encode_value(L, 1, e, 0);
  e->busy = !cached;
  if (!ok) return luaL_error(L, "%s", e->error);
  lua_pushlstring(L, e->buf.GetString(), e->buf.GetSize());
  if (e->buf.GetSize() > (1u << 20)) e->buf.ShrinkToFit();  // do not keep a huge buffer cached
  return 1;
}

void push_json_table(lua_State* L) {
  lua_createtable(L, 0, 4);
  new_box<json_decoder>(L);
  lua_pushcclosure(L, json_decode, 1);
  lua_setfield(L, -2, "decode");
  new_box<json_encoder>(L);
  lua_pushcclosure(L, json_encode, 1);
  lua_setfield(L, -2, "encode");
  lua_pushlightuserdata(L, nullptr);
  lua_setfield(L, -2, "null");
  luaL_newmetatable(L, kArrayMeta);  // the marker of empty arrays, as json.array
  lua_setfield(L, -2, "array");
}

// ---- hashes (libcrypto) ----

// string.<name>(s) -> lowercase hex. Upvalues: the EVP_MD (light), the name.
int hash(lua_State* L) {
  size_t n = 0;
  const char* s = luaL_checklstring(L, 1, &n);
  const auto* md = static_cast<const EVP_MD*>(lua_touserdata(L, lua_upvalueindex(1)));
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  if (EVP_Digest(s, n, out, &len, md, nullptr) != 1)
    return luaL_error(L, "string.%s: the digest is unavailable", lua_tostring(L, lua_upvalueindex(2)));
  static constexpr char hex[] = "0123456789abcdef";
  char text[2 * EVP_MAX_MD_SIZE];
  for (unsigned i = 0; i < len; ++i) {
    text[2 * i] = hex[out[i] >> 4];
    text[2 * i + 1] = hex[out[i] & 15];
  }
  lua_pushlstring(L, text, 2 * len);
  return 1;
}

// ---- iconv (glibc) ----

struct c_buffer {
  char* p = nullptr;
  ~c_buffer() { std::free(p); }
};

// Converts s into b->p (malloc'd); returns 0, or the errno of the failure
// with *at the input offset. Calls no Lua.
int convert(iconv_t cd, const char* s, size_t n, c_buffer* b, size_t* out_len, size_t* at) noexcept {
  size_t cap = n + n / 2 + 16;
  b->p = static_cast<char*>(std::malloc(cap));
  if (b->p == nullptr) return ENOMEM;
  char* in = const_cast<char*>(s);  // iconv's signature; it does not write the input
  size_t in_left = n;
  size_t used = 0;
  bool flushing = false;
  for (;;) {
    char* out = b->p + used;
    size_t out_left = cap - used;
    // After the input, one call with no input flushes a stateful encoding's shift state.
    size_t r = flushing ? iconv(cd, nullptr, nullptr, &out, &out_left) : iconv(cd, &in, &in_left, &out, &out_left);
    used = cap - out_left;
    if (r != static_cast<size_t>(-1)) {
      if (flushing) break;
      flushing = true;
      continue;
    }
    if (errno != E2BIG) {
      *at = n - in_left;
      return errno;
    }
    // Output full: grow and go on where it stopped.
    cap *= 2;
    char* grown = static_cast<char*>(std::realloc(b->p, cap));
    if (grown == nullptr) return ENOMEM;
    b->p = grown;
  }
  *out_len = used;
  return 0;
}

// string.iconv(s, from, to) -> converted | nil, message.
int l_iconv(lua_State* L) {
  size_t n = 0;
  const char* s = luaL_checklstring(L, 1, &n);
  const char* from = luaL_checkstring(L, 2);
  const char* to = luaL_checkstring(L, 3);
  c_buffer* b = new_box<c_buffer>(L);
  iconv_t cd = iconv_open(to, from);
  if (cd == reinterpret_cast<iconv_t>(-1))
    return luaL_error(L, "string.iconv: no conversion from '%s' to '%s'", from, to);
  size_t len = 0, at = 0;
  int err = convert(cd, s, n, b, &len, &at);
  iconv_close(cd);
  if (err == ENOMEM) return luaL_error(L, "string.iconv: out of memory");
  if (err != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "string.iconv: %s at byte %d (from '%s' to '%s')",
                    err == EINVAL ? "an incomplete character" : "an invalid or unconvertible character",
                    static_cast<int>(at) + 1, from, to);
    return 2;
  }
  lua_pushlstring(L, b->p, len);
  return 1;
}

// ---- pcrematch (PCRE2) ----

struct pcre_box {
  pcre2_code* code = nullptr;
  pcre2_match_data* md = nullptr;
  uint32_t captures = 0;
  ~pcre_box() {
    if (md != nullptr) pcre2_match_data_free(md);
    if (code != nullptr) pcre2_code_free(code);
  }
};

// string.pcrematch(s, pattern) -> match, captures... | nil. Upvalue 1: a
// weak-valued cache pattern -> compiled box (kept until the next collection).
int l_pcrematch(lua_State* L) {
  size_t n = 0, pn = 0;
  const char* s = luaL_checklstring(L, 1, &n);
  const char* pat = luaL_checklstring(L, 2, &pn);
  lua_settop(L, 2);
  lua_pushvalue(L, 2);
  auto* box = static_cast<pcre_box*>(lua_rawget(L, lua_upvalueindex(1)) == LUA_TUSERDATA ? lua_touserdata(L, -1) : nullptr);
  if (box == nullptr) {
    lua_pop(L, 1);
    box = new_box<pcre_box>(L);
    int code = 0;
    PCRE2_SIZE offset = 0;
    box->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pat), pn, 0, &code, &offset, nullptr);
    if (box->code == nullptr) {
      PCRE2_UCHAR msg[160];
      pcre2_get_error_message(code, msg, sizeof msg);
      return luaL_error(L, "string.pcrematch: bad pattern at offset %d: %s", static_cast<int>(offset),
                        reinterpret_cast<const char*>(msg));
    }
    pcre2_pattern_info(box->code, PCRE2_INFO_CAPTURECOUNT, &box->captures);
    box->md = pcre2_match_data_create_from_pattern(box->code, nullptr);
    if (box->md == nullptr) return luaL_error(L, "string.pcrematch: out of memory");
    lua_pushvalue(L, 2);
    lua_pushvalue(L, -2);
    lua_rawset(L, lua_upvalueindex(1));
  }
  int rc = pcre2_match(box->code, reinterpret_cast<PCRE2_SPTR>(s), n, 0, 0, box->md, nullptr);
  if (rc == PCRE2_ERROR_NOMATCH) {
    lua_pushnil(L);
    return 1;
  }
  if (rc < 0) {
    PCRE2_UCHAR msg[160];
    pcre2_get_error_message(rc, msg, sizeof msg);
    return luaL_error(L, "string.pcrematch: %s", reinterpret_cast<const char*>(msg));
  }
  luaL_checkstack(L, static_cast<int>(box->captures) + 1, "string.pcrematch: too many captures");
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(box->md);
  for (uint32_t i = 0; i <= box->captures; ++i) {
    // A group that did not take part in the match is false (keeps the positions).
    if (static_cast<int>(i) >= rc || ov[2 * i] == PCRE2_UNSET) {
      lua_pushboolean(L, 0);
    } else {
      lua_pushlstring(L, s + ov[2 * i], ov[2 * i + 1] - ov[2 * i]);
    }
  }
  return static_cast<int>(box->captures) + 1;
}

// ---- epoch (strptime) ----

// string.epoch(s, format) -> seconds | nil, message. The time is read as
// UTC unless the string carries an offset (%z).
int l_epoch(lua_State* L) {
  size_t n = 0;
  const char* s = luaL_checklstring(L, 1, &n);
  const char* fmt = luaL_checkstring(L, 2);
  struct tm tm;
  std::memset(&tm, 0, sizeof tm);
  const char* end = strptime(s, fmt, &tm);
  // The whole string must match (an embedded NUL is a mismatch too).
  if (end == nullptr || end != s + n) {
    lua_pushnil(L);
    lua_pushfstring(L, "string.epoch: '%s' does not match the format '%s'", s, fmt);
    return 2;
  }
  long offset = tm.tm_gmtoff;  // set by %z (glibc); 0 otherwise
  time_t t = timegm(&tm);
  lua_pushinteger(L, static_cast<lua_Integer>(t) - offset);
  return 1;
}

// ---- usleep ----

// The thread-blocking sleep behind os.usleep.
int raw_usleep(lua_State* L) {
  lua_Number us = luaL_checknumber(L, 1);
  luaL_argcheck(L, us >= 0 && us < 1e15, 1, "expected microseconds, 0 or more");
  struct timespec ts;
  ts.tv_sec = static_cast<time_t>(us / 1e6);
  ts.tv_nsec = static_cast<long>(std::fmod(us, 1e6) * 1000);
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
  }
  return 0;
}

// os.usleep(us): inside a conch go block (the conch module loaded and the
// code yieldable) it parks the go block with conch.sleep, so the loop thread
// runs others; elsewhere it blocks the thread, as slua's does.
constexpr const char* kUsleepChunk = R"(
local raw = ...
return function(us)
  if type(us) ~= "number" or not (us >= 0) then
    error("os.usleep: expected microseconds, 0 or more, got " .. tostring(us), 2)
  end
  local p, co = package, coroutine
  local c = p and p.loaded and p.loaded.conch
  if type(c) == "table" and c.sleep and co and co.isyieldable() then return c.sleep(us / 1000) end
  return raw(us)
end
)";

void push_usleep(lua_State* L) {
  if (luaL_loadbufferx(L, kUsleepChunk, std::strlen(kUsleepChunk), "=os.usleep", "t") != LUA_OK) lua_error(L);
  lua_pushcfunction(L, raw_usleep);
  lua_call(L, 1, 1);
}

// ---- ls, stat ----

struct dir_box {
  DIR* d = nullptr;
  std::vector<std::string> names;
  ~dir_box() {
    if (d != nullptr) closedir(d);
  }
};

// Reads the names of b->d (without . and ..), sorted. Returns 0 or an errno. Calls no Lua.
int read_dir(dir_box* b) noexcept {
  try {
    errno = 0;
    while (dirent* ent = readdir(b->d)) {
      if (std::strcmp(ent->d_name, ".") == 0 || std::strcmp(ent->d_name, "..") == 0) continue;
      b->names.emplace_back(ent->d_name);
    }
    int err = errno;
    closedir(b->d);
    b->d = nullptr;
    if (err != 0) return err;
    std::sort(b->names.begin(), b->names.end());
    return 0;
  } catch (const std::bad_alloc&) {
    return ENOMEM;
  }
}

// io.ls(path) -> {names, sorted} | nil, message.
int l_ls(lua_State* L) {
  const char* path = luaL_checkstring(L, 1);
  dir_box* b = new_box<dir_box>(L);
  b->d = opendir(path);
  int err = b->d == nullptr ? errno : read_dir(b);
  if (err != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "io.ls: %s: %s", path, std::strerror(err));
    return 2;
  }
  lua_createtable(L, static_cast<int>(std::min<size_t>(b->names.size(), 1u << 20)), 0);
  for (size_t i = 0; i < b->names.size(); ++i) {
    lua_pushlstring(L, b->names[i].data(), b->names[i].size());
    lua_rawseti(L, -2, static_cast<lua_Integer>(i) + 1);
  }
  return 1;
}

const char* file_type(mode_t m) {
  if (S_ISREG(m)) return "file";
  if (S_ISDIR(m)) return "directory";
  if (S_ISLNK(m)) return "link";
  if (S_ISFIFO(m)) return "fifo";
  if (S_ISSOCK(m)) return "socket";
  if (S_ISCHR(m)) return "char";
  if (S_ISBLK(m)) return "block";
  return "unknown";
}

// io.stat(path) -> {type=, size=, mode=, uid=, gid=, nlink=, ino=, dev=,
// atime=, mtime=, ctime=} | nil, message. A symbolic link is described
// itself (lstat), not what it points to.
int l_stat(lua_State* L) {
  const char* path = luaL_checkstring(L, 1);
  struct stat st;
  if (lstat(path, &st) != 0) {
    int err = errno;
    lua_pushnil(L);
    lua_pushfstring(L, "io.stat: %s: %s", path, std::strerror(err));
    return 2;
  }
  lua_createtable(L, 0, 11);
  lua_pushstring(L, file_type(st.st_mode));
  lua_setfield(L, -2, "type");
  const struct {
    const char* name;
    lua_Integer v;
  } fields[] = {{"size", static_cast<lua_Integer>(st.st_size)},   {"mode", static_cast<lua_Integer>(st.st_mode & 07777)},
                {"uid", static_cast<lua_Integer>(st.st_uid)},     {"gid", static_cast<lua_Integer>(st.st_gid)},
                {"nlink", static_cast<lua_Integer>(st.st_nlink)}, {"ino", static_cast<lua_Integer>(st.st_ino)},
                {"dev", static_cast<lua_Integer>(st.st_dev)},     {"atime", static_cast<lua_Integer>(st.st_atime)},
                {"mtime", static_cast<lua_Integer>(st.st_mtime)}, {"ctime", static_cast<lua_Integer>(st.st_ctime)}};
  for (const auto& f : fields) {
    lua_pushinteger(L, f.v);
    lua_setfield(L, -2, f.name);
  }
  return 1;
}

// ---- eprint ----

// eprint(...): print(...) to stderr, tab-separated and newline-terminated, in
// one write (lines from worker states on other threads never interleave).
int l_eprint(lua_State* L) {
  int n = lua_gettop(L);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 1; i <= n; ++i) {
    if (i > 1) luaL_addchar(&b, '\t');
    luaL_tolstring(L, i, nullptr);
    luaL_addvalue(&b);
  }
  luaL_addchar(&b, '\n');
  luaL_pushresult(&b);
  size_t len = 0;
  const char* s = lua_tolstring(L, -1, &len);
  std::fwrite(s, 1, len, stderr);
  std::fflush(stderr);
  return 0;
}

// ---- the module table and the globals ----

void add_hash(lua_State* L, const char* name, const EVP_MD* md) {
  lua_pushlightuserdata(L, const_cast<EVP_MD*>(md));
  lua_pushstring(L, name);
  lua_pushcclosure(L, hash, 2);
  lua_setfield(L, -2, name);
}

int install(lua_State* L);

// Global table `name` (created if missing) on top of the stack.
void push_global_table(lua_State* L, const char* name) {
  if (lua_getglobal(L, name) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setglobal(L, name);
  }
}

// Sets slua's globals from the util table at `u`.
void set_globals(lua_State* L, int u) {
  lua_getfield(L, u, "json");
  lua_setglobal(L, "json");
  lua_getfield(L, u, "eprint");
  lua_setglobal(L, "eprint");
  push_global_table(L, "string");
  for (const char* name : {"md5", "sha1", "sha256", "sha512", "iconv", "pcrematch", "epoch"}) {
    lua_getfield(L, u, name);
    lua_setfield(L, -2, name);
  }
  lua_pop(L, 1);
  push_global_table(L, "os");
  lua_getfield(L, u, "usleep");
  lua_setfield(L, -2, "usleep");
  lua_pop(L, 1);
  push_global_table(L, "io");
  lua_getfield(L, u, "ls");
  lua_setfield(L, -2, "ls");
  lua_getfield(L, u, "stat");
  lua_setfield(L, -2, "stat");
  lua_pop(L, 1);
}

// util.install(): the globals, from this util table (upvalue 1).
int install(lua_State* L) {
  set_globals(L, lua_upvalueindex(1));
  return 0;
}

int install_fn(lua_State* L) {
  open_util(L);
  set_globals(L, lua_gettop(L));
  return 0;
}

}  // namespace

int open_util(lua_State* L) {
  luaL_checkstack(L, 8, nullptr);
  lua_createtable(L, 0, 16);
  push_json_table(L);
  lua_setfield(L, -2, "json");
  add_hash(L, "md5", EVP_md5());
  add_hash(L, "sha1", EVP_sha1());
  add_hash(L, "sha256", EVP_sha256());
  add_hash(L, "sha512", EVP_sha512());
  lua_pushcfunction(L, l_iconv);
  lua_setfield(L, -2, "iconv");
  lua_createtable(L, 0, 0);  // the compiled-pattern cache, weak values
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_pushcclosure(L, l_pcrematch, 1);
  lua_setfield(L, -2, "pcrematch");
  lua_pushcfunction(L, l_epoch);
  lua_setfield(L, -2, "epoch");
  push_usleep(L);
  lua_setfield(L, -2, "usleep");
  lua_pushcfunction(L, l_ls);
  lua_setfield(L, -2, "ls");
  lua_pushcfunction(L, l_stat);
  lua_setfield(L, -2, "stat");
  lua_pushcfunction(L, l_eprint);
  lua_setfield(L, -2, "eprint");
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, install, 1);
  lua_setfield(L, -2, "install");
  return 1;
}

void install_slua_globals(lua_State* L) {
  lua_pushcfunction(L, install_fn);
  lua_call(L, 0, 0);
}

}  // namespace conch::lua
