// lua/corolib.cpp
// The coroutine glue: conch's coroutine.resume and coroutine.wrap, which pass parks up.
//
// A channel operation in a coroutine that a go block resumed parks by
// yielding the park tag. These replacements of coroutine.resume and
// coroutine.wrap recognise it and yield it on to their own resumer (and so on
// up to the go block's driver); when resumed, they resume the inner coroutine
// again, whose continuation then returns the outcome. Every other yield
// reaches the caller as usual, with the stock functions' results and errors.
//
// Invariants:
//  - A coroutine whose park was passed up is marked parked in the host until
//    its resumer resumes it again (k_resume); nobody else may resume it, and
//    a go block's own thread is never resumed from Lua.
//  - chain_yieldable is false while a nested resume runs in code that could
//    not yield the tag on (so its operations fail instead of yielding into
//    a resumer that would drop the tag).
// Lock order: no lock is held here.
#include "lua/bridge.hpp"

namespace conch::lua::detail {

namespace {

int k_resume(lua_State* L, int status, lua_KContext ctx);

// An error of the resume: status -1, message on top of L. resume returns
// false, message; wrap raises it (with the position, as the stock one).
int resume_error(lua_State* L, lua_State* co, bool wrap) {
  if (!wrap) {
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
  }
  int stat = lua_status(co);
  if (stat != LUA_OK && stat != LUA_YIELD) {  // an error in the coroutine
    stat = lua_resetthread(co);                // close its tbc variables
    lua_xmove(co, L, 1);
  }
  if (stat != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
    // Prefix a string message with where the wrap was called.
    luaL_where(L, 1);
    lua_insert(L, -2);
    lua_concat(L, 2);
  }
  return lua_error(L);
}

// Resumes co with the top narg values of L. wrap: coroutine.wrap semantics.
int resume_loop(lua_State* L, host* h, lua_State* co, int narg, bool wrap) {
  if (h->is_go_thread(co) || h->is_parked(co)) {
    // Not ours to resume: a go block, or a coroutine parked on a channel.
    const char* why = h->is_go_thread(co) ? "cannot resume a go block"
                                          : "cannot resume a coroutine that waits on a channel";
    if (wrap) return luaL_error(L, "%s", why);
    lua_pushboolean(L, 0);
    lua_pushstring(L, why);
    return 2;
  }
  if (!lua_checkstack(co, narg)) {
    // No room for the arguments on the coroutine.
    lua_pushliteral(L, "too many arguments to resume");
    return resume_error(L, co, wrap);
  }
  int nres = 0;
  lua_xmove(L, co, narg);
  bool saved = h->swap_chain_yieldable(h->chain_yieldable() && lua_isyieldable(L));
  int status = lua_resume(co, L, narg, &nres);
  h->swap_chain_yieldable(saved);
  if (status == LUA_YIELD && nres == 1 && h->current() != nullptr &&
      lua_type(co, -1) == LUA_TLIGHTUSERDATA && lua_touserdata(co, -1) == park_tag()) {
    // A park inside co: pass the tag up; k_resume resumes co when we wake.
    lua_pop(co, 1);
    if (!h->mark_parked(co)) return raise_no_memory(L);
    lua_pushlightuserdata(L, park_tag());
    return lua_yieldk(L, 1, wrap ? 1 : 0, k_resume);
  }
  if (status != LUA_OK && status != LUA_YIELD) {
    // An error in co: its error object becomes ours.
    lua_xmove(co, L, 1);
    return resume_error(L, co, wrap);
  }
  if (!lua_checkstack(L, nres + 1)) {
    // No room for the results here.
    lua_pop(co, nres);
    lua_pushliteral(L, "too many results to resume");
    return resume_error(L, co, wrap);
  }
  // Ended or yielded (a user's own yield): hand its values over.
  if (!wrap) lua_pushboolean(L, 1);
  lua_xmove(co, L, nres);
  return wrap ? nres : nres + 1;
}

// Back from a passed-up park: resume the inner coroutine again.
int k_resume(lua_State* L, int, lua_KContext ctx) {
  host* h = host_of(L);
  bool wrap = ctx != 0;
  lua_State* co = wrap ? lua_tothread(L, lua_upvalueindex(2)) : lua_tothread(L, 1);
  h->unmark_parked(co);
  int base = wrap ? 0 : 1;
  return resume_loop(L, h, co, lua_gettop(L) - base, wrap);
}

int co_resume(lua_State* L) {
  host* h = host_of(L);
  lua_State* co = lua_tothread(L, 1);
  luaL_argexpected(L, co != nullptr, 1, "coroutine");
  return resume_loop(L, h, co, lua_gettop(L) - 1, false);
}

int co_wrapped(lua_State* L) {
  host* h = host_of(L);
  lua_State* co = lua_tothread(L, lua_upvalueindex(2));
  return resume_loop(L, h, co, lua_gettop(L), true);
}

int co_wrap(lua_State* L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_State* co = lua_newthread(L);  // [f co]
  lua_pushvalue(L, 1);
  lua_xmove(L, co, 1);
  lua_pushvalue(L, lua_upvalueindex(1));  // [f co host]
  lua_insert(L, -2);                      // [f host co]
  lua_pushcclosure(L, co_wrapped, 2);
  return 1;
}

const luaL_Reg coroutine_functions[] = {{"resume", co_resume}, {"wrap", co_wrap}, {nullptr, nullptr}};

}  // namespace

void install_coroutine_glue(lua_State* L, host* h) {
  luaL_checkstack(L, 3, nullptr);
  if (lua_getglobal(L, "coroutine") == LUA_TTABLE) set_closures(L, h, coroutine_functions);
  lua_pop(L, 1);  // the coroutine table (or whatever stood there)
}

}  // namespace conch::lua::detail
