// conch/core/detail/scheduler.hpp
// The hooks higher layers use to reach the current loop (internal; not for users).
//
// channels/, sockets/ and lua/ park and wake coroutines through these few
// functions; the loop itself (src/loop.hpp) stays private to conch::core.
#pragma once

#include <coroutine>
#include <exception>

#include "absl/functional/any_invocable.h"
#include "conch/core/placement.hpp"

namespace conch::detail {

class loop;
class runtime_impl;

// The loop of the current thread; null on threads that are not loop threads.
inline thread_local loop* tl_loop = nullptr;

/// The current thread's loop, or null off runtime threads.
inline loop* current_loop() noexcept { return tl_loop; }

/// Makes `h` runnable on `home` (any thread may call this). On home's own
/// thread it goes on the local ready queue; otherwise on home's remote queue,
/// waking the loop if it sleeps.
void schedule(loop* home, std::coroutine_handle<> h) noexcept;

/// Reports an exception that escaped a go block to the current runtime's
/// error handler (stderr if there is none).
void report_exception(std::exception_ptr e) noexcept;
/// Same, for the runtime that owns loop `l` (from a blocking-pool thread).
void report_exception_from(loop* l, std::exception_ptr e) noexcept;

/// The loop of `from`'s runtime that `where` names (placement::here() is
/// `from`). Any thread of that runtime's loops.
loop* pick_loop(loop* from, placement where) noexcept;
/// Counts something long-lived that runs on `l` but is not a go block (a Lua
/// state) in l's load for placement::least_busy(), as one live go block:
/// +1 when it settles on `l`, -1 when it leaves. Any thread.
void add_resident(loop* l, int delta) noexcept;

/// Runs `job` on the current runtime's blocking pool. Off a runtime, aborts.
/// If the runtime is shutting down, `job` is destroyed without running.
void submit_blocking(absl::AnyInvocable<void() &&> job) noexcept;

}  // namespace conch::detail
