// tests/nats/nats_protocol_test.cpp
// The NATS protocol decoder and encoders: every op, input split anywhere, hostile input.
#include <string>
#include <vector>

#include "sockets/nats/protocol.hpp"

using conch::nats::detail::decoder;
using conch::nats::detail::server_op;
using kind = server_op::kind;

namespace {

// Decodes `bytes` fed in pieces of `step` bytes (0: whole).
std::vector<server_op> decode(const std::string& bytes, std::size_t step, absl::Status* err = nullptr) {
  decoder d;
  std::vector<server_op> out;
  std::size_t i = 0;
  do {
    std::size_t n = step == 0 ? bytes.size() : std::min(step, bytes.size() - i);
    absl::Status st = d.feed(std::string_view(bytes).substr(i, n), out);
    i += n;
    if (!st.ok()) {
      if (err) *err = st;
      return out;
    }
  } while (i < bytes.size());
  if (err) *err = absl::OkStatus();
  return out;
}

const std::string stream =
    std::string("INFO {\"server_id\":\"X\",\"max_payload\":1048576}\r\n"
    "PING\r\n"
    "pong\r\n"
    "+OK\r\n"
    "MSG foo.bar 7 11\r\nhello world\r\n"
    "MSG a 1 _INBOX.x.1 0\r\n\r\n"
    "HMSG h 2 18 23\r\nNATS/1.0\r\nK: v\r\n\r\nhello\r\n"
    "HMSG r 3 reply.to 12 12\r\nNATS/1.0 503\r\n") +
    "MSG bin 4 4\r\n" + std::string("\r\n\x00\n", 4) + "\r\n"
    "-ERR 'Unknown Protocol Operation'\r\n";

}  // namespace

TEST_CASE("the decoder reads every server op, whole and split at any byte", "[nats][protocol]") {
  for (std::size_t step : {0, 1, 2, 3, 5, 7, 13, 64}) {
    CAPTURE(step);
    absl::Status st;
    auto ops = decode(stream, step, &st);
    REQUIRE(st.ok());
    REQUIRE(ops.size() == 10);
    CHECK(ops[0].type == kind::info);
    CHECK(ops[0].payload == "{\"server_id\":\"X\",\"max_payload\":1048576}");
    CHECK(ops[1].type == kind::ping);
    CHECK(ops[2].type == kind::pong);
    CHECK(ops[3].type == kind::ok);
    CHECK(ops[4].type == kind::msg);
    CHECK(ops[4].subject == "foo.bar");
    CHECK(ops[4].sid == 7);
    CHECK(ops[4].reply.empty());
    CHECK(ops[4].payload == "hello world");
    CHECK(ops[5].reply == "_INBOX.x.1");
    CHECK(ops[5].payload.empty());
    CHECK(ops[6].has_headers);
    CHECK(ops[6].headers == "NATS/1.0\r\nK: v\r\n\r\n");
    CHECK(ops[6].payload == "hello");
    CHECK(ops[7].reply == "reply.to");
    CHECK(ops[7].headers == "NATS/1.0 503");
    CHECK(ops[7].payload.empty());
    CHECK(ops[8].payload == std::string("\r\n\x00\n", 4));
    CHECK(ops[9].type == kind::err);
    CHECK(ops[9].payload == "Unknown Protocol Operation");
  }
}

