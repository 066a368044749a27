// src/loop.cpp
// The event loop: its turn, the ring and completion dispatch, the remote queue
// with eventfd wakeups, sleeping; the src/io.hpp door. Go blocks (spawn queue,
// stealing, root frames) are in spawn.cpp, the timer heap in timers.cpp.
//
// Invariants: see loop.hpp. The one subtle protocol is sleeping:
//   loop:   lock remote_mu_; if remote_ empty { sleeping_ = true }; unlock;
//           wait on the ring (the eventfd read is always armed);
//   pusher: lock remote_mu_; push; if sleeping_ { sleeping_ = false; wake }.
// Both sides decide under remote_mu_, so a push either lands before the loop
// looks (and it does not sleep) or sees sleeping_ (and writes the eventfd).
// Lock order: remote_mu_ is a leaf (a channel lock may be held around it).
#include "src/loop.hpp"

#include <sched.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace conch::detail {

namespace {
constexpr unsigned kRingEntries = 256;
// CQ 16 x the SQ (4096 x 16 B = 64 KiB): the kernel ends a multishot receive
// whose CQE finds the CQ full; bench/NOTES.md "completion queue size".
constexpr unsigned kCqEntries = 4096;
// An idle loop watches for work this long before it sleeps (Go's spinning
// Ms): a wake-up costs far more than that, and work often arrives within
// microseconds, for one-loop runtimes too; bench/NOTES.md "idle spin".
constexpr std::int64_t kSpinNs = 50'000;
constexpr std::size_t kReadyBudget = 256;  // resumptions per turn
// A sleeping loop looks this often for a go block stranded behind a busy
// owner, while another loop of its runtime is awake: push_spawn wakes no one
// for a lone go block (its owner takes it on its next turn, which keeps chatty
// go blocks on one CPU), so an owner that never yields would otherwise keep it
// from ever starting. No ticks when every loop sleeps.
constexpr std::int64_t kStrandedCheckNs = 1'000'000;
// A thief takes a loop's unstarted go blocks only once it has seen them left
// waiting this long (Go's thieves wait ~3 us before taking a P's runnext): a
// spawner that starts a chatty pair and parks gets both onto its own loop.
// Longer than a busy turn (kReadyBudget resumptions of ~1 us): at 20 us,
// thieves took pipeline go blocks from a loop mid-turn; bench/NOTES.md
// "steal age".
constexpr std::int64_t kStealAfterNs = 200'000;
// Completions per turn: a smaller batch re-enters the kernel more often per
// message; bench/NOTES.md "completion budget".
constexpr unsigned kCqeBudget = 1024;
// A lingering loop (stopping, sockets still writing) looks at its remote
// queue at least this often.
constexpr std::int64_t kLingerTickNs = 1'000'000;

// Valgrind runs one thread at a time and treats io_uring_enter as a call that
// does not block, so a loop waiting in it would starve every other thread
// (liburing#657). Under valgrind (its preload library is in LD_PRELOAD) the
// loops wait at most 1 ms at a time and then sched_yield (which valgrind
// does treat as a yield), so callgrind and memcheck work, also when another
// thread (a Lua state's outside thread) must run for the loop to progress.
bool under_valgrind() noexcept {
  static const bool yes = [] {
    const char* p = std::getenv("LD_PRELOAD");
    return p != nullptr && (std::strstr(p, "vgpreload") != nullptr || std::strstr(p, "valgrind") != nullptr);
  }();
  return yes;
}
}  // namespace

// ---- handle_queue ----

handle_queue::handle_queue() : buf_(new void*[256]), mask_(255) {}
handle_queue::~handle_queue() { delete[] buf_; }

void handle_queue::grow() {
  std::size_t cap = mask_ + 1;
  void** nb = new void*[cap * 2];
  for (std::size_t i = 0; i < cap; ++i) nb[i] = buf_[(head_ + i) & mask_];
  delete[] buf_;
  buf_ = nb;
  mask_ = cap * 2 - 1;
  tail_ = cap;
  head_ = 0;
}

// ---- loop ----

