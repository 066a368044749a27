// tests/fuzz/frames.cpp
// Fuzz target `frames`: every frame decoder fed bytes split anywhere, and the encoder/decoder round trip.
//
// Input: [mode][max][delim][seed] payload...
//   mode  % 5: raw, lines (lf), lines (lf_cr_crlf), length_prefixed, delimited;
//         bit 3: decode with a string_pool (recycled buffers), as sockets do
//   max   max_frame: 1..32, or 4096+ when the top bit is set
//   delim the byte of `delimited`
//   seed  drives the split points and the encoder's partial sends
// Oracles:
//   1. The payload decoded in one feed and in random pieces (empty pieces
//      included) gives the same frames, the same error code and, at EOF, the
//      same trailing frame: where the reads end never changes what comes out.
//   2. No frame is longer than max_frame.
//   3. The payload read as frames (length byte + bytes, made legal for the
//      mode) goes through frame_encoder, is "sent" in random partial writes
//      (advance), then decoded in random pieces: the same frames come back
//      (raw: the same bytes, in chunks of at most max_frame).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "sockets/frame_codec.hpp"
#include "tests/fuzz/fuzz_check.hpp"

namespace {

using conch::net::framing;
using conch::net::detail::frame_decoder;
using conch::net::detail::frame_encoder;
using conch::net::detail::string_pool;

using rng = fuzz_rng;  // tests/fuzz/fuzz_check.hpp

struct outcome {
  std::vector<std::string> frames;
  absl::StatusCode feed_code = absl::StatusCode::kOk;    // the first feed error, if any
  absl::StatusCode finish_code = absl::StatusCode::kOk;  // finish() (only if feeding was clean)
};

framing framing_of(unsigned mode, char delim) {
  switch (mode % 5) {
    case 0: return framing::raw();
    case 1: return framing::lines();
    case 2: return framing::lines(framing::line_end::lf_cr_crlf);
    case 3: return framing::length_prefixed();
    default: return framing::delimited(delim);
  }
}

// Feeds `bytes` in pieces: whole when `r` is null, else random sizes 0..17.
outcome decode(framing f, std::size_t max, string_pool* pool, const std::string& bytes, rng* r) {
  outcome out;
  frame_decoder d(f, max, pool);
  auto emit = [&](std::string&& s) {
    FUZZ_CHECK(s.size() <= d.max_frame(), "a frame over max_frame came out");
    out.frames.push_back(std::move(s));
  };
  std::size_t pos = 0;
  while (pos < bytes.size() || (r == nullptr && pos == 0)) {
    std::size_t n = r == nullptr ? bytes.size() - pos : std::min(r->below(18), bytes.size() - pos);
    absl::Status st = d.feed(bytes.data() + pos, n, emit);
    pos += n;
    if (!st.ok()) {
      FUZZ_CHECK(st.code() == absl::StatusCode::kResourceExhausted, "feed failed with another code");
      out.feed_code = st.code();
      return out;  // the decoder is unusable after an error
    }
    if (r == nullptr) break;
  }
  out.finish_code = d.finish(emit).code();
  return out;
}

// Frames from the payload: a length byte, then that many bytes; each made
// legal for the mode (no delimiter inside, at most max bytes).
std::vector<std::string> frames_of(const std::uint8_t* p, std::size_t n, framing f, std::size_t max) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < n) {
    const std::size_t want = p[i++];
    const std::size_t len = std::min(want, n - i);
    std::string s(reinterpret_cast<const char*>(p + i), len);
    i += len;
    if (s.size() > max) s.resize(max);
    const char legal = f.delimiter == 'x' ? 'y' : 'x';  // what replaces a delimiter
    for (char& c : s) {
      bool bad = false;
      if (f.type == framing::kind::lines)
        bad = c == '\n' || (c == '\r' && f.ends == framing::line_end::lf_cr_crlf);
      else if (f.type == framing::kind::delimited)
        bad = c == f.delimiter;
      if (bad) c = legal;
    }
    // lines (lf): a '\r' right before the '\n' belongs to the line end.
    if (f.type == framing::kind::lines && !s.empty() && s.back() == '\r') s.back() = legal;
    out.push_back(std::move(s));
  }
  return out;
}

