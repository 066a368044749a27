// lua/fdlib.cpp
// conch.fd_watch and conch.fd_read: waiting for any file descriptor to poll readable, and reading it.
//
// They let Lua code poll descriptors conch does not own (stdin, a pipe, an
// lsocket or luaposix descriptor) without stalling the loop; conch.talk's
// Poller (lua/conch/talk.lua) is built on them.
//
//   local ready, cancel = conch.fd_watch(0)   -- stdin
//   local revents = ready:recv()              -- parks until it polls readable
//   local chunk = conch.fd_read(0)            -- one read(2), up to 4096 bytes
//
// A watch is a go block on the home loop awaiting net::wait_ready (io_uring
// POLL_ADD, sockets/wait_ready.cpp, the mechanism lsocket's select uses) over
// the watched descriptor and the watch's own eventfd, which cancel()
// signals. No thread is held while a watch waits: a watch costs two
// POLL_ADDs on the loop's ring and an eventfd, so thousands may be armed.
// At runtime teardown a watch still waiting is dropped with its go block.
//
// Invariants:
//  - A watch is shared by its go block and its holder userdata; the go
//    block sends at most one value on `ready` and closes it (empty when
//    cancelled or when the wait failed).
//  - The holder's __gc (and the cancel closure) signal the eventfd, so an
//    abandoned watch ends, and a state closing with watches armed (their
//    holders are collected before the host, which was made first) never
//    waits on a descriptor that stays quiet.
//  - The go block's pollfds live in the shared watch, so they outlive the
//    wait_ready task that reads them.
// Lock order: no lock is held here.
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>

#include "conch/chan/go.hpp"
#include "conch/net/wait_ready.hpp"
#include "lua/bridge.hpp"

namespace conch::lua::detail {

namespace {

struct fd_watch {
  int fd = -1;
  int cancel_fd = -1;  // eventfd: readable once cancel() ran
  conch::chan<std::int64_t> ready{1};
  pollfd fds[2] = {};  // the go block's wait: fd, then cancel_fd

