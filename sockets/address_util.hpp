// sockets/address_util.hpp
// Parsing address strings into a spec (what lsocket would pick) and errno-to-Status helpers.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "conch/net/address.hpp"
#include "conch/net/framing.hpp"

namespace conch::net::detail {

/// An address string taken apart, before any name lookup.
struct address_spec {
  enum class kind { inet, unix_path, unix_abstract };
  kind k = kind::inet;
  std::string host;          ///< inet: the host without brackets; "" = wildcard
  int port = 0;
  bool numeric = false;      ///< inet: `addr` holds the parsed host
  address addr;              ///< numeric inet, or the Unix address
};

/// Splits `text` by lsocket's rules. `require_port`: IP forms need ":port".
absl::StatusOr<address_spec> parse_spec(std::string_view text, bool require_port);

/// For listen/bind_udp: the addresses to try binding, in order. A numeric
/// address, a wildcard, a Unix path or "localhost" (127.0.0.1) gives one;
/// any other name is looked up here with getaddrinfo, blocking the calling
/// thread (`what` names the call in the error: "listen", "bind_udp").
absl::StatusOr<std::vector<address>> local_addresses(std::string_view text, const char* what);

/// getaddrinfo, blocking: every address of `host` with `port`, deduplicated.
/// `flags` go to addrinfo::ai_flags (AI_PASSIVE for local addresses).
absl::StatusOr<std::vector<address>> lookup_blocking(const std::string& host, int port,
                                                     int flags = 0);

/// "<verb> <a>" for an error message, plus " ('<text>')" when `text` (what
/// the caller passed) is not simply `a` printed: "connect to 127.0.0.1:80
/// ('localhost:80')".
std::string describe(std::string_view verb, const address& a, std::string_view text);

/// Tries `attempt(a)` (returning absl::StatusOr<T>) for each candidate in
/// order and returns the first success; if none succeeds, the last failure.
template <class T, class F>
absl::StatusOr<T> first_ok(const std::vector<address>& candidates, F&& attempt) {
  absl::Status last = absl::InvalidArgumentError("no address to try");
  for (const address& a : candidates) {
    absl::StatusOr<T> r = attempt(a);
    if (r.ok()) return r;
    last = r.status();
  }
  return last;
}

/// absl::ErrnoToStatus's code with "what: strerror" (what names the call and address),
/// the text from strerror_r (thread-safe and visible to TSan).
absl::Status errno_status(int err, const std::string& what);

/// OK, or kInvalidArgument naming the option of `o` that listen, connect or
/// bind_udp (`what`) cannot honour (a capacity over options::max_capacity).
absl::Status check_options(const options& o, std::string_view what);

/// getsockname / getpeername, or the empty address.
address sock_name(int fd) noexcept;
address peer_name(int fd) noexcept;

}  // namespace conch::net::detail
