// src/loop.cpp
// The event loop: ready queue, remote queue + eventfd wakeups, go-block
// stealing, the timer heap, and io_uring completion dispatch.
//
// Invariants: see loop.hpp. The one subtle protocol is sleeping:
//   loop:   lock remote_mu_; if remote_ empty { sleeping_ = true }; unlock;
//           wait on the ring (the eventfd read is always armed);
//   pusher: lock remote_mu_; push; if sleeping_ { sleeping_ = false; wake }.
// Both sides decide under remote_mu_, so a push either lands before the loop
// looks (and it does not sleep) or sees sleeping_ (and writes the eventfd).
#include "src/loop.hpp"

#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace conch::detail {

namespace {
constexpr unsigned kRingEntries = 256;
// Completion queue: 16 x the submission queue. Multishot receives post many
// CQEs per submission, and the kernel ends a multishot whose CQE finds the
// CQ full (at 256 busy sockets half of all receives ended that way with the
// default 2 x 256 entries, each then re-armed). 4096 x 16 B = 64 KiB.
constexpr unsigned kCqEntries = 4096;
constexpr std::size_t kSpawnBatch = 64;        // go blocks taken per turn
constexpr std::size_t kMaxQueuedSpawns = 1024; // past this go() runs some inline
// An idle loop watches for work this long before it sleeps: waking a
// sleeping loop costs an eventfd write or a kernel wake-up, ~40 us on this
// kind of VM, and work often arrives within microseconds (Go's spinning Ms).
// This holds for a one-loop runtime too: a socket server whose loop slept
// between requests paid a wake-up per request (unix 16 x 64 B echo: 3,100
// sleeps/s and 0.8x an epoll server; watching first: ~120 sleeps/s, 1.0x).
constexpr std::int64_t kSpinNs = 50'000;
constexpr std::size_t kReadyBudget = 256;  // resumptions per turn
constexpr unsigned kCqeBudget = 1024;      // completions dispatched per turn
thread_local bool tl_inline_spawns = false;

// Valgrind runs one thread at a time and treats io_uring_enter as a call that
// does not block, so a loop waiting in it would starve every other thread
// (liburing#657). Under valgrind (its preload library is in LD_PRELOAD) the
// loops wait at most 1 ms at a time, so callgrind and memcheck work.
bool under_valgrind() noexcept {
  static const bool yes = [] {
    const char* p = std::getenv("LD_PRELOAD");
    return p != nullptr && (std::strstr(p, "vgpreload") != nullptr || std::strstr(p, "valgrind") != nullptr);
  }();
  return yes;
}
}  // namespace

std::int64_t now_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

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
  stop_.store(true, std::memory_order_relaxed);
  wake_if_sleeping();
  // The loop might be between its last check and sleeping; a plain eventfd
  // write makes that wait return too.
  if (event_fd_ >= 0) signal_eventfd();
}

void loop::run() {
  for (;;) {
    // Run what is ready, including what those coroutines make ready (a
    // received frame's consumer, then the writer it hands a reply to), up
    // to a budget: then I/O and timers get their look.
    for (std::size_t n = kReadyBudget; n > 0 && !ready_.empty(); --n) resume_chain(ready_.pop());
    drain_remote();
    if (spawn_count_.load(std::memory_order_relaxed) != 0) take_spawns();
    reap_completions();
    if (!timers_.empty()) fire_timers(now_ns());
    if (stop_.load(std::memory_order_relaxed)) return;
    if (!ready_.empty() || io_uring_cq_ready(&ring_) != 0) continue;
    // Nothing local: take unstarted go blocks from a busier loop.
    bool stole = false;
    const std::size_t n = rt_->loops.size();
    for (std::size_t i = 1; i < n && !stole; ++i) {
      loop* victim = rt_->loops[(index_ + i) % n];
      if (victim->spawn_count_.load(std::memory_order_relaxed) != 0)
        stole = victim->steal_into(*this);
    }
    if (!stole && !spin_for_work()) sleep_until_work();
  }
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
  if (sleeping_) {
    sleeping_ = false;
    rt_->sleepers.fetch_sub(1, std::memory_order_relaxed);
    signal_eventfd();
  }
}

void loop::signal_eventfd() noexcept {
  std::uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(event_fd_, &one, sizeof one);
}

bool loop::wake_if_sleeping() noexcept {
  std::lock_guard lk(remote_mu_);  // the write too: see push_remote
  if (!sleeping_) return false;
  sleeping_ = false;
  rt_->sleepers.fetch_sub(1, std::memory_order_relaxed);
  signal_eventfd();
  return true;
}

