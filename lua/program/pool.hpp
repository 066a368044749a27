// lua/program/pool.hpp
// The worker pool behind `work.*`: a job channel, worker Lua states, one results mailbox per handler.
//
// Internal to lua/program/. Jobs travel on one bounded chan<value>
// (--max-jobs) as envelopes {box, job, space}: `box` names the submitting
// handler's mailbox, `space` is its "room again" bell when --max-results
// bounds it. A mailbox is unbounded by default, so answering never parks a
// worker: a handler may submit 100,000 jobs before collecting one. Each
// worker is a conch::lua::state whose script runs as a go block on its home
// loop (states spread over the runtime's loops); a plain thread per worker
// makes the state, waits for it, and makes a fresh one after an error.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "conch/chan/chan.hpp"
#include "conch/lua/value.hpp"
#include "lua/program/program.hpp"

namespace conch::lua::detail {
class host;
}  // namespace conch::lua::detail

namespace conch::lua::program {

/// One handler's results, in completion order. Taken by one state only.
struct mailbox {
  std::mutex mu;  // guards items, outstanding (a leaf lock)
  std::deque<std::pair<bool, value>> items;  // (ok, result or error message)
  std::int64_t outstanding = 0;              // submitted for this box, not yet collected
  std::size_t limit = 0;                     // --max-results; 0 = unbounded
  chan<value> ready{buffer::dropping(1)};    // rung after a put: "look again"
  chan<value> space{buffer::dropping(1)};    // rung after every take from a bounded box
  value taken;  // the result take() is pushing (heap: a raising push leaks nothing)
};

/// The pool (see the file comment). Threads: start/stop from the main
/// thread; the C functions of work.* from any state's thread.
class pool {
 public:
  struct config {
    unsigned workers = 1;
    std::size_t max_jobs = 10;
    std::size_t max_results = 0;
    std::string worker_script;
    const command* cmd = nullptr;
    /// The pool the command line asks for: -w (default: one worker per
    /// core), --max-jobs (default 10 per worker, slua's), --max-results.
    static config from(const command& cmd, unsigned cores);
  };
  pool(runtime& rt, config cfg);
  ~pool();
  pool(const pool&) = delete;
  pool& operator=(const pool&) = delete;

  /// Starts the worker threads.
  void start();
  /// Closes the job channel and joins the workers: each finishes its job and
  /// stops at its next work.accept(). Idempotent.
  void stop();
  /// Waits until every worker has stopped for good (NATS mode: they stop
  /// only when their connection ends or their script cannot start).
  void wait();

  /// A new mailbox for a handler, and its id; close_box drops it (results
  /// that arrive later are discarded).
  std::pair<int, std::shared_ptr<mailbox>> open_box();
  void close_box(int id);
  /// The mailbox `id`, or null once closed.
  std::shared_ptr<mailbox> find_box(int id);

  /// Why no worker is left, or empty while the pool works.
  std::string dead_reason();

  const config& cfg() const { return cfg_; }
  chan<value> jobs;             // envelopes {box, job, space}
  std::atomic<int> idle{0};     // workers parked in work.accept()

 private:
  void worker_loop(unsigned index);
  void die(const std::string& why);

  runtime& rt_;
  config cfg_;
  std::vector<std::thread> threads_;
  std::atomic<unsigned> live_{0};
  std::atomic<bool> stopping_{false};
  std::mutex mu_;  // guards boxes_, next_box_, dead_ (a leaf lock)
  std::unordered_map<int, std::shared_ptr<mailbox>> boxes_;
  int next_box_ = 1;
  std::string dead_;
};

/// Adds the pool's private functions to the table on top of the stack
/// (the `P` table the Lua glue reads), for a handler (`box` its mailbox)
/// or a worker; `h` is the state's host (send_job and accept park on it).
/// May raise (memory); called in protected mode.
void add_pool_functions(lua_State* L, pool* p, mailbox* box, detail::host* h);

/// Runs the state's P.run() (the script as a go block, waited for) and
/// returns P.outcome, P.err.
std::pair<std::string, std::string> run_program_main(state& L);

}  // namespace conch::lua::program
