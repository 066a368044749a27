// conch/core/task.hpp
// task<T>: a lazy, move-only coroutine whose result is obtained by co_await.
//
//   conch::task<int> answer() { co_return 42; }
//   conch::task<> caller() { int x = co_await answer(); ... }
//
// A task does nothing until it is awaited (or handed to go/block_on). Awaiting
// it runs it to completion and yields its value, or rethrows its exception.
//
// Control passes between a task and its awaiter through a per-thread
// trampoline (detail::resume_chain) rather than a direct symmetric-transfer
// tail call: GCC 12 at -O0 does not turn symmetric transfer into a tail call,
// so a loop of a million synchronously completing awaits overflowed the stack
// (LANDSCAPE.md §3.5). The trampoline keeps the stack flat for any compiler
// and any optimisation level, for both long loops and million-deep chains.
#pragma once

#include <coroutine>
#include <cstddef>
#include <exception>
#include <type_traits>
#include <utility>
#include <variant>

#include "conch/core/check.hpp"
#include "conch/core/detail/task_promise.hpp"

namespace conch {

/// The value type of a task<void> seen through a channel (core.async's nil).
using unit = std::monostate;

template <class T = void>
class task;

/// A lazily started coroutine producing a T (or nothing, for task<void>).
///
/// Move-only. `co_await t` (on an rvalue or lvalue) starts the task, suspends
/// the awaiter until it finishes, and returns its value or rethrows its
/// exception. The awaiter resumes on the thread where the task finished,
/// which is the thread it runs on: tasks never hop threads by themselves.
/// Destroying a task that has not finished destroys its frame (and the frames
/// of everything it is awaiting).
template <class T>
class [[nodiscard]] task {
 public:
  using promise_type = detail::task_promise<T>;
  using value_type = T;

  task() noexcept = default;
  explicit task(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
  task(task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  task& operator=(task&& o) noexcept {
    if (this != &o) {
      if (h_) h_.destroy();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  task(const task&) = delete;
  task& operator=(const task&) = delete;
  ~task() {
    if (h_) h_.destroy();
  }

  /// True if this task holds a coroutine (not moved-from or default).
  bool valid() const noexcept { return static_cast<bool>(h_); }

  struct awaiter {
    std::coroutine_handle<promise_type> h;
    bool await_ready() const noexcept { return false; }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiting) noexcept {
      h.promise().continuation = awaiting;
      return detail::transfer_to(h);
    }
    T await_resume() { return h.promise().take(); }
  };

  awaiter operator co_await() & noexcept {
    CONCH_CHECK(h_, "co_await on an empty task");
    return awaiter{h_};
  }
  awaiter operator co_await() && noexcept {
    CONCH_CHECK(h_, "co_await on an empty task");
    return awaiter{h_};
  }

  /// Gives up ownership of the coroutine frame (for the runtime's wrappers).
  std::coroutine_handle<promise_type> release() noexcept { return std::exchange(h_, {}); }

 private:
  std::coroutine_handle<promise_type> h_;
};

namespace detail {
template <class T>
task<T> task_promise<T>::get_return_object() noexcept {
  return task<T>{std::coroutine_handle<task_promise<T>>::from_promise(*this)};
}
inline task<void> task_promise<void>::get_return_object() noexcept {
  return task<void>{std::coroutine_handle<task_promise<void>>::from_promise(*this)};
}

template <class>
struct is_task : std::false_type {};
template <class T>
struct is_task<task<T>> : std::true_type {};
}  // namespace detail

}  // namespace conch
