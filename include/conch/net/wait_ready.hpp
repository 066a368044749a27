// conch/net/wait_ready.hpp
// wait_ready(): wait, without blocking the loop, until descriptors the caller owns become ready.
//
//   pollfd fds[2] = {{a_fd, POLLIN, 0}, {b_fd, POLLOUT, 0}};
//   absl::StatusOr<int> n = co_await conch::net::wait_ready(fds, std::chrono::milliseconds(50));
//   // *n > 0: fds[i].revents say which (as poll(2)); *n == 0: the time ran out
//
// For descriptors that conch does not own (a foreign library's socket, a
// pipe, lsocket's sockets): the readiness poll(2) reports, awaited on the
// calling loop's io_uring ring (IORING_OP_POLL_ADD), so other go blocks of
// that loop run meanwhile. Must be awaited on a runtime thread.
#pragma once

#include <poll.h>

#include <chrono>
#include <span>

#include "absl/status/statusor.h"
#include "conch/core/task.hpp"

namespace conch::net {

/// Waits until at least one entry of `fds` is ready for its `events`, or
/// `timeout` has passed (a negative timeout: no limit; zero: just look).
/// Readiness and `revents` are poll(2)'s (POLLERR, POLLHUP and POLLNVAL are
/// reported whatever `events` asks). Returns the number of entries with a
/// non-zero `revents` (0: the time ran out), or poll(2)'s error as a status.
/// Entries with a negative fd are ignored, as poll(2) ignores them. `fds`
/// must stay valid until the task ends. Resumes on the calling loop; a
/// caller that is not on a runtime thread gets kFailedPrecondition.
task<absl::StatusOr<int>> wait_ready(std::span<pollfd> fds, std::chrono::nanoseconds timeout);

}  // namespace conch::net
