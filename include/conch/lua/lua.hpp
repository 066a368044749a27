// conch/lua/lua.hpp
// Embedding API: a Lua 5.4 state bound to a conch runtime, with the `conch`
// module preloaded, sharing channels with C++.
//
//   conch::runtime rt({.threads = 2});
//   conch::lua::state L(rt);
//   conch::chan<std::int64_t> in(16), out(16);
//   L.set("input", in);                                   // a global in the script
//   L.set("output", out);
//   auto st = L.run_string(R"(
//     local conch = require "conch"
//     conch.go(function()
//       for v in function() return input:recv() end do output:send(v * 2) end
//       output:close()
//     end))");
//   in.send_blocking(21);                 // C++ -> Lua; out.recv_blocking() == 42
//
// Threads. The state's go blocks run on one loop thread of the runtime (its
// home loop, the least busy one when the state is made unless
// state_options::place says otherwise: states spread over the loops). Calls on a `state` come from plain threads (not loop threads),
// one at a time (they are serialised). While a call runs Lua on the calling
// thread, go blocks wait; between calls they run on the home loop. Inside a
// call, a channel operation that would park outside any go block hands the
// state to the home loop until it completes (core.async's <!!), so go blocks
// keep running meanwhile. The lua_State is only ever touched by one thread at
// a time.
//
// Lifetime. Destroy the state before its runtime. Destroying it stops its go
// blocks (their result channels close) and closes the Lua state; channels
// shared with C++ stay valid.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "conch/chan/chan.hpp"
#include "conch/core/placement.hpp"
#include "conch/core/runtime.hpp"
#include "conch/lua/value.hpp"

struct lua_State;

namespace conch::lua {

namespace detail {
class host;
}

/// Options for a state.
struct state_options {
  /// Open Lua's standard libraries (base, coroutine, string, table, ...).
  bool open_libs = true;
  /// The state's home loop, where its go blocks run (one thread at a time).
  /// The default spreads states over the runtime's loops, so several states
  /// run side by side; placement::loop(i) keeps states together.
  placement place = placement::least_busy();
  /// Called with the message and traceback of every error that escapes a go
  /// block (on the home loop thread). Default: print to stderr. A Lua handler
  /// set with conch.on_error(fn) takes precedence.
  std::function<void(std::string_view)> on_error;
};

/// A Lua state bound to a runtime (see the file comment). Not copyable or
/// movable.
class state {
 public:
  /// Opens a Lua state whose go blocks run on a loop of `rt`. Call from a
  /// plain thread (not a runtime loop thread).
  explicit state(runtime& rt, state_options opts = {});
  ~state();
  state(const state&) = delete;
  state& operator=(const state&) = delete;

  /// Runs a chunk of Lua source on the calling thread until it returns. Go
  /// blocks it starts keep running afterwards. Errors come back as a Status:
  /// kInvalidArgument for a syntax error, kUnknown for a runtime error (the
  /// message carries the traceback).
  absl::Status run_string(std::string_view code, std::string_view chunkname = "=(string)");
  /// Runs a Lua file (kNotFound if it cannot be read), like run_string.
  absl::Status run_file(const std::string& path);

  /// Sets global `name` to a channel shared with C++.
  void set(std::string_view name, const chan<std::string>& ch);
  void set(std::string_view name, const chan<std::int64_t>& ch);
  void set(std::string_view name, const chan<double>& ch);
  void set(std::string_view name, const chan<value>& ch);

  /// The channel held in global `name`, if it is a channel of T (a channel
  /// created in Lua by conch.chan() is a chan<value>).
  template <class T>
  std::optional<chan<T>> get_chan(std::string_view name) {
    std::shared_ptr<const any_chan> c = get_any_chan(name);
    if (c == nullptr) return std::nullopt;
    if (const chan<T>* p = c->get_if<T>()) return *p;
    return std::nullopt;
  }

  /// Runs f(lua_State*) on the calling thread while holding the state (go
  /// blocks wait). f must not raise Lua errors outside a protected call.
  void with(const std::function<void(lua_State*)>& f);

 private:
  void set_any(std::string_view name, std::shared_ptr<const any_chan> c);
  std::shared_ptr<const any_chan> get_any_chan(std::string_view name);
  absl::Status run_chunk(std::string_view code, std::string_view chunkname, bool is_file);

  detail::host* host_;
  lua_State* L_;
};

}  // namespace conch::lua
