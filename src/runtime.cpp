// src/runtime.cpp
// runtime construction and teardown, the blocking pool, the frame cache,
// error reporting and contract checks.
//
// Teardown order (~runtime_impl), each step relying on the one before:
//  1. The blocking pool stops taking jobs and joins its threads; loops still
//     run, so a job waiting on a go block can finish.
//  2. Every loop is asked to stop; its thread finishes the current step and
//     is joined. No coroutine runs after this.
//  3. Each loop drops its timers, then destroys every root frame it still
//     holds (parked and never-started go blocks). A frame's awaiters unlink
//     themselves from channels under the channel lock, so a concurrent waker
//     on another runtime either finished with the waiter or never sees it.
//  4. Loops (rings, eventfds) are freed.
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <thread>

#include "src/loop.hpp"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CONCH_NO_FRAME_CACHE 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CONCH_NO_FRAME_CACHE 1
#endif
#endif

namespace conch::detail {

// ---- contract checks ----

void check_failed(const char* file, int line, const char* cond, const char* message) noexcept {
  std::fprintf(stderr, "%s:%d: conch check failed: %s: %s\n", file, line, cond, message);
  std::fflush(stderr);
  std::abort();
}

void spin_mutex::lock_slow() noexcept {
  for (unsigned spins = 0;; ++spins) {
    while (locked_.load(std::memory_order_relaxed)) {
      if (spins < 64) {
        __builtin_ia32_pause();
        ++spins;
      } else {
        std::this_thread::yield();  // let a preempted holder run
      }
    }
    if (!locked_.exchange(true, std::memory_order_acquire)) return;
  }
}

// ---- frame cache ----

namespace {
#ifndef CONCH_NO_FRAME_CACHE
constexpr std::size_t kClassBytes = 64;
constexpr std::size_t kClasses = 16;             // blocks up to 1 KiB are cached
constexpr std::size_t kBytesPerClass = 256 << 10; // bounded: at most 4 MiB per thread

struct frame_cache {
  struct block {
    block* next;
  };
  block* free[kClasses] = {};
  std::size_t count[kClasses] = {};
  ~frame_cache() {
    for (std::size_t c = 0; c < kClasses; ++c)
      while (block* b = free[c]) {
        free[c] = b->next;
        ::operator delete(b);
      }
  }
};
thread_local frame_cache tl_frames;
#endif
}  // namespace

void* frame_alloc(std::size_t n) {
#ifndef CONCH_NO_FRAME_CACHE
  std::size_t c = (n + kClassBytes - 1) / kClassBytes - 1;
  if (c < kClasses) {
    frame_cache& fc = tl_frames;
    if (auto* b = fc.free[c]) {
      fc.free[c] = b->next;
      --fc.count[c];
      return b;
    }
    return ::operator new((c + 1) * kClassBytes);
  }
#endif
  return ::operator new(n);
}

void frame_free(void* p, std::size_t n) noexcept {
#ifndef CONCH_NO_FRAME_CACHE
  std::size_t c = (n + kClassBytes - 1) / kClassBytes - 1;
  if (c < kClasses) {
    frame_cache& fc = tl_frames;
    if (fc.count[c] < kBytesPerClass / ((c + 1) * kClassBytes)) {
      auto* b = static_cast<frame_cache::block*>(p);
      b->next = fc.free[c];
      fc.free[c] = b;
      ++fc.count[c];
      return;
    }
  }
#endif
  (void)n;
  ::operator delete(p);
}

// ---- blocking pool ----

class blocking_pool {
 public:
  explicit blocking_pool(unsigned max_threads) : max_(max_threads == 0 ? 1 : max_threads) {}

  void submit(absl::AnyInvocable<void() &&> job) {
    std::unique_lock lk(mu_);
    if (stopping_) {
      lk.unlock();
      return;  // job destroyed unrun: the runtime is going away
    }
    jobs_.push_back(std::move(job));
    // Every queued job needs a thread of its own (a job may wait for a later
    // one). idle_ counts the threads that will take one each, including those
    // already notified that have not yet retaken mu_: comparing with it, not
    // with 0, keeps two quick submissions from sharing one waking thread.
    if (jobs_.size() > idle_ && threads_.size() < max_) {
      threads_.emplace_back([this] { work(); });
    } else {
      cv_.notify_one();
    }
  }

  void shutdown() {
    std::deque<absl::AnyInvocable<void() &&>> dropped;
    {
      std::lock_guard lk(mu_);
      stopping_ = true;
      dropped.swap(jobs_);
    }
    cv_.notify_all();
    for (std::thread& t : threads_) t.join();
    threads_.clear();
  }

