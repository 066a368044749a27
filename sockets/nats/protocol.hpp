// sockets/nats/protocol.hpp
// The NATS client protocol as data: an incremental decoder of what a server sends, and encoders.
//
// Invariants:
// - decoder::feed() accepts bytes split anywhere (a read may end inside an op
//   name, a control line, a payload or its CRLF) and gives the same ops as
//   the bytes fed whole; hostile input is a Status (kInvalidArgument for a
//   malformed op, kResourceExhausted for a control line over max_control or
//   a payload over max_payload), never an exception or a crash, and leaves
//   the decoder unusable (the connection is dropped).
// - Memory per decoder is bounded by max_control + max_payload + 2 plus one
//   read's worth of bytes not yet examined.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace conch::nats::detail {

/// One op from the server.
struct server_op {
  enum class kind : std::uint8_t { info, msg, ping, pong, ok, err };
  kind type = kind::ping;
  std::string subject;     ///< msg: the subject it was published to
  std::string reply;       ///< msg: the reply subject, or empty
  std::uint64_t sid = 0;   ///< msg: the subscription id
  bool has_headers = false;  ///< msg: came as HMSG
  std::string headers;     ///< HMSG: the header block ("NATS/1.0...\r\n\r\n")
  std::string payload;     ///< msg: the data; info: the JSON; err: the message without quotes
};

/// The incremental decoder of server-to-client ops (INFO, MSG, HMSG, PING,
/// PONG, +OK, -ERR; op names in any case, arguments split by spaces or tabs,
/// lines ended by CRLF or a lone LF).
class decoder {
 public:
  static constexpr std::size_t default_max_control = 4096;
  explicit decoder(std::size_t max_payload = 64u << 20,
                   std::size_t max_control = default_max_control) noexcept
      : max_payload_(max_payload), max_control_(max_control) {}

  /// Decodes `bytes`, appending each complete op to `out`. An error leaves
  /// the ops decoded before it in `out` and the decoder unusable.
  absl::Status feed(std::string_view bytes, std::vector<server_op>& out);
  /// Bytes held that form no complete op yet.
  std::size_t buffered() const noexcept { return buf_.size() - pos_; }
  /// Raises the payload limit (the server's INFO max_payload, plus headers).
  void set_max_payload(std::size_t n) noexcept { max_payload_ = n; }

 private:
  absl::Status control_line(std::string_view line, std::vector<server_op>& out);

  std::size_t max_payload_;
  std::size_t max_control_;
  std::string buf_;      // bytes received and not yet consumed, from pos_
  std::size_t pos_ = 0;
  std::size_t scanned_ = 0;  // how far past pos_ we already looked for '\n'
  bool in_payload_ = false;  // a MSG/HMSG line was read; waiting for its bytes
  std::size_t need_ = 0;     // payload bytes (header + data) the pending op wants
  std::size_t header_len_ = 0;
  server_op pending_;        // the MSG/HMSG whose payload is awaited
  bool failed_ = false;
};

/// A parsed header block.
struct header_block {
  int status = 0;            ///< the inline status ("NATS/1.0 503"), 0 if none
  std::string description;   ///< the text after the status
  std::vector<std::pair<std::string, std::string>> fields;
};

/// Parses a header block received in an HMSG. Fails (kInvalidArgument) if it
/// does not start with "NATS/1.0"; a field line without ':' is skipped.
absl::StatusOr<header_block> parse_headers(std::string_view block);

/// Encodes header fields as a block; kInvalidArgument for a key that is empty
/// or holds ':', whitespace or control bytes, or a value holding CR or LF.
absl::StatusOr<std::string> encode_headers(const std::vector<std::pair<std::string, std::string>>& h);

/// kInvalidArgument unless `s` is a subject one may publish to or subscribe
/// on: non-empty tokens split by '.', no whitespace or control bytes; with
/// `wildcards`, '*' as a whole token and '>' as the whole last token.
absl::Status check_subject(std::string_view s, bool wildcards, std::string_view what);

/// Appends "PUB subject [reply] n\r\n" + data + "\r\n" (HPUB with a header
/// block) to `out`.
void encode_pub(std::string& out, std::string_view subject, std::string_view reply,
                std::string_view headers, std::string_view data);

/// Appends `s` as a JSON string literal (quoted, escaped) to `out`.
void append_json_string(std::string& out, std::string_view s);

}  // namespace conch::nats::detail
