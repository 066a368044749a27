// src/timers.cpp
// The loop's timers: a binary min-heap of timer_node on (deadline, seq), the
// runtime.hpp timer functions, and sleep().
//
// Invariants: see loop.hpp (timers_ belongs to the loop thread);
// t->heap_index is t's slot in timers_, or -1 when t is not armed.
// Lock order: no locks here (loop thread only).
#include <time.h>

#include "src/loop.hpp"

namespace conch::detail {

std::int64_t now_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
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
void timer_add(loop* l, timer_node* t) noexcept { l->timer_add(t); }
void timer_cancel(loop* l, timer_node* t) noexcept { l->timer_cancel(t); }

// ---- sleep ----

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
