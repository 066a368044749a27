// lua/lsocketlib.cpp
// `require "lsocket"` served by conch: lsocket 1.4's API, arguments, return conventions and constants.
//
// An lsocket socket is what lsocket's is: a non-blocking descriptor that the
// script drives with send/recv/accept, each one syscall that answers at once
// (a count or string, false = would block, nil = closed, nil + message =
// error). That contract needs the real descriptor (getfd, status() reading
// SO_ERROR after a non-blocking connect, bytes-taken counts from send), so
// these sockets are not conch's channel sockets. conch serves the one call
// that waits, select(): it asks poll(2) first and, when nothing is ready,
// waits on the state's home loop with net::wait_ready (io_uring POLL_ADD), so
// inside a conch go block select parks the go block, and outside any go block
// it blocks the caller as lsocket's does while conch's loop runs meanwhile
// (the state's go blocks too; with none alive, it simply blocks in ppoll).
//
// Where conch deliberately differs from lsocket 1.4 (also in lua/DROPINS.md):
// select has no FD_SETSIZE limit (poll, not select(2)); recv/recvfrom with a
// size below 1 is an argument error (lsocket returned nil, "closed");
// resolve and getinterfaces skip non-IP entries (lsocket 1.4 loops forever
// in resolve on one, crashes in getinterfaces on an interface without
// address); connect(port) connects to 127.0.0.1 (lsocket: nil + message);
// descriptors are close-on-exec.
//
// Invariants:
//  - The socket userdata (`lsock`) is trivially destructible; its __gc
//    closes a descriptor still open. close() sets fd to -1, so every later
//    call fails with EBADF's message, as lsocket's do.
//  - Abstract Unix names ("@name") are bound as lsocket binds them: the
//    name's bytes plus a trailing NUL inside the address length, so conch
//    and real lsocket peers find each other.
//  - select's C++ state (descriptor list, the wait's result channel) lives
//    in a heap job owned by a holder userdata and shared with the wait's go
//    block, so a raise or an abandoned wait leaks nothing; functions that
//    may raise run before or after, never across, live C++ locals.
// Lock order: none taken here (call_on_loop waits on the host's mu_).
#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "conch/chan/go.hpp"
#include "conch/net/wait_ready.hpp"
#include "lua/bridge.hpp"

namespace conch::lua::detail {

namespace {

constexpr const char* kSocketMeta = "socket";  // lsocket's registry name and __type
constexpr const char* kEmptyKey = "lsocket_empty_table";
constexpr int kDefaultBacklog = 5;
constexpr int kDefaultTtl = 1;

// ---- the socket userdata ----

struct lsock {
  int fd;
  int family;
  int type;
  bool mcast;
  int protocol;
  bool listening;
};

lsock* check_sock(lua_State* L, int idx) { return static_cast<lsock*>(luaL_checkudata(L, idx, kSocketMeta)); }

// The socket at idx, or null if that is no lsocket socket.
lsock* to_sock(lua_State* L, int idx) { return static_cast<lsock*>(luaL_testudata(L, idx, kSocketMeta)); }

lsock* push_sock(lua_State* L, int fd, int family, int type, bool mcast, int protocol, bool listening) {
  auto* s = static_cast<lsock*>(lua_newuserdatauv(L, sizeof(lsock), 0));
  *s = lsock{fd, family, type, mcast, protocol, listening};
  luaL_setmetatable(L, kSocketMeta);
  return s;
}

int push_error(lua_State* L, const char* msg) {
  lua_pushnil(L);
  lua_pushstring(L, msg);
  return 2;
}

int push_errno(lua_State* L, int err) { return push_error(L, std::strerror(err)); }

// ---- addresses ----

// Room for any address lsocket handles (a Unix path of up to 108 bytes).
struct sockaddr_any {
  union {
    sockaddr sa;
    sockaddr_in in;
    sockaddr_in6 in6;
    sockaddr_un un;
    sockaddr_storage storage;
  };
  socklen_t len = sizeof(sockaddr_storage);
};

// True if `a` is an IPv4 or IPv6 literal: looked up with AI_NUMERICHOST, so
// it never waits for a name server.
bool is_ip_literal(const char* a) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, a, buf) == 1 || inet_pton(AF_INET6, a, buf) == 1;
}