void loop::sleep_until_work() noexcept {
  {
    std::lock_guard lk(remote_mu_);
    if (!remote_.empty() || stop_.load(std::memory_order_relaxed)) return;
    sleeping_ = true;
    rt_->sleepers.fetch_add(1, std::memory_order_relaxed);
  }
  // A go block queued elsewhere just before we registered as a sleeper did
  // not wake anyone; look once more before waiting.
  bool found = spawn_count_.load(std::memory_order_relaxed) != 0;
  for (loop* other : rt_->loops)
    if (other != this && other->spawn_count_.load(std::memory_order_relaxed) > 1) found = true;
  if (!found) {
    io_uring_cqe* cqe = nullptr;
    if (timers_.empty() && !under_valgrind()) {
      io_uring_submit_and_wait(&ring_, 1);
    } else {
      std::int64_t wait = timers_.empty() ? std::int64_t{1'000'000}
                                          : std::max<std::int64_t>(0, timers_[0]->deadline_ns - now_ns());
      if (under_valgrind()) wait = std::min<std::int64_t>(wait, 1'000'000);
      __kernel_timespec ts{wait / 1'000'000'000, wait % 1'000'000'000};
      io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
    }
  }
  std::lock_guard lk(remote_mu_);
  if (sleeping_) {
    sleeping_ = false;
    rt_->sleepers.fetch_sub(1, std::memory_order_relaxed);
  }
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

// ---- go blocks ----

void loop::push_spawn(std::coroutine_handle<> h) noexcept {
  std::size_t queued;
  {
    std::lock_guard lk(spawn_mu_);
    spawns_.push(h);
    queued = spawns_.size();
    spawn_count_.store(queued, std::memory_order_relaxed);
  }
  if (queued > 1 && rt_->sleepers.load(std::memory_order_relaxed) > 0) rt_->wake_idle(this);
  // Bounded memory: a loop spawning faster than it runs would pile up frames
  // (a million go blocks would be a million frames). Past the cap, run the
  // oldest queued go blocks here, until they park or finish, as Go's
  // scheduler preempts a spawning goroutine. Never nested.
  if (queued > kMaxQueuedSpawns && !tl_inline_spawns && tl_loop == this) {
    tl_inline_spawns = true;
    for (;;) {
      void* a;
      {
        std::lock_guard lk(spawn_mu_);
        if (spawns_.size() <= kMaxQueuedSpawns / 2) break;
        a = spawns_.pop().address();
        spawn_count_.store(spawns_.size(), std::memory_order_relaxed);
      }
      resume_chain(std::coroutine_handle<>::from_address(a));
    }
    tl_inline_spawns = false;
  }
}

// Moves up to kSpawnBatch unstarted go blocks, oldest first, from this
// loop's spawns_ to `into`'s ready queue (the caller is `into`'s thread):
// half of them, or all when `all` (nobody else could take them).
bool loop::move_spawns(loop& into, bool all) noexcept {
  void* batch[kSpawnBatch];
  std::size_t k = 0;
  {
    std::lock_guard lk(spawn_mu_);
    std::size_t want = std::min(kSpawnBatch, all ? spawns_.size() : (spawns_.size() + 1) / 2);
    while (k < want) batch[k++] = spawns_.pop().address();
    spawn_count_.store(spawns_.size(), std::memory_order_relaxed);
  }
  for (std::size_t i = 0; i < k; ++i) into.ready_.push(std::coroutine_handle<>::from_address(batch[i]));
  return k != 0;
}

// The owner takes what it queued whenever it gets a turn: go blocks start
// where they were spawned, and only those left waiting while the owner is busy
// running something else go to idle loops ("idle threads take work"). Leaving
// half for thieves made chatty go blocks (4 producers and 4 consumers of one
// channel) split across CPUs, where every channel operation moves a cache
// line between them: 4-5x slower than on one loop.
bool loop::take_spawns() noexcept { return move_spawns(*this, true); }

bool loop::steal_into(loop& thief) noexcept { return move_spawns(thief, false); }

// ---- live root frames ----

void loop::register_root(root_link* r) noexcept {
  std::lock_guard lk(live_mu_);
  r->owner = this;
  r->next = live_head_.next;
  r->prev = &live_head_;
  live_head_.next->prev = r;
  live_head_.next = r;
}

void loop::unregister_root(root_link* r) noexcept {
  std::lock_guard lk(live_mu_);
  r->prev->next = r->next;
  r->next->prev = r->prev;
  r->owner = nullptr;
}

void loop::destroy_all() noexcept {
  // Timers first: heap-owned nodes (timeouts) are dropped; frame-owned ones
  // (sleeps) are disarmed so their awaiters do not touch the heap.
  std::vector<timer_node*> timers;
  timers.swap(timers_);
  for (timer_node* t : timers) {
    t->heap_index = static_cast<std::size_t>(-1);
    if (t->drop != nullptr) t->drop(t);
  }
  for (;;) {
    root_link* r;
    {
      std::lock_guard lk(live_mu_);
      if (live_head_.next == &live_head_) break;
      r = live_head_.next;
    }
    // Destroying the frame runs ~root_promise, which unlinks it.
    std::coroutine_handle<root_promise>::from_promise(*static_cast<root_promise*>(r)).destroy();
  }
  ready_.clear();
  std::lock_guard lk(remote_mu_);
  remote_.clear();
  std::lock_guard lk2(spawn_mu_);
  spawns_.clear();
  spawn_count_.store(0, std::memory_order_relaxed);
}

// ---- timers: a binary min-heap on (deadline, seq) ----

namespace {
inline bool earlier(const timer_node* a, const timer_node* b) noexcept {
  return a->deadline_ns != b->deadline_ns ? a->deadline_ns < b->deadline_ns : a->seq < b->seq;
}
}  // namespace

void loop::heap_up(std::size_t i) noexcept {
  timer_node* t = timers_[i];
  while (i > 0) {
    std::size_t p = (i - 1) / 2;
    if (!earlier(t, timers_[p])) break;
    timers_[i] = timers_[p];
    timers_[i]->heap_index = i;
    i = p;
  }
  timers_[i] = t;
  t->heap_index = i;
}

void loop::heap_down(std::size_t i) noexcept {
  timer_node* t = timers_[i];
  const std::size_t n = timers_.size();
  for (;;) {
    std::size_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && earlier(timers_[c + 1], timers_[c])) ++c;
    if (!earlier(timers_[c], t)) break;
    timers_[i] = timers_[c];
    timers_[i]->heap_index = i;
    i = c;
  }
  timers_[i] = t;
  t->heap_index = i;
}

