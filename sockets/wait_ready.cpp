// sockets/wait_ready.cpp
// wait_ready(): poll(2)-style readiness of caller-owned descriptors, awaited on the loop's io_uring ring.
//
// A wait first asks poll(2) with a zero timeout (one syscall; enough when
// something is ready). Otherwise it arms one `ready_wait`: a single-shot
// IORING_OP_POLL_ADD per descriptor plus an IORING_OP_TIMEOUT when the wait
// is bounded, all with the same user_data (the ready_wait). The first
// completion resumes the waiter, which cancels the rest with one
// IORING_ASYNC_CANCEL_ALL and asks poll(2) again for the exact answer (a poll
// completion may be stale by then); nothing ready and time left: arm again.
//
// Invariants:
//  - A ready_wait lives until both its waiter has let go (`owner_done`) and
//    every SQE it submitted has completed (`outstanding` == 0): the kernel
//    may post completions for it after the waiter resumed.
//  - Every ready_wait is on its loop's `ready_registry` list while it lives;
//    the registry is a loop extension, destroyed after the ring is closed, so
//    waits still in flight at runtime teardown (their waiter's frame was
//    destroyed, completions never came) are freed there and nowhere else.
//  - Everything here runs on the loop thread that armed the wait (the ring is
//    single-issuer): no locks.
// Lock order: none taken.
#include "conch/net/wait_ready.hpp"

#include <cerrno>
#include <coroutine>
#include <memory>

#include "conch/core/status.hpp"
#include "sockets/address_util.hpp"
#include "sockets/reactor.hpp"

namespace conch::net {

namespace detail {
namespace {

struct ready_wait;

// The loop's waits in flight (intrusive list), freed with the loop.
struct ready_registry : conch::detail::loop_extension {
  ready_wait* head = nullptr;
  ~ready_registry() override;
  static ready_registry* of(conch::detail::loop* l);
};

struct ready_wait : conch::detail::io_op {
  ready_registry* reg = nullptr;
  ready_wait* prev = nullptr;
  ready_wait* next = nullptr;
  std::coroutine_handle<> waiter;  // set while the waiter is suspended
  int outstanding = 0;             // SQEs submitted whose completion has not come
  bool fired = false;              // a completion has come
  bool owner_done = false;         // the waiter has let go
  __kernel_timespec ts{};          // the TIMEOUT's duration (read by the kernel)

  void link(ready_registry* r) noexcept {
    reg = r;
    next = r->head;
    if (next != nullptr) next->prev = this;
    r->head = this;
  }
  void unlink() noexcept {
    if (prev != nullptr) prev->next = next;
    else reg->head = next;
    if (next != nullptr) next->prev = prev;
  }
  // Frees this wait once nothing refers to it any more.
  void maybe_free() noexcept {
    if (owner_done && outstanding == 0) {
      unlink();
      delete this;
    }
  }
};

constexpr char kRegistryKey = 0;

ready_registry::~ready_registry() {
  // The ring is closed: no completion will come for these.
  while (head != nullptr) {
    ready_wait* w = head;
    head = w->next;
    delete w;
  }
}

ready_registry* ready_registry::of(conch::detail::loop* l) {
  if (auto* e = conch::detail::find_extension(l, &kRegistryKey)) return static_cast<ready_registry*>(e);
  return static_cast<ready_registry*>(
      conch::detail::add_extension(l, &kRegistryKey, std::make_unique<ready_registry>()));
}

// One completion of any SQE of the wait.
void on_complete(conch::detail::io_op* op, int, std::uint32_t) noexcept {
  auto* w = static_cast<ready_wait*>(op);
  --w->outstanding;
  if (!w->fired) {
    w->fired = true;
    if (std::coroutine_handle<> h = std::exchange(w->waiter, {})) {
      // The waiter cancels the rest and may free w: do not touch w after this.
      conch::detail::resume_chain(h);
      return;
    }
  }
  w->maybe_free();
}

// Submits the SQEs of a new wait on l for fds (and a timeout when ns >= 0).
ready_wait* arm(conch::detail::loop* l, std::span<pollfd> fds, std::int64_t ns) {
  auto* w = new ready_wait;
  w->complete = &on_complete;
  w->link(ready_registry::of(l));
  for (const pollfd& p : fds) {
    if (p.fd < 0) continue;  // ignored, as poll(2) does
    io_uring_sqe* s = conch::detail::get_sqe(l);
    io_uring_prep_poll_add(s, p.fd, static_cast<unsigned>(static_cast<unsigned short>(p.events)));
    io_uring_sqe_set_data(s, w);
    ++w->outstanding;
  }
  if (ns >= 0) {
    w->ts.tv_sec = ns / 1'000'000'000;
    w->ts.tv_nsec = ns % 1'000'000'000;
    io_uring_sqe* s = conch::detail::get_sqe(l);
    io_uring_prep_timeout(s, &w->ts, 0, 0);
    io_uring_sqe_set_data(s, w);
    ++w->outstanding;
  }
  return w;
}

// The waiter lets go of w: cancels what is still armed (unless the loop is
// being torn down, `cancel` false), then frees w if nothing is in flight.
void release(conch::detail::loop* l, ready_wait* w, bool cancel) noexcept {
  w->owner_done = true;
  w->waiter = {};
  if (cancel && w->outstanding > 0) {
    io_uring_sqe* s = conch::detail::get_sqe(l);
    io_uring_prep_cancel64(s, reinterpret_cast<std::uintptr_t>(w), IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data(s, nullptr);  // its own completion is ignored
  }
  w->maybe_free();
}

// Suspends until the first completion of w (never ready at once: completions
// are dispatched by the loop, after this frame suspends).
struct first_completion {
  ready_wait* w;
  bool await_ready() const noexcept { return w->fired; }
  void await_suspend(std::coroutine_handle<> h) noexcept { w->waiter = h; }
  void await_resume() const noexcept {}
};

// Lets go of a wait when the frame is destroyed while suspended (teardown).
struct wait_guard {
  conch::detail::loop* l;
  ready_wait* w = nullptr;
  ~wait_guard() {
    if (w != nullptr) release(l, w, false);
  }
};

absl::StatusOr<int> poll_now(std::span<pollfd> fds) {
  int n = ::poll(fds.data(), static_cast<nfds_t>(fds.size()), 0);
  if (n < 0) return errno_status(errno, "poll");
  return n;
}

}  // namespace
}  // namespace detail

task<absl::StatusOr<int>> wait_ready(std::span<pollfd> fds, std::chrono::nanoseconds timeout) {
  absl::StatusOr<int> n = detail::poll_now(fds);
  if (!n.ok() || *n > 0 || timeout.count() == 0) co_return n;
  CONCH_CO_ASSIGN_OR_RETURN(conch::detail::loop * l, detail::calling_loop("wait_ready"));
  const bool bounded = timeout.count() > 0;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    std::int64_t left = -1;  // no limit
    if (bounded) {
      left = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline - std::chrono::steady_clock::now())
                 .count();
      if (left <= 0) co_return 0;
    }
    detail::wait_guard g{l};
    g.w = detail::arm(l, fds, left);
    detail::first_completion fired{g.w};  // named: no braced temporary inside co_await (GCC 12)
    co_await fired;
    detail::release(l, std::exchange(g.w, nullptr), true);
    n = detail::poll_now(fds);
    // A poll completion can be stale (the data was taken meanwhile): then wait again.
    if (!n.ok() || *n > 0) co_return n;
  }
}

}  // namespace conch::net
