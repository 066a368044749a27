// bench/lua_states_bench.cpp
// conch_bench_lua_states [runs=5] [jobs=200]: CPU-bound Lua states side by side.
//
// On a 2-thread runtime, one conch::lua::state runs `jobs` CPU-bound jobs (a
// Lua loop of ~1 ms each) in a go block; then four states run `jobs` each.
// Throughput is jobs per second of wall time; the speed-up is four states'
// throughput over one state's, measured in alternating runs. The same four
// states all placed on loop 0 (what every state got before placement) are
// the in-run control. Prints, per run and as a summary (median, min, max):
//   bench=lua_states param=states:4,place:least_busy value=1.93 unit=x_one_state
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "conch/conch.hpp"
#include "conch/lua/lua.hpp"

#include <lua.hpp>

namespace {

using clock_type = std::chrono::steady_clock;

const char* kJob = R"(
  local conch = require "conch"
  conch.go(function()
    local n = 0
    for _ = 1, jobs do
      local h = 0
      for i = 1, 100000 do h = (h * 31 + i) % 1000003 end
      n = n + (h >= 0 and 1 or 0)
    end
    done:send(n)
  end))";

// Wall seconds for `states` states of `jobs` jobs each, placed by `place`.
double run_states(conch::runtime& rt, int states, std::int64_t jobs, conch::placement place) {
  conch::chan<std::int64_t> done(states);
  std::vector<std::unique_ptr<conch::lua::state>> ls;
  for (int i = 0; i < states; ++i) {
    ls.push_back(std::make_unique<conch::lua::state>(rt, conch::lua::state_options{.place = place}));
    ls.back()->set("done", done);
    ls.back()->with([jobs](lua_State* L) {
      lua_pushinteger(L, jobs);
      lua_setglobal(L, "jobs");
    });
  }
  auto t0 = clock_type::now();
  for (auto& l : ls) {
    absl::Status st = l->run_string(kJob);
    if (!st.ok()) std::fprintf(stderr, "lua_states: %s\n", std::string(st.message()).c_str());
  }
  std::int64_t total = 0;
  for (int i = 0; i < states; ++i) total += done.recv_blocking().value_or(0);
  double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
  if (total != states * jobs) std::fprintf(stderr, "lua_states: %lld of %lld jobs\n",
                                           static_cast<long long>(total), static_cast<long long>(states * jobs));
  return secs;
}

void summary(const char* param, std::vector<double> v) {
  std::sort(v.begin(), v.end());
  std::printf("bench=lua_states param=%s value=%.2f unit=x_one_state min=%.2f max=%.2f runs=%zu\n", param,
              v[v.size() / 2], v.front(), v.back(), v.size());
}

}  // namespace

int main(int argc, char** argv) {
  const int runs = argc > 1 ? std::max(1, std::atoi(argv[1])) : 5;
  const std::int64_t jobs = argc > 2 ? std::max(1, std::atoi(argv[2])) : 200;
  conch::runtime rt({.threads = 2});
  run_states(rt, 1, jobs / 10 + 1, conch::placement::least_busy());  // warm-up
  std::vector<double> spread, together;
  for (int r = 0; r < runs; ++r) {
    double one = run_states(rt, 1, jobs, conch::placement::least_busy());
    double four = run_states(rt, 4, jobs, conch::placement::least_busy());
    double four_on_0 = run_states(rt, 4, jobs, conch::placement::loop(0));
    spread.push_back(one * 4 / four);  // (4 jobs / four) / (jobs / one)
    together.push_back(one * 4 / four_on_0);
    std::printf("bench=lua_states param=run:%d one_s=%.3f four_s=%.3f four_on_loop0_s=%.3f\n", r, one, four,
                four_on_0);
    std::fflush(stdout);
  }
  summary("states:4,place:least_busy", spread);
  summary("states:4,place:loop0", together);
  return 0;
}
