// lua/natslib.cpp
// conch.nats: the NATS client (conch::nats) for Lua: connect, publish, request, subscribe, flush, drain, close.
//
// Each operation is a C++ go block on the home loop (started through
// host::call_on_loop) that awaits the conch::nats call and hands its result,
// a `value`, over a one-slot channel the Lua side receives from (parking a go
// block, or blocking the outside thread), as conch.connect does. Connections
// and subscriptions live in a registry keyed by integer ids; the Lua objects
// (built by the Lua part below) hold the ids, and their __gc closes what was
// not closed. A Lua subscription's `messages` is an unbuffered chan<value>
// fed by a pump go block from the C++ subscription's channel (the one buffer,
// so at most capacity + 1 messages are held); each message is a table
// {subject=, data=, reply=, headers={name=value}, status=}.
//
// Invariants:
//  - Arguments and options are checked (may raise) before any C++ object
//    exists; strings are copied into the heap job inside a noexcept helper.
//  - A job is shared by its go block and its holder userdata; the go block
//    writes `status` before closing `result`.
// Lock order: registry_mu is a leaf (no channel operation under it).
#include <cstring>
#include <mutex>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "conch/chan/go.hpp"
#include "conch/core/status.hpp"
#include "conch/net/nats.hpp"
#include "lua/bridge.hpp"
#include "lua/loop_job.hpp"