// Fills `out` (and family/protocol) for address `addr` as lsocket reads it: a
// Unix path if it contains '/', an abstract name if it starts with '@', else
// an IP literal or a host name (first getaddrinfo answer). Returns null, or
// the error message (static storage).
const char* make_addr(const char* addr, int type, int port, sockaddr_any& out, int& family, int& protocol) {
  std::size_t n = std::strlen(addr);
  if (std::strchr(addr, '/') != nullptr || addr[0] == '@') {
    if (n >= sizeof(out.un.sun_path)) return "unix domain path too long";
    std::memset(&out.un, 0, sizeof(out.un));
    out.un.sun_family = AF_UNIX;
    std::memcpy(out.un.sun_path, addr, n);
    if (addr[0] == '@') out.un.sun_path[0] = '\0';  // Linux abstract name
    // lsocket's length: the name and its terminating NUL (part of an abstract name).
    out.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + n + 1);
    family = AF_UNIX;
    protocol = 0;
    return nullptr;
  }
  addrinfo hint{};
  hint.ai_family = AF_UNSPEC;
  hint.ai_socktype = type;
  hint.ai_protocol = type == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP;
  if (is_ip_literal(addr)) hint.ai_flags = AI_NUMERICHOST;
  char svc[16];
  std::snprintf(svc, sizeof svc, "%d", port);
  addrinfo* info = nullptr;
  int err = getaddrinfo(addr, svc, &hint, &info);
  if (err != 0) return gai_strerror(err);
  const char* msg = nullptr;
  if (info->ai_family != AF_INET && info->ai_family != AF_INET6) {
    msg = "unknown address family";
  } else {
    std::memcpy(&out.storage, info->ai_addr, info->ai_addrlen);
    out.len = info->ai_addrlen;
    family = info->ai_family;
    protocol = info->ai_protocol;
  }
  freeaddrinfo(info);
  return msg;
}

// The address part of sa as text (IP literal, or the Unix path; an abstract
// name, which starts with NUL, reads as ""), into buf.
const char* addr_text(const sockaddr* sa, socklen_t len, char* buf, std::size_t cap) {
  switch (sa->sa_family) {
    case AF_INET:
      return inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf,
                       static_cast<socklen_t>(cap));
    case AF_INET6:
      return inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, buf,
                       static_cast<socklen_t>(cap));
    case AF_UNIX: {
      buf[0] = '\0';
      std::size_t off = offsetof(sockaddr_un, sun_path);
      if (len > off) {
        std::size_t n = std::min<std::size_t>(len - off, cap - 1);
        const char* p = reinterpret_cast<const sockaddr_un*>(sa)->sun_path;
        n = strnlen(p, n);
        std::memcpy(buf, p, n);
        buf[n] = '\0';
      }
      return buf;
    }
    default:
      return nullptr;
  }
}

int port_of(const sockaddr* sa) {
  if (sa->sa_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(sa)->sin_port);
  if (sa->sa_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(sa)->sin6_port);
  return 0;
}

const char* family_name(int family) {
  switch (family) {
    case AF_INET: return "inet";
    case AF_INET6: return "inet6";
    case AF_UNIX: return "unix";
    default: return nullptr;
  }
}

// Pushes {family=, addr=, port=} (no port for Unix) for sa.
void push_sockname(lua_State* L, const sockaddr* sa, socklen_t len) {
  char buf[sizeof(sockaddr_un) + 1];
  lua_createtable(L, 0, 3);
  if (sa->sa_family != AF_UNIX) {
    lua_pushinteger(L, port_of(sa));
    lua_setfield(L, -2, "port");
  }
  if (const char* f = family_name(sa->sa_family)) {
    lua_pushstring(L, f);
    lua_setfield(L, -2, "family");
  }
  if (const char* s = addr_text(sa, len, buf, sizeof buf)) {
    lua_pushstring(L, s);
    lua_setfield(L, -2, "addr");
  }
}

// ---- constructors ----

// Reads lsocket's optional leading type argument ("tcp", "udp", "mcast",
// any case) at idx; returns the index of the next argument.
int read_type(lua_State* L, int idx, int& type, bool& mcast) {
  type = SOCK_STREAM;
  mcast = false;
  if (lua_type(L, idx) != LUA_TSTRING) return idx;
  const char* t = lua_tostring(L, idx);
  if (strcasecmp(t, "tcp") == 0) return idx + 1;
  if (strcasecmp(t, "udp") == 0) {
    type = SOCK_DGRAM;
    return idx + 1;
  }
  if (strcasecmp(t, "mcast") == 0) {
    type = SOCK_DGRAM;
    mcast = true;
    return idx + 1;
  }
  return idx;  // not a type: the address
}

// A port argument: absent or nil is -1 (none given); else 0..65535.
int read_port(lua_State* L, int idx, const char* fn) {
  lua_Number p = luaL_optnumber(L, idx, -1);
  if (p == -1) return -1;
  if (!(p >= 0 && p <= 65535)) luaL_error(L, "bad argument #%d to '%s' (port out of range)", idx, fn);
  return static_cast<int>(p);
}

