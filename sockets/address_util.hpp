// sockets/address_util.hpp
// Parsing address strings into a spec (what lsocket would pick) and errno-to-Status helpers.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "conch/net/address.hpp"

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

/// For listen/bind_udp: a numeric address, a wildcard or "localhost"
/// (127.0.0.1); other names are refused (they would block the loop).
absl::StatusOr<address> local_address(std::string_view text, const char* what);

/// getaddrinfo, blocking: every address of `host` with `port`, deduplicated.
absl::StatusOr<std::vector<address>> lookup_blocking(const std::string& host, int port);

/// absl::ErrnoToStatus with "what: strerror" (what names the call and address).
absl::Status errno_status(int err, const std::string& what);

/// getsockname / getpeername, or the empty address.
address sock_name(int fd) noexcept;
address peer_name(int fd) noexcept;

}  // namespace conch::net::detail
