// conch/net/udp.hpp
// udp_socket: datagrams in and out as channels; IPv4/IPv6 multicast membership.
//
//   auto u = conch::net::bind_udp("127.0.0.1:0");
//   conch::net::datagram ping{"ping", peer};          // named first: GCC 12 crashes on
//   co_await u->out.send(ping);                       // a braced temporary in co_await
//   auto d = co_await u->in.recv();                   // d->data, d->peer
//   u->join_multicast("239.1.2.3", "lo");             // group [, interface]
//
// A datagram is a frame: options::frame does not apply; `in` stops reading
// while it is full (the kernel then drops what its buffer cannot hold, as
// UDP does). I/O runs on the loop thread that called bind_udp; the channels
// work from any thread.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "conch/chan/chan.hpp"
#include "conch/net/address.hpp"
#include "conch/net/framing.hpp"

namespace conch::net {

namespace detail {
class udp_endpoint;
}

/// One UDP datagram: its payload and the other side's address (the sender on
/// `in`, the destination on `out`).
struct datagram {
  std::string data;
  address peer;
};

/// A bound UDP socket. Copies share the socket.
struct udp_socket {
  /// Datagrams received (payloads over 64 KiB - 1 are truncated).
  chan<datagram> in;
  /// Datagrams to send, in order. A datagram the kernel refuses (no route,
  /// too large) is dropped; last_error() reports it.
  chan<datagram> out;

  /// The bound address (the real port when bound to port 0).
  address local() const;
  /// Joins multicast `group` ("239.1.2.3" or "ff02::1234") on interface
  /// `iface` (a name such as "lo"; empty = let the kernel choose by route)
  /// and sends this socket's multicast through that interface. Returns the
  /// setsockopt error, or kInvalidArgument for a non-multicast group or an
  /// unknown interface. Any thread.
  absl::Status join_multicast(std::string_view group, std::string_view iface = {});
  /// Leaves a group joined with join_multicast.
  absl::Status leave_multicast(std::string_view group, std::string_view iface = {});
  /// The last send or receive error (OK if none).
  absl::Status last_error() const;
  /// Closes the socket: `in` and `out` close, queued datagrams are dropped.
  /// Idempotent; any thread.
  void close();

  explicit udp_socket(std::shared_ptr<detail::udp_endpoint> e);

 private:
  std::shared_ptr<detail::udp_endpoint> e_;
};

/// Binds a UDP socket to `address` (IPv4 or IPv6, port 0 for any free port).
/// Must be called on a runtime thread; its I/O runs on that thread's loop.
/// Uses options::in_capacity and out_capacity. A host name is looked up with
/// getaddrinfo inside this call, **blocking the calling thread (and its
/// loop) while it is resolved**, and its addresses are tried in order until
/// one binds; "localhost" means 127.0.0.1 without a lookup. Failures:
/// kNotFound naming the host for an unknown name, kInvalidArgument for a
/// Unix address, else the errno status of socket/bind for the last address
/// tried.
absl::StatusOr<udp_socket> bind_udp(std::string_view address, options opts = {});

}  // namespace conch::net