// A new non-blocking, close-on-exec socket with SO_REUSEADDR, as lsocket sets them up.
int new_socket(int family, int type, int protocol) {
  int fd = ::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  if (fd < 0) return -1;
  int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  return fd;
}

// Closes fd keeping errno (the error being reported).
void close_keep_errno(int fd) {
  int e = errno;
  ::close(fd);
  errno = e;
}

// lsocket.bind([type], [address], [port], [backlog]) -> socket | nil, err
int l_bind(lua_State* L) {
  int type = SOCK_STREAM;
  bool mcast = false;
  int top = read_type(L, 1, type, mcast);
  const char* addr = nullptr;
  if (lua_type(L, top) == LUA_TSTRING) addr = lua_tostring(L, top++);
  int port = read_port(L, top++, "bind");
  lua_Integer backlog = luaL_optinteger(L, top, kDefaultBacklog);
  sockaddr_any sa;
  int family = AF_INET;
  int protocol = 0;
  if (addr != nullptr) {
    if (const char* err = make_addr(addr, type, port, sa, family, protocol)) return push_error(L, err);
  } else {
    // No address: IPv4 INADDR_ANY.
    std::memset(&sa.in, 0, sizeof sa.in);
    sa.in.sin_family = AF_INET;
    sa.in.sin_addr.s_addr = htonl(INADDR_ANY);
    sa.in.sin_port = htons(static_cast<std::uint16_t>(port < 0 ? 0 : port));
    sa.len = sizeof sa.in;
  }
  if (family != AF_UNIX && port == -1) return luaL_argerror(L, top - 1, "number expected, got no value");
  if (mcast && family == AF_UNIX) return push_error(L, "multicast not available for unix domain sockets.");
  int fd = new_socket(family, type, protocol);
  if (fd < 0) return push_errno(L, errno);
  int fail = 0;
  if (mcast) {
    int on = 1;
    if (family == AF_INET) {
      // An IPv4 "multicast" socket of lsocket's is a broadcast socket.
      if (setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &on, sizeof on) < 0) fail = errno;
    } else {
      ipv6_mreq mr{};
      mr.ipv6mr_multiaddr = sa.in6.sin6_addr;
      mr.ipv6mr_interface = 0;
      if (setsockopt(fd, IPPROTO_IPV6, IPV6_ADD_MEMBERSHIP, &mr, sizeof mr) < 0) fail = errno;
    }
  }
  if (fail == 0 && ::bind(fd, &sa.sa, sa.len) < 0) fail = errno;
  // Only stream sockets listen.
  if (fail == 0 && type == SOCK_STREAM &&
      ::listen(fd, static_cast<int>(std::clamp<lua_Integer>(backlog, 0, 65535))) < 0)
    fail = errno;
  if (fail != 0) {
    ::close(fd);
    return push_errno(L, fail);
  }
  push_sock(L, fd, family, type, mcast, protocol, true);
  return 1;
}

// lsocket.connect([type], address, port, [ttl]) -> socket (connecting) | nil, err
int l_connect(lua_State* L) {
  int type = SOCK_STREAM;
  bool mcast = false;
  int top = read_type(L, 1, type, mcast);
  const char* addr = nullptr;
  int port = -1;
  if (lua_type(L, top) == LUA_TNUMBER && lua_isnoneornil(L, top + 1)) {
    // connect([type,] port): this machine (lsocket 1.4 reads the number as an address and fails).
    addr = "127.0.0.1";
    port = read_port(L, top, "connect");
    top -= 1;  // the ttl, if any, would follow the port
  } else {
    addr = luaL_checkstring(L, top);
    port = read_port(L, top + 1, "connect");
  }
  lua_Integer ttl = luaL_optinteger(L, top + 2, kDefaultTtl);
  sockaddr_any sa;
  int family = AF_INET;
  int protocol = 0;
  if (const char* err = make_addr(addr, type, port, sa, family, protocol)) return push_error(L, err);
  if (family != AF_UNIX && port == -1) return luaL_argerror(L, top + 1, "number expected, got no value");
  if (mcast && family == AF_UNIX) return push_error(L, "multicast not available for unix domain sockets.");
  int fd = new_socket(family, type, protocol);
  if (fd < 0) return push_errno(L, errno);
  if (mcast) {
    int on = 1;
    int hops = static_cast<int>(ttl);
    if (setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &on, sizeof on) < 0 ||
        (family == AF_INET ? setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &hops, sizeof hops)
                           : setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof hops)) < 0) {
      close_keep_errno(fd);
      return push_errno(L, errno);
    }
  }
  // Non-blocking: EINPROGRESS is the connecting state (select for write, then status()).
  if (::connect(fd, &sa.sa, sa.len) < 0 && errno != EINPROGRESS) {
    close_keep_errno(fd);
    return push_errno(L, errno);
  }
  push_sock(L, fd, family, type, mcast, protocol, false);
  return 1;
}