 private:
  void work() {
    std::unique_lock lk(mu_);
    for (;;) {
      while (jobs_.empty() && !stopping_) {
        ++idle_;
        cv_.wait(lk);
        --idle_;
      }
      if (jobs_.empty()) return;
      absl::AnyInvocable<void() &&> job = std::move(jobs_.front());
      jobs_.pop_front();
      lk.unlock();
      std::move(job)();
      job = nullptr;  // release captures before taking the lock again
      lk.lock();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<absl::AnyInvocable<void() &&>> jobs_;
  std::vector<std::thread> threads_;
  unsigned idle_ = 0;
  const unsigned max_;
  bool stopping_ = false;
};

void submit_blocking(absl::AnyInvocable<void() &&> job) noexcept {
  loop* l = tl_loop;
  CONCH_CHECK(l != nullptr, "conch::thread() called outside a runtime thread");
  l->rt()->pool->submit(std::move(job));
}

// ---- errors escaping go blocks ----

void report_exception(std::exception_ptr e) noexcept { report_exception_from(tl_loop, e); }

void report_exception_from(loop* l, std::exception_ptr e) noexcept {
  if (l != nullptr && l->rt()->opts.on_error) {
    try {
      l->rt()->opts.on_error(e);
      return;
    } catch (...) {
      std::fputs("conch: the runtime's on_error handler threw\n", stderr);
    }
  }
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "conch: exception escaped a go block: %s\n", ex.what());
  } catch (...) {
    std::fputs("conch: exception escaped a go block (not a std::exception)\n", stderr);
  }
}

// ---- completion latch ----

struct completion_latch::state {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
};
completion_latch::completion_latch() : s_(new state) {}
completion_latch::~completion_latch() { delete s_; }
void completion_latch::set() noexcept {
  // Notify under the lock: the waiter frees the latch as soon as it sees done.
  std::lock_guard lk(s_->mu);
  s_->done = true;
  s_->cv.notify_one();
}
void completion_latch::wait() noexcept {
  std::unique_lock lk(s_->mu);
  s_->cv.wait(lk, [this] { return s_->done; });
}

// ---- runtime_impl ----

namespace {
// Descriptor-table slots reserved before the first runtime starts its threads
// (or the soft RLIMIT_NOFILE, if lower).
constexpr rlim_t kFdTableReserve = 4096;

// The kernel grows a process's descriptor table on demand; grown under running
// loop threads, it slows a busy server while those sockets live
// (bench/NOTES.md "descriptor table"). Growing it once here costs three system
// calls and 32 KiB of kernel memory. It takes no descriptor: F_DUPFD picks the
// lowest free one at or above the mark, and it is closed at once. Once per
// process.
void reserve_fd_table() noexcept {
  static std::atomic<bool> done{false};
  if (done.exchange(true, std::memory_order_relaxed)) return;  // relaxed: a one-shot hint
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  const rlim_t mark = std::min(rl.rlim_cur, kFdTableReserve);
  if (mark < 2) return;
  int probe = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (probe < 0) return;
  int high = ::fcntl(probe, F_DUPFD_CLOEXEC, static_cast<int>(mark - 1));
  if (high >= 0) ::close(high);
  ::close(probe);
}
}  // namespace

runtime_impl::runtime_impl(runtime_options o) : opts(std::move(o)) {
  reserve_fd_table();
  unsigned n = opts.threads;
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
  pool = new blocking_pool(opts.max_blocking_threads);
  loops.reserve(n);
  for (unsigned i = 0; i < n; ++i) loops.push_back(new loop(this, i));
  std::atomic<int> started{0};
  std::vector<absl::Status> status(n);
  for (unsigned i = 0; i < n; ++i)
    threads_.push_back(new std::thread([this, i, &started, &status] {
      loops[i]->thread_main(&started, &status[i]);
    }));
  for (int s = started.load(std::memory_order_acquire); s < static_cast<int>(n);
       s = started.load(std::memory_order_acquire))
    started.wait(s, std::memory_order_acquire);
  for (const absl::Status& s : status)
    if (!s.ok() && start_status.ok()) start_status = s;
}

runtime_impl::~runtime_impl() {
  pool->shutdown();
  for (loop* l : loops) l->request_stop();
  for (std::thread* t : threads_) {
    t->join();
    delete t;
  }
  for (loop* l : loops) l->destroy_all();
  for (loop* l : loops) delete l;
  delete pool;
}

void runtime_impl::wake_idle(loop* from) noexcept {
  for (loop* l : loops)
    if (l != from && l->wake_if_sleeping()) return;
}

void runtime_impl::wake_deep(loop* from) noexcept {
  for (loop* l : loops)
    if (l != from && l->wake_if_deep()) return;
}

}  // namespace conch::detail

namespace conch {

runtime::runtime(runtime_options opts) : impl_(new detail::runtime_impl(std::move(opts))) {
  if (!impl_->start_status.ok()) {
    std::fprintf(stderr, "%s\n", std::string(impl_->start_status.message()).c_str());
    CONCH_CHECK(false, "runtime could not start its event loops (see the message above); "
                       "runtime::create reports this as a Status instead");
  }
}

runtime::runtime(detail::runtime_impl* impl) noexcept : impl_(impl) {}

absl::StatusOr<std::unique_ptr<runtime>> runtime::create(runtime_options opts) {
  auto* impl = new detail::runtime_impl(std::move(opts));
  if (!impl->start_status.ok()) {
    absl::Status s = impl->start_status;
    delete impl;  // stops and joins the loops that did start
    return s;
  }
  return std::unique_ptr<runtime>(new runtime(impl));
}
runtime::~runtime() { delete impl_; }
unsigned runtime::threads() const noexcept { return static_cast<unsigned>(impl_->loops.size()); }

}  // namespace conch
