// conch/net/address.hpp
// address: a socket address chosen from a string as lsocket chooses; resolve() and interfaces().
//
//   auto a = conch::net::address::parse("127.0.0.1:9000");  // numeric, no lookup
//   a->to_string();   // "127.0.0.1:9000"     a->port();  // 9000
//   auto all = co_await conch::net::resolve("localhost");    // names: on the blocking pool
//   auto ifs = conch::net::interfaces();                     // name, family, addr, netmask
//
// The forms an address string may take (the transport follows from the form):
//   "127.0.0.1:9000"   IPv4 host:port          "[::1]:9000"   IPv6 in brackets
//   "localhost:9000"   a name (connect and resolve look it up on the blocking
//                      pool; listen and bind_udp look it up in the call,
//                      blocking the caller; "localhost" there is 127.0.0.1)
//   "*:9000", ":9000"  every local IPv4 address (listen/bind_udp)
//   "/tmp/app.sock"    a Unix socket path: any string containing '/'
//   "@name"            a Linux abstract Unix socket (no file)
// Port 0 asks the kernel for a free port; local() then reports the real one.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "conch/core/task.hpp"

namespace conch::net {

/// One socket address: IPv4, IPv6, a Unix path or a Linux abstract name.
/// A small value type (trivially copyable); the default is the empty
/// address (family AF_UNSPEC), which is also what an unnamed Unix peer gives.
class address {
 public:
  address() noexcept;

  /// Parses a numeric address ("1.2.3.4:80", "[::1]:80", "/path", "@name";
  /// "*:80" and ":80" mean 0.0.0.0). Never looks a name up: a host name gives
  /// kInvalidArgument saying to use resolve(). The port is required for IP.
  static absl::StatusOr<address> parse(std::string_view text);
  /// Wraps a kernel socket address (as filled by accept or getsockname).
  static address from_sockaddr(const sockaddr* sa, socklen_t len) noexcept;

  /// "127.0.0.1:9000", "[::1]:9000", "/tmp/x.sock", "@name"; "" when empty
  /// or an unnamed Unix socket.
  std::string to_string() const;
  /// The host part without port or brackets ("::1"), the path, or "@name".
  std::string host() const;
  /// The IP port; 0 for Unix and empty addresses.
  int port() const noexcept;
  /// The same address with another port (IP only; others are returned as is).
  address with_port(int port) const noexcept;

  /// AF_INET, AF_INET6, AF_UNIX or AF_UNSPEC.
  int family() const noexcept;
  bool empty() const noexcept { return family() == AF_UNSPEC; }
  bool is_ip() const noexcept { return family() == AF_INET || family() == AF_INET6; }
  bool is_unix() const noexcept { return family() == AF_UNIX; }
  /// A Linux abstract Unix address ("@name").
  bool is_abstract() const noexcept;

  /// The kernel form, for bind/connect/sendmsg.
  const sockaddr* data() const noexcept { return reinterpret_cast<const sockaddr*>(&ss_); }
  socklen_t size() const noexcept { return len_; }

  friend bool operator==(const address& a, const address& b) noexcept;

 private:
  sockaddr_storage ss_;
  socklen_t len_;
};

/// Looks `host` up (getaddrinfo on the runtime's blocking pool, so the loop
/// never blocks) and returns every address it names, IPv4 and IPv6, without
/// duplicates. `host` may carry a port ("example.org:80", "[::1]:80"), which
/// every result then has; without one the port is 0. A numeric host or a
/// Unix address is returned as is without a lookup. Errors: kNotFound for an
/// unknown name, kUnavailable for a temporary resolver failure,
/// kInvalidArgument for a malformed string. Must be awaited on a runtime
/// thread; resumes there.
task<absl::StatusOr<std::vector<address>>> resolve(std::string_view host);

/// One address of one network interface (lsocket getinterfaces()).
struct interface_info {
  std::string name;     ///< "lo", "eth0"
  int family = 0;       ///< AF_INET or AF_INET6
  address addr;         ///< the interface's address (port 0)
  address netmask;      ///< its netmask (port 0)
  unsigned index = 0;   ///< interface index (if_nametoindex)
  bool up = false;      ///< IFF_UP
  bool loopback = false;   ///< IFF_LOOPBACK
  bool multicast = false;  ///< IFF_MULTICAST
};

/// Every IPv4 and IPv6 address of every interface (getifaddrs); never blocks.
absl::StatusOr<std::vector<interface_info>> interfaces();

}  // namespace conch::net
