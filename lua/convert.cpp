// lua/convert.cpp
// Lua values <-> channel elements (value, std::string, int64_t, double).
//
// Lua -> C++ (to_elem/to_value) never raises: it calls only Lua API functions
// that cannot raise (lua_next on an unmodified table, lua_to*, raw gets), so
// it may build C++ objects freely, and it reports failures as a conv_error
// that the caller raises once nothing of its own is left on the C stack.
// C++ -> Lua (push_*) can raise memory errors; it reads elements that live in
// heap storage (requests, channel slots), never in its caller's locals, and
// holds nothing but references and iterators itself.
#include <cmath>
#include <new>

#include "lua/bridge.hpp"

namespace conch::lua::detail {

const char chan_mt_key = 0;
const char host_key = 0;
const char on_error_key = 0;

namespace {
const char park_tag_byte = 0;
constexpr std::size_t kMaxDepth = 64;  // nested tables in one value
}  // namespace

void* park_tag() noexcept { return const_cast<char*>(&park_tag_byte); }

void destroy_elem(elem t, void* p) noexcept {
  switch (t) {
    case elem::value:
      static_cast<value*>(p)->~value();
      break;
    case elem::string:
      static_cast<std::string*>(p)->~basic_string();
      break;
    case elem::int64:
    case elem::float64:
      break;  // trivial
    case elem::socket:
      static_cast<net::socket*>(p)->~socket();
      break;
    case elem::datagram:
      static_cast<net::datagram*>(p)->~datagram();
      break;
  }
}

// ---- channel userdata ----

chan_ud* to_chan_ud(lua_State* L, int idx) noexcept {
  // A full userdata of our size whose first word is our magic: cheaper than
  // comparing metatables on every channel operation.
  if (lua_type(L, idx) != LUA_TUSERDATA || lua_rawlen(L, idx) != sizeof(chan_ud)) return nullptr;
  auto* ud = static_cast<chan_ud*>(lua_touserdata(L, idx));
  return ud->magic == chan_ud::kMagic && ud->core != nullptr ? ud : nullptr;  // null once collected
}

chan_ud* new_chan_ud(lua_State* L) {
  return static_cast<chan_ud*>(lua_newuserdatauv(L, sizeof(chan_ud), 0));
}

bool build_chan_ud(chan_ud* ud, std::shared_ptr<const any_chan>&& box) noexcept {
  if (box == nullptr) return false;  // its maker ran out of memory
  chan_core* core = box->core();
  auto type = static_cast<elem>(box->kind());
  new (ud) chan_ud{chan_ud::kMagic, core, type, std::move(box)};
  return true;
}

void finish_chan_ud(lua_State* L) noexcept {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &chan_mt_key);  // a raw get: no allocation
  lua_setmetatable(L, -2);
}

void push_chan(lua_State* L, const std::shared_ptr<const any_chan>& c) {
  push_new_chan(L, [&c] { return c; });  // copying a shared_ptr cannot fail
}

int raise_no_memory(lua_State* L) { return luaL_error(L, "conch: not enough memory"); }

// ---- Lua -> C++ ----

namespace {

struct to_value_ctx {
  lua_State* L = nullptr;
  const void* path[kMaxDepth];  // tables being copied, outermost first
  std::size_t depth = 0;
  int bad = LUA_TNONE;
};

conv_error convert(to_value_ctx& cx, int idx, value& out);

conv_error convert_table(to_value_ctx& cx, int idx, value& out) {
  lua_State* L = cx.L;
  const void* self = lua_topointer(L, idx);
  for (std::size_t i = 0; i < cx.depth; ++i)
    if (cx.path[i] == self) return conv_error::cycle;
  if (cx.depth == kMaxDepth) return conv_error::too_deep;
  if (!lua_checkstack(L, 3)) return conv_error::no_memory;
  cx.path[cx.depth++] = self;
  auto t = std::make_shared<table>();
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    value k, v;
    conv_error e = convert(cx, lua_absindex(L, -2), k);
    if (e == conv_error::none) e = convert(cx, lua_absindex(L, -1), v);
    if (e != conv_error::none) {
      lua_pop(L, 2);
      return e;
    }
    t->entries.emplace_back(std::move(k), std::move(v));
    lua_pop(L, 1);
  }
  --cx.depth;
  out.data = value::table_ptr(std::move(t));
  return conv_error::none;
}

conv_error convert(to_value_ctx& cx, int idx, value& out) {
  lua_State* L = cx.L;
  switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
      out.data = lua_toboolean(L, idx) != 0;
      return conv_error::none;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx))
        out.data = static_cast<std::int64_t>(lua_tointeger(L, idx));
      else
        out.data = static_cast<double>(lua_tonumber(L, idx));
      return conv_error::none;
    case LUA_TSTRING: {
      std::size_t n = 0;
      const char* s = lua_tolstring(L, idx, &n);  // a string already: no conversion, no raise
      out.data = std::string(s, n);
      return conv_error::none;
    }
    case LUA_TTABLE:
      return convert_table(cx, idx, out);
    case LUA_TUSERDATA:
      if (chan_ud* ud = to_chan_ud(L, idx)) {
        out.data = ud->box;
        return conv_error::none;
      }
      cx.bad = LUA_TUSERDATA;
      return conv_error::bad_type;
    case LUA_TNIL:
    case LUA_TNONE:
      return conv_error::nil;
    default:
      cx.bad = lua_type(L, idx);
      return conv_error::bad_type;
  }
}

}  // namespace