loop::loop(runtime_impl* rt, unsigned index)
    : rt_(rt), index_(index) {
  live_head_.prev = live_head_.next = &live_head_;
  remote_.reserve(256);
  remote_spare_.reserve(256);
  timers_.reserve(64);
}

loop::~loop() {
  if (ring_ok_) io_uring_queue_exit(&ring_);
  // After the ring: an extension may own memory in-flight operations point at.
  while (!exts_.empty()) exts_.pop_back();
  if (event_fd_ >= 0) close(event_fd_);
}

void loop::thread_main(std::atomic<int>* started, absl::Status* status) {
  tl_loop = this;
  event_fd_ = eventfd(0, EFD_CLOEXEC);
  int rc = event_fd_ < 0 ? -errno : 0;
  if (rc == 0) {
    // Single issuer: only this thread submits. Deferred task running: the
    // kernel does the work of completions (a receive's copy, say) only when
    // this thread asks for events, at most a batch at a time, after
    // submitting what is queued; so a busy loop alternates sends and
    // receives the way a readiness loop does, and a sleeping loop is woken
    // once per batch rather than per packet. The TASKRUN flag tells a busy
    // loop when there is work waiting. Older kernels lack some flags; fall
    // back step by step (cooperative task running, then none). A large CQ
    // (kCqEntries) in every case.
    const unsigned flag_sets[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG, 0u};
    for (unsigned flags : flag_sets) {
      io_uring_params params{};
      params.flags = flags | IORING_SETUP_CQSIZE;
      params.cq_entries = kCqEntries;
      rc = io_uring_queue_init_params(kRingEntries, &ring_, &params);
      if (rc != -EINVAL) break;
    }
  }
  if (rc < 0) {
    *status = absl::UnavailableError(
        std::string("conch: cannot set up the event loop (io_uring_queue_init/eventfd: ") +
        std::strerror(-rc) +
        "); io_uring may be disabled (sysctl kernel.io_uring_disabled, seccomp)");
    started->fetch_add(1, std::memory_order_release);
    started->notify_all();
    return;
  }
  ring_ok_ = true;
  event_op_.complete = [](io_op* op, int, std::uint32_t) noexcept {
    // The eventfd read completed: someone woke us. Re-arm it.
    loop* self = tl_loop;
    (void)op;
    self->arm_eventfd();
  };
  arm_eventfd();
  started->fetch_add(1, std::memory_order_release);
  started->notify_all();
  run();
  tl_loop = nullptr;
}

void loop::arm_eventfd() noexcept {
  io_uring_sqe* sqe = get_sqe();
  io_uring_prep_read(sqe, event_fd_, &event_buf_, sizeof event_buf_, 0);
  io_uring_sqe_set_data(sqe, &event_op_);
}

io_uring_sqe* loop::get_sqe() noexcept {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  while (sqe == nullptr) {
    io_uring_submit(&ring_);
    sqe = io_uring_get_sqe(&ring_);
  }
  return sqe;
}

void loop::request_stop() noexcept {
  // release: what this thread queued on remote_ before is seen by a loop
  // that sees stop_ (keep_lingering).
  stop_.store(true, std::memory_order_release);
  wake_if_sleeping();
  // The loop might be between its last check and sleeping; a plain eventfd
  // write makes that wait return too.
  if (event_fd_ >= 0) signal_eventfd();
}

