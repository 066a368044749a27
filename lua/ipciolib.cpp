// lua/ipciolib.cpp
// conch.ipcio's C half: the ipcIO server and client of sockets/ipc/ipcio.cpp, as low-level functions over ids.
//
// lua/conch/ipcio.lua builds the Lua objects (API.md §8) on these functions
// (`conch._ipcio`); this file only binds the C++ peers, so the protocol, the
// brace-depth splitter and the reconnect logic exist once (sockets/ipc/).
// Each operation that waits (listen, connect, emit, send, deliver, discover,
// broadcast) is a C++ go block on the home loop, started through
// host::call_on_loop, whose result (a `value`) arrives on a one-slot channel
// the Lua side receives from, as lua/natslib.cpp does. Data crosses as JSON
// text from Lua (conch.util's json.encode) and as `value` tables into Lua
// (json_value below: JSON null is nil, so a null member or element is
// absent, as the pure-Lua copy did).
//
// Handlers: c/s:handle(cmd) registers a C++ handler that sends a call table
// {command=, data=, name=, reply=chan} on the object's `calls` channel and
// waits for the Lua dispatcher (ipcio.lua) to answer with the result's JSON
// text on `reply` (closed empty = null). Unhandled commands, lifecycle and
// error events reach Lua through a pump go block from the C++ `events`
// channel to an unbuffered chan<value> (the C++ channel is the one buffer).
//
// Invariants:
//  - Arguments are checked (may raise) before any C++ object exists; strings
//    are copied into the heap job inside the noexcept start helper.
//  - A job is shared by its go block and its holder userdata; the go block
//    writes `status` before closing `result`.
//  - The registry owns one handle per live object; close() removes it, closes
//    the peer and the `calls` channel (so the dispatcher ends).
// Lock order: registry_mu is a leaf (no channel operation under it).
#include <mutex>
#include <optional>
#include <string_view>
#include <variant>

#include "absl/container/flat_hash_map.h"
#include "conch/chan/go.hpp"
#include "conch/core/status.hpp"
#include "conch/net/ipcio.hpp"
#include "lua/bridge.hpp"
#include "lua/loop_job.hpp"