// ---- socket methods ----

// sock:info([what]) -> table | nil, err
int m_info(lua_State* L) {
  lsock* s = check_sock(L, 1);
  const char* what = luaL_optstring(L, 2, nullptr);
  if (what == nullptr) {
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, s->fd);
    lua_setfield(L, -2, "fd");
    const char* f = family_name(s->family);
    lua_pushstring(L, f != nullptr ? f : "unknown");
    lua_setfield(L, -2, "family");
    lua_pushstring(L, s->type == SOCK_STREAM ? "tcp" : s->type == SOCK_DGRAM ? "udp" : "unknown");
    lua_setfield(L, -2, "type");
    lua_pushboolean(L, s->listening);
    lua_setfield(L, -2, "listening");
    lua_pushboolean(L, s->mcast);
    lua_setfield(L, -2, "multicast");
    return 1;
  }
  bool peer = strcasecmp(what, "peer") == 0;
  if (!peer && strcasecmp(what, "socket") != 0) {
    lua_pushnil(L);  // lsocket: an unknown `what` gives nil
    return 1;
  }
  sockaddr_any sa;
  int r = peer ? getpeername(s->fd, &sa.sa, &sa.len) : getsockname(s->fd, &sa.sa, &sa.len);
  if (r < 0) return push_errno(L, errno);
  push_sockname(L, &sa.sa, sa.len);
  return 1;
}

// sock:status() -> true | nil, err (the pending error: a failed non-blocking connect)
int m_status(lua_State* L) {
  lsock* s = check_sock(L, 1);
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return push_errno(L, errno);
  if (err != 0) return push_errno(L, err);
  lua_pushboolean(L, 1);
  return 1;
}

// sock:getfd() -> fd
int m_getfd(lua_State* L) {
  lua_pushinteger(L, check_sock(L, 1)->fd);
  return 1;
}

// sock:setfd(-1) -> true | nil, err (forgets the descriptor without closing it)
int m_setfd(lua_State* L) {
  lsock* s = check_sock(L, 1);
  lua_Integer fd = luaL_checkinteger(L, 2);
  if (fd != -1) return push_error(L, "bad argument #1 to 'setfd' (invalid fd)");
  s->fd = -1;
  lua_pushboolean(L, 1);
  return 1;
}

// sock:accept() -> socket, addr, port | false (nothing pending) | nil, err
int m_accept(lua_State* L) {
  lsock* s = check_sock(L, 1);
  sockaddr_any sa;
  int fd = ::accept4(s->fd, &sa.sa, &sa.len, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      lua_pushboolean(L, 0);
      return 1;
    }
    return push_errno(L, errno);
  }
  // The listener's family: an unnamed Unix client's address may carry none.
  push_sock(L, fd, s->family, s->type, s->mcast, s->protocol, false);
  if (sa.sa.sa_family == AF_INET || sa.sa.sa_family == AF_INET6) {
    char buf[INET6_ADDRSTRLEN];
    lua_pushstring(L, addr_text(&sa.sa, sa.len, buf, sizeof buf));
    lua_pushinteger(L, port_of(&sa.sa));
  } else {
    lua_pushnil(L);
    lua_pushnil(L);
  }
  return 3;
}

// The size argument of recv/recvfrom (default LUAL_BUFFERSIZE, as lsocket's).
std::size_t read_size(lua_State* L, int idx) {
  lua_Integer n = luaL_optinteger(L, idx, LUAL_BUFFERSIZE);
  luaL_argcheck(L, n >= 1 && n <= 0x7fffffff, idx, "size must be between 1 and 2^31-1");
  return static_cast<std::size_t>(n);
}

// recv (from null) or recvfrom into a new string of at most the size
// argument: pushes the string and returns 0, or pushes lsocket's other
// answer (false: nothing yet; nil: closed, or an empty datagram, as lsocket
// reports it; nil + message) and returns how many values that is.
int recv_push(lua_State* L, sockaddr_any* from) {
  lsock* s = check_sock(L, 1);
  std::size_t size = read_size(L, 2);
  luaL_Buffer b;
  char* p = luaL_buffinitsize(L, &b, size);
  ssize_t n = from != nullptr ? ::recvfrom(s->fd, p, size, 0, &from->sa, &from->len) : ::recv(s->fd, p, size, 0);
  if (n < 0) {
    int e = errno;
    if (e == EAGAIN || e == EWOULDBLOCK) {
      lua_pushboolean(L, 0);
      return 1;
    }
    return push_errno(L, e);
  }
  if (n == 0) {
    lua_pushnil(L);
    return 1;
  }
  luaL_pushresultsize(&b, static_cast<std::size_t>(n));
  return 0;
}