void loop::run() {
  woke why = woke::work;  // how the last sleep ended, until work turns up
  for (;;) {
    // Run what is ready, including what those coroutines make ready (a
    // received frame's consumer, then the writer it hands a reply to), up
    // to a budget: then I/O and timers get their look.
    for (std::size_t n = kReadyBudget; n > 0 && !ready_.empty(); --n) resume_chain(ready_.pop());
    drain_remote();
    if (spawn_count_.load(std::memory_order_relaxed) != 0) take_spawns();
    reap_completions();
    if (!timers_.empty()) fire_timers(now_ns());
    if (stop_.load(std::memory_order_acquire) && !keep_lingering()) return;
    if (!ready_.empty() || io_uring_cq_ready(&ring_) != 0) {
      why = woke::work;
      continue;
    }
    if (linger_until_ > 0) {  // stopping, sockets still writing: no stealing, no sleep
      linger_wait();
      continue;
    }
    // Nothing local: take unstarted go blocks from a busier loop. Nudged
    // awake for a lone one, leave it to its owner until the next tick.
    const std::size_t least = why == woke::nudge ? 2 : 1;
    bool stole = false, young = false;
    const std::size_t n = rt_->loops.size();
    for (std::size_t i = 1; i < n && !stole; ++i) {
      loop* victim = rt_->loops[(index_ + i) % n];
      if (victim->spawn_count_.load(std::memory_order_relaxed) < least) continue;
      if (left_waiting(*victim)) {
        std::uint32_t epoch = 0;
        stole = victim->steal_into(*this, &epoch);
        // Our own steal bumped the victim's epoch; it says nothing about its
        // owner, so the queue keeps its age: the rest of a fan-out is taken
        // on the next rounds, not one batch per kStealAfterNs.
        if (stole) seen_[victim->index_].epoch = epoch;
      } else {
        young = true;
      }
    }
    if (stole) {
      why = woke::work;
      continue;
    }
    if (young) {  // watch them until they are old enough or their owner takes them
      __builtin_ia32_pause();
      continue;
    }
    // After a tick or a nudge that found nothing, sleep again at once:
    // spinning 50 us per 1 ms tick would keep an idle CPU 5% busy.
    if (why == woke::work && spin_for_work()) continue;
    if (why == woke::work)  // busy until now: let the extensions tidy up first
      for (const auto& e : exts_) e.second->idle();
    why = sleep_until_work();
  }
}

// Loop thread, once stop_ is set: whether to run another turn so the
// sockets can write what is queued (runtime_options::linger). The first look
// starts the clock and grants a turn while anything is ready or queued
// remotely (a writer handed a frame just before has not taken it yet); later
// looks ask the extensions. A runtime without extensions stops at once, as before.
bool loop::keep_lingering() noexcept {
  if (linger_until_ < 0 || exts_.empty()) return false;
  const std::int64_t now = now_ns();
  if (linger_until_ == 0) {
    const std::int64_t ms = rt_->opts.linger.count();
    if (ms <= 0) {
      linger_until_ = -1;  // linger 0: drop at once
      return false;
    }
    linger_until_ = now + ms * 1'000'000;
    if (!ready_.empty()) return true;
    // A writer woken from another thread just before the stop (a Lua
    // script's last send, then lua_close) is still in remote_. stop_ was
    // read with acquire, so a push made before request_stop is seen here.
    std::lock_guard lk(remote_mu_);
    if (!remote_.empty()) return true;
  }
  if (now >= linger_until_) {
    linger_until_ = -1;  // out of time: the normal teardown drops the rest
    return false;
  }
  for (const auto& e : exts_)
    if (e.second->wants_linger()) {
      last_turn_ = false;
      return true;
    }
  // Nothing unsent; but a go block may have handed a writer a frame this
  // turn (the writer, still in ready_, has not taken it): one turn more.
  if (!ready_.empty() && !last_turn_) {
    last_turn_ = true;
    return true;
  }
  linger_until_ = -1;
  return false;
}

// Waits for a completion (a send finishing) up to the linger deadline, the
// next timer, or kLingerTickNs: a remote wake-up does not write the eventfd
// of a loop that is not sleeping_, so the queue is looked at every tick.
void loop::linger_wait() noexcept {
  const std::int64_t now = now_ns();
  std::int64_t wait = std::min(linger_until_ - now, kLingerTickNs);
  if (!timers_.empty()) wait = std::min(wait, timers_[0]->deadline_ns - now);
  if (wait <= 0) return;
  __kernel_timespec ts{wait / 1'000'000'000, wait % 1'000'000'000};
  io_uring_cqe* cqe = nullptr;
  io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
}