namespace conch::lua::detail {

namespace {

using ipc::ipcio_client;
using ipc::ipcio_server;
using ipc::json;

// ---- the registry of live servers and clients ----

struct entry {
  std::variant<ipcio_server, ipcio_client> peer;
  conch::chan<value> calls;  // handler calls for the Lua dispatcher
};

std::mutex registry_mu;    // std::mutex: visible to TSan (Debian's libabsl is not instrumented)
std::int64_t next_id = 1;  // guarded by registry_mu
absl::flat_hash_map<std::int64_t, entry>& entries() {
  static auto* m = new absl::flat_hash_map<std::int64_t, entry>();
  return *m;
}

std::optional<entry> find(std::int64_t id) {
  std::lock_guard<std::mutex> l(registry_mu);
  auto it = entries().find(id);
  if (it == entries().end()) return std::nullopt;
  return it->second;
}

std::int64_t add(entry e) {
  std::lock_guard<std::mutex> l(registry_mu);
  const std::int64_t id = next_id++;
  entries().emplace(id, std::move(e));
  return id;
}

// ---- JSON -> value ----

void set(table& t, value k, value v) {
  if (!v.is_nil()) t.entries.emplace_back(std::move(k), std::move(v));  // nil: absent, as in Lua
}

// A JSON value as the Lua value it decodes to. Its depth is bounded by the
// peers' max_depth (json_stream skips deeper messages before they are parsed).
value json_value(const rapidjson::Value& j) {
  switch (j.GetType()) {
    case rapidjson::kNullType:
      return value();
    case rapidjson::kFalseType:
      return value(false);
    case rapidjson::kTrueType:
      return value(true);
    case rapidjson::kNumberType:
      // Integers that fit stay integers (as conch.util's json.decode gives them).
      if (j.IsInt64()) return value(std::int64_t{j.GetInt64()});
      return value(j.GetDouble());
    case rapidjson::kStringType:
      return value(std::string(j.GetString(), j.GetStringLength()));
    case rapidjson::kArrayType: {
      auto t = std::make_shared<table>();
      t->entries.reserve(j.Size());
      std::int64_t i = 1;
      for (const auto& x : j.GetArray()) set(*t, value(i++), json_value(x));
      return value(value::table_ptr(std::move(t)));
    }
    case rapidjson::kObjectType: {
      auto t = std::make_shared<table>();
      t->entries.reserve(j.MemberCount());
      for (const auto& m : j.GetObject())
        set(*t, value(std::string(m.name.GetString(), m.name.GetStringLength())), json_value(m.value));
      return value(value::table_ptr(std::move(t)));
    }
  }
  return value();
}

void set_str(table& t, const char* k, std::string s) {
  if (!s.empty()) t.entries.emplace_back(value(k), value(std::move(s)));
}

// An event as the table Lua sees: {kind=, command=, data=, name=, delivery=} (empty strings absent).
value event_value(ipc::ipcio_event& e) {
  auto t = std::make_shared<table>();
  set_str(*t, "kind", std::move(e.kind));
  set_str(*t, "command", std::move(e.command));
  set(*t, value("data"), json_value(e.data));
  set_str(*t, "name", std::move(e.name));
  set_str(*t, "delivery", std::move(e.delivery));
  return value(value::table_ptr(std::move(t)));
}

// Moves events from the C++ peer to the Lua channel as tables.
conch::task<void> pump(conch::chan<ipc::ipcio_event> from, conch::chan<value> to) {
  while (std::optional<ipc::ipcio_event> e = co_await from.recv()) {
    value v = event_value(*e);
    if (!co_await to.send(std::move(v))) break;  // the Lua side closed it
  }
  to.close();
}

// One handler call: hands it to the Lua dispatcher and waits for the result's JSON text.
conch::task<json> forward(conch::chan<value> calls, std::string command, json data, std::string name) {
  conch::chan<value> reply(1);
  value call;
  {
    auto t = std::make_shared<table>();
    t->entries.emplace_back(value("command"), value(std::move(command)));
    set(*t, value("data"), json_value(data));
    set_str(*t, "name", std::move(name));
    t->entries.emplace_back(value("reply"), value(std::make_shared<const any_chan>(reply)));
    call = value(value::table_ptr(std::move(t)));
  }
  if (!co_await calls.send(std::move(call))) co_return json();  // closed: the object is closing
  std::optional<value> r = co_await reply.recv();
  // Closed empty (the handler raised, or its state ended): null.
  if (!r || !r->is_string()) co_return json();
  co_return ipc::json_parse(r->string());
}

// ---- jobs ----

enum class op : std::uint8_t { listen, connect, emit, broadcast, send, deliver, client_emit, client_broadcast, discover };

struct ipcio_job {
  op kind = op::emit;
  std::int64_t id = 0;
  std::string a, b, c;  // name/target | command | data's JSON text
  ipc::ipcio_options opts;
  conch::chan<value> result{1};  // closes empty on failure
  absl::Status status;           // written before result closes
  static constexpr const char* what = "ipcio";
};

value strings_value(const std::vector<std::string>& v) {
  auto t = std::make_shared<table>();
  std::int64_t i = 1;
  for (const auto& s : v) t->entries.emplace_back(value(i++), value(s));
  return value(value::table_ptr(std::move(t)));
}

// {id=, events=, calls=, path= | name=}: what listen and connect give Lua.
value object_value(std::int64_t id, conch::chan<value> events, conch::chan<value> calls, const char* key,
                   std::string text) {
  auto t = std::make_shared<table>();
  t->entries.emplace_back(value("id"), value(id));
  t->entries.emplace_back(value("events"), value(std::make_shared<const any_chan>(std::move(events))));
  t->entries.emplace_back(value("calls"), value(std::make_shared<const any_chan>(std::move(calls))));
  t->entries.emplace_back(value(key), value(std::move(text)));
  return value(value::table_ptr(std::move(t)));
}

// An answer as {v = result} (so a null result is not mistaken for a failure).
value boxed(const rapidjson::Value& j) {
  auto t = std::make_shared<table>();
  set(*t, value("v"), json_value(j));
  return value(value::table_ptr(std::move(t)));
}

conch::task<absl::StatusOr<value>> run(std::shared_ptr<ipcio_job> j) {
  if (j->kind == op::listen) {
    auto s = ipcio_server::listen(j->opts);
    if (!s.ok()) co_return s.status();
    conch::chan<value> events(0), calls(0);
    conch::go(pump(s->events(), events));
    std::string path = s->path();
    const std::int64_t id = add(entry{*s, calls});
    co_return object_value(id, events, calls, "path", std::move(path));
  }
  if (j->kind == op::connect) {
    auto c = co_await ipcio_client::connect(std::move(j->a), j->opts);
    if (!c.ok()) co_return c.status();
    conch::chan<value> events(0), calls(0);
    conch::go(pump(c->events(), events));
    std::string name = c->name();
    const std::int64_t id = add(entry{*c, calls});
    co_return object_value(id, events, calls, "name", std::move(name));
  }
  std::optional<entry> e = find(j->id);
  if (!e) co_return absl::FailedPreconditionError("ipcio: the object is closed");
  // The data: Lua's json.encode made it, so it parses; checked all the same.
  if (!ipc::json_valid(j->c)) co_return absl::InvalidArgumentError("ipcio: the data is not JSON");
  const json data = ipc::json_parse(j->c);
  // (Each co_await's result is named first: GCC 12 and temporaries across a suspension.)
  if (auto* s = std::get_if<ipcio_server>(&e->peer)) {
    if (j->kind == op::emit) {
      const bool ok = co_await s->emit(std::move(j->a), std::move(j->b), data);
      co_return value(ok);
    }
    if (j->kind == op::broadcast) {
      const std::size_t n = co_await s->broadcast(std::move(j->b), data);
      co_return value(static_cast<std::int64_t>(n));
    }
    co_return absl::InvalidArgumentError("ipcio: not an operation of a server");
  }
  auto& c = std::get<ipcio_client>(e->peer);
  bool ok = false;
  switch (j->kind) {
    case op::send:
      ok = co_await c.send(std::move(j->b), data);
      co_return value(ok);
    case op::client_emit:
      ok = co_await c.emit(std::move(j->a), std::move(j->b), data);
      co_return value(ok);
    case op::client_broadcast:
      ok = co_await c.broadcast(std::move(j->b), data);
      co_return value(ok);
    case op::deliver: {
      absl::StatusOr<json> r = absl::UnknownError("ipcio: no answer");
      if (j->a.empty())  // to the server's handler, else to another client's
        r = co_await c.deliver(std::move(j->b), data);
      else
        r = co_await c.deliver_to(std::move(j->a), std::move(j->b), data);
      if (!r.ok()) co_return r.status();
      co_return boxed(*r);
    }
    case op::discover: {
      auto d = co_await c.discover();
      if (!d.ok()) co_return d.status();
      auto t = std::make_shared<table>();
      t->entries.emplace_back(value("clients"), strings_value(d->clients));
      t->entries.emplace_back(value("command_handlers"), strings_value(d->command_handlers));
      co_return value(value::table_ptr(std::move(t)));
    }
    default:
      co_return absl::InvalidArgumentError("ipcio: not an operation of a client");
  }
}

// ---- the arguments, as plain data (nothing here needs a destructor) ----

struct job_args {
  op kind;
  std::int64_t id = 0;
  text a, b, c;
  // listen / connect
  text domain, prefix;
  std::int64_t max_message = 0, max_depth = 0, events = 0, timeout_ms = 0, reconnect_ms = 0;
  // filled by the start helper
  holder* hd = nullptr;
  bool ok = false;
};

// Builds the job from `a` and starts its go block (on the home loop).
void start(void* p) noexcept {
  auto* a = static_cast<job_args*>(p);
  try {
    auto ref = std::make_unique<loop_job_ref<ipcio_job>>();
    ref->j = std::make_shared<ipcio_job>();
    ipcio_job& j = *ref->j;
    j.kind = a->kind;
    j.id = a->id;
    j.a = str(a->a);
    j.b = str(a->b);
    j.c = str(a->c);
    if (a->kind == op::listen || a->kind == op::connect) {
      j.opts.domain = str(a->domain);
      j.opts.prefix = str(a->prefix);
      j.opts.max_message = static_cast<std::size_t>(a->max_message);
      j.opts.max_depth = static_cast<std::size_t>(a->max_depth);
      j.opts.events_capacity = static_cast<std::size_t>(a->events);
      j.opts.reply_timeout = std::chrono::milliseconds(a->timeout_ms);
      j.opts.reconnect_interval = std::chrono::milliseconds(a->reconnect_ms);
    }
    start_loop_job<ipcio_job, run>(std::move(ref), a->hd);
    a->ok = true;
  } catch (...) {
    // Out of memory: a->ok stays false.
  }
}

constexpr int kArgs = 8;  // the most arguments a function takes; the holder sits above them

// Starts the job described by `a` and waits for its result (the holder
// above the kArgs arguments).
int run_job(lua_State* L, job_args& a) { return run_loop_job<ipcio_job, kArgs + 1>(L, a, &start); }

std::int64_t check_int(lua_State* L, int idx, lua_Integer min, lua_Integer max) {
  const lua_Integer v = luaL_checkinteger(L, idx);
  luaL_argcheck(L, v >= min && v <= max, idx, "out of range");
  return static_cast<std::int64_t>(v);
}

// ---- the functions (low level; lua/conch/ipcio.lua builds the objects) ----

// The options both constructors take, positional from `first`:
// domain, prefix, max_message, max_depth, events, timeout_ms [, reconnect_ms].
void check_options(lua_State* L, int first, job_args& a) {
  a.domain = check_text(L, first);
  a.prefix = check_text(L, first + 1);
  a.max_message = check_int(L, first + 2, 1, lua_Integer{1} << 30);
  a.max_depth = check_int(L, first + 3, 1, 512);
  a.events = check_int(L, first + 4, 1, lua_Integer{1} << 20);
  a.timeout_ms = check_int(L, first + 5, 1, lua_Integer{1} << 30);
}

// listen(domain, prefix, max_message, max_depth, events, timeout_ms) -> {id=, events=, calls=, path=} | nil, err, code
int l_listen(lua_State* L) {
  check_max_args(L, 6, "ipcio.server");
  job_args a{op::listen};
  check_options(L, 1, a);
  a.reconnect_ms = 2000;
  return run_job(L, a);
}

// connect(name, domain, prefix, max_message, max_depth, events, timeout_ms, reconnect_ms)
//   -> {id=, events=, calls=, name=} | nil, err, code
int l_connect(lua_State* L) {
  check_max_args(L, 8, "ipcio.client");
  job_args a{op::connect};
  a.a = check_text(L, 1);
  check_options(L, 2, a);
  a.reconnect_ms = check_int(L, 8, 1, lua_Integer{1} << 30);
  return run_job(L, a);
}

// An operation on object `id`: (id, target|nil, command, json_text).
int object_op(lua_State* L, op kind, const char* fn) {
  check_max_args(L, 4, fn);
  job_args a{kind};
  a.id = static_cast<std::int64_t>(luaL_checkinteger(L, 1));
  if (!lua_isnil(L, 2)) a.a = check_text(L, 2);
  if (!lua_isnil(L, 3)) a.b = check_text(L, 3);
  a.c = check_text(L, 4);
  return run_job(L, a);
}

int l_emit(lua_State* L) { return object_op(L, op::emit, "ipcio server:emit"); }
int l_broadcast(lua_State* L) { return object_op(L, op::broadcast, "ipcio server:broadcast"); }
int l_send(lua_State* L) { return object_op(L, op::send, "ipcio client:send"); }
int l_deliver(lua_State* L) { return object_op(L, op::deliver, "ipcio client:deliver"); }
int l_client_emit(lua_State* L) { return object_op(L, op::client_emit, "ipcio client:emit"); }
int l_client_broadcast(lua_State* L) { return object_op(L, op::client_broadcast, "ipcio client:broadcast"); }
int l_discover(lua_State* L) {
  check_max_args(L, 1, "ipcio client:discover");
  job_args a{op::discover};
  a.id = static_cast<std::int64_t>(luaL_checkinteger(L, 1));
  a.c = text{"null", 4};
  return run_job(L, a);
}

// What handle() needs, as plain data for the noexcept helper.
struct handle_args {
  std::int64_t id;
  text command;
  bool on;
  bool found = false;
  bool ok = false;
  char err[200] = {};
};

void do_handle(handle_args& a) noexcept {
  try {
    std::optional<entry> e = find(a.id);
    if (!e) return;
    a.found = true;
    std::string command = str(a.command);
    ipc::ipcio_handler h;
    if (a.on)
      h = [calls = e->calls, command](json data, std::string name) {
        return forward(calls, command, std::move(data), std::move(name));
      };
    absl::Status st = std::visit([&](auto& p) { return p.handle(command, std::move(h)); }, e->peer);
    if (!st.ok()) {
      std::snprintf(a.err, sizeof a.err, "%.*s", static_cast<int>(st.message().size()), st.message().data());
      return;
    }
    a.ok = true;
  } catch (...) {
    std::snprintf(a.err, sizeof a.err, "ipcio: out of memory");
  }
}

// handle(id, command, on): registers (on) or removes the C++ handler that forwards to `calls`.
int l_handle(lua_State* L) {
  check_max_args(L, 3, "ipcio:handle");
  handle_args a{static_cast<std::int64_t>(luaL_checkinteger(L, 1)), check_text(L, 2), lua_toboolean(L, 3) != 0};
  do_handle(a);
  if (!a.found) return luaL_error(L, "ipcio:handle: the object is closed");
  if (!a.ok) return luaL_error(L, "%s", a.err);
  return 0;
}

// The names of server `id`'s connected clients into a heap vector the holder owns (false: out of memory).
bool fill_clients(holder* hd, std::int64_t id) noexcept {
  try {
    auto v = std::make_unique<std::vector<std::string>>();
    if (std::optional<entry> e = find(id))
      if (auto* s = std::get_if<ipcio_server>(&e->peer)) *v = s->clients();
    hd->p = v.release();
    hd->del = &delete_as<std::vector<std::string>>;
    return true;
  } catch (...) {
    return false;
  }
}

// clients(id) -> {names}
int l_clients(lua_State* L) {
  check_max_args(L, 1, "ipcio server:clients");
  const std::int64_t id = static_cast<std::int64_t>(luaL_checkinteger(L, 1));
  holder* hd = push_holder(L);  // owns the names while they are pushed (pushing may raise)
  if (!fill_clients(hd, id)) return raise_no_memory(L);
  const auto& names = *static_cast<std::vector<std::string>*>(hd->p);
  lua_createtable(L, static_cast<int>(names.size()), 0);
  for (std::size_t i = 0; i < names.size(); ++i) {
    lua_pushlstring(L, names[i].data(), names[i].size());
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  return 1;
}

struct status_out {
  std::uint64_t malformed = 0;
  bool connected = false;  // a server: while it is open
};

void read_status(std::int64_t id, status_out& o) noexcept {
  try {
    std::optional<entry> e = find(id);
    if (!e) return;  // closed
    if (auto* s = std::get_if<ipcio_server>(&e->peer)) {
      o.malformed = s->malformed();
      o.connected = true;
    } else {
      auto& c = std::get<ipcio_client>(e->peer);
      o.malformed = c.malformed();
      o.connected = c.connected();
    }
  } catch (...) {
    // find() could not copy the handle (out of memory): reported as closed.
  }
}

// status(id) -> malformed, connected
int l_status(lua_State* L) {
  check_max_args(L, 1, "ipcio:status");
  status_out o;
  read_status(static_cast<std::int64_t>(luaL_checkinteger(L, 1)), o);
  lua_pushinteger(L, static_cast<lua_Integer>(o.malformed));
  lua_pushboolean(L, o.connected);
  return 2;
}

// close(id): closes the peer and its `calls` channel. Idempotent; never waits.
void close_entry(std::int64_t id) noexcept {
  std::optional<entry> e;
  {
    std::lock_guard<std::mutex> l(registry_mu);
    auto it = entries().find(id);
    if (it == entries().end()) return;
    e = std::move(it->second);
    entries().erase(it);
  }
  std::visit([](auto& p) { p.close(); }, e->peer);
  e->calls.close();
}
int l_close(lua_State* L) {
  check_max_args(L, 1, "ipcio:close");
  close_entry(static_cast<std::int64_t>(luaL_checkinteger(L, 1)));
  return 0;
}

const luaL_Reg low_level[] = {
    {"listen", l_listen},
    {"connect", l_connect},
    {"handle", l_handle},
    {"emit", l_emit},
    {"broadcast", l_broadcast},
    {"clients", l_clients},
    {"send", l_send},
    {"deliver", l_deliver},
    {"client_emit", l_client_emit},
    {"client_broadcast", l_client_broadcast},
    {"discover", l_discover},
    {"status", l_status},
    {"close", l_close},
    {nullptr, nullptr},
};

}  // namespace

// conch._ipcio: the low-level table lua/conch/ipcio.lua builds on.
int open_ipcio(lua_State* L) {
  host* h = host_of(L);
  lua_createtable(L, 0, 13);
  set_closures(L, h, low_level);
  return 1;
}

}  // namespace conch::lua::detail
