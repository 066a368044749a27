// lua/convert.cpp
// Lua values <-> channel elements (value, std::string, int64_t, double).
//
// Lua -> C++ (to_elem/to_value) never raises: it calls only Lua API functions
// that cannot raise (lua_next on an unmodified table, lua_to*, raw gets), so
// it may build C++ objects freely, and it reports failures as a conv_error
// that the caller raises once nothing of its own is left on the C stack.
// C++ -> Lua (push_*) can raise memory errors; it reads elements that live in
// heap storage (requests, channel slots), never in its caller's locals, and
// holds nothing but references, iterators and trivially destructible state.
//
// Invariants:
//  - A value is copied as a graph: to_value remembers every table it met (by
//    Lua identity), so a table met again is the same copy; an edge to a
//    table still being filled (a cycle) is a weak back reference, so owning
//    edges form a DAG and a copy never keeps itself alive.
//  - push_value walks the copy in the order to_value built it, so a back
//    reference always names a table on the current path; a table with more
//    than one owner is remembered in a Lua memo table, so it is made once.
//  - Every byte charged toward the limit is charged before it is allocated.
//  - One userdata per channel (by core) and per net object (by its first
//    channel's core) in a state: registry tables with weak values, whose
//    entries Lua clears before it finalizes the userdata.
#include <cmath>
#include <new>
#include <variant>

#include "absl/container/flat_hash_map.h"

#include "lua/bridge.hpp"

namespace conch::lua::detail {

const char chan_mt_key = 0;
const char host_key = 0;
const char on_error_key = 0;
const char chan_cache_key = 0;
const char obj_cache_key = 0;

namespace {
const char park_tag_byte = 0;
constexpr std::size_t kMaxDepth = 200;  // nested tables in one value (C stack: a few KiB)
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
  // comparing metatables on every channel operation. lua_touserdata is null
  // for anything but userdata; lua_rawlen is 0 for a light one.
  auto* ud = static_cast<chan_ud*>(lua_touserdata(L, idx));
  if (ud == nullptr || lua_rawlen(L, idx) != sizeof(chan_ud)) return nullptr;
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

void new_weak_cache(lua_State* L, const void* key) {
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "v");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, key);
}

bool push_cached(lua_State* L, const void* cache_key, const void* id) {
  luaL_checkstack(L, 3, nullptr);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, cache_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    return false;  // no cache (not yet installed)
  }
  // A weak value is cleared before its object is finalized: a hit is live.
  if (lua_rawgetp(L, -1, id) == LUA_TUSERDATA) {
    lua_remove(L, -2);
    return true;
  }
  lua_pop(L, 2);
  return false;
}

void cache_top(lua_State* L, const void* cache_key, const void* id) {
  luaL_checkstack(L, 3, nullptr);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, cache_key) == LUA_TTABLE) {
    lua_pushvalue(L, -2);
    lua_rawsetp(L, -2, id);  // may raise (memory): the object stays a plain object
  }
  lua_pop(L, 1);
}

void cache_chan_ud(lua_State* L) {
  if (chan_ud* ud = to_chan_ud(L, -1)) cache_top(L, &chan_cache_key, ud->core);
}

void push_chan(lua_State* L, const std::shared_ptr<const any_chan>& c) {
  if (push_cached(L, &chan_cache_key, c->core())) return;  // this state's object for the channel
  push_new_chan(L, [&c] { return c; });  // copying a shared_ptr cannot fail
}

int raise_no_memory(lua_State* L) { return luaL_error(L, "conch: not enough memory"); }

// ---- Lua -> C++ ----

namespace {

// Bytes charged per table and per entry toward max_value (what the copy
// costs in memory, roughly), besides the bytes of its strings.
constexpr std::size_t kTableCost = sizeof(table) + 32;
constexpr std::size_t kEntryCost = sizeof(std::pair<value, value>);

// One table met during a conversion: its copy, and whether it is still
// being filled (an edge to it then closes a cycle: a weak back reference).
struct copied {
  std::shared_ptr<table> t;
  bool open;
};

// Every table met in one conversion, by Lua identity: what makes the copy a
// graph. The first few sit in an array searched in order (most values hold
// a handful of tables: no allocation), the rest in a hash map.
class seen_tables {
 public:
  copied* find(const void* id) noexcept {
    for (std::size_t i = 0; i < n_; ++i)
      if (ids_[i] == id) return &small_[i];
    if (more_.empty()) return nullptr;
    auto it = more_.find(id);
    return it != more_.end() ? &it->second : nullptr;
  }
  /// Adds `id` (not present); the pointer stays valid until the next add.
  copied* add(const void* id, std::shared_ptr<table> t) {
    if (n_ < kSmall) {
      ids_[n_] = id;
      small_[n_] = copied{std::move(t), true};
      return &small_[n_++];
    }
    return &more_.emplace(id, copied{std::move(t), true}).first->second;
  }

