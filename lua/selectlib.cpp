// lua/selectlib.cpp
// conch.select: wait on several channel operations from Lua, commit exactly one.
//
// conch.select{ch1, {ch2, v}, ..., priority=true, default=x} -> value, ch
// conch.select({ch1, {ch2, v}}, {priority=true, default=x}) -> the same
// A case is a channel (receive) or {channel, value} (send). The cases become
// one select request (lua/request.cpp), run through the channels layer's
// select engine like any C++ select; with `default` it only polls.
//
// Invariants:
//  - The case table stays at stack index 1 until the continuation runs (it
//    names the channel that fired), so its channels stay alive meanwhile.
//  - Every raise comes after r->clear(): no converted send value is left in
//    the request.
// Lock order: no lock is held here; the select engine locks the channels.
#include "lua/bridge.hpp"

namespace conch::lua::detail {

namespace {

// Stack: [cases table]. Returns value-or-ok, channel.
int k_select(lua_State* L, int, lua_KContext ctx) {
  request* r = host_from(ctx)->op_request();
  auto f = static_cast<std::size_t>(r->fired);
  if (r->cases[f].is_send)
    lua_pushboolean(L, r->ok ? 1 : 0);  // a send case: did it deliver
  else if (!push_received(L, r, f))
    lua_pushnil(L);  // a receive on a closed, drained channel
  r->clear();
  if (lua_rawgeti(L, 1, static_cast<lua_Integer>(f) + 1) == LUA_TTABLE) {
    // A send case {ch, v}: name its channel.
    lua_rawgeti(L, -1, 1);
    lua_remove(L, -2);
  }
  return 2;
}

// Reads case i + 1 (on top of the stack, popped) into c. Returns null on
// success, else the error format (with one %d: the case number); nothing is
// built in c then.
const char* read_case(lua_State* L, op_case& c, conv_error* e, int* bad, std::size_t* limit) {
  chan_ud* ud = nullptr;
  if (lua_type(L, -1) == LUA_TTABLE) {
    // {channel, value}: a send.
    lua_rawgeti(L, -1, 1);
    ud = to_chan_ud(L, -1);
    lua_pop(L, 1);
    if (ud == nullptr) {
      lua_pop(L, 1);
      return "conch.select: case %d: a send case is {channel, value}";
    }
    c.core = ud->core;
    c.type = ud->type;
    c.is_send = true;
    lua_rawgeti(L, -1, 2);
    *limit = ud->box->max_value();
    *e = to_elem(L, -1, c.type, c.slot.raw(), bad, *limit);
    lua_pop(L, 2);
    if (*e != conv_error::none) return nullptr;  // the caller raises the conversion error
    c.full = true;
    return nullptr;
  }
  if ((ud = to_chan_ud(L, -1)) != nullptr) {
    // A channel: a receive.
    lua_pop(L, 1);
    c.core = ud->core;
    c.type = ud->type;
    return nullptr;
  }
  lua_pop(L, 1);
  return "conch.select: case %d is not a channel or {channel, value}";
}

const char* const select_option_keys[] = {"priority", "default", nullptr};
const option_names select_options{"conch.select", select_option_keys};

// Pushes option `key` from the case table (1) or the options table (2, may
// be nil); nil if neither has it. Raises if both do.
void push_select_option(lua_State* L, const char* key) {
  lua_getfield(L, 1, key);
  if (lua_istable(L, 2)) {
    if (lua_getfield(L, 2, key) != LUA_TNIL) {
      if (!lua_isnil(L, -2))
        luaL_error(L, "conch.select: option '%s' given twice (in the case table and in the options table)", key);
      lua_remove(L, -2);
    } else {
      lua_pop(L, 1);
    }
  }
}

// conch.select(cases [, options]): options (priority, default) as keys of
// the case table or in a second table; any other key is an error.
int l_select(lua_State* L) {
  host* h = host_of(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  check_max_args(L, 2, "conch.select");
  check_option_keys(L, 1, select_options, true);
  if (!lua_isnoneornil(L, 2)) {
    if (!lua_istable(L, 2)) luaL_typeerror(L, 2, "nil or a table of options {priority=, default=}");
    check_option_keys(L, 2, select_options);
  }
  lua_settop(L, 2);
  push_select_option(L, "priority");  // index 3
  if (!lua_isnil(L, 3) && !lua_isboolean(L, 3)) raise_option_type(L, "conch.select", "priority", "a boolean", 3);
  bool in_order = lua_toboolean(L, 3) != 0;
  push_select_option(L, "default");  // index 4: stack [cases, options, priority, default]
  bool has_default = !lua_isnil(L, 4);
  auto n = static_cast<std::size_t>(lua_rawlen(L, 1));
  if (n == 0) {
    // No cases: only a default can answer.
    if (!has_default) return luaL_error(L, "conch.select: no cases");
    lua_pushnil(L);
    return 2;  // default, nil
  }
  request* r = get_request(L, h);
  if (!r->reset(n)) return raise_no_memory(L);
  r->kind = op::select;
  r->in_order = in_order;
  for (std::size_t i = 0; i < n; ++i) {
    lua_rawgeti(L, 1, static_cast<lua_Integer>(i) + 1);
    conv_error e = conv_error::none;
    int bad = LUA_TNONE;
    std::size_t limit = default_max_value;
    const char* err = read_case(L, r->cases[i], &e, &bad, &limit);
    if (err != nullptr || e != conv_error::none) {
      // A malformed case or an unsendable value: raise with the request idle.
      r->clear();
      if (err != nullptr) return luaL_error(L, err, static_cast<int>(i) + 1);
      return raise_conv_error(L, e, bad, limit);
    }
  }
  if (has_default && r->start(nullptr) < 0) {
    // Nothing ready: the default wins.
    r->clear();
    lua_pushnil(L);
    return 2;  // default, nil
  }
  lua_settop(L, 1);
  if (has_default) return k_select(L, LUA_OK, host_ctx(h));
  return run_op(L, h, r, k_select);
}

const luaL_Reg select_functions[] = {{"select", l_select}, {nullptr, nullptr}};

}  // namespace

void add_select_functions(lua_State* L, host* h) { set_closures(L, h, select_functions); }

}  // namespace conch::lua::detail
