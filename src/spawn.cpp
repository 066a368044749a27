// src/spawn.cpp
// Go blocks on a loop: the queue of unstarted ones, the owner's take, idle
// loops' stealing, inline relief for a runaway spawner, and the list of live
// root frames (what teardown destroys).
//
// Invariants: see loop.hpp (spawns_ under spawn_mu_, live_ under live_mu_).
// Lock order: spawn_mu_ and live_mu_ are leaves; no lock is held while a
// frame runs (push_spawn releases spawn_mu_ before each inline resume).
#include <algorithm>

#include "src/loop.hpp"

namespace conch::detail {

namespace {
constexpr std::size_t kSpawnBatch = 64;         // go blocks taken per turn
constexpr std::size_t kMaxQueuedSpawns = 1024;  // past this go() runs some inline
thread_local bool tl_inline_spawns = false;
}  // namespace

// ---- go blocks ----

// Takes and releases spawn_mu_ (and again per inline resume, never held while
// a frame runs).
void loop::push_spawn(std::coroutine_handle<> h) noexcept {
  std::size_t queued;
  bool deep;
  {
    std::lock_guard lk(spawn_mu_);
    spawns_.push(h);
    queued = spawns_.size();
    spawn_count_.store(queued, std::memory_order_relaxed);
    // Read under spawn_mu_: see loop.hpp on stranded go blocks.
    deep = queued == 1 && rt_->deep_sleepers.load(std::memory_order_relaxed) > 0;
  }
  // One go block is usually taken by its owner at once, and waking a loop
  // costs more than it; more than one, or one while every other loop sleeps
  // deep (nobody would look at it if the owner stays busy), wakes one.
  if (queued > 1 && rt_->sleepers.load(std::memory_order_relaxed) > 0)
    rt_->wake_idle(this);
  else if (deep)
    rt_->wake_deep(this);
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
        // The owner is running its queue (inline), so the queue stays young
        // to thieves: a fan-out of 100k go blocks stays on its loop. Stolen,
        // each of them talked to its spawner's loop across CPUs: workload E
        // at 2 threads ran 9x slower than at 1, F 1.3x (bench/NOTES.md
        // "runaway spawner's queue stays young").
        spawn_epoch_.store(spawn_epoch_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      }
      resume_chain(std::coroutine_handle<>::from_address(a));
    }
    tl_inline_spawns = false;
  }
}