  fd_watch() = default;
  fd_watch(const fd_watch&) = delete;
  fd_watch& operator=(const fd_watch&) = delete;
  ~fd_watch() {
    if (cancel_fd >= 0) ::close(cancel_fd);
  }
  void cancel() noexcept {
    std::uint64_t one = 1;
    // A full counter (never: 2^64 - 2 cancels) is the only failure; ignore it.
    [[maybe_unused]] ssize_t n = ::write(cancel_fd, &one, sizeof one);
  }
};

// The holder owns one of these.
struct watch_ref {
  std::shared_ptr<fd_watch> w;
};

// The holder's del: cancels the watch, then drops our reference.
void delete_watch(void* p) noexcept {
  auto* ref = static_cast<watch_ref*>(p);
  ref->w->cancel();
  delete ref;
}

// The watch's go block, on the home loop: waits for fd (or the cancel) and reports.
conch::task<void> watch_body(std::shared_ptr<fd_watch> w) {
  w->fds[0] = pollfd{w->fd, POLLIN, 0};
  w->fds[1] = pollfd{w->cancel_fd, POLLIN, 0};
  absl::StatusOr<int> n = co_await net::wait_ready(w->fds, std::chrono::nanoseconds(-1));
  // Cancelled or failed: closes empty. Else the descriptor's revents.
  if (n.ok() && *n > 0 && w->fds[1].revents == 0 && w->fds[0].revents != 0) w->ready.try_send(w->fds[0].revents);
  w->ready.close();
}

// Builds a watch of fd owned by hd; false when out of memory or descriptors.
bool make_watch(holder* hd, int fd) noexcept {
  try {
    auto ref = std::make_unique<watch_ref>();
    ref->w = std::make_shared<fd_watch>();
    ref->w->fd = fd;
    ref->w->cancel_fd = ::eventfd(0, EFD_CLOEXEC);
    if (ref->w->cancel_fd < 0) return false;
    hd->p = ref.release();
    hd->del = &delete_watch;
    return true;
  } catch (...) {
    return false;
  }
}

// The cancel closure: upvalue 1 is the holder.
int watch_cancel(lua_State* L) {
  auto* hd = static_cast<holder*>(lua_touserdata(L, lua_upvalueindex(1)));
  if (hd->p != nullptr) static_cast<watch_ref*>(hd->p)->w->cancel();
  return 0;
}

// conch.fd_watch(fd) -> ready, cancel
//   ready: a channel that receives fd's poll(2) revents (POLLIN = 1, POLLERR
//   = 8, POLLHUP = 16, POLLNVAL = 32) once it polls readable (or hung up,
//   or failed), then closes; it closes empty once cancel() runs. cancel() is
//   idempotent; collecting it cancels too. A descriptor conch.fd_watch
//   cannot watch (no eventfd left) is nil, message, code.
int l_fd_watch(lua_State* L) {
  host* h = host_of(L);
  lua_Integer fd = luaL_checkinteger(L, 1);
  luaL_argcheck(L, fd >= 0 && fd <= INT32_MAX, 1, "not a file descriptor (an integer >= 0)");
  lua_settop(L, 1);
  holder* hd = push_holder(L);  // index 2
  if (!make_watch(hd, static_cast<int>(fd))) {
    int e = errno;
    lua_pushnil(L);
    lua_pushfstring(L, "conch.fd_watch: %s", std::strerror(e));
    lua_pushstring(L, e == ENOMEM ? "RESOURCE_EXHAUSTED" : "UNAVAILABLE");
    return 3;
  }
  fd_watch* w = static_cast<watch_ref*>(hd->p)->w.get();
  push_new_chan(L, [w] { return w->ready; });  // index 3
  // Start the watch's go block on the home loop (wait_ready needs a runtime thread).
  struct start_args {
    std::shared_ptr<fd_watch> w;
    bool ok;
  };
  auto* a = static_cast<start_args*>(lua_newuserdatauv(L, sizeof(start_args), 0));  // index 4
  new (a) start_args{static_cast<watch_ref*>(hd->p)->w, false};
  h->call_on_loop(
      [](void* p) noexcept {
        auto* s = static_cast<start_args*>(p);
        try {
          conch::go(watch_body(s->w));
          s->ok = true;
        } catch (...) {
          // Out of memory: s->ok stays false.
        }
      },
      a);
  bool ok = a->ok;
  std::destroy_at(a);  // nothing that may raise ran while it lived
  if (!ok) return raise_no_memory(L);
  lua_pushvalue(L, 2);
  lua_pushcclosure(L, watch_cancel, 1);  // the cancel closure keeps the holder
  lua_remove(L, 4);
  lua_remove(L, 2);
  return 2;  // ready, cancel
}

// conch.fd_read(fd [, n]) -> string | nil, message, code
//   One read(2) of up to n bytes (default 4096, at most 1 MiB): the bytes
//   read, "" at end of file. Call it once fd polls readable (fd_watch): on a
//   descriptor with nothing to read it blocks the loop (or, non-blocking,
//   is nil, message, "UNAVAILABLE").
int l_fd_read(lua_State* L) {
  lua_Integer fd = luaL_checkinteger(L, 1);
  luaL_argcheck(L, fd >= 0 && fd <= INT32_MAX, 1, "not a file descriptor (an integer >= 0)");
  lua_Integer n = luaL_optinteger(L, 2, 4096);
  luaL_argcheck(L, n >= 1 && n <= (1 << 20), 2, "byte count must be 1 to 1048576");
  luaL_Buffer b;
  char* p = luaL_buffinitsize(L, &b, static_cast<std::size_t>(n));
  ssize_t got;
  do got = ::read(static_cast<int>(fd), p, static_cast<std::size_t>(n));
  while (got < 0 && errno == EINTR);
  if (got < 0) {
    int e = errno;
    lua_pushnil(L);
    lua_pushfstring(L, "conch.fd_read: %s", std::strerror(e));
    lua_pushstring(L, e == EAGAIN || e == EWOULDBLOCK ? "UNAVAILABLE"
                      : e == EBADF                    ? "INVALID_ARGUMENT"
                                                      : "INTERNAL");
    return 3;
  }
  luaL_pushresultsize(&b, static_cast<std::size_t>(got));
  return 1;
}

const luaL_Reg fd_functions[] = {{"fd_watch", l_fd_watch}, {"fd_read", l_fd_read}, {nullptr, nullptr}};

}  // namespace

void add_fd_functions(lua_State* L, host* h) { set_closures(L, h, fd_functions); }

}  // namespace conch::lua::detail