namespace conch::lua::detail {

namespace {

// ---- the registry of live connections and subscriptions ----

std::mutex registry_mu;  // std::mutex: visible to TSan (Debian's libabsl is not instrumented)
std::int64_t next_id = 1;  // guarded by registry_mu
absl::flat_hash_map<std::int64_t, nats::connection>& connections() {
  static auto* m = new absl::flat_hash_map<std::int64_t, nats::connection>();
  return *m;
}
absl::flat_hash_map<std::int64_t, nats::subscription>& subscriptions() {
  static auto* m = new absl::flat_hash_map<std::int64_t, nats::subscription>();
  return *m;
}

std::optional<nats::connection> find_conn(std::int64_t id) {
  std::lock_guard<std::mutex> l(registry_mu);
  auto it = connections().find(id);
  if (it == connections().end()) return std::nullopt;
  return it->second;
}

// ---- jobs ----

enum class op : std::uint8_t { connect, publish, request, subscribe, unsubscribe, flush, drain };

struct nats_job {
  op kind = op::publish;
  std::int64_t id = 0;  // the connection (or, for unsubscribe, the subscription)
  std::string a, b, c;  // url | subject, data, reply
  std::int64_t ms = 0;  // request/flush/drain timeout
  nats::options opts;
  nats::subscribe_options sub_opts;
  conch::chan<value> result{1};  // closes empty on failure
  absl::Status status;           // written before result closes
  static constexpr const char* what = "nats";
};

// A message as the table Lua sees: {subject=, data=, reply=, headers={name=value}, status=}.
value msg_value(nats::msg& m) {
  auto t = std::make_shared<table>();
  t->entries.emplace_back(value("subject"), value(std::move(m.subject)));
  t->entries.emplace_back(value("data"), value(std::move(m.data)));
  if (!m.reply.empty()) t->entries.emplace_back(value("reply"), value(std::move(m.reply)));
  if (!m.hdrs.empty()) {
    auto h = std::make_shared<table>();
    for (auto& [k, v] : m.hdrs)
      if (h->find(k) == nullptr) h->entries.emplace_back(value(k), value(std::move(v)));
    t->entries.emplace_back(value("headers"), value(value::table_ptr(std::move(h))));
  }
  if (m.status != 0) t->entries.emplace_back(value("status"), value(std::int64_t{m.status}));
  return value(value::table_ptr(std::move(t)));
}

// Moves messages from the C++ subscription to the Lua channel as tables.
conch::task<void> pump(conch::chan<nats::msg> from, conch::chan<value> to) {
  while (std::optional<nats::msg> m = co_await from.recv()) {
    value v = msg_value(*m);
    if (!co_await to.send(std::move(v))) break;  // the Lua side closed it
  }
  to.close();
}

conch::task<absl::StatusOr<value>> run(std::shared_ptr<nats_job> j) {
  const std::chrono::milliseconds ms(j->ms);
  if (j->kind == op::connect) {
    auto c = co_await nats::connect(j->a, j->opts);
    if (!c.ok()) co_return c.status();
    std::lock_guard<std::mutex> l(registry_mu);
    const std::int64_t id = next_id++;
    connections().emplace(id, *c);
    co_return value(id);
  }
  if (j->kind == op::unsubscribe) {
    std::optional<nats::subscription> s;
    {
      std::lock_guard<std::mutex> l(registry_mu);
      auto it = subscriptions().find(j->id);
      if (it != subscriptions().end()) {
        s = it->second;
        subscriptions().erase(it);
      }
    }
    if (s) CONCH_CO_RETURN_IF_ERROR(co_await s->unsubscribe());
    co_return value(true);
  }
  std::optional<nats::connection> c = find_conn(j->id);
  if (!c) co_return absl::FailedPreconditionError("nats: the connection is closed");
  switch (j->kind) {
    case op::publish:
      CONCH_CO_RETURN_IF_ERROR(co_await c->publish(std::move(j->a), std::move(j->b), std::move(j->c)));
      co_return value(true);
    case op::request: {
      auto m = co_await c->request(std::move(j->a), std::move(j->b), ms);
      if (!m.ok()) co_return m.status();
      co_return msg_value(*m);
    }
    case op::subscribe: {
      auto s = co_await c->subscribe(std::move(j->a), j->sub_opts);
      if (!s.ok()) co_return s.status();
      // Unbuffered: the C++ subscription's channel is the one buffer
      // (`capacity`, its policy and counters); the pump holds at most one
      // more message in hand, so nothing beyond capacity + 1 is held.
      conch::chan<value> lua_side(0);
      conch::go(pump(s->messages, lua_side));
      std::int64_t id = 0;
      {
        std::lock_guard<std::mutex> l(registry_mu);
        id = next_id++;
        subscriptions().emplace(id, *s);
      }
      auto t = std::make_shared<table>();
      t->entries.emplace_back(value("id"), value(id));
      t->entries.emplace_back(value("messages"), value(std::make_shared<const any_chan>(lua_side)));
      co_return value(value::table_ptr(std::move(t)));
    }
    case op::flush:
      CONCH_CO_RETURN_IF_ERROR(co_await c->flush(ms));
      co_return value(true);
    case op::drain:
      CONCH_CO_RETURN_IF_ERROR(co_await c->drain(ms));
      co_return value(true);
    default:
      co_return absl::InternalError("nats: unknown operation");
  }
}

// ---- the arguments, as plain data (nothing here needs a destructor) ----

struct job_args {
  op kind;
  std::int64_t id = 0;
  text a, b, c;
  std::int64_t ms = 0;
  // connect
  text name, user, password, token;
  int verbose = -1, pedantic = -1, headers = -1, echo = -1, reconnect = -1;
  std::int64_t max_reconnect_attempts = INT64_MIN, reconnect_wait = -1, reconnect_buffer = -1,
               ping_interval = -1, connect_timeout = -1;
  lua_tls tls;  // conch.connect's tls option, same names
  // subscribe
  text queue;
  std::int64_t capacity = 8192;
  bool backpressure = false;
  // filled by the start helper
  holder* hd = nullptr;
  bool ok = false;
};

// Builds the job from `a` and starts its go block (on the home loop).
void start(void* p) noexcept {
  auto* a = static_cast<job_args*>(p);
  try {
    auto ref = std::make_unique<loop_job_ref<nats_job>>();
    ref->j = std::make_shared<nats_job>();
    nats_job& j = *ref->j;
    j.kind = a->kind;
    j.id = a->id;
    j.a = str(a->a);
    j.b = str(a->b);
    j.c = str(a->c);
    j.ms = a->ms;
    j.opts.name = str(a->name);
    j.opts.user = str(a->user);
    j.opts.password = str(a->password);
    j.opts.token = str(a->token);
    if (a->verbose >= 0) j.opts.verbose = a->verbose != 0;
    if (a->pedantic >= 0) j.opts.pedantic = a->pedantic != 0;
    if (a->headers >= 0) j.opts.headers = a->headers != 0;
    if (a->echo >= 0) j.opts.echo = a->echo != 0;
    if (a->reconnect >= 0) j.opts.reconnect = a->reconnect != 0;
    if (a->max_reconnect_attempts != INT64_MIN)
      j.opts.max_reconnect_attempts = static_cast<int>(a->max_reconnect_attempts);
    if (a->reconnect_wait >= 0) j.opts.reconnect_wait = std::chrono::milliseconds(a->reconnect_wait);
    if (a->reconnect_buffer >= 0) j.opts.reconnect_buffer = static_cast<std::size_t>(a->reconnect_buffer);
    if (a->ping_interval > 0) j.opts.ping_interval = std::chrono::milliseconds(a->ping_interval);
    if (a->connect_timeout > 0) j.opts.connect_timeout = std::chrono::milliseconds(a->connect_timeout);
    if (!apply_tls(a->tls, j.opts.tls)) return;  // out of memory: a->ok stays false
    j.sub_opts.queue = str(a->queue);
    j.sub_opts.capacity = static_cast<std::size_t>(a->capacity);
    j.sub_opts.when_full = a->backpressure ? nats::slow_consumer::backpressure : nats::slow_consumer::drop;
    start_loop_job<nats_job, run>(std::move(ref), a->hd);
    a->ok = true;
  } catch (...) {
    // Out of memory: a->ok stays false.
  }
}

// Starts the job described by `a` and waits for its result (the holder at
// index 5, above the arguments).
int run_job(lua_State* L, job_args& a) { return run_loop_job<nats_job, 5>(L, a, &start); }

text opt_text(lua_State* L, int idx) {
  text t;
  if (!lua_isnoneornil(L, idx)) t.p = luaL_checklstring(L, idx, &t.n);
  return t;
}
std::int64_t check_id(lua_State* L, int idx) { return static_cast<std::int64_t>(luaL_checkinteger(L, idx)); }

// ---- options ----

const char* const connect_keys[] = {"name", "user", "password", "token", "verbose", "pedantic", "headers",
                                    "echo", "reconnect", "max_reconnect_attempts", "reconnect_wait",
                                    "reconnect_buffer", "ping_interval", "connect_timeout", "tls", nullptr};
const option_names connect_names{"conch.nats.connect", connect_keys};
const char* const subscribe_keys[] = {"queue", "capacity", "when_full", nullptr};
const option_names subscribe_names{"nc:subscribe", subscribe_keys};

void opt_string(lua_State* L, int idx, const char* fn, const char* key, text& out) {
  int t = lua_getfield(L, idx, key);
  if (t != LUA_TNIL) {
    if (t != LUA_TSTRING) raise_option_type(L, fn, key, "a string", -1);
    out.p = lua_tolstring(L, -1, &out.n);  // stays alive: the option table holds it
  }
  lua_pop(L, 1);
}
void opt_bool(lua_State* L, int idx, const char* fn, const char* key, int& out) {
  int t = lua_getfield(L, idx, key);
  if (t != LUA_TNIL) {
    if (t != LUA_TBOOLEAN) raise_option_type(L, fn, key, "a boolean", -1);
    out = lua_toboolean(L, -1);
  }
  lua_pop(L, 1);
}
void opt_int(lua_State* L, int idx, const char* fn, const char* key, lua_Integer min, lua_Integer max,
             std::int64_t& out) {
  lua_Integer v = 0;
  if (opt_integer(L, idx, fn, key, min, max, &v)) out = v;
}

// ---- the functions (low level; the Lua part below builds the objects) ----

// connect(url, opts) -> id | nil, err, code
int l_connect(lua_State* L) {
  check_max_args(L, 2, connect_names.fn);
  job_args a{op::connect};
  a.a = check_text(L, 1);
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    check_option_keys(L, 2, connect_names);
    const char* fn = connect_names.fn;
    opt_string(L, 2, fn, "name", a.name);
    opt_string(L, 2, fn, "user", a.user);
    opt_string(L, 2, fn, "password", a.password);
    opt_string(L, 2, fn, "token", a.token);
    opt_bool(L, 2, fn, "verbose", a.verbose);
    opt_bool(L, 2, fn, "pedantic", a.pedantic);
    opt_bool(L, 2, fn, "headers", a.headers);
    opt_bool(L, 2, fn, "echo", a.echo);
    opt_bool(L, 2, fn, "reconnect", a.reconnect);
    opt_int(L, 2, fn, "max_reconnect_attempts", -1, INT32_MAX, a.max_reconnect_attempts);
    opt_int(L, 2, fn, "reconnect_wait", 0, 3600000, a.reconnect_wait);
    opt_int(L, 2, fn, "reconnect_buffer", 0, std::int64_t{1} << 30, a.reconnect_buffer);
    opt_int(L, 2, fn, "ping_interval", 1, 86400000, a.ping_interval);
    opt_int(L, 2, fn, "connect_timeout", 1, 3600000, a.connect_timeout);
    check_tls(L, 2, a.tls);  // true or {cert=, key=, ca=, verify=, server_name=}
  }
  return run_job(L, a);
}

// publish(id, subject, data [, reply]) -> true | nil, err, code
int l_publish(lua_State* L) {
  check_max_args(L, 4, "nc:publish");
  job_args a{op::publish};
  a.id = check_id(L, 1);
  a.a = check_text(L, 2);
  a.b = check_text(L, 3);
  a.c = opt_text(L, 4);
  return run_job(L, a);
}

// request(id, subject, data, timeout_ms) -> msg | nil, err, code
int l_request(lua_State* L) {
  check_max_args(L, 4, "nc:request");
  job_args a{op::request};
  a.id = check_id(L, 1);
  a.a = check_text(L, 2);
  a.b = check_text(L, 3);
  const lua_Number ms = luaL_checknumber(L, 4);
  if (!(ms > 0)) return luaL_error(L, "nc:request: the timeout must be a positive number of milliseconds");
  a.ms = ms > 1e12 ? std::int64_t{1000000000000} : static_cast<std::int64_t>(ms);
  if (a.ms == 0) a.ms = 1;
  return run_job(L, a);
}

// subscribe(id, subject [, opts]) -> {id=, messages=} | nil, err, code
int l_subscribe(lua_State* L) {
  check_max_args(L, 3, subscribe_names.fn);
  job_args a{op::subscribe};
  a.id = check_id(L, 1);
  a.a = check_text(L, 2);
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    check_option_keys(L, 3, subscribe_names);
    opt_string(L, 3, subscribe_names.fn, "queue", a.queue);
    opt_int(L, 3, subscribe_names.fn, "capacity", 1, std::int64_t{1} << 20, a.capacity);
    text wf;
    opt_string(L, 3, subscribe_names.fn, "when_full", wf);
    if (wf.p != nullptr) {
      const std::string_view w(wf.p, wf.n);
      if (w == "backpressure")
        a.backpressure = true;
      else if (w != "drop")
        return luaL_error(L, "nc:subscribe: option 'when_full' must be \"drop\" or \"backpressure\"");
    }
  }
  return run_job(L, a);
}

