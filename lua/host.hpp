// lua/host.hpp
// The Lua bridge's machinery: parked requests, go-block tasks and the host of a Lua state.
//
// Internal to lua/ (include "lua/bridge.hpp", which includes this). See
// lua/README.md for the model. In short: a `host` is the conch side of one
// Lua state. Whoever holds the host's *baton* may run that state's Lua:
// either the outside thread (the plain thread that called into Lua: the
// stock interpreter's main thread, or the caller of conch::lua::state) or
// the home loop thread (which runs the go blocks). A go block is a Lua thread
// driven by a small C++ coroutine (its driver) pinned to the home loop. A
// channel operation that must wait parks an ordinary channel waiter whose
// resumer is the driver, then yields the park tag; when the channel wakes
// the driver, it resumes the Lua thread, whose continuation pushes the
// outcome. Defined in lua/request.cpp (requests), lua/host.cpp (creation,
// go blocks, errors) and lua/control.cpp (baton, control queue, shutdown).
#pragma once

#include <lua.hpp>

#include <atomic>
#include <condition_variable>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "conch/chan/chan.hpp"
#include "conch/chan/select.hpp"
#include "conch/core/runtime.hpp"
#include "lua/convert.hpp"

namespace conch::lua::detail {

using conch::detail::loop;
using conch::detail::op_status;
using conch::detail::resumer;
using conch::detail::select_op;
using conch::detail::select_state;
using conch::detail::waiter;

// ---- requests: the channel operation a go block (or the outside thread) waits on ----

/// One channel operation of a request: a single send/recv, or a select case.
struct op_case {
  chan_core* core = nullptr;
  elem type = elem::value;
  bool is_send = false;
  bool full = false;   // slot holds a constructed element
  bool refd = false;   // we hold a reference on core (taken while parked)
  elem_slot slot;
};

enum class op : std::uint8_t { none, single, select, sleep, yield };

/// A timer that wakes a parked go block (conch.sleep).
struct sleep_timer : conch::detail::timer_node {
  loop* home = nullptr;
  std::coroutine_handle<> h;
};

/// A parked (or about to park) operation, with room for its values and waiters.
/// It lives in the heap (in a task or the host), never on a C stack, so Lua
/// errors (longjmps) can pass while it holds values. Touched only by the
/// thread that holds the baton, and by the home loop thread while parked.
struct request {
  op kind = op::none;
  bool in_order = false;  // select: earliest ready case wins
  bool ok = false;        // outcome: the fired case moved a value
  int fired = -1;         // outcome: which case
  std::size_t n = 0;      // cases in use
  std::vector<op_case> cases;
  std::vector<select_op> ops;
  std::vector<waiter> ws;
  std::vector<void*> scratch;
  select_state st;
  sleep_timer timer;

  request() = default;
  request(const request&) = delete;
  request& operator=(const request&) = delete;
  ~request() { clear(); }

  /// Readies `count` empty cases, dropping what the last operation left.
  /// False if out of memory.
  bool reset(std::size_t count) noexcept;
  /// Destroys held elements, drops references, kind = none.
  void clear() noexcept;
  /// Starts the operation: commits a ready case (returns its index), or parks
  /// waiters that resume with `r` (returns -1). With r == null it only polls.
  int start(const resumer* r) noexcept;
  /// References every case's channel (once parked).
  void take_refs() noexcept;
  /// After the parked operation woke its owner: withdraws the cases that did
  /// not fire, records the outcome, kind = none.
  void finish() noexcept;
  /// Withdraws a parked operation at shutdown. True if nothing will wake the
  /// owner any more; false if a wake-up is already on its way.
  bool withdraw(bool loop_alive) noexcept;
};

// ---- go blocks ----

class host;

enum class phase : std::uint8_t {
  pending,   // created while the outside thread held the baton; not scheduled yet
  queued,    // its driver is in the loop's ready queue (by us)
  running,   // inside lua_resume
  parked,    // waiting in req; the channel (or timer) will schedule the driver
  deferred,  // woke while the outside thread held the baton; in host::deferred_
  zombie,    // killed at shutdown with a wake-up in flight; frees itself when run
};

/// A go block: a Lua thread, its driver coroutine and its result channel.
struct lua_task {
  host* h = nullptr;
  lua_State* co = nullptr;
  int ref = LUA_NOREF;  // registry anchor of co
  int nargs = 0;        // values to pass at the next resume (start: the arguments)
  phase ph = phase::pending;
  std::coroutine_handle<> driver;
  conch::chan<value> result{1};
  std::shared_ptr<const any_chan> result_box;  // for the Lua userdata of result
  request req;
  lua_task* prev = nullptr;  // host's list of live tasks
  lua_task* next = nullptr;
  lua_task* qnext = nullptr;  // pending_/deferred_ queue link
};

/// A coroutine the bridge starts and resumes itself (never stolen by another
/// loop): initially suspended, frees its frame when its body ends.
struct driver {
  struct promise_type {
    driver get_return_object() noexcept {
      return {std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() const noexcept { return {}; }
    std::suspend_never final_suspend() const noexcept { return {}; }
    void return_void() const noexcept {}
    void unhandled_exception() const noexcept { std::terminate(); }
    static void* operator new(std::size_t n) { return conch::detail::frame_alloc(n); }
    static void operator delete(void* p, std::size_t n) noexcept { conch::detail::frame_free(p, n); }
  };
  std::coroutine_handle<promise_type> h;
};

/// An intrusive FIFO of tasks (through lua_task::qnext).
struct task_queue {
  lua_task* head = nullptr;
  lua_task* tail = nullptr;
  void push(lua_task* t) noexcept {
    t->qnext = nullptr;
    if (tail != nullptr)
      tail->qnext = t;
    else
      head = t;
    tail = t;
  }
  lua_task* take_all() noexcept {
    lua_task* h = head;
    head = tail = nullptr;
    return h;
  }
};

// ---- the host ----

/// The conch side of one Lua state (see the file comment and lua/README.md).
class host {
 public:
  static constexpr std::uint8_t outside = 0;  // baton values
  static constexpr std::uint8_t on_loop = 1;

