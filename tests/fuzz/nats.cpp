// tests/fuzz/nats.cpp
// Fuzz target `nats`: the NATS protocol decoder (sockets/nats/protocol.hpp) fed server bytes split anywhere.
//
// Input: [max][seed] bytes...
//   max   max_payload: 0..255 (small, to reach the limit), or 1 MiB with the top bit
//   seed  drives the split points
// Oracles:
//   1. The bytes decoded in one feed and in random pieces (empty ones too)
//      give the same ops and the same error: where reads end changes nothing.
//   2. An error is kInvalidArgument or kResourceExhausted; no payload is
//      over max_payload; every op's strings are what the wire held (MSG
//      subjects hold no whitespace).
//   3. Every header block of an HMSG parses or is refused, never crashes;
//      encoding the fields it found and parsing that gives them back.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "sockets/nats/protocol.hpp"
#include "tests/fuzz/fuzz_check.hpp"

namespace {

using conch::nats::detail::decoder;
using conch::nats::detail::server_op;

struct rng {
  std::uint64_t s;
  std::uint64_t next() noexcept {
    std::uint64_t z = (s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
  }
  std::size_t below(std::size_t n) noexcept { return n == 0 ? 0 : static_cast<std::size_t>(next() % n); }
};

struct outcome {
  std::vector<server_op> ops;
  absl::StatusCode code = absl::StatusCode::kOk;
};

outcome decode(std::size_t max, const std::string& bytes, rng* r) {
  outcome out;
  decoder d(max);
  std::size_t pos = 0;
  do {
    std::size_t n = r == nullptr ? bytes.size() : std::min(r->below(20), bytes.size() - pos);
    absl::Status st = d.feed(std::string_view(bytes).substr(pos, n), out.ops);
    pos += n;
    if (!st.ok()) {
      out.code = st.code();
      FUZZ_CHECK(st.code() == absl::StatusCode::kInvalidArgument ||
                     st.code() == absl::StatusCode::kResourceExhausted,
                 "the decoder failed with an unexpected code");
      FUZZ_CHECK(!d.feed("PING\r\n", out.ops).ok(), "a failed decoder accepted more input");
      break;
    }
  } while (pos < bytes.size());
  return out;
}

bool same(const server_op& a, const server_op& b) {
  return a.type == b.type && a.subject == b.subject && a.reply == b.reply && a.sid == b.sid &&
         a.has_headers == b.has_headers && a.headers == b.headers && a.payload == b.payload;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t max = (data[0] & 0x80) != 0 ? std::size_t{1} << 20 : data[0];
  const std::string bytes(reinterpret_cast<const char*>(data + 2), size - 2);
  rng r{data[1] * 0x100000001b3u + size};
  const outcome whole = decode(max, bytes, nullptr);
  const outcome split = decode(max, bytes, &r);
  FUZZ_CHECK(whole.code == split.code, "an error depends on where the reads end");
  FUZZ_CHECK(whole.ops.size() == split.ops.size(), "the op count depends on where the reads end");
  for (std::size_t i = 0; i < whole.ops.size(); ++i) {
    const server_op& op = whole.ops[i];
    FUZZ_CHECK(same(op, split.ops[i]), "an op depends on where the reads end");
    if (op.type != server_op::kind::msg) continue;
    FUZZ_CHECK(op.headers.size() + op.payload.size() <= max, "a message over max_payload came out");
    FUZZ_CHECK(!op.subject.empty(), "a message without a subject");
    for (char c : op.subject) FUZZ_CHECK(c != ' ' && c != '\t' && c != '\n', "whitespace inside a subject");
    if (!op.has_headers) continue;
    auto h = conch::nats::detail::parse_headers(op.headers);
    if (!h.ok()) {
      FUZZ_CHECK(h.status().code() == absl::StatusCode::kInvalidArgument, "headers refused with another code");
      continue;
    }
    auto enc = conch::nats::detail::encode_headers(h->fields);
    if (!enc.ok()) continue;  // a name a sender may not use (the server passed it on)
    auto back = conch::nats::detail::parse_headers(*enc);
    FUZZ_CHECK(back.ok() && back->fields == h->fields, "header fields changed in an encode/parse round trip");
  }
  return 0;
}
