// sockets/ipc/node_ipc_codec.hpp
// node-ipc's message codec: {"type":T,"data":D} + '\f' out, bounded parse in (internal).
//
// Invariants:
// - encode() gives one JSON text RapidJSON's Writer produces (control bytes
//   in strings escaped, so the text never holds a raw 0x0C); the socket adds
//   the delimiter.
// - An empty frame ("\f\f") is malformed, as node-ipc reports it.
// - decode() never throws for any input: a frame that is not a JSON object
//   with a string "type", or nests deeper than limits::max_depth, comes back
//   with `error` set and no data.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "conch/net/ipc.hpp"

namespace conch::ipc::detail {

/// The frame for one event, without the delimiter (the socket's
/// framing::delimited('\f') appends it).
std::string encode(std::string_view type, const json_value& data);

/// Whether `text` nests objects/arrays at most `max_depth` deep (brackets
/// inside strings do not count). Linear, no allocation.
bool depth_within(std::string_view text, unsigned max_depth) noexcept;

struct decoded {
  std::string type;
  std::shared_ptr<const json> data;  // null when error is set
  std::string error;                 // why the frame is malformed; empty if fine
};

/// Parses one frame (without its delimiter).
decoded decode(std::string_view frame, const limits& bounds);

/// The shared Null document local and raw events carry.
const std::shared_ptr<const json>& null_data();

/// The identity a message's data carries: the string of a truthy `data.id`
/// (JSON text for a non-string), or empty when there is none or it is falsy.
std::string data_id(const json_value& data);

}  // namespace conch::ipc::detail
