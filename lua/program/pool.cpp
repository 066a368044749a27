// lua/program/pool.cpp
// The worker pool (pool.hpp), the C side of work.*, and stdio mode.
//
// Invariants:
//  - A job is counted in its box's `outstanding` from just before it is sent
//    until its result is taken; so work.collect() with nothing outstanding
//    is an error instead of a hang, and work.active() is exact.
//  - Every accepted job gets exactly one result: work.answer, or an error
//    result when the worker raises, ends, or accepts again first.
//  - When the last worker has failed for good the pool is dead: the job
//    channel closes and every mailbox's bell rings, so submit and collect
//    raise instead of waiting forever.
//  - The C functions are longjmp-safe: C++ work happens in noexcept helpers
//    that call no raising Lua API; a mailbox a handler reads is kept alive
//    by that handler's thread for the state's lifetime.
// Lock order: pool::mu_ and mailbox::mu are leaves; no channel operation
// runs under them.
#include "lua/program/pool.hpp"

#include <cstdio>

#include "lua/bridge.hpp"

namespace conch::lua::program {

// ---- the pool ----

pool::config pool::config::from(const command& cmd, unsigned cores) {
  config cfg;
  cfg.workers = cmd.workers != 0 ? cmd.workers : cores;
  cfg.max_jobs = cmd.max_jobs != 0 ? cmd.max_jobs : 10 * static_cast<std::size_t>(cfg.workers);
  cfg.max_results = cmd.max_results;
  cfg.worker_script = cmd.worker;
  cfg.cmd = &cmd;
  return cfg;
}

pool::pool(runtime& rt, config cfg)
    : jobs(buffer::fixed(cfg.max_jobs)), rt_(rt), cfg_(std::move(cfg)) {}

pool::~pool() { stop(); }

void pool::start() {
  live_ = cfg_.workers;
  for (unsigned i = 1; i <= cfg_.workers; ++i) threads_.emplace_back([this, i] { worker_loop(i); });
}

void pool::stop() {
  stopping_ = true;
  jobs.close();  // buffered jobs are still delivered: workers finish them, then stop
  for (std::thread& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

void pool::wait() {
  for (std::thread& t : threads_)
    if (t.joinable()) t.join();
}

std::pair<int, std::shared_ptr<mailbox>> pool::open_box() {
  auto box = std::make_shared<mailbox>();
  box->limit = cfg_.max_results;
  std::lock_guard lk(mu_);
  int id = next_box_++;
  boxes_.emplace(id, box);
  return {id, box};
}

void pool::close_box(int id) {
  std::lock_guard lk(mu_);
  boxes_.erase(id);
}

std::shared_ptr<mailbox> pool::find_box(int id) {
  std::lock_guard lk(mu_);
  auto it = boxes_.find(id);
  return it == boxes_.end() ? nullptr : it->second;
}

std::string pool::dead_reason() {
  std::lock_guard lk(mu_);
  return dead_;
}

void pool::die(const std::string& why) {
  std::vector<std::shared_ptr<mailbox>> boxes;
  {
    std::lock_guard lk(mu_);
    dead_ = "no workers left (" + why + ")";
    for (auto& [id, b] : boxes_) boxes.push_back(b);
  }
  jobs.close();
  for (auto& b : boxes) b->ready.try_send(value(true));  // wake collectors: they see dead_
}

// One worker slot: a fresh state per run of the script. A run ends
// "stopped" (the pool closed), "restart" (it raised or returned after
// serving jobs: the error is already reported) or "fatal" (it failed before
// accepting any job, which a restart would only repeat).
void pool::worker_loop(unsigned index) {
  std::string fatal;
  while (!stopping_) {
    std::pair<std::string, std::string> outcome;
    {
      // Worker i on loop i-1 (modulo the loops): least_busy() cannot spread
      // states that are made at the same moment from several threads (each
      // sees the others' loops still empty), and a restart keeps its loop.
      state L(rt_, {.place = placement::loop(index - 1)});
      state_env env;
      env.what = role::worker;
      env.work = this;
      env.worker_index = static_cast<int>(index);
      env.cmd = cfg_.cmd;
      std::string err;
      bool ok = true;
      L.with([&](lua_State* S) { ok = install_program_globals(S, env, &err); });
      outcome = ok ? run_program_main(L) : std::pair<std::string, std::string>("fatal", err);
    }
    if (outcome.first == "restart") continue;
    if (outcome.first == "fatal") fatal = outcome.second;
    break;
  }
  if (!fatal.empty() && !stopping_)
    std::fprintf(stderr, "conch: worker %u stopped: %s\n", index, fatal.c_str());
  if (live_.fetch_sub(1) == 1 && !stopping_) die(fatal.empty() ? "every worker stopped" : fatal);
}

// ---- the C functions of work.* (the P table of the Lua glue) ----

namespace {

using detail::conv_error;
using detail::elem;
using detail::host;
using detail::host_from;
using detail::op;
using detail::op_case;
using detail::request;

pool* pool_of(lua_State* L) { return static_cast<pool*>(lua_touserdata(L, lua_upvalueindex(1))); }

enum class put_result { ok, full, gone };

// Stores a result in mailbox `id`. noexcept: no Lua call; `v` is moved from.
put_result put_in_box(pool* p, int id, bool ok, value* v) noexcept {
  try {
    std::shared_ptr<mailbox> box = p->find_box(id);
    if (box == nullptr) return put_result::gone;  // its handler has ended
    {
      std::lock_guard lk(box->mu);
      if (box->limit != 0 && box->items.size() >= box->limit) return put_result::full;
      box->items.emplace_back(ok, std::move(*v));
    }
    box->ready.try_send(value(true));
    return put_result::ok;
  } catch (...) {
    return put_result::gone;  // out of memory: the result is lost, said below
  }
}

// P.put(box, ok, v) -> "ok" | "full" | "gone"
int p_put(lua_State* L) {
  int id = static_cast<int>(luaL_checkinteger(L, 1));
  bool ok = lua_toboolean(L, 2) != 0;
  auto* slot = static_cast<value*>(lua_newuserdatauv(L, sizeof(value), 0));  // freed by the GC: trivial bytes
  new (slot) value();
  if (!lua_isnoneornil(L, 3)) {
    int bad = 0;
    detail::conv_error e = detail::to_value(L, 3, slot, &bad);
    if (e != detail::conv_error::none) return detail::raise_conv_error(L, e, bad);
  }
  put_result r = put_in_box(pool_of(L), id, ok, slot);
  slot->~value();  // moved from (or never filled): releases nothing it still owns
  lua_pushstring(L, r == put_result::ok ? "ok" : r == put_result::full ? "full" : "gone");
  return 1;
}

// Takes the oldest result of `box` into box->taken. noexcept.
bool take_from_box(mailbox* box, bool* ok) noexcept {
  bool bounded = box->limit != 0, more = false;
  {
    std::lock_guard lk(box->mu);
    if (box->items.empty()) return false;
    *ok = box->items.front().first;
    box->taken = std::move(box->items.front().second);
    box->items.pop_front();
    --box->outstanding;
    more = !box->items.empty();
  }
  // Every take frees one slot, so it wakes one worker waiting for room (a
  // ring only when the box was full would strand a second waiter).
  if (bounded) box->space.try_send(value(true));
  if (more) box->ready.try_send(value(true));  // another collector may be waiting
  return true;
}

// P.take() -> true, ok, v | false   (upvalue 2: this handler's mailbox)
int p_take(lua_State* L) {
  auto* box = static_cast<mailbox*>(lua_touserdata(L, lua_upvalueindex(2)));
  bool ok = true;
  if (!take_from_box(box, &ok)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_pushboolean(L, 1);
  lua_pushboolean(L, ok ? 1 : 0);
  detail::push_value(L, box->taken);  // may raise (memory): box->taken is on the heap
  box->taken = value();
  return 3;
}

// Adds `delta` to box->outstanding. noexcept.
void count_outstanding(pool* p, int id, std::int64_t delta) noexcept {
  try {
    if (std::shared_ptr<mailbox> box = p->find_box(id)) {
      std::lock_guard lk(box->mu);
      box->outstanding += delta;
    }
  } catch (...) {
  }
}

// ---- jobs: envelopes built and read in C (no Lua table per job) ----

host* host_up(lua_State* L) { return static_cast<host*>(lua_touserdata(L, lua_upvalueindex(2))); }

// Builds the envelope {box, job, space} in `slot` from the job at stack
// index 2 (absent when nil) and the bounded box's space bell at index 3
// (absent when unbounded). noexcept: to_value calls no raising Lua API;
// nothing is built unless it returns none.
conv_error make_envelope(lua_State* L, std::int64_t box, void* slot, int* bad) noexcept {
  try {
    auto t = std::make_shared<table>();
    t->entries.reserve(lua_isnoneornil(L, 3) ? 2 : 3);  // box, job; space only for a bounded box
    t->entries.emplace_back(value(std::int64_t{1}), value(box));
    for (int i = 2; i <= 3; ++i) {
      if (lua_isnoneornil(L, i)) continue;  // a nil job travels as a missing entry
      value v;
      conv_error e = detail::to_value(L, i, &v, bad);
      if (e != conv_error::none) return e;
      t->entries.emplace_back(value(std::int64_t{i}), std::move(v));
    }
    new (slot) value(value::table_ptr(std::move(t)));
    return conv_error::none;
  } catch (const std::bad_alloc&) {
    return conv_error::no_memory;
  }
}

// Continuation of P.send_job: true once sent; false (and the job uncounted)
// when the pool has stopped.
int k_send_job(lua_State* L, int, lua_KContext ctx) {
  request* r = host_from(ctx)->op_request();
  bool ok = r->ok;
  r->clear();
  if (!ok) count_outstanding(pool_of(L), lua_tointeger(L, 1), -1);  // the stack still holds box
  lua_pushboolean(L, ok ? 1 : 0);
  return 1;
}

// P.send_job(box, job, space) -> true | false: jobs:send({box, job, space})
// without the Lua table, counted in box's `outstanding` first (a fast worker
// may answer before the send returns). Raises if the job cannot travel.
int p_send_job(lua_State* L) {
  std::int64_t id = luaL_checkinteger(L, 1);
  pool* p = pool_of(L);
  host* h = host_up(L);
  request* r = detail::get_request(L, h);
  if (!r->reset(1)) return detail::raise_no_memory(L);
  r->kind = op::single;
  op_case& c = r->cases[0];
  c.core = conch::detail::get_core(p->jobs);
  c.type = elem::value;
  c.is_send = true;
  int bad = LUA_TNONE;
  conv_error e = make_envelope(L, id, c.slot.raw(), &bad);
  if (e != conv_error::none) {
    r->clear();  // nothing was built
    return detail::raise_conv_error(L, e, bad);
  }
  c.full = true;
  count_outstanding(p, id, 1);
  // Code that cannot wait here (a metamethod, table.sort...) gets run_op's
  // error when the queue is full: poll instead, so the count is undone first.
  if (h->current() != nullptr ? !h->can_park(L) : h->on_home_loop()) {
    if (r->start(nullptr) < 0) {
      r->clear();
      count_outstanding(p, id, -1);
      return detail::raise_not_yieldable(L);
    }
    return k_send_job(L, LUA_OK, detail::host_ctx(h));
  }
  return detail::run_op(L, h, r, k_send_job);
}

// Continuation of P.accept: pushes box, job, space of the received
// envelope, or nothing once the pool has stopped (closed and drained).
int k_accept(lua_State* L, int, lua_KContext ctx) {
  pool_of(L)->idle -= 1;
  request* r = host_from(ctx)->op_request();
  op_case& c = r->cases[0];
  if (!r->ok || !c.full) {
    r->clear();
    return 0;
  }
  r->kind = op::single;  // busy while pushing (see get_request): the envelope stays in the request
  const value& env = *static_cast<const value*>(c.slot.raw());
  const value* box = env.is_table() ? env.tbl().find(std::int64_t{1}) : nullptr;
  if (box == nullptr || !box->is_integer()) {
    r->clear();
    return luaL_error(L, "work.accept: a value on the job channel that is no job envelope");
  }
  lua_pushinteger(L, static_cast<lua_Integer>(box->integer()));
  for (std::int64_t i = 2; i <= 3; ++i) {
    if (const value* v = env.tbl().find(i))
      detail::push_value(L, *v);  // may raise (memory): the request still owns the envelope
    else
      lua_pushnil(L);
  }
  r->clear();
  return 3;
}

// P.accept() -> box, job, space | nothing (the pool stopped): jobs:recv(),
// counted in pool::idle while it waits.
int p_accept(lua_State* L) {
  pool* p = pool_of(L);
  p->idle += 1;
  return detail::recv_core(L, host_up(L), conch::detail::get_core(p->jobs), elem::value, k_accept);
}

// P.outstanding() -> n   (upvalue 2: this handler's mailbox)
int p_outstanding(lua_State* L) {
  auto* box = static_cast<mailbox*>(lua_touserdata(L, lua_upvalueindex(2)));
  std::int64_t n = 0;
  {
    std::lock_guard lk(box->mu);  // no Lua call while held
    n = box->outstanding;
  }
  lua_pushinteger(L, static_cast<lua_Integer>(n));
  return 1;
}

// P.idle([delta]) -> n
int p_idle(lua_State* L) {
  pool* p = pool_of(L);
  if (!lua_isnoneornil(L, 1)) p->idle += static_cast<int>(luaL_checkinteger(L, 1));
  lua_pushinteger(L, p->idle.load());
  return 1;
}

// Copies the dead reason into `out` (noexcept; empty while the pool works).
void copy_dead_reason(pool* p, char* out, std::size_t n) noexcept {
  out[0] = '\0';
  try {
    std::string why = p->dead_reason();
    std::snprintf(out, n, "%s", why.c_str());
  } catch (...) {
  }
}

// P.dead() -> reason | nil
int p_dead(lua_State* L) {
  char why[512];
  copy_dead_reason(pool_of(L), why, sizeof why);
  if (why[0] == '\0') return 0;
  lua_pushstring(L, why);
  return 1;
}

}  // namespace

void add_pool_functions(lua_State* L, pool* p, mailbox* box, detail::host* h) {
  static const luaL_Reg fns[] = {{"put", p_put}, {"idle", p_idle}, {"dead", p_dead}, {nullptr, nullptr}};
  lua_pushlightuserdata(L, p);
  luaL_setfuncs(L, fns, 1);
  static const luaL_Reg job_fns[] = {{"send_job", p_send_job}, {"accept", p_accept}, {nullptr, nullptr}};
  lua_pushlightuserdata(L, p);
  lua_pushlightuserdata(L, h);
  luaL_setfuncs(L, job_fns, 2);
  if (box != nullptr) {
    static const luaL_Reg box_fns[] = {{"take", p_take}, {"outstanding", p_outstanding}, {nullptr, nullptr}};
    lua_pushlightuserdata(L, p);
    lua_pushlightuserdata(L, box);
    luaL_setfuncs(L, box_fns, 2);
    detail::push_chan(L, std::make_shared<const any_chan>(box->ready));
    lua_setfield(L, -2, "ready");
    if (box->limit != 0) {
      detail::push_chan(L, std::make_shared<const any_chan>(box->space));
      lua_setfield(L, -2, "space");
    }
  }
  detail::push_chan(L, std::make_shared<const any_chan>(p->jobs));
  lua_setfield(L, -2, "jobs");
  lua_pushinteger(L, static_cast<lua_Integer>(p->cfg().workers));
  lua_setfield(L, -2, "size");
}

// ---- stdio mode ----

int run_stdio_mode(const command& cmd) {
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  absl::StatusOr<std::unique_ptr<runtime>> rt = runtime::create({});
  if (!rt.ok()) {
    std::fprintf(stderr, "conch: cannot start the runtime: %s\n", std::string(rt.status().message()).c_str());
    return kExitError;
  }
  pool::config cfg = pool::config::from(cmd, cores);
  // --nats: the workers are other processes (nats_mode.cpp); the pool only
  // gives the handler its state set-up.
  if (!cmd.nats.empty()) cfg.workers = 0;
  pool work(**rt, std::move(cfg));
  work.start();
  std::pair<std::string, std::string> outcome;
  {
    auto [id, box] = work.open_box();
    {
      state L(**rt, {.place = placement::loop(work.cfg().workers)});  // after the workers' loops
      state_env env;
      env.what = role::handler;
      env.work = &work;
      env.box = id;
      env.cmd = &cmd;
      std::string err;
      bool ok = true;
      L.with([&](lua_State* S) { ok = install_program_globals(S, env, &err); });
      outcome = ok ? run_program_main(L) : std::pair<std::string, std::string>("fatal", err);
    }
    work.close_box(id);
  }
  work.stop();
  std::fflush(stdout);
  if (!outcome.second.empty()) {
    std::fprintf(stderr, "conch: %s\n", outcome.second.c_str());
    return outcome.first == "usage" ? kExitUsage : kExitError;  // usage: a bad --nats URL
  }
  return kExitOk;
}

}  // namespace conch::lua::program