// sock:recv([size]) -> string | false (nothing yet) | nil (closed) | nil, err
int m_recv(lua_State* L) {
  int r = recv_push(L, nullptr);
  return r != 0 ? r : 1;
}

// sock:recvfrom([size]) -> string, addr, port | false | nil, err
int m_recvfrom(lua_State* L) {
  sockaddr_any sa;
  if (int r = recv_push(L, &sa); r != 0) return r;
  char buf[sizeof(sockaddr_un) + 1];
  const char* a = addr_text(&sa.sa, sa.len, buf, sizeof buf);
  lua_pushstring(L, a != nullptr ? a : "");
  lua_pushinteger(L, port_of(&sa.sa));
  return 3;
}

// Pushes what a send returned: the count, false (would block), or nil, err.
int push_sent(lua_State* L, ssize_t n) {
  if (n >= 0) {
    lua_pushinteger(L, n);
    return 1;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK) {
    lua_pushboolean(L, 0);
    return 1;
  }
  return push_errno(L, errno);
}

// sock:send(string) -> bytes sent | false (not ready) | nil, err
int m_send(lua_State* L) {
  lsock* s = check_sock(L, 1);
  std::size_t len = 0;
  const char* data = luaL_checklstring(L, 2, &len);
  return push_sent(L, ::send(s->fd, data, len, MSG_NOSIGNAL));
}

// sock:sendto(string, address, port) -> bytes sent | false | nil, err
int m_sendto(lua_State* L) {
  lsock* s = check_sock(L, 1);
  std::size_t len = 0;
  const char* data = luaL_checklstring(L, 2, &len);
  const char* addr = luaL_checkstring(L, 3);
  lua_Number pn = luaL_checknumber(L, 4);
  luaL_argcheck(L, pn >= 0 && pn <= 65535, 4, "port out of range");
  sockaddr_any sa;
  int family = 0;
  int protocol = 0;
  int type = s->type == SOCK_STREAM ? SOCK_STREAM : SOCK_DGRAM;
  if (const char* err = make_addr(addr, type, static_cast<int>(pn), sa, family, protocol))
    return push_error(L, err);
  return push_sent(L, ::sendto(s->fd, data, len, MSG_NOSIGNAL, &sa.sa, sa.len));
}

// sock:close() -> true | nil, err
int m_close(lua_State* L) {
  lsock* s = check_sock(L, 1);
  int r = s->fd >= 0 ? ::close(s->fd) : 0;
  int e = errno;
  s->fd = -1;
  s->type = -1;
  s->listening = false;
  if (r < 0) return push_errno(L, e);
  lua_pushboolean(L, 1);
  return 1;
}

int m_gc(lua_State* L) {
  auto* s = static_cast<lsock*>(lua_touserdata(L, 1));
  if (s->fd >= 0) ::close(s->fd);
  s->fd = -1;
  return 0;
}

int m_tostring(lua_State* L) {
  lua_pushfstring(L, "%s: %p", kSocketMeta, static_cast<void*>(check_sock(L, 1)));
  return 1;
}

// ---- select ----

// The C++ side of one select: shared by the holder (Lua) and the wait's go block.
struct select_job {
  std::vector<pollfd> fds;                // read entries, then write entries
  std::size_t nread = 0;                  // how many of fds are read entries
  std::int64_t timeout_ns = -1;           // -1: no limit
  conch::chan<std::int64_t> result{1};    // 1 ready, 0 time out, -1 error
  std::string error;                      // the wait's error; written before result is sent
  std::vector<std::pair<int, int>> hits;  // (fd, table index): scratch for the result tables
};
struct select_ref {
  std::shared_ptr<select_job> j;
};

constexpr short kReadReady = POLLIN | POLLHUP | POLLERR;  // select(2)'s read set
constexpr short kWriteReady = POLLOUT | POLLERR;          // select(2)'s write set

conch::task<void> select_body(std::shared_ptr<select_job> j) {
  absl::StatusOr<int> n = co_await net::wait_ready(j->fds, std::chrono::nanoseconds(j->timeout_ns));
  std::int64_t r = 0;
  if (!n.ok()) {
    j->error = std::string(n.status().message());
    r = -1;
  } else if (*n > 0) {
    r = 1;
  }
  j->result.try_send(r);
  j->result.close();
}

// Appends a pollfd for every open socket of the table at idx (a list of
// sockets up to the first nil). Raises on a non-socket entry.
void gather(lua_State* L, int idx, select_job* j, short events) {
  for (int i = 1;; ++i) {
    lua_rawgeti(L, idx, i);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      return;
    }
    lsock* s = to_sock(L, -1);
    lua_pop(L, 1);
    if (s == nullptr) luaL_error(L, "bad argument to 'select' (tables can only contain sockets)");
    if (s->fd < 0) continue;  // closed sockets are ignored
    bool ok = true;
    try {
      j->fds.push_back(pollfd{s->fd, events, 0});
    } catch (...) {
      ok = false;
    }
    if (!ok) raise_no_memory(L);
  }
}