// unsubscribe(sub_id) -> true | nil, err, code
int l_unsubscribe(lua_State* L) {
  check_max_args(L, 1, "sub:unsubscribe");
  job_args a{op::unsubscribe};
  a.id = check_id(L, 1);
  return run_job(L, a);
}

// flush(id [, timeout_ms]) / drain(id [, timeout_ms]) -> true | nil, err, code
int flush_or_drain(lua_State* L, op kind, const char* fn) {
  check_max_args(L, 2, fn);
  job_args a{kind};
  a.id = check_id(L, 1);
  const lua_Number ms = luaL_optnumber(L, 2, 10000);
  if (!(ms > 0)) return luaL_error(L, "%s: the timeout must be a positive number of milliseconds", fn);
  a.ms = ms > 1e12 ? std::int64_t{1000000000000} : std::max<std::int64_t>(1, static_cast<std::int64_t>(ms));
  return run_job(L, a);
}
int l_flush(lua_State* L) { return flush_or_drain(L, op::flush, "nc:flush"); }
int l_drain(lua_State* L) { return flush_or_drain(L, op::drain, "nc:drain"); }

// close(id): ends the connection now (no wait). Idempotent.
void close_conn(std::int64_t id) noexcept {
  std::optional<nats::connection> c;
  {
    std::lock_guard<std::mutex> l(registry_mu);
    auto it = connections().find(id);
    if (it == connections().end()) return;
    c = std::move(it->second);
    connections().erase(it);
  }
  c->close();
}
int l_close(lua_State* L) {
  check_max_args(L, 1, "nc:close");
  close_conn(check_id(L, 1));
  return 0;
}