// Encodes `frames` in batches, "sending" each batch in random partial writes.
std::string encode(framing f, const std::vector<std::string>& frames, string_pool* pool, rng& r) {
  std::string wire;
  frame_encoder e(f);
  std::size_t i = 0;
  while (i < frames.size()) {
    std::size_t want = 0;
    while (i < frames.size() && !e.full()) {
      e.add(frames[i]);
      want += frames[i].size() + (f.type == framing::kind::raw               ? 0
                                  : f.type == framing::kind::length_prefixed ? 4
                                                                             : 1);
      ++i;
    }
    FUZZ_CHECK(e.bytes() == want, "frame_encoder::bytes() disagrees with the frames added");
    e.build();
    std::size_t sent = 0;
    bool done = e.iov_count() == 0;
    while (!done) {
      std::size_t left = 0;
      for (std::size_t k = 0; k < e.iov_count(); ++k) left += e.iov()[k].iov_len;
      FUZZ_CHECK(sent + left == want, "the iovecs do not hold the batch's bytes");
      std::size_t n = 1 + r.below(left);  // a partial write, like sendmsg's
      std::size_t copied = 0;
      for (std::size_t k = 0; k < e.iov_count() && copied < n; ++k) {
        const iovec& v = e.iov()[k];
        std::size_t c = std::min(v.iov_len, n - copied);
        wire.append(static_cast<const char*>(v.iov_base), c);
        copied += c;
      }
      sent += n;
      done = e.advance(n);
      FUZZ_CHECK(done == (sent == want), "advance() says done at the wrong byte");
    }
    e.clear(pool);
    FUZZ_CHECK(e.empty() && e.bytes() == 0, "clear() left a batch behind");
  }
  return wire;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 4) return 0;
  const unsigned mode = data[0];
  const std::size_t max = (data[1] & 0x80) != 0 ? 4096u + data[1] : 1u + (data[1] & 31u);
  const framing f = framing_of(mode, static_cast<char>(data[2]));
  const bool pooled = (mode & 8u) != 0;
  const std::string payload(reinterpret_cast<const char*>(data + 4), size - 4);
  string_pool pool;
  string_pool* pp = pooled ? &pool : nullptr;

  // 1 and 2: one feed against random pieces.
  rng r{data[3] * 0x100000001b3u + size};
  const outcome whole = decode(f, max, pp, payload, nullptr);
  const outcome split = decode(f, max, pp, payload, &r);
  if (f.type == framing::kind::raw) {
    // Raw chunks follow the reads: compare the bytes, not the chunking.
    std::string a, b;
    for (const auto& s : whole.frames) a += s;
    for (const auto& s : split.frames) b += s;
    FUZZ_CHECK(a == payload && b == payload, "raw lost or changed bytes");
  } else {
    FUZZ_CHECK(whole.frames == split.frames, "the frames depend on where the reads end");
    FUZZ_CHECK(whole.feed_code == split.feed_code, "an error depends on where the reads end");
    FUZZ_CHECK(whole.finish_code == split.finish_code, "EOF handling depends on the reads");
  }

  // 3: the round trip.
  const std::vector<std::string> frames = frames_of(data + 4, size - 4, f, max);
  const std::string wire = encode(f, frames, pp, r);
  const outcome back = decode(f, max, pp, wire, &r);
  FUZZ_CHECK(back.feed_code == absl::StatusCode::kOk, "a legal frame was refused");
  FUZZ_CHECK(back.finish_code == absl::StatusCode::kOk, "a clean stream ended in an error");
  if (f.type == framing::kind::raw) {
    std::string sent, got;
    for (const auto& s : frames) sent += s;
    for (const auto& s : back.frames) got += s;
    FUZZ_CHECK(sent == got, "raw round trip changed the bytes");
  } else {
    FUZZ_CHECK(back.frames == frames, "round trip changed the frames");
  }
  return 0;
}