  /// Creates the host of `L` and anchors it in L's registry (a userdata whose
  /// __gc shuts it down). Raises on failure (then `owned` leaks: only plain
  /// pointers cross the raising calls). With `owned` the host takes its
  /// runtime (the stock interpreter's case). `on_error` may be null.
  static host* create(lua_State* L, loop* home, runtime* owned,
                      const std::function<void(std::string_view)>* on_error);
  /// The host of L's state, or null.
  static host* find(lua_State* L) noexcept;

  ~host();

  // ---- running Lua ----
  lua_State* main_state() const noexcept { return main_; }
  loop* home() const noexcept { return home_; }
  bool on_home_loop() const noexcept { return conch::detail::current_loop() == home_; }
  /// The go block whose Lua is running now (home loop only), or null.
  lua_task* current() const noexcept { return current_; }
  /// The request for an operation started by the running Lua code.
  request* op_request() noexcept { return current_ != nullptr ? &current_->req : &outside_req_; }
  /// True if Lua code running in go block thread L can yield to its driver.
  bool can_park(lua_State* L) const noexcept {
    return current_ != nullptr && chain_yieldable_ && lua_isyieldable(L);
  }
  /// The resumer for parking the running code (a go block's driver, or the
  /// outside thread's proxy).
  resumer park_resumer() const noexcept {
    // (lead) resumer is trivially constructible now: set every field.
    std::coroutine_handle<> h = current_ != nullptr ? current_->driver : outside_driver_;
    return resumer{home_, h.address(), nullptr};
  }
  /// Our coroutine.resume sets this around a nested resume: false if a park
  /// in the nested coroutine could not be passed up to the driver.
  bool swap_chain_yieldable(bool v) noexcept { return std::exchange(chain_yieldable_, v); }
  bool chain_yieldable() const noexcept { return chain_yieldable_; }

  /// Outside thread, after starting outside_req that parked: hands the baton
  /// to the home loop until the operation completes, then takes it back.
  void wait_outside() noexcept;

  /// Runs fn(arg) on the home loop and returns when it has run (directly if
  /// called there; else through the control queue, the caller waiting). For
  /// calls the sockets layer requires on a runtime thread (listen, bind_udp,
  /// go). fn must not touch Lua.
  void call_on_loop(void (*fn)(void*) noexcept, void* arg) noexcept;

  /// Outside thread: runs the home loop until no go block of this state is
  /// left (conch.run()). Returns at once if there is none.
  void wait_idle() noexcept;

  // ---- go blocks ----
  /// Creates a task for thread `co` (anchored by registry ref `ref`, with its
  /// function and `nargs` arguments on its stack). Null if out of memory.
  lua_task* new_task(lua_State* co, int ref, int nargs) noexcept;
  /// Schedules a new task: at once on the home loop, else when the outside
  /// thread next hands over the baton.
  void start(lua_task* t) noexcept;
  /// Schedules the running task's driver to run again (cooperative yield).
  void reschedule_current() noexcept;
  bool is_go_thread(lua_State* co) const noexcept { return by_thread_.contains(co); }
  /// A user coroutine whose channel park was passed up to its go block is
  /// "parked": only conch's resume may continue it (baton holder).
  bool mark_parked(lua_State* co) noexcept {
    try {
      parked_.insert(co);
      return true;
    } catch (...) {
      return false;
    }
  }
  void unmark_parked(lua_State* co) noexcept { parked_.erase(co); }
  bool is_parked(lua_State* co) const noexcept { return parked_.contains(co); }
  std::size_t live_tasks() const noexcept { return by_thread_.size(); }