TEST_CASE("the decoder refuses hostile input with a status, never a crash", "[nats][protocol]") {
  struct bad {
    std::string bytes;
    absl::StatusCode code;
  };
  const std::vector<bad> cases = {
      {"BOGUS\r\n", absl::StatusCode::kInvalidArgument},
      {"MSG a\r\n", absl::StatusCode::kInvalidArgument},
      {"MSG a b 3\r\n", absl::StatusCode::kInvalidArgument},
      {"MSG a 1 -3\r\n", absl::StatusCode::kInvalidArgument},
      {"MSG a 1 99999999999999999999\r\n", absl::StatusCode::kInvalidArgument},
      {"MSG a 1 x y 3\r\n", absl::StatusCode::kInvalidArgument},
      {"MSG a 1 3\r\nabcd\r\n", absl::StatusCode::kInvalidArgument},  // the count is wrong
      {"HMSG a 1 9 3\r\n", absl::StatusCode::kInvalidArgument},       // headers over the total
      {"MSG a 1 999999999\r\n", absl::StatusCode::kResourceExhausted},
      {"PING extra\r\n", absl::StatusCode::kInvalidArgument},
      {std::string(5000, 'x'), absl::StatusCode::kResourceExhausted},  // no line end in sight
      {"INFO " + std::string(5000, 'x') + "\r\n", absl::StatusCode::kResourceExhausted},
  };
  for (const auto& c : cases) {
    for (std::size_t step : {0, 1, 4}) {
      CAPTURE(c.bytes.substr(0, 40), step);
      absl::Status st;
      decode(c.bytes, step, &st);
      CHECK(st.code() == c.code);
    }
  }
  // After an error the decoder stays failed.
  decoder d;
  std::vector<server_op> out;
  CHECK(!d.feed("NOPE\r\n", out).ok());
  CHECK(!d.feed("PING\r\n", out).ok());
  CHECK(out.empty());
}

TEST_CASE("header blocks parse and encode, and bad names and values are refused", "[nats][protocol]") {
  using conch::nats::detail::encode_headers;
  using conch::nats::detail::parse_headers;
  auto enc = encode_headers({{"Trace-Id", "abc"}, {"K", "v w"}});
  REQUIRE(enc.ok());
  CHECK(*enc == "NATS/1.0\r\nTrace-Id: abc\r\nK: v w\r\n\r\n");
  auto dec = parse_headers(*enc);
  REQUIRE(dec.ok());
  CHECK(dec->status == 0);
  REQUIRE(dec->fields.size() == 2);
  CHECK(dec->fields[0] == std::pair<std::string, std::string>{"Trace-Id", "abc"});
  CHECK(dec->fields[1].second == "v w");
  auto status = parse_headers("NATS/1.0 503 No Responders\r\n\r\n");
  REQUIRE(status.ok());
  CHECK(status->status == 503);
  CHECK(status->description == "No Responders");
  CHECK(!parse_headers("HTTP/1.1 200\r\n\r\n").ok());
  CHECK(!encode_headers({{"", "v"}}).ok());
  CHECK(!encode_headers({{"a b", "v"}}).ok());
  CHECK(!encode_headers({{"a:b", "v"}}).ok());
  CHECK(!encode_headers({{"a", "line\r\nbreak"}}).ok());
}

TEST_CASE("subjects are checked, and PUB and HPUB are encoded with their byte counts", "[nats][protocol]") {
  using conch::nats::detail::check_subject;
  using conch::nats::detail::encode_pub;
  CHECK(check_subject("a.b.c", false, "subject").ok());
  CHECK(check_subject("a.*.>", true, "subject").ok());
  CHECK(!check_subject("", false, "subject").ok());
  CHECK(!check_subject("a..b", false, "subject").ok());
  CHECK(!check_subject(".a", false, "subject").ok());
  CHECK(!check_subject("a b", false, "subject").ok());
  CHECK(!check_subject("a\r\nPUB x 1", false, "subject").ok());
  CHECK(!check_subject("a.>.b", true, "subject").ok());
  CHECK(!check_subject("a.b*", true, "subject").ok());
  CHECK(!check_subject("a.*", false, "subject").ok());  // no wildcards to publish to
  CHECK(check_subject("a.b*", false, "subject").ok());  // '*' inside a token is a plain byte there
  std::string out;
  encode_pub(out, "s", "", "", "hi");
  CHECK(out == "PUB s 2\r\nhi\r\n");
  out.clear();
  encode_pub(out, "s", "r", "NATS/1.0\r\n\r\n", "hi");
  CHECK(out == "HPUB s r 12 14\r\nNATS/1.0\r\n\r\nhi\r\n");
}