// Pushes the sockets of the table at idx whose entry in fds[from, to) is
// ready (`mask`), in descriptor order, each descriptor once (as lsocket's
// select(2) answer reads). Sockets whose descriptor changed since gather are
// left out.
void push_ready(lua_State* L, int idx, select_job* j, std::size_t from, std::size_t to, short mask) {
  j->hits.clear();
  std::size_t k = from;
  for (int i = 1; k < to; ++i) {
    lua_rawgeti(L, idx, i);
    lsock* s = to_sock(L, -1);
    lua_pop(L, 1);
    if (s == nullptr) break;
    if (s->fd < 0) continue;
    const pollfd& p = j->fds[k++];
    if (p.fd == s->fd && (p.revents & mask) != 0) j->hits.emplace_back(p.fd, i);  // reserved: no throw
  }
  std::sort(j->hits.begin(), j->hits.end());
  lua_createtable(L, static_cast<int>(j->hits.size()), 0);
  int n = 0;
  int last_fd = -1;
  for (const auto& [fd, i] : j->hits) {
    if (fd == last_fd) continue;
    last_fd = fd;
    lua_rawgeti(L, idx, i);
    lua_rawseti(L, -2, ++n);
  }
}

// After a poll: pushes lsocket's answer (the ready tables, false on time
// out, nil + message on error). Stack: 1 read, 2 write (tables or not).
int push_select_result(lua_State* L, select_job* j, int polled) {
  if (polled < 0) return push_errno(L, errno);
  bool any = false;
  for (std::size_t k = 0; k < j->fds.size(); ++k) {
    const pollfd& p = j->fds[k];
    if ((p.revents & POLLNVAL) != 0) return push_errno(L, EBADF);  // as select(2) fails
    if ((p.revents & (k < j->nread ? kReadReady : kWriteReady)) != 0) any = true;
  }
  if (!any) {
    lua_pushboolean(L, 0);
    return 1;
  }
  bool has_read = lua_istable(L, 1);
  bool has_write = lua_istable(L, 2);
  int nret = 0;
  if (has_read) {
    push_ready(L, 1, j, 0, j->nread, kReadReady);
    nret = 1;
  }
  if (has_write) {
    if (!has_read) lua_getfield(L, LUA_REGISTRYINDEX, kEmptyKey);
    push_ready(L, 2, j, j->nread, j->fds.size(), kWriteReady);
    nret = 2;
  }
  return nret;
}

int poll_now(select_job* j) {
  for (pollfd& p : j->fds) p.revents = 0;
  return ::poll(j->fds.data(), static_cast<nfds_t>(j->fds.size()), 0);
}