conv_error to_value(lua_State* L, int idx, value* out, int* bad) noexcept {
  // Scalars first: no context, nothing that can throw.
  switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
      out->data = lua_toboolean(L, idx) != 0;
      return conv_error::none;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx))
        out->data = static_cast<std::int64_t>(lua_tointeger(L, idx));
      else
        out->data = static_cast<double>(lua_tonumber(L, idx));
      return conv_error::none;
    default:
      break;
  }
  to_value_ctx cx;  // path[] is written before it is read
  cx.L = L;
  conv_error e;
  try {
    e = convert(cx, lua_absindex(L, idx), *out);
  } catch (const std::bad_alloc&) {
    e = conv_error::no_memory;
  }
  if (bad != nullptr) *bad = cx.bad;
  return e;
}

conv_error to_elem(lua_State* L, int idx, elem t, void* out, int* bad) noexcept {
  int type = lua_type(L, idx);
  if (bad != nullptr) *bad = type;
  if (type == LUA_TNIL || type == LUA_TNONE) return conv_error::nil;
  switch (t) {
    case elem::value: {
      value* v = new (out) value();
      conv_error e = to_value(L, idx, v, bad);
      if (e != conv_error::none) v->~value();
      return e;
    }
    case elem::string: {
      if (type != LUA_TSTRING) return conv_error::not_string;
      std::size_t n = 0;
      const char* s = lua_tolstring(L, idx, &n);
      try {
        new (out) std::string(s, n);
      } catch (const std::bad_alloc&) {
        return conv_error::no_memory;
      }
      return conv_error::none;
    }
    case elem::int64: {
      int isnum = 0;
      lua_Integer i = lua_tointegerx(L, idx, &isnum);  // floats with an exact integer value too
      if (type != LUA_TNUMBER || isnum == 0) return conv_error::not_integer;
      new (out) std::int64_t(static_cast<std::int64_t>(i));
      return conv_error::none;
    }
    case elem::float64:
      if (type != LUA_TNUMBER) return conv_error::not_number;
      new (out) double(static_cast<double>(lua_tonumber(L, idx)));
      return conv_error::none;
    case elem::socket:
      if (const net::socket* s = to_socket(L, idx)) {
        new (out) net::socket(*s);
        return conv_error::none;
      }
      return conv_error::not_socket;
    case elem::datagram:
      return to_datagram(L, idx, out);
  }
  return conv_error::bad_type;
}

int raise_conv_error(lua_State* L, conv_error e, int bad) {
  switch (e) {
    case conv_error::nil:
      return luaL_error(L, "conch: cannot send nil on a channel");
    case conv_error::bad_type:
      return luaL_error(L, "conch: cannot send a %s on a channel", lua_typename(L, bad));
    case conv_error::not_string:
      return luaL_error(L, "conch: this channel carries strings, not %s", lua_typename(L, bad));
    case conv_error::not_integer:
      return luaL_error(L, "conch: this channel carries integers, not %s",
                        bad == LUA_TNUMBER ? "a float" : lua_typename(L, bad));
    case conv_error::not_number:
      return luaL_error(L, "conch: this channel carries numbers, not %s", lua_typename(L, bad));
    case conv_error::cycle:
      return luaL_error(L, "conch: cannot send a table that contains itself");
    case conv_error::too_deep:
      return luaL_error(L, "conch: cannot send tables nested more than %d deep",
                        static_cast<int>(kMaxDepth));
    case conv_error::no_memory:
      return luaL_error(L, "conch: not enough memory");
    case conv_error::not_socket:
      return luaL_error(L, "conch: this channel carries sockets, not %s", lua_typename(L, bad));
    case conv_error::not_datagram:
      return luaL_error(L, "conch: a datagram is {data = string, peer = \"host:port\"}");
    case conv_error::none:
      break;
  }
  return 0;
}

// ---- C++ -> Lua ----

// A C function has LUA_MINSTACK free slots, so scalars need no stack check;
// tables check for their keys and values.
void push_value(lua_State* L, const value& v) {
  switch (v.data.index()) {
    case 0:
      lua_pushnil(L);
      break;
    case 1:
      lua_pushboolean(L, std::get<1>(v.data) ? 1 : 0);
      break;
    case 2:
      lua_pushinteger(L, static_cast<lua_Integer>(std::get<2>(v.data)));
      break;
    case 3:
      lua_pushnumber(L, static_cast<lua_Number>(std::get<3>(v.data)));
      break;
    case 4: {
      const std::string& s = std::get<4>(v.data);
      lua_pushlstring(L, s.data(), s.size());
      break;
    }
    case 5: {
      const table& t = *std::get<5>(v.data);
      luaL_checkstack(L, 4, "conch: value nested too deeply");
      int narr = 0;
      for (const auto& e : t.entries)
        if (e.first.is_integer()) ++narr;
      lua_createtable(L, narr, static_cast<int>(t.entries.size()) - narr);
      for (const auto& e : t.entries) {
        push_value(L, e.first);
        push_value(L, e.second);
        lua_rawset(L, -3);
      }
      break;
    }
    case 6:
      push_chan(L, std::get<6>(v.data));
      break;
  }
}

void push_elem(lua_State* L, elem t, void* p) {
  switch (t) {
    case elem::value:
      push_value(L, *static_cast<value*>(p));
      break;
    case elem::string: {
      const std::string& s = *static_cast<std::string*>(p);
      lua_pushlstring(L, s.data(), s.size());
      break;
    }
    case elem::int64:
      lua_pushinteger(L, static_cast<lua_Integer>(*static_cast<std::int64_t*>(p)));
      break;
    case elem::float64:
      lua_pushnumber(L, static_cast<lua_Number>(*static_cast<double*>(p)));
      break;
    case elem::socket:
      push_socket(L, *static_cast<net::socket*>(p));
      break;
    case elem::datagram:
      push_datagram(L, *static_cast<net::datagram*>(p));
      break;
  }
}

}  // namespace conch::lua::detail