void loop::heap_remove(std::size_t i) noexcept {
  timer_node* gone = timers_[i];
  timer_node* last = timers_.back();
  timers_.pop_back();
  gone->heap_index = static_cast<std::size_t>(-1);
  if (gone == last) return;
  timers_[i] = last;
  last->heap_index = i;
  heap_down(i);
  heap_up(last->heap_index);
}

void loop::timer_add(timer_node* t) noexcept {
  t->seq = timer_seq_++;
  timers_.push_back(t);
  heap_up(timers_.size() - 1);
}

void loop::timer_cancel(timer_node* t) noexcept {
  if (t->armed()) heap_remove(t->heap_index);
}

void loop::fire_timers(std::int64_t now) noexcept {
  while (!timers_.empty() && timers_[0]->deadline_ns <= now) {
    timer_node* t = timers_[0];
    heap_remove(0);
    t->fire(t);
  }
}

// ---- free functions of runtime.hpp ----

void schedule(loop* home, std::coroutine_handle<> h) noexcept {
  if (home == tl_loop)
    home->push_ready(h);
  else
    home->push_remote(h);
}

void spawn_here(root r) noexcept {
  loop* l = tl_loop;
  CONCH_CHECK(l != nullptr,
              "go() called outside a runtime thread; start the first task with "
              "runtime::block_on or conch::run");
  l->register_root(&r.h.promise());
  l->push_spawn(r.h);
}

void spawn_on_runtime(runtime_impl* rt, root r) noexcept {
  loop* l = rt->loops[0];
  l->register_root(&r.h.promise());
  l->push_remote(r.h);
}

root_promise::~root_promise() {
  if (owner != nullptr) owner->unregister_root(this);
}

void timer_add(loop* l, timer_node* t) noexcept { l->timer_add(t); }
void timer_cancel(loop* l, timer_node* t) noexcept { l->timer_cancel(t); }

sleep_awaiter::sleep_awaiter(std::chrono::nanoseconds d) noexcept {
  deadline_ns = now_ns() + d.count();
  fire = [](timer_node* n) noexcept {
    auto* self = static_cast<sleep_awaiter*>(n);
    self->home->push_ready(self->h);
  };
}

sleep_awaiter::~sleep_awaiter() {
  if (armed()) home->timer_cancel(this);
}

bool sleep_awaiter::await_suspend(std::coroutine_handle<> awaiting) noexcept {
  home = tl_loop;
  CONCH_CHECK(home != nullptr, "conch::sleep awaited outside a runtime thread");
  h = awaiting;
  if (deadline_ns <= now_ns()) {
    home->push_ready(awaiting);  // a yield: run the others first
  } else {
    home->timer_add(this);
  }
  return true;
}

}  // namespace conch::detail
