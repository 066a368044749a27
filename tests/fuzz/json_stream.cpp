// tests/fuzz/json_stream.cpp
// Fuzz target `json_stream`: ipcIO's brace-depth splitter fed bytes split anywhere, and a round trip of objects.
//
// Input: [max][depth][seed][unused] payload...
//   max   max_message: 1..64, or 4096+ when the top bit is set
//   depth max_depth: 1..16
//   seed  drives the split points
// Oracles:
//   1. The payload fed whole and in random pieces (empty ones included) gives
//      the same messages and the same errors: where reads end never matters.
//   2. Every message is one object: it starts with '{', its brackets balance
//      outside strings, at most max_depth deep and max_message long; RapidJSON
//      may refuse it but never recurses deeper than that.
//   3. Objects written by RapidJSON whose string values are payload slices
//      (quotes, backslashes, "}{", control bytes), back to back and fed in
//      random pieces, come back one each, equal, with their data intact.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include "sockets/ipc/json_stream.hpp"
#include "tests/fuzz/fuzz_check.hpp"

namespace {

using conch::ipc::detail::json_stream;
using conch::ipc::detail::json_stream_limits;

using rng = fuzz_rng;  // tests/fuzz/fuzz_check.hpp

struct outcome {
  std::vector<std::string> messages;
  std::vector<absl::StatusCode> errors;
};

outcome split(json_stream_limits lim, const std::string& bytes, rng* r) {
  json_stream js(lim);
  outcome out;
  auto on_msg = [&](std::string&& m) { out.messages.push_back(std::move(m)); };
  auto on_err = [&](absl::Status st) {
    FUZZ_CHECK(st.code() == absl::StatusCode::kInvalidArgument ||
                   st.code() == absl::StatusCode::kResourceExhausted,
               "an error of another code");
    out.errors.push_back(st.code());
  };
  std::size_t pos = 0;
  do {
    const std::size_t n = r == nullptr ? bytes.size() : std::min(r->below(18), bytes.size() - pos);
    js.feed(std::string_view(bytes).substr(pos, n), on_msg, on_err);
    pos += n;
    FUZZ_CHECK(js.buffered() <= lim.max_message, "buffered more than max_message");
  } while (pos < bytes.size());
  return out;
}

// Oracle 2: one object, bounded, balanced outside strings.
void check_shape(const std::string& m, json_stream_limits lim) {
  FUZZ_CHECK(!m.empty() && m.front() == '{', "a message that is no object");
  FUZZ_CHECK(m.size() <= lim.max_message, "a message over max_message");
  std::size_t depth = 0, peak = 0;
  bool in_str = false, esc = false;
  for (std::size_t i = 0; i < m.size(); ++i) {
    const char c = m[i];
    if (in_str) {
      if (esc) esc = false;
      else if (c == '\\') esc = true;
      else if (c == '"') in_str = false;
    } else if (c == '"') {
      in_str = true;
    } else if (c == '{' || c == '[') {
      peak = std::max(peak, ++depth);
    } else if (c == '}' || c == ']') {
      FUZZ_CHECK(depth > 0, "closed more than it opened");
      if (--depth == 0) FUZZ_CHECK(i + 1 == m.size(), "the object ended before the message did");
    }
  }
  FUZZ_CHECK(depth == 0 && !in_str, "an unbalanced message");
  FUZZ_CHECK(peak <= lim.max_depth, "a message deeper than max_depth");
  rapidjson::Document d;
  d.Parse(m.data(), m.size());  // may refuse; bounded depth keeps its recursion bounded
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 4) return 0;
  json_stream_limits lim;
  lim.max_message = (data[0] & 0x80) != 0 ? 4096u + data[0] : 1u + (data[0] & 63u);
  lim.max_depth = 1u + (data[1] & 15u);
  rng r{data[2] * 0x100000001b3u + size};
  const std::string payload(reinterpret_cast<const char*>(data + 4), size - 4);

  // 1 and 2.
  const outcome whole = split(lim, payload, nullptr);
  const outcome pieces = split(lim, payload, &r);
  FUZZ_CHECK(whole.messages == pieces.messages, "the messages depend on where reads end");
  FUZZ_CHECK(whole.errors == pieces.errors, "the errors depend on where reads end");
  for (const std::string& m : whole.messages) check_shape(m, lim);

  // 3. Objects carrying payload slices as strings (sizes from the bytes).
  std::vector<std::string> slices, objects;
  std::string wire;
  for (std::size_t i = 0; i < payload.size();) {
    const std::size_t len = std::min<std::size_t>(static_cast<unsigned char>(payload[i]) % 24, payload.size() - i - 1);
    slices.push_back(payload.substr(i + 1, len));
    i += 1 + len;
    rapidjson::StringBuffer sb;
    rapidjson::Writer<rapidjson::StringBuffer> w(sb);
    w.StartObject();
    w.Key("id"); w.Null();
    w.Key("command"); w.String("c");
    w.Key("data"); w.String(slices.back().data(), static_cast<rapidjson::SizeType>(slices.back().size()));
    w.Key("delivery"); w.Null();
    w.EndObject();
    objects.emplace_back(sb.GetString(), sb.GetSize());
    wire += objects.back();
  }
  const json_stream_limits roomy{.max_message = 1u << 16, .max_depth = 4};
  const outcome back = split(roomy, wire, &r);
  FUZZ_CHECK(back.errors.empty(), "RapidJSON's own objects were refused");
  FUZZ_CHECK(back.messages == objects, "the round trip changed the objects");
  for (std::size_t k = 0; k < back.messages.size(); ++k) {
    rapidjson::Document d;
    d.Parse(back.messages[k].data(), back.messages[k].size());
    FUZZ_CHECK(!d.HasParseError() && d.IsObject() && d["data"].IsString(), "an object did not parse back");
    FUZZ_CHECK(std::string(d["data"].GetString(), d["data"].GetStringLength()) == slices[k],
               "a string value changed on the way");
  }
  return 0;
}