// Moves up to kSpawnBatch unstarted go blocks, oldest first, from this
// loop's spawns_ to `into`'s ready queue (the caller is `into`'s thread):
// half of them, or all when `all` (nobody else could take them). Takes and
// releases spawn_mu_; `into`'s queue is filled after, and stolen frames move
// from this loop's live list to into's (live_mu_ of each, one at a time).
// `*epoch_after` (if given) receives spawn_epoch_ as this move left it.
bool loop::move_spawns(loop& into, bool all, std::uint32_t* epoch_after) noexcept {
  void* batch[kSpawnBatch];
  std::size_t k = 0;
  {
    std::lock_guard lk(spawn_mu_);
    std::size_t want = std::min(kSpawnBatch, all ? spawns_.size() : (spawns_.size() + 1) / 2);
    while (k < want) batch[k++] = spawns_.pop().address();
    spawn_count_.store(spawns_.size(), std::memory_order_relaxed);
    if (k != 0) spawn_epoch_.store(spawn_epoch_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    if (epoch_after) *epoch_after = spawn_epoch_.load(std::memory_order_relaxed);
  }
  for (std::size_t i = 0; i < k; ++i) {
    if (&into != this) {  // a stolen go block joins the live list of the loop it runs on
      auto& p = std::coroutine_handle<root_promise>::from_address(batch[i]).promise();
      unregister_root(&p);
      into.register_root(&p);
    }
    into.ready_.push(std::coroutine_handle<>::from_address(batch[i]));
  }
  return k != 0;
}

// The owner takes what it queued whenever it gets a turn: go blocks start
// where they were spawned, and only those left waiting while the owner is busy
// go to idle loops ("idle threads take work"). Leaving half for thieves split
// chatty go blocks across CPUs, every channel operation moving a cache line;
// bench/NOTES.md "owner takes its spawns".
bool loop::take_spawns() noexcept { return move_spawns(*this, true, nullptr); }

bool loop::steal_into(loop& thief, std::uint32_t* epoch_after) noexcept {
  return move_spawns(thief, false, epoch_after);
}

// ---- live root frames ----

// Takes and releases live_mu_ (so does unregister_root).
void loop::register_root(root_link* r) noexcept {
  std::lock_guard lk(live_mu_);
  r->owner = this;
  r->next = live_head_.next;
  r->prev = &live_head_;
  live_head_.next->prev = r;
  live_head_.next = r;
  live_count_.store(live_count_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

void loop::unregister_root(root_link* r) noexcept {
  std::lock_guard lk(live_mu_);
  r->prev->next = r->next;
  r->next->prev = r->prev;
  r->owner = nullptr;
  live_count_.store(live_count_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
}

// Teardown: takes live_mu_ per frame (released before destroying it), then
// remote_mu_ and spawn_mu_.
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

// ---- starting root frames ----

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

// src/io.hpp. Pinned: it goes on l's ready or remote queue, never spawns_,
// so no other loop can steal it.
void start_on(loop* l, root r) noexcept {
  l->register_root(&r.h.promise());
  if (tl_loop == l)
    l->push_ready(r.h);
  else
    l->push_remote(r.h);
}

// ---- placement ----

// Any thread of the runtime. least_busy reads every loop's load (relaxed: a
// snapshot is all placement needs), not counting the frame that asks (it
// runs on the calling loop), and breaks ties round robin from a cursor every
// call advances: placing n go blocks on an idle runtime of n loops puts one
// on each.
loop* runtime_impl::pick(loop* from, placement where) noexcept {
  const std::size_t n = loops.size();
  switch (where.how()) {
    case placement::kind::caller:
      return from;
    case placement::kind::fixed:
      return loops[where.index() % n];
    case placement::kind::least_busy:
      break;
  }
  auto load_of = [](loop* l) {
    std::size_t load = l->load();
    return l == tl_loop && load > 0 ? load - 1 : load;  // minus the caller
  };
  const std::size_t start = next_placement.fetch_add(1, std::memory_order_relaxed) % n;
  loop* best = loops[start];
  std::size_t best_load = load_of(best);
  for (std::size_t i = 1; i < n && best_load != 0; ++i) {
    loop* l = loops[(start + i) % n];
    if (std::size_t load = load_of(l); load < best_load) {
      best = l;
      best_load = load;
    }
  }
  return best;
}

loop* pick_loop(loop* from, placement where) noexcept { return from->rt()->pick(from, where); }

void add_resident(loop* l, int delta) noexcept { l->add_resident(delta); }

void spawn_placed(placement where, root r) noexcept {
  loop* l = tl_loop;
  CONCH_CHECK(l != nullptr,
              "go_on() called outside a runtime thread; start the first task with "
              "runtime::block_on or conch::run");
  start_on(l->rt()->pick(l, where), r);
}

}  // namespace conch::detail

namespace conch {

unsigned this_loop() {
  detail::loop* l = detail::tl_loop;
  CONCH_CHECK(l != nullptr, "conch::this_loop() called outside a runtime thread");
  return l->index();
}

unsigned loop_count() {
  detail::loop* l = detail::tl_loop;
  CONCH_CHECK(l != nullptr, "conch::loop_count() called outside a runtime thread");
  return static_cast<unsigned>(l->rt()->loops.size());
}

}  // namespace conch

namespace conch::detail {

root_promise::~root_promise() {
  if (owner != nullptr) owner->unregister_root(this);
}

}  // namespace conch::detail
