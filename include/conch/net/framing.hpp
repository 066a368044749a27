// conch/net/framing.hpp
// framing and options: how a byte stream is cut into the strings on `in` and `out`.
//
//   conch::net::options o{.frame = conch::net::framing::lines(), .max_frame = 64 << 10};
//   auto srv = conch::net::listen("127.0.0.1:0", o);
//
// Framing applies both ways: a reader cuts received bytes into frames, and
// the writer adds the delimiter (or the length prefix) to each string sent
// on `out`. `raw` passes bytes through: `in` gets chunks as they arrive (no
// message boundaries) and `out` writes strings verbatim.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "conch/net/tls.hpp"

namespace conch::net {

/// How a stream socket's bytes are cut into frames.
struct framing {
  enum class kind : std::uint8_t { raw, lines, length_prefixed, delimited };
  /// What ends a line in `lines` framing.
  enum class line_end : std::uint8_t {
    lf,           ///< '\n' (a '\r' just before it is stripped with it)
    lf_cr_crlf,   ///< '\n', "\r\n" or a lone '\r', as Java's BufferedReader.readLine
  };

  /// No framing: `in` gets chunks as received (each at most max_frame
  /// bytes), `out` writes strings verbatim.
  static framing raw() noexcept { return {kind::raw, '\0'}; }
  /// Text lines: frames end with '\n', which is stripped along with one
  /// trailing '\r'; the writer appends '\n'. A last line without '\n' before
  /// EOF is still delivered. With line_end::lf_cr_crlf a lone '\r' ends a
  /// line too (Java peers: clj-ipc reads with readLine), and "\r\n" is one
  /// line end even when a read ends between the two bytes. The line end is
  /// not part of the frame: "abc\r\n" fits in max_frame 3.
  static framing lines(line_end ends = line_end::lf) noexcept { return {kind::lines, '\n', ends}; }
  /// Each frame is a 4-byte big-endian length followed by that many bytes;
  /// the writer adds the prefix.
  static framing length_prefixed() noexcept { return {kind::length_prefixed, '\0'}; }
  /// Frames end with the byte `d` (stripped); the writer appends it. node-ipc
  /// uses '\f' (PROTOCOLS.md §1). A last frame without `d` before EOF is
  /// still delivered.
  static framing delimited(char d) noexcept { return {kind::delimited, d}; }

  kind type = kind::raw;
  char delimiter = '\0';  ///< lines: '\n'; delimited: the byte; otherwise unused
  line_end ends = line_end::lf;  ///< lines only
};

/// Options for listen(), connect() and bind_udp().
///
/// With `tls` set, options owns strings: under GCC 12 build it before a
/// co_await instead of as a braced temporary inside one (GCC 12 may destroy
/// such a temporary twice; LANDSCAPE.md §3.8):
///
///   conch::net::options o{.frame = conch::net::framing::lines()};
///   o.tls = conch::net::tls_options{.ca_file = "ca.pem"};
///   auto s = co_await conch::net::connect("example.test:443", o);
struct options {
  /// How the stream is cut into frames (ignored by UDP: a datagram is a frame).
  framing frame = framing::raw();
  /// Capacity of each socket's `in` channel (and of a server's
  /// `connections`). When `in` is full the socket stops reading, so TCP flow
  /// control pushes back on the peer.
  std::size_t in_capacity = 64;
  /// Capacity of each socket's `out` channel; a send on a full `out` parks.
  std::size_t out_capacity = 64;
  /// The largest frame (without delimiter or prefix) a peer may send; a
  /// larger one ends that connection with kResourceExhausted.
  std::size_t max_frame = 16u << 20;
  /// listen(2) backlog.
  int backlog = 1024;
  /// Permission bits of the socket file listen() creates for a Unix path
  /// (owner-only by default; 0666 lets every local user connect).
  unsigned unix_mode = 0600;
  /// connect() only: how long each candidate address may take to answer
  /// before the attempt is cancelled (then the next address is tried, or
  /// connect gives kDeadlineExceeded). 0 = no limit of ours (the kernel's
  /// TCP SYN retries still end it, after about two minutes by default).
  std::chrono::milliseconds connect_timeout{0};

  /// The largest in_capacity or out_capacity listen(), connect() and
  /// bind_udp() accept (2^20): each channel allocates its slots up front, so
  /// a larger one is refused with kInvalidArgument rather than exhausting
  /// memory.
  static constexpr std::size_t max_capacity = std::size_t{1} << 20;
  /// Stream sockets only: speak TLS (see conch/net/tls.hpp). Empty: plain.
  std::optional<tls_options> tls;
};

}  // namespace conch::net