  // ---- a spare string buffer (the baton holder's) ----
  /// The largest buffer kept: one per state, so memory stays bounded.
  static constexpr std::size_t kMaxSpare = 64 * 1024;
  /// Keeps the buffer of a string whose bytes were pushed to Lua (a received
  /// chunk), unless a larger one is kept already or it is over kMaxSpare.
  /// The next string send builds in it, so an echo allocates nothing.
  void keep_spare(std::string&& s) noexcept {
    if (s.capacity() > spare_.capacity() && s.capacity() <= kMaxSpare) spare_ = std::move(s);
  }
  /// The kept buffer (empty contents), or an empty string.
  std::string take_spare() noexcept { return std::move(spare_); }

  // ---- timers ----
  /// Arms `t` on the home loop (directly, or through the control queue from
  /// the outside thread). The heap owns t until it fires or is dropped.
  void add_timer(conch::detail::timer_node* t) noexcept;
  /// Closes `core` after `ns` nanoseconds: the channels layer's close timer
  /// (conch/chan/detail/timeout.hpp), armed through add_timer. The timer
  /// holds its own reference on core. False if out of memory (nothing armed).
  bool close_after(chan_core* core, std::int64_t ns) noexcept;

  // ---- the baton, for conch::lua::state ----
  /// Outside thread: take the baton from the home loop (waits between go blocks).
  void acquire() noexcept;
  /// Outside thread: give the baton to the home loop.
  void release() noexcept;
  /// Serialises the calls of conch::lua::state.
  std::mutex& call_mutex() noexcept { return call_mu_; }

  /// Stops every go block and frees the loop-side state. Outside thread,
  /// holding the baton; idempotent. The Lua state stays open.
  void shutdown() noexcept;

  // ---- for the driver coroutines ----
  bool step(lua_task* t) noexcept;  // false: the task is finished and freed
  void outside_woken() noexcept;
  bool run_commands() noexcept;     // false: shut down

 private:
  enum class cmd : std::uint8_t { kick, take, add_timer, call, shutdown };
  struct command {
    cmd kind;
    void* arg;
  };

  host(lua_State* L, loop* home, std::unique_ptr<runtime> owned,
       std::function<void(std::string_view)> on_error);
  static host* make_host(lua_State* L, loop* home, runtime* owned,
                         const std::function<void(std::string_view)>* on_error) noexcept;
  void post(cmd kind, void* arg = nullptr) noexcept;
  void kick() noexcept;
  void end_task(lua_task* t, int status, int nres) noexcept;
  void report_error(lua_task* t) noexcept;
  void deliver_error(const std::string& text) noexcept;
  void free_task(lua_task* t) noexcept;
  void kill_all(bool loop_alive) noexcept;
  void signal_shutdown_done() noexcept;

  lua_State* main_;
  lua_State* aux_ = nullptr;  // a thread for the loop's own protected calls
  loop* home_;
  std::unique_ptr<runtime> owned_rt_;
  std::function<void(std::string_view)> on_error_;

  // Who may run Lua. Changed outside->on_loop by the outside thread (then it
  // posts a kick), on_loop->outside only on the home loop between drivers.
  std::atomic<std::uint8_t> baton_{outside};
  lua_task* current_ = nullptr;  // baton holder (home loop)
  bool chain_yieldable_ = true;

  // Tasks. The list, by_thread_ and pending_ belong to the baton holder;
  // deferred_ to the home loop thread.
  lua_task* tasks_ = nullptr;
  absl::flat_hash_map<lua_State*, lua_task*> by_thread_;
  absl::flat_hash_set<lua_State*> parked_;
  task_queue pending_;
  task_queue deferred_;

  // The outside thread's parked operation and its proxy on the loop.
  request outside_req_;
  std::coroutine_handle<> outside_driver_;
  std::mutex mu_;  // guards the flags below; cv_ signals the outside thread
  std::condition_variable cv_;
  bool outside_done_ = false;
  bool outside_released_ = false;
  bool taken_ = false;
  bool wait_idle_ = false;
  bool call_done_ = false;
  void (*call_fn_)(void*) noexcept = nullptr;  // the outside thread waits in wait_idle (baton holder)
  bool shut_ = false;

  // Commands from the outside thread to the home loop.
  std::mutex cmd_mu_;
  std::vector<command> cmds_;
  bool control_scheduled_ = false;
  std::coroutine_handle<> control_;

  std::string spare_;  // keep_spare/take_spare: touched only by the baton holder

  std::mutex call_mu_;
  bool dead_ = false;     // shutdown started
  int zombies_ = 0;
};

}  // namespace conch::lua::detail
