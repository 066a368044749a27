// tests/support/consumer/main.cpp
// The smallest conch user: a go block sends over a channel; exits 0 on success.
#include <conch/conch.hpp>

#include <cstdio>

conch::task<int> produce(conch::chan<int> ch) {
  co_await ch.send(41);
  co_return 1;
}

conch::task<int> consume() {
  conch::chan<int> ch;
  conch::chan<int> done = conch::go(produce(ch));
  std::optional<int> v = co_await ch.recv();
  std::optional<int> d = co_await done.recv();
  co_return v.value_or(0) + d.value_or(0);
}

int main() {
  int v = conch::run(consume(), {.threads = 1});
  std::printf("consumer: got %d\n", v);
  return v == 42 ? 0 : 1;
}