// stats(id) -> {connected=, reconnects=, last_error=} ; sub_stats(sub_id) -> {dropped=, delivered=}
int l_stats(lua_State* L) {
  check_max_args(L, 1, "nc:stats");
  std::optional<nats::connection> c = find_conn(check_id(L, 1));
  lua_createtable(L, 0, 3);
  lua_pushboolean(L, c && c->connected());
  lua_setfield(L, -2, "connected");
  lua_pushinteger(L, c ? static_cast<lua_Integer>(c->reconnects()) : 0);
  lua_setfield(L, -2, "reconnects");
  return 1;
}
int l_sub_stats(lua_State* L) {
  check_max_args(L, 1, "sub:stats");
  const std::int64_t id = check_id(L, 1);
  std::uint64_t dropped = 0, delivered = 0;
  {
    std::lock_guard<std::mutex> l(registry_mu);
    auto it = subscriptions().find(id);
    if (it != subscriptions().end()) {
      dropped = it->second.dropped();
      delivered = it->second.delivered();
    }
  }
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, static_cast<lua_Integer>(dropped));
  lua_setfield(L, -2, "dropped");
  lua_pushinteger(L, static_cast<lua_Integer>(delivered));
  lua_setfield(L, -2, "delivered");
  return 1;
}

const luaL_Reg low_level[] = {
    {"connect", l_connect}, {"publish", l_publish},     {"request", l_request},
    {"subscribe", l_subscribe}, {"unsubscribe", l_unsubscribe}, {"flush", l_flush},
    {"drain", l_drain},     {"close", l_close},         {"stats", l_stats},
    {"sub_stats", l_sub_stats}, {nullptr, nullptr},
};

