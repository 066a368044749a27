// src/io.hpp
// The door from conch::core to the layers that drive a loop's io_uring ring (sockets/).
//
// This is all such a layer sees of a loop: its ring and SQEs, the io_op
// completion record, per-loop extensions, starting a frame pinned to a loop,
// and the loops of the same runtime. The loop itself (queues, stealing,
// timers, sleeping) stays in src/loop.hpp, which only src/ includes
// (tests/support/check_layering.sh enforces both).
//
// Threads: the ring is SINGLE_ISSUER, so everything here runs on the thread
// of the loop it names, except where a declaration says "any thread".
#pragma once

#include <liburing.h>

#include <cstdint>
#include <memory>
#include <span>

#include "conch/core/runtime.hpp"

namespace conch::detail {

/// A submitted io_uring operation: user_data points at it, and `complete`
/// runs on the loop thread for each of its completions. An SQE whose
/// completion needs no handling (a cancel, a linked timeout) has user_data 0:
/// the loop skips those completions.
struct io_op {
  void (*complete)(io_op* self, int res, std::uint32_t flags) noexcept = nullptr;
};

// ---- the ring ----

/// `l`'s ring. The address is fixed for the loop's lifetime, so a caller may
/// keep it (the sockets reactor does: its per-operation path then never
/// calls in here). The loop submits queued SQEs at each turn.
io_uring* ring_of(loop* l) noexcept;
/// An SQE on `l`'s ring, submitting queued ones first if the submission
/// queue is full.
io_uring_sqe* get_sqe(loop* l) noexcept;

// ---- per-loop state of higher layers ----

/// Base of an object a higher layer hangs on a loop (the sockets reactor:
/// buffer rings, registry of live sockets). The loop owns it and destroys it
/// in ~loop, after every frame is gone and after the ring is closed, so
/// memory the kernel may still reference outlives the ring.
struct loop_extension {
  virtual ~loop_extension() = default;
  /// Whether a stopping loop should keep running turns for this extension:
  /// the sockets reactor answers true while a socket has output queued or a
  /// send in flight. Asked on the loop thread at each turn while the loop
  /// lingers (runtime_options::linger bounds how long); default: never.
  virtual bool wants_linger() noexcept { return false; }
  /// The loop has run out of work and is about to sleep (called once per
  /// busy-to-idle change, on the loop thread): a moment to give memory back.
  virtual void idle() noexcept {}
};
/// The extension registered on `l` under `key` (any unique address), or null.
loop_extension* find_extension(loop* l, const void* key) noexcept;
/// Registers `e` on `l` under `key`; the loop owns it from now on.
loop_extension* add_extension(loop* l, const void* key, std::unique_ptr<loop_extension> e);

// ---- frames and loops ----

/// Starts the root frame `r` on loop `l`: it runs on that thread and is never
/// stolen by another loop (a frame that drives `l`'s ring must stay there).
/// Any thread; the runtime destroys it if it is still parked at teardown.
void start_on(loop* l, root r) noexcept;
/// Every loop of `l`'s runtime, in index order (`l` among them). Any thread;
/// valid while the runtime lives.
std::span<loop* const> loops_of(loop* l) noexcept;

}  // namespace conch::detail