// Loop thread. The victim's spawn_epoch_ changes whenever its owner takes
// or runs its queue or a thief steals from it; the same epoch seen for kStealAfterNs
// means its owner has not taken what it queued in that time.
bool loop::left_waiting(loop& victim) noexcept {
  if (seen_.size() != rt_->loops.size()) seen_.assign(rt_->loops.size(), seen_spawns{});
  seen_spawns& s = seen_[victim.index_];
  const std::uint32_t epoch = victim.spawn_epoch_.load(std::memory_order_relaxed);
  const std::int64_t now = now_ns();
  if (!s.valid || s.epoch != epoch) {
    s = seen_spawns{epoch, now, true};
    return false;
  }
  return now - s.since >= kStealAfterNs;
}

bool loop::spin_for_work() noexcept {
  if (under_valgrind()) return false;
  const std::int64_t until = now_ns() + kSpinNs;
  for (unsigned i = 0;; ++i) {
    // relaxed: hints; whatever they point at is taken under its own lock.
    if (remote_pending_.load(std::memory_order_relaxed)) return true;
    for (loop* other : rt_->loops)
      if (other->spawn_count_.load(std::memory_order_relaxed) != 0) return true;
    if (io_ready() || stop_.load(std::memory_order_relaxed)) return true;
    if ((i & 63) == 63) {
      std::int64_t now = now_ns();
      if (now >= until) return false;
      if (!timers_.empty() && timers_[0]->deadline_ns <= now) return true;
    }
    __builtin_ia32_pause();
  }
}

void loop::drain_remote() noexcept {
  // relaxed: a hint only; a missed set is caught under remote_mu_ before sleeping.
  if (!remote_pending_.load(std::memory_order_relaxed)) return;
  {
    std::lock_guard lk(remote_mu_);
    remote_.swap(remote_spare_);
    remote_pending_.store(false, std::memory_order_relaxed);
  }
  for (void* a : remote_spare_) ready_.push(std::coroutine_handle<>::from_address(a));
  remote_spare_.clear();
}

void loop::push_remote(std::coroutine_handle<> h) noexcept {
  // Everything, the eventfd write included, happens under remote_mu_: the
  // loop cannot drain remote_ (and so resume h, let its runtime finish and be
  // destroyed) until we let go of the mutex, after which we touch nothing.
  std::lock_guard lk(remote_mu_);
  remote_.push_back(h.address());
  remote_pending_.store(true, std::memory_order_relaxed);
  if (sleeping_) wake_locked();
}

void loop::signal_eventfd() noexcept {
  std::uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(event_fd_, &one, sizeof one);
}

// Both take remote_mu_ (held for the write too: see push_remote).
bool loop::wake_if_sleeping() noexcept {
  std::lock_guard lk(remote_mu_);
  if (!sleeping_) return false;
  wake_locked();
  return true;
}

bool loop::wake_if_deep() noexcept {
  std::lock_guard lk(remote_mu_);
  if (!sleeping_ || !deep_) return false;
  wake_locked();
  nudged_ = true;
  return true;
}

// Caller holds remote_mu_ and saw sleeping_.
void loop::wake_locked() noexcept {
  sleeping_ = false;
  rt_->sleepers.fetch_sub(1, std::memory_order_relaxed);
  if (deep_) {
    deep_ = false;
    rt_->deep_sleepers.fetch_sub(1, std::memory_order_relaxed);
  }
  signal_eventfd();
}

