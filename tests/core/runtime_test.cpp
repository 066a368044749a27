// tests/core/runtime_test.cpp
// runtime: block_on, sleep, threads, teardown.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <thread>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conch/conch.hpp"

using namespace std::chrono_literals;
using conch::task;

TEST_CASE("block_on runs a task on a loop thread, not the caller", "[runtime]") {
  conch::runtime rt({.threads = 2});
  CHECK(rt.threads() == 2);
  auto caller = std::this_thread::get_id();
  auto id = rt.block_on([]() -> task<std::thread::id> { co_return std::this_thread::get_id(); }());
  CHECK(id != caller);
  // The runtime can be used again.
  CHECK(rt.block_on([]() -> task<int> { co_return 3; }()) == 3);
}

TEST_CASE("sleep waits at least its duration and resumes on the same thread", "[runtime][timer]") {
  conch::run(
      []() -> task<void> {
        auto id = std::this_thread::get_id();
        auto t0 = std::chrono::steady_clock::now();
        co_await conch::sleep(20ms);
        CHECK(std::chrono::steady_clock::now() - t0 >= 20ms);
        CHECK(std::this_thread::get_id() == id);
        co_await conch::sleep(0ms);  // a yield
      }(),
      {.threads = 2});
}

namespace {
// FDSize from /proc/self/status: the descriptor-table slots the kernel has
// allocated for this process (0 if unreadable).
long fd_table_slots() {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return 0;
  char line[256];
  long slots = 0;
  while (std::fgets(line, sizeof line, f) != nullptr)
    if (std::sscanf(line, "FDSize: %ld", &slots) == 1) break;
  std::fclose(f);
  return slots;
}
}  // namespace

TEST_CASE("a runtime grows the descriptor table before its threads start, holding no descriptor",
          "[runtime]") {
  rlimit rl{};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &rl) == 0);
  const long mark = static_cast<long>(std::min<rlim_t>(rl.rlim_cur, 4096));
  conch::runtime rt({.threads = 1});
  CHECK(fd_table_slots() >= mark);
  // Only the table grew: the descriptor used to grow it is closed again.
  errno = 0;
  CHECK(::fcntl(static_cast<int>(mark - 1), F_GETFD) == -1);
  CHECK(errno == EBADF);
}

TEST_CASE("runtime::create reports success as a usable runtime", "[runtime]") {
  auto rt = conch::runtime::create({.threads = 2});
  REQUIRE(rt.ok());
  CHECK((*rt)->threads() == 2);
  CHECK((*rt)->block_on([]() -> task<int> { co_return 11; }()) == 11);
}

TEST_CASE("runtime::create returns an error when the loops cannot start", "[runtime]") {
  // In a child process with no file descriptors left, eventfd/io_uring setup
  // fails: create must say so instead of aborting.
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    rlimit lim{3, 3};  // stdin, stdout, stderr only
    setrlimit(RLIMIT_NOFILE, &lim);
    auto rt = conch::runtime::create({.threads = 1});
    bool clear = !rt.ok() && rt.status().code() == absl::StatusCode::kUnavailable &&
                 std::string(rt.status().message()).find("io_uring") != std::string::npos;
    _exit(clear ? 0 : 1);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