 private:
  static constexpr std::size_t kSmall = 8;
  const void* ids_[kSmall];
  copied small_[kSmall];
  std::size_t n_ = 0;
  absl::flat_hash_map<const void*, copied> more_;
};

struct to_value_ctx {
  lua_State* L = nullptr;
  std::size_t depth = 0;  // tables being filled
  std::size_t bytes = 0;  // charged so far
  std::size_t limit = default_max_value;
  int bad = LUA_TNONE;
  seen_tables seen;
};

conv_error convert(to_value_ctx& cx, int idx, value& out);

conv_error charge(to_value_ctx& cx, std::size_t n) noexcept {
  cx.bytes += n;
  return cx.bytes > cx.limit ? conv_error::too_big : conv_error::none;
}

conv_error convert_table(to_value_ctx& cx, int idx, value& out) {
  lua_State* L = cx.L;
  const void* self = lua_topointer(L, idx);
  if (copied* c = cx.seen.find(self)) {
    // Met before: the same copy (a back reference if it is still open).
    if (c->open)
      out = value(value::table_ref{c->t});
    else
      out.data = value::table_ptr(c->t);
    return conv_error::none;
  }
  if (cx.depth == kMaxDepth) return conv_error::too_deep;
  if (!lua_checkstack(L, 3)) return conv_error::no_memory;
  if (charge(cx, kTableCost) != conv_error::none) return conv_error::too_big;
  auto t = std::make_shared<table>();
  cx.seen.add(self, t);
  ++cx.depth;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    value k, v;
    conv_error e = charge(cx, kEntryCost);
    if (e == conv_error::none) e = convert(cx, lua_absindex(L, -2), k);
    if (e == conv_error::none) e = convert(cx, lua_absindex(L, -1), v);
    if (e != conv_error::none) {
      lua_pop(L, 2);
      return e;
    }
    t->entries.emplace_back(std::move(k), std::move(v));
    lua_pop(L, 1);
  }
  --cx.depth;
  cx.seen.find(self)->open = false;  // found: added above (later adds may have moved it)
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
      if (charge(cx, n) != conv_error::none) return conv_error::too_big;
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
      // The net library's objects travel as handles to the same connection.
      if (const net::socket* s = to_socket(L, idx)) {
        out = value(*s);
        return conv_error::none;
      }
      if (const net::server* s = to_server(L, idx)) {
        out = value(*s);
        return conv_error::none;
      }
      if (const net::udp_socket* u = to_udp(L, idx)) {
        out = value(*u);
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

conv_error to_value(lua_State* L, int idx, value* out, int* bad, std::size_t limit) noexcept {
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
  conv_error e;
  int b = LUA_TNONE;
  try {
    to_value_ctx cx;  // may allocate nothing yet; the map grows with tables
    cx.L = L;
    cx.limit = limit;
    e = convert(cx, lua_absindex(L, idx), *out);
    b = cx.bad;
  } catch (const std::bad_alloc&) {
    e = conv_error::no_memory;
  }
  if (e != conv_error::none) out->data = std::monostate();  // drop a partial copy now
  if (bad != nullptr) *bad = b;
  return e;
}

conv_error to_elem(lua_State* L, int idx, elem t, void* out, int* bad, std::size_t limit) noexcept {
  int type = lua_type(L, idx);
  if (bad != nullptr) *bad = type;
  if (type == LUA_TNIL || type == LUA_TNONE) return conv_error::nil;
  switch (t) {
    case elem::value: {
      value* v = new (out) value();
      conv_error e = to_value(L, idx, v, bad, limit);
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

int raise_conv_error(lua_State* L, conv_error e, int bad, std::size_t limit) {
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
    case conv_error::too_big:
      return luaL_error(L, "conch: value too large to send: over this channel's max_value of %I bytes "
                        "(nothing was sent)", static_cast<lua_Integer>(limit));
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

namespace {

// The state of one push_value of a table. Trivially destructible: a raise
// (memory) may skip its end. `path` holds the tables being filled, with
// their stack slots, so a back reference finds its Lua table there; tables
// with more than one owner (shared within the value) are remembered in a
// Lua table (the memo, made on first need in the slot reserved for it).
struct push_ctx {
  lua_State* L;
  int memo;  // stack slot: nil until a shared table needs it
  std::size_t depth;
  const table* path[kMaxDepth];
  int path_slot[kMaxDepth];
};

void push_rec(push_ctx& cx, const value& v);

void push_table(push_ctx& cx, const table& t, bool shared) {
  lua_State* L = cx.L;
  if (shared && lua_istable(L, cx.memo)) {
    // Pushed before in this value: the same Lua table.
    if (lua_rawgetp(L, cx.memo, &t) == LUA_TTABLE) return;
    lua_pop(L, 1);
  }
  if (cx.depth == kMaxDepth) luaL_error(L, "conch: value nested more than %d deep", static_cast<int>(kMaxDepth));
  luaL_checkstack(L, 4, "conch: value nested too deeply");
  int narr = 0;
  for (const auto& e : t.entries)
    if (e.first.is_integer()) ++narr;
  lua_createtable(L, narr, static_cast<int>(t.entries.size()) - narr);
  if (shared) {
    // Remember it before its entries, which may lead back to it.
    if (!lua_istable(L, cx.memo)) {
      lua_newtable(L);
      lua_replace(L, cx.memo);
    }
    lua_pushvalue(L, -1);
    lua_rawsetp(L, cx.memo, &t);
  }
  cx.path[cx.depth] = &t;
  cx.path_slot[cx.depth] = lua_gettop(L);
  ++cx.depth;
  for (const auto& e : t.entries) {
    push_rec(cx, e.first);
    push_rec(cx, e.second);
    lua_rawset(L, -3);
  }
  --cx.depth;
}

void push_rec(push_ctx& cx, const value& v) {
  lua_State* L = cx.L;
  switch (v.data.index()) {
    case 5: {
      const value::table_ptr& p = std::get<5>(v.data);
      // More than one owner: maybe reachable twice in this value.
      push_table(cx, *p, cx.depth > 0 && p.use_count() > 1);
      return;
    }
    case 7:
      if (v.is_back_ref()) {
        // A back reference: the table it names is being filled, on the path.
        const table* target = std::get<3>(*std::get<7>(v.data)).t.lock().get();  // the encloser keeps it
        if (target == nullptr) luaL_error(L, "conch: a value refers back to a table that is gone");
        for (std::size_t i = cx.depth; i-- > 0;)
          if (cx.path[i] == target) {
            lua_pushvalue(L, cx.path_slot[i]);
            return;
          }
        push_table(cx, *target, true);  // pushed from inside: its encloser is not on the path
        return;
      }
      push_value(L, v);  // a net object
      return;
    default:
      push_value(L, v);  // not a table
  }
}

// Pushes a table value (or a back reference) as a graph: a memo slot goes
// under it and is removed at the end.
void push_graph(lua_State* L, const value& v) {
  luaL_checkstack(L, 6, "conch: value nested too deeply");
  lua_pushnil(L);
  push_ctx cx;  // path[] is written before it is read
  cx.L = L;
  cx.memo = lua_gettop(L);
  cx.depth = 0;
  push_rec(cx, v);
  lua_remove(L, cx.memo);
}

}  // namespace

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
      // A table: a graph push with a memo slot under it, removed at the end.
      push_graph(L, v);
      break;
    }
    case 6:
      push_chan(L, std::get<6>(v.data));
      break;
    case 7: {
      const value::extra& e = *std::get<7>(v.data);
      switch (e.index()) {
        case 0:
          push_socket(L, std::get<0>(e));
          break;
        case 1:
          push_server(L, std::get<1>(e));
          break;
        case 2:
          push_udp(L, std::get<2>(e));
          break;
        default:
          push_graph(L, v);  // a back reference pushed on its own
          break;
      }
      break;
    }
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