// Sleeps until a completion, a timer, a wake-up or (while another loop is
// awake) the stranded-spawn tick. Takes and releases remote_mu_, and when
// sleeping deep the other loops' spawn_mu_, one at a time.
loop::woke loop::sleep_until_work() noexcept {
  bool deep;
  {
    std::lock_guard lk(remote_mu_);
    if (!remote_.empty() || stop_.load(std::memory_order_relaxed)) return woke::work;
    sleeping_ = true;
    const int asleep = rt_->sleepers.fetch_add(1, std::memory_order_relaxed) + 1;
    // Another loop awake may queue a go block and then never yield; while
    // one is, look every tick. A loop that wakes later nudges us instead.
    deep = asleep == static_cast<int>(rt_->loops.size());
    deep_ = deep;
    if (deep) rt_->deep_sleepers.fetch_add(1, std::memory_order_relaxed);
  }
  // A go block queued elsewhere just before we registered as a sleeper did
  // not wake anyone; look once more before waiting. Sleeping deep, a lone
  // one counts too, read under its spawn_mu_ (see loop.hpp).
  bool found = spawn_count_.load(std::memory_order_relaxed) != 0;
  for (loop* other : rt_->loops) {
    if (other == this || found) continue;
    if (deep) {
      std::lock_guard lk(other->spawn_mu_);
      found = other->spawns_.size() != 0;
    } else {
      found = other->spawn_count_.load(std::memory_order_relaxed) > 1;
    }
  }
  bool ticked = false;
  if (!found) {
    if (timers_.empty() && deep && !under_valgrind()) {
      io_uring_submit_and_wait(&ring_, 1);
    } else {
      constexpr std::int64_t kForever = INT64_MAX;
      const std::int64_t until_timer =
          timers_.empty() ? kForever : std::max<std::int64_t>(0, timers_[0]->deadline_ns - now_ns());
      std::int64_t wait = until_timer;
      if (!deep) wait = std::min(wait, kStrandedCheckNs);
      if (under_valgrind()) wait = std::min<std::int64_t>(wait, 1'000'000);
      __kernel_timespec ts{wait / 1'000'000'000, wait % 1'000'000'000};
      io_uring_cqe* cqe = nullptr;
      const int rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
      ticked = rc == -ETIME && !deep && wait < until_timer;
      if (under_valgrind()) sched_yield();  // valgrind held its lock through the wait: let the others run
    }
  }
  std::lock_guard lk(remote_mu_);
  if (sleeping_) {
    sleeping_ = false;
    rt_->sleepers.fetch_sub(1, std::memory_order_relaxed);
    if (deep_) {
      deep_ = false;
      rt_->deep_sleepers.fetch_sub(1, std::memory_order_relaxed);
    }
    return ticked ? woke::tick : woke::work;
  }
  // Woken by push_remote, wake_idle or wake_deep.
  const bool nudged = nudged_;
  nudged_ = false;
  return nudged ? woke::nudge : woke::work;
}

void loop::reap_completions() noexcept {
  // Submit what is queued; with TASKRUN_FLAG the kernel tells us when it has
  // completions to post, which needs a trip into the kernel.
  if (io_uring_sq_ready(&ring_) != 0) {
    io_uring_submit(&ring_);
  } else if (IO_URING_READ_ONCE(*ring_.sq.kflags) & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)) {
    io_uring_get_events(&ring_);
  }
  // A bounded batch, so timers and ready coroutines get a turn however busy
  // the sockets are; what is left waits in the CQ for the next turn.
  unsigned budget = kCqeBudget;
  while (budget > 0) {
    unsigned head, seen = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring_, head, cqe) {
      auto* op = reinterpret_cast<io_op*>(static_cast<std::uintptr_t>(cqe->user_data));
      int res = cqe->res;
      std::uint32_t flags = cqe->flags;
      io_uring_cq_advance(&ring_, 1);  // before the callback: it may re-enter
      ++seen;
      if (op != nullptr) op->complete(op, res, flags);
      if (--budget == 0) break;
    }
    if (seen == 0) break;
  }
}

// ---- free functions of runtime.hpp ----

void schedule(loop* home, std::coroutine_handle<> h) noexcept {
  if (home == tl_loop)
    home->push_ready(h);
  else
    home->push_remote(h);
}

// ---- src/io.hpp: the door for the layers that drive the ring ----

io_uring* ring_of(loop* l) noexcept { return l->ring(); }
io_uring_sqe* get_sqe(loop* l) noexcept { return l->get_sqe(); }

loop_extension* find_extension(loop* l, const void* key) noexcept { return l->find_ext(key); }
loop_extension* add_extension(loop* l, const void* key, std::unique_ptr<loop_extension> e) {
  return l->add_ext(key, std::move(e));
}

std::span<loop* const> loops_of(loop* l) noexcept { return l->rt()->loops; }

}  // namespace conch::detail
