// conch/core/detail/task_promise.hpp
// task<T>'s promise types, the frame cache and the resume trampoline (internal; not for users).
#pragma once

#include <coroutine>
#include <cstddef>
#include <exception>
#include <type_traits>
#include <utility>
#include <variant>

#include "conch/core/check.hpp"

namespace conch {

template <class T>
class task;

namespace detail {

// The coroutine to run next on this thread, set by transfer_to().
inline thread_local std::coroutine_handle<> tl_next_handle{};

/// Arranges for `h` to run once the calling coroutine has finished
/// suspending; returns the handle await_suspend should return.
inline std::coroutine_handle<> transfer_to(std::coroutine_handle<> h) noexcept {
  tl_next_handle = h;
  return std::noop_coroutine();
}

/// Resumes `h`, then every coroutine it transfers control to, until the chain
/// parks. Every place conch resumes a coroutine goes through here.
inline void resume_chain(std::coroutine_handle<> h) noexcept {
  while (h) {
    h.resume();
    h = std::exchange(tl_next_handle, std::coroutine_handle<>{});
  }
}

// Frame allocation for task and root frames: a per-thread cache of freed
// blocks per size class, so steady-state spawning and calling do not hit
// malloc. Disabled under AddressSanitizer so it keeps catching frame misuse.
void* frame_alloc(std::size_t n);
void frame_free(void* p, std::size_t n) noexcept;

struct task_promise_base {
  std::coroutine_handle<> continuation;

  static void* operator new(std::size_t n) { return frame_alloc(n); }
  static void operator delete(void* p, std::size_t n) noexcept { frame_free(p, n); }

  std::suspend_always initial_suspend() const noexcept { return {}; }

  struct final_awaiter {
    bool await_ready() const noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
      std::coroutine_handle<> c = h.promise().continuation;
      return c ? transfer_to(c) : std::noop_coroutine();
    }
    void await_resume() const noexcept {}
  };
  final_awaiter final_suspend() const noexcept { return {}; }
};

template <class T>
struct task_promise final : task_promise_base {
  std::variant<std::monostate, T, std::exception_ptr> result;

  task<T> get_return_object() noexcept;
  template <class U = T>
    requires std::is_convertible_v<U&&, T>
  void return_value(U&& v) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
    result.template emplace<1>(std::forward<U>(v));
  }
  void unhandled_exception() noexcept { result.template emplace<2>(std::current_exception()); }

  T take() {
    if (result.index() == 2) std::rethrow_exception(std::get<2>(result));
    CONCH_CHECK(result.index() == 1, "task finished without a value");
    return std::move(std::get<1>(result));
  }
};

template <>
struct task_promise<void> final : task_promise_base {
  std::exception_ptr error;

  task<void> get_return_object() noexcept;
  void return_void() noexcept {}
  void unhandled_exception() noexcept { error = std::current_exception(); }
  void take() {
    if (error) std::rethrow_exception(error);
  }
};

}  // namespace detail
}  // namespace conch
