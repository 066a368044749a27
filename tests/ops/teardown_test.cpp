// tests/ops/teardown_test.cpp
// Destroying a runtime while combinator go blocks are parked frees everything (run under ASan/LSan to check).
#include <catch2/catch.hpp>

#include <memory>
#include <string>

#include "tests/ops/ops_test_support.hpp"

using namespace std::chrono_literals;
using conch::chan;
using conch::task;
using conch::test::recv_within;

namespace {

struct counted {
  static inline std::atomic<int> live{0};
  std::string s;
  explicit counted(std::string v) : s(std::move(v)) { ++live; }
  counted(const counted& o) : s(o.s) { ++live; }
  counted(counted&& o) noexcept : s(std::move(o.s)) { ++live; }
  counted& operator=(const counted&) = default;
  counted& operator=(counted&&) noexcept = default;
  ~counted() { --live; }
};

}  // namespace

TEST_CASE("a runtime destroyed with combinators parked mid-way leaks nothing", "[ops][teardown]") {
  counted::live = 0;
  {
    conch::runtime rt({.threads = 2});
    rt.block_on([]() -> task<void> {
      // mult parked offering a value to a tap nobody reads.
      chan<counted> msrc(4);
      conch::mult m{msrc};
      chan<counted> stuck;
      m.tap(stuck);
      counted a("mult value, long enough to live on the heap");
      co_await msrc.send(a);
      co_await msrc.send(a);
      // mix parked on inputs and its change channel; one value waiting in out.
      chan<counted> out(1), in(4);
      conch::mix mx{out};
      mx.admix(in);
      counted b("mix value, long enough to live on the heap too");
      co_await in.send(b);
      co_await in.send(b);
      // pipeline with a source that never closes and a full output.
      chan<counted> pin(8), pout;
      conch::pipeline(2, pout, [](counted c) { return c; }, pin);
      counted c("pipeline value, long enough to live on the heap");
      for (int i = 0; i < 5; ++i) co_await pin.send(c);
      // pub parked on a topic whose subscriber does not read.
      chan<counted> psrc(4);
      conch::pub p{psrc, [](const counted& v) { return v.s.size(); }};
      chan<counted> sub;
      p.sub(c.s.size(), sub);
      co_await psrc.send(c);
      co_await psrc.send(c);
      // Each combinator has taken a value and is parked passing it on (or
      // about to park): the teardown meets them mid-way.
      auto all_busy = [msrc, in, out, pin, psrc] {
        return msrc.size() < 2 && in.size() < 2 && out.size() == 1 && pin.size() < 5 && psrc.size() < 2;
      };
      bool busy = co_await conch::test::eventually(all_busy);
      CHECK(busy);
    }());
  }
  CHECK(counted::live == 0);
}
