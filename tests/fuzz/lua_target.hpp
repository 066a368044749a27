// tests/fuzz/lua_target.hpp
// The two Lua fuzz targets' shared driver: one runtime and Lua state per process, a Lua script's fuzz_one(bytes) per input.
//
// The script (tests/fuzz/<name>.lua) defines a global fuzz_one(bytes); its
// oracle raises an error on a finding, and so does anything that escapes its
// own pcalls. Any error becomes an abort here (libFuzzer saves the input;
// the replay driver fails its CTest). C++ channels of the three typed kinds
// are globals S (strings), I (integers) and D (numbers), so the script can
// send into channels C++ created, as embedders do.
#pragma once

#include <lua.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "conch/conch.hpp"
#include "conch/lua/lua.hpp"

#ifndef CONCH_FUZZ_DIR
#error "CONCH_FUZZ_DIR (the folder of the fuzz scripts) must be defined"
#endif

namespace conch::fuzz {

/// The runtime and the state, made on first use and destroyed at exit in
/// the right order (state first).
class lua_target {
 public:
  explicit lua_target(const char* script)
      : rt_({.threads = 1}), L_(rt_, {.on_error = [](std::string_view msg) {
          // An error escaping a go block the script started is a finding too.
          std::fprintf(stderr, "fuzz: error in a go block: %.*s\n", static_cast<int>(msg.size()),
                       msg.data());
          std::abort();
        }}) {
    L_.set("S", chan<std::string>(1));
    L_.set("I", chan<std::int64_t>(1));
    L_.set("D", chan<double>(1));
    must(L_.run_file(std::string(CONCH_FUZZ_DIR) + "/" + script), "loading the script");
  }

  /// Runs fuzz_one(bytes); aborts with the message if it raised.
  void run(const std::uint8_t* data, std::size_t size) {
    L_.with([&](lua_State* L) {
      lua_pushlstring(L, reinterpret_cast<const char*>(data), size);  // a short string: no raise
      lua_setglobal(L, "FUZZ_INPUT");
    });
    must(L_.run_string("fuzz_one(FUZZ_INPUT); FUZZ_INPUT = nil", "=fuzz"), "fuzz_one");
  }

 private:
  static void must(const absl::Status& st, const char* what) {
    if (st.ok()) return;
    std::fprintf(stderr, "fuzz: %s failed: %s\n", what, st.ToString().c_str());
    std::abort();
  }

  runtime rt_;
  lua::state L_;
};

}  // namespace conch::fuzz