// Waits in ppoll(2) on the calling thread until something is ready or the
// job's timeout passes (signals do not cut it short); returns what poll does.
int poll_blocking(select_job* j) {
  const bool bounded = j->timeout_ns >= 0;
  const std::int64_t deadline = bounded ? conch::detail::now_ns() + j->timeout_ns : 0;
  for (;;) {
    timespec ts{};
    if (bounded) {
      std::int64_t left = std::max<std::int64_t>(deadline - conch::detail::now_ns(), 0);
      ts.tv_sec = static_cast<time_t>(left / 1'000'000'000);
      ts.tv_nsec = static_cast<long>(left % 1'000'000'000);
    }
    for (pollfd& p : j->fds) p.revents = 0;
    int n = ::ppoll(j->fds.data(), static_cast<nfds_t>(j->fds.size()), bounded ? &ts : nullptr, nullptr);
    if (n >= 0 || errno != EINTR) return n;
  }
}

// After the wait's go block answered. Stack: 1 read, 2 write, 3 holder.
int k_select(lua_State* L, int, lua_KContext ctx) {
  request* r = host_from(ctx)->op_request();
  r->clear();
  auto* ref = static_cast<select_ref*>(static_cast<holder*>(lua_touserdata(L, 3))->p);
  select_job* j = ref->j.get();
  // The block has sent its answer (or was abandoned at shutdown); ask poll(2)
  // for the exact one: readiness is level-triggered, nothing consumed it.
  if (!j->error.empty()) return push_error(L, j->error.c_str());
  return push_select_result(L, j, poll_now(j));
}

// lsocket.select([read [, write]] [, timeout]) -> read, write | false (time out) | nil, err
int l_select(lua_State* L) {
  host* h = host_of(L);
  int nargs = lua_gettop(L);
  int top = 1;
  bool has_read = lua_istable(L, 1);
  if (has_read) top = 2;
  bool has_write = lua_istable(L, 2);
  if (has_write) top = 3;
  lua_Number timeout = luaL_optnumber(L, top, -1);
  if (top < nargs) return luaL_error(L, "bad argument to 'select' (invalid option)");
  lua_settop(L, 2);
  holder* hd = push_holder(L);  // index 3
  select_job* j = nullptr;
  try {
    auto ref = std::make_unique<select_ref>();
    ref->j = std::make_shared<select_job>();
    j = ref->j.get();
    hd->p = ref.release();
    hd->del = &delete_as<select_ref>;
  } catch (...) {
    // Out of memory: j stays null.
  }
  if (j == nullptr) return raise_no_memory(L);
  if (has_read) gather(L, 1, j, POLLIN);
  j->nread = j->fds.size();
  if (has_write) gather(L, 2, j, POLLOUT);
  bool reserved = true;
  try {
    j->hits.reserve(j->fds.size());
  } catch (...) {
    reserved = false;
  }
  if (!reserved) return raise_no_memory(L);
  if (j->fds.empty() && timeout < 0) return push_error(L, "no open sockets to check and no timeout set");
  // A timeout in seconds (millisecond resolution in lsocket; finer here); < 0: none.
  j->timeout_ns = timeout < 0 ? -1 : std::max<std::int64_t>(ms_to_ns(timeout * 1000), 0);
  int polled = poll_now(j);
  if (polled != 0 || j->timeout_ns == 0) return push_select_result(L, j, polled);
  if (h->current() == nullptr && h->live_tasks() == 0)
    // Outside any go block, and the state has none that could want the
    // baton: block in poll(2) as lsocket does (conch's loop runs on its own
    // thread meanwhile). Saves two thread handoffs per wait.
    return push_select_result(L, j, poll_blocking(j));
  // Nothing ready: wait on the home loop (parks a go block, or blocks the
  // outside thread while the loop runs).
  struct start_args {
    select_ref* ref;
    bool ok;
  } a{static_cast<select_ref*>(hd->p), false};
  h->call_on_loop(
      [](void* p) noexcept {
        auto* s = static_cast<start_args*>(p);
        try {
          conch::go(select_body(s->ref->j));
          s->ok = true;
        } catch (...) {
          // Out of memory: s->ok stays false.
        }
      },
      &a);
  if (!a.ok) return raise_no_memory(L);
  return recv_core(L, h, conch::detail::get_core(j->result), elem::int64, &k_select);
}

// ---- resolve, getinterfaces ----

// lsocket.resolve(name) -> {{family=, addr=}, ...} | nil, err (blocks for a name server)
int l_resolve(lua_State* L) {
  const char* name = luaL_checkstring(L, 1);
  addrinfo hint{};
  hint.ai_family = AF_UNSPEC;
  hint.ai_socktype = SOCK_STREAM;  // one entry per address, as lsocket's
  hint.ai_protocol = IPPROTO_TCP;
  if (is_ip_literal(name)) hint.ai_flags = AI_NUMERICHOST;
  addrinfo* info = nullptr;
  int err = getaddrinfo(name, nullptr, &hint, &info);
  if (err != 0) return push_error(L, gai_strerror(err));
  // Copy the answer out before any Lua call that may raise (info must be freed).
  struct entry {
    int family;
    char addr[INET6_ADDRSTRLEN];
  };
  std::size_t count = 0;
  for (addrinfo* p = info; p != nullptr; p = p->ai_next)
    if (p->ai_family == AF_INET || p->ai_family == AF_INET6) ++count;
  auto* list = static_cast<entry*>(lua_newuserdatauv(L, sizeof(entry) * (count + 1), 0));  // may raise:
  std::size_t n = 0;  // ... then info leaks once, on out of memory only
  for (addrinfo* p = info; p != nullptr; p = p->ai_next) {
    if (p->ai_family != AF_INET && p->ai_family != AF_INET6) continue;  // lsocket 1.4 hangs on these
    list[n].family = p->ai_family;
    if (addr_text(p->ai_addr, p->ai_addrlen, list[n].addr, sizeof list[n].addr) == nullptr) list[n].addr[0] = '\0';
    ++n;
  }
  freeaddrinfo(info);
  lua_createtable(L, static_cast<int>(n), 0);
  for (std::size_t i = 0; i < n; ++i) {
    lua_createtable(L, 0, 2);
    lua_pushstring(L, family_name(list[i].family));
    lua_setfield(L, -2, "family");
    lua_pushstring(L, list[i].addr);
    lua_setfield(L, -2, "addr");
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  return 1;
}

// lsocket.getinterfaces() -> {{name=, family=, addr=, mask=}, ...} | nil, err
int l_getinterfaces(lua_State* L) {
  ifaddrs* ifa = nullptr;
  if (getifaddrs(&ifa) < 0) return push_errno(L, errno);
  struct entry {
    char name[64];
    int family;
    char addr[INET6_ADDRSTRLEN];
    char mask[INET6_ADDRSTRLEN];
  };
  std::size_t count = 0;
  for (ifaddrs* p = ifa; p != nullptr; p = p->ifa_next) ++count;
  // A userdata as scratch, so a raise (out of memory) leaks at most the list.
  auto* list = static_cast<entry*>(lua_newuserdatauv(L, sizeof(entry) * (count + 1), 0));
  std::size_t n = 0;
  for (ifaddrs* p = ifa; p != nullptr; p = p->ifa_next) {
    // No address (lsocket 1.4 crashes), or not IP: skipped.
    if (p->ifa_addr == nullptr || (p->ifa_addr->sa_family != AF_INET && p->ifa_addr->sa_family != AF_INET6))
      continue;
    entry& e = list[n];
    std::snprintf(e.name, sizeof e.name, "%s", p->ifa_name);
    e.family = p->ifa_addr->sa_family;
    socklen_t len = e.family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
    if (addr_text(p->ifa_addr, len, e.addr, sizeof e.addr) == nullptr) continue;
    e.mask[0] = '\0';
    if (p->ifa_netmask == nullptr || addr_text(p->ifa_netmask, len, e.mask, sizeof e.mask) == nullptr)
      e.mask[0] = '\0';
    ++n;
  }
  freeifaddrs(ifa);
  lua_createtable(L, static_cast<int>(n), 0);
  for (std::size_t i = 0; i < n; ++i) {
    lua_createtable(L, 0, 4);
    lua_pushstring(L, list[i].name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, family_name(list[i].family));
    lua_setfield(L, -2, "family");
    lua_pushstring(L, list[i].addr);
    lua_setfield(L, -2, "addr");
    if (list[i].mask[0] != '\0') {
      lua_pushstring(L, list[i].mask);
      lua_setfield(L, -2, "mask");
    }
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  return 1;
}

// ---- the module ----

int ignore_newindex(lua_State*) { return 0; }

const luaL_Reg socket_methods[] = {
    {"info", m_info},         {"status", m_status}, {"getfd", m_getfd}, {"setfd", m_setfd},
    {"accept", m_accept},     {"recv", m_recv},     {"recvfrom", m_recvfrom},
    {"send", m_send},         {"sendto", m_sendto}, {"close", m_close}, {nullptr, nullptr},
};

const luaL_Reg lsocket_functions[] = {
    {"connect", l_connect},   {"bind", l_bind}, {"select", l_select}, {"resolve", l_resolve},
    {"getinterfaces", l_getinterfaces}, {nullptr, nullptr},
};

}  // namespace

int open_lsocket(lua_State* L) {
  host* h = host::find(L);
  if (h == nullptr) return luaL_error(L, "lsocket: this Lua state has no conch host (require \"conch\" first)");
  luaL_checkstack(L, 8, nullptr);
  lua_createtable(L, 0, 8);
  set_closures(L, h, lsocket_functions);  // select needs the host; the rest ignore it
  lua_pushliteral(L, "0.0.0.0");
  lua_setfield(L, -2, "INADDR_ANY");
  lua_pushliteral(L, "::0");
  lua_setfield(L, -2, "IN6ADDR_ANY");
  lua_pushliteral(L, "1.4.1");
  lua_setfield(L, -2, "_VERSION");
  // The socket metatable (once per state).
  if (luaL_newmetatable(L, kSocketMeta) != 0) {
    lua_pushcfunction(L, m_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, m_tostring);
    lua_setfield(L, -2, "__tostring");
    luaL_newlib(L, socket_methods);
    lua_setfield(L, -2, "__index");
    lua_pushstring(L, kSocketMeta);
    lua_setfield(L, -2, "__type");
  }
  lua_pop(L, 1);
  // The read-only empty table select returns for `read` when only `write` was given.
  if (lua_getfield(L, LUA_REGISTRYINDEX, kEmptyKey) == LUA_TNIL) {
    lua_newtable(L);
    lua_createtable(L, 0, 2);
    lua_pushcfunction(L, ignore_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, kEmptyKey);
  }
  lua_pop(L, 1);
  return 1;
}

void preload_lsocket(lua_State* L) {
  int top = lua_gettop(L);
  if (lua_getglobal(L, "package") == LUA_TTABLE && lua_getfield(L, -1, "preload") == LUA_TTABLE) {
    lua_pushcfunction(L, open_lsocket);
    lua_setfield(L, -2, "lsocket");
  }
  lua_settop(L, top);
}

}  // namespace conch::lua::detail