// The objects, in Lua: a connection and a subscription hold their ids.
const char nats_lua[] = R"lua(
local C = ...
local M = {}
local conn = {}
conn.__index = conn
conn.__name = "conch.nats.connection"
local sub = {}
sub.__index = sub
sub.__name = "conch.nats.subscription"

local function closed_error() return nil, "nats: the connection is closed", "FAILED_PRECONDITION" end

function M.connect(url, opts)
  local id, err, code = C.connect(url, opts)
  if not id then return nil, err, code end
  return setmetatable({id = id}, conn)
end

function conn:publish(subject, data, reply)
  if not self.id then return closed_error() end
  return C.publish(self.id, subject, data, reply)
end
function conn:request(subject, data, timeout_ms)
  if not self.id then return closed_error() end
  return C.request(self.id, subject, data, timeout_ms)
end
function conn:subscribe(subject, opts)
  if not self.id then return closed_error() end
  local s, err, code = C.subscribe(self.id, subject, opts)
  if not s then return nil, err, code end
  return setmetatable({id = s.id, messages = s.messages, subject = subject}, sub)
end
function conn:flush(timeout_ms)
  if not self.id then return closed_error() end
  return C.flush(self.id, timeout_ms)
end
function conn:drain(timeout_ms)
  if not self.id then return closed_error() end
  local ok, err, code = C.drain(self.id, timeout_ms)
  C.close(self.id)
  self.id = nil
  return ok, err, code
end
function conn:close()
  if self.id then C.close(self.id) end
  self.id = nil
end
function conn:stats()
  if not self.id then return {connected = false, reconnects = 0} end
  return C.stats(self.id)
end
conn.__gc = function(self) if self.id then C.close(self.id) end end
conn.__close = conn.__gc

function sub:unsubscribe()
  if not self.id then return true end
  local id = self.id
  self.id = nil
  return C.unsubscribe(id)
end
function sub:stats()
  if not self.id then return {dropped = 0, delivered = 0} end
  return C.sub_stats(self.id)
end
return M
)lua";

}  // namespace

// conch.nats: the module table (loaded on first use of conch.nats).
int open_nats(lua_State* L) {
  host* h = host_of(L);
  if (luaL_loadbuffer(L, nats_lua, sizeof nats_lua - 1, "=conch.nats") != LUA_OK) return lua_error(L);
  lua_createtable(L, 0, 10);
  set_closures(L, h, low_level);
  lua_call(L, 1, 1);
  return 1;
}

}  // namespace conch::lua::detail
