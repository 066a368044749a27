// conch/core/detail/timer.hpp
// Timer nodes in a loop's heap, and the awaiter behind conch::sleep (internal).
#pragma once

#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>

#include "conch/core/detail/scheduler.hpp"
#include "conch/core/task.hpp"

namespace conch::detail {

/// An entry in a loop's timer heap. `fire` runs on the loop thread when the
/// deadline passes; `drop` (if set) is called instead when the runtime is
/// destroyed first, for nodes the heap owns.
struct timer_node {
  std::int64_t deadline_ns = 0;  // steady_clock, nanoseconds since epoch
  std::uint64_t seq = 0;         // FIFO among equal deadlines
  std::size_t heap_index = static_cast<std::size_t>(-1);
  void (*fire)(timer_node*) noexcept = nullptr;
  void (*drop)(timer_node*) noexcept = nullptr;
  bool armed() const noexcept { return heap_index != static_cast<std::size_t>(-1); }
};

/// Adds `t` to loop `l`'s heap. `l`'s thread only.
void timer_add(loop* l, timer_node* t) noexcept;
/// Removes `t` if still armed. `l`'s thread only (or a stopped runtime).
void timer_cancel(loop* l, timer_node* t) noexcept;
/// steady_clock now, in nanoseconds since its epoch.
std::int64_t now_ns() noexcept;

/// co_await sleep_awaiter(d): parks on the current loop's heap for `d`.
struct sleep_awaiter : timer_node {
  loop* home = nullptr;
  std::coroutine_handle<> h;
  explicit sleep_awaiter(std::chrono::nanoseconds d) noexcept;
  ~sleep_awaiter();
  sleep_awaiter(const sleep_awaiter&) = delete;
  sleep_awaiter& operator=(const sleep_awaiter&) = delete;
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> awaiting) noexcept;
  void await_resume() const noexcept {}
};
inline task<void> sleep_task(std::chrono::nanoseconds d) { co_await sleep_awaiter(d); }

}  // namespace conch::detail
