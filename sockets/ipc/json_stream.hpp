// sockets/ipc/json_stream.hpp
// json_stream: splits a byte stream of back-to-back JSON objects (ipcIO's wire) by brace depth.
//
// ipcIO writes compact JSON objects with no separator (`{...}{...}`). The real
// library parses each read on its own, so a message split across two reads is
// lost and `}{` inside a string breaks it (PROTOCOLS.md §3). json_stream
// instead tracks the nesting depth outside strings (backslash escapes
// included) across reads:
//
//   conch::ipc::detail::json_stream js({.max_message = 1 << 20, .max_depth = 64});
//   js.feed(chunk, [](std::string&& msg) { /* one whole object */ },
//                  [](absl::Status st) { /* one malformed piece, skipped */ });
//
// It only frames: what comes out is the text of one top-level object, with
// balanced brackets outside strings, at most max_message bytes and max_depth
// levels deep (so a recursive JSON parser given it cannot overflow its stack);
// whether it is valid JSON is the parser's business. Bad input ends nothing
// but itself: bytes between objects that are not whitespace, an object over
// max_message bytes or max_depth levels are each skipped and reported once
// (kInvalidArgument, kResourceExhausted), and framing continues with the next
// object. Memory stays bounded by max_message whatever arrives. An object
// whose braces never balance swallows what follows until it exceeds
// max_message, then framing resumes after its end would be; no framing can
// do better without a separator.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"

namespace conch::ipc::detail {

/// Bounds on one message.
struct json_stream_limits {
  std::size_t max_message = 1u << 20;  ///< bytes of one object's text
  std::size_t max_depth = 64;          ///< nesting of objects and arrays, the outer object is 1
};

/// Splits back-to-back JSON objects. Not thread-safe: one per connection,
/// used by its reader.
class json_stream {
 public:
  explicit json_stream(json_stream_limits limits = {}) noexcept : limits_(limits) {}

  /// Consumes `bytes` (any split of the stream, empty included): calls
  /// `on_message(std::string&&)` for each object completed, in stream order,
  /// and `on_error(absl::Status)` once for each piece skipped.
  template <class OnMessage, class OnError>
  void feed(std::string_view bytes, OnMessage&& on_message, OnError&& on_error);

  /// Bytes of an object begun but not finished (what a read's end cut).
  std::size_t buffered() const noexcept { return cur_.size(); }
  /// Whether the stream stands between objects (nothing half-read).
  bool idle() const noexcept { return state_ == state::between; }

 private:
  enum class state : unsigned char {
    between,   // outside any object
    garbage,   // skipping non-whitespace between objects, until a '{'
    object,    // inside an object, outside strings
    string,    // inside a string
    escape,    // after a backslash inside a string
  };
  json_stream_limits limits_;
  std::string cur_;             // the object read so far (empty while discarding)
  std::size_t depth_ = 0;       // open '{' and '[' outside strings
  std::size_t seen_ = 0;        // bytes of the current object, kept or not
  bool discard_ = false;        // the current object broke a limit: count, keep nothing
  bool too_deep_ = false;       // ... and which limit
  state state_ = state::between;
};

template <class OnMessage, class OnError>
void json_stream::feed(std::string_view bytes, OnMessage&& on_message, OnError&& on_error) {
  std::size_t i = 0;
  const std::size_t n = bytes.size();
  while (i < n) {
    switch (state_) {
      case state::between:
      case state::garbage: {
        // Skip to the next '{'; whitespace is fine, anything else is garbage.
        while (i < n && bytes[i] != '{') {
          const char c = bytes[i];
          if (c != ' ' && c != '\t' && c != '\r' && c != '\n' && state_ == state::between) {
            state_ = state::garbage;
            on_error(absl::InvalidArgumentError("ipc: bytes outside any JSON object skipped"));
          }
          ++i;
        }
        if (i == n) break;
        state_ = state::object;  // a '{' ends the garbage too
        depth_ = 0;
        seen_ = 0;
        discard_ = false;
        too_deep_ = false;
        cur_.clear();
        break;  // the '{' itself is taken below, as part of the object
      }
      default: {
        // Scan a run of object bytes; copy the run once.
        const std::size_t start = i;
        bool done = false;
        for (; i < n && !done; ++i) {
          const char c = bytes[i];
          switch (state_) {
            case state::string:
              if (c == '\\')
                state_ = state::escape;
              else if (c == '"')
                state_ = state::object;
              break;
            case state::escape:
              state_ = state::string;  // whatever follows a backslash is escaped
              break;
            default:
              if (c == '"') {
                state_ = state::string;
              } else if (c == '{' || c == '[') {
                if (++depth_ > limits_.max_depth && !discard_) {
                  discard_ = true;
                  too_deep_ = true;
                }
              } else if ((c == '}' || c == ']') && --depth_ == 0) {
                done = true;  // the outer object closed (with a ']' the parser refuses it)
              }
              break;
          }
        }
        const std::size_t run = i - start;
        seen_ += run;
        if (!discard_ && seen_ > limits_.max_message) {
          discard_ = true;  // too long: keep counting depth, drop the text
        }
        if (discard_) {
          if (!cur_.empty()) std::string().swap(cur_);  // give the memory back
        } else {
          cur_.append(bytes.data() + start, run);
        }
        if (done) {
          state_ = state::between;
          if (!discard_) {
            std::string msg;
            msg.swap(cur_);
            on_message(std::move(msg));
          } else if (too_deep_) {
            on_error(absl::ResourceExhaustedError("ipc: a JSON message nested deeper than max_depth skipped"));
          } else {
            on_error(absl::ResourceExhaustedError("ipc: a JSON message over max_message bytes skipped"));
          }
          discard_ = false;
        }
        break;
      }
    }
  }
}

}  // namespace conch::ipc::detail
