// tests/ipcio/json_stream_test.cpp
// The brace-depth splitter of ipcIO's wire (sockets/ipc/json_stream.hpp) on split, merged and hostile input.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "sockets/ipc/json_stream.hpp"

namespace {

using conch::ipc::detail::json_stream;
using conch::ipc::detail::json_stream_limits;

struct result {
  std::vector<std::string> messages;
  std::vector<absl::StatusCode> errors;
};

// Feeds `pieces` in order to one stream.
result feed(const std::vector<std::string>& pieces, json_stream_limits limits = {}) {
  json_stream js(limits);
  result r;
  for (const std::string& p : pieces)
    js.feed(p, [&](std::string&& m) { r.messages.push_back(std::move(m)); },
            [&](absl::Status st) { r.errors.push_back(st.code()); });
  return r;
}

const std::string a = R"({"id":null,"command":"ping","data":{"seq":0},"delivery":null})";
const std::string b = R"({"id":"x","command":"pong","data":[1,{"k":"v"}],"delivery":null})";

}  // namespace

TEST_CASE("back-to-back objects in one read come out one by one", "[ipcio][json_stream]") {
  result r = feed({a + b + a});
  CHECK(r.messages == std::vector<std::string>{a, b, a});
  CHECK(r.errors.empty());
}

TEST_CASE("an object split at every byte is reassembled", "[ipcio][json_stream]") {
  const std::string wire = a + b;
  for (std::size_t cut = 0; cut <= wire.size(); ++cut) {
    result r = feed({wire.substr(0, cut), wire.substr(cut)});
    CHECK(r.messages == std::vector<std::string>{a, b});
    CHECK(r.errors.empty());
  }
  std::vector<std::string> bytes;
  for (char c : wire) bytes.emplace_back(1, c);
  CHECK(feed(bytes).messages == std::vector<std::string>{a, b});
}

TEST_CASE("}{ and braces inside strings, escaped quotes and backslashes survive", "[ipcio][json_stream]") {
  const std::string tricky = R"({"id":null,"command":"c","data":"}{ \"}{\" {{ ]] \\","delivery":null})";
  const std::string slash_end = R"({"data":"ends in a backslash \\"})";
  result r = feed({tricky + slash_end + a});
  CHECK(r.messages == std::vector<std::string>{tricky, slash_end, a});
  CHECK(r.errors.empty());
}

TEST_CASE("whitespace between objects is fine and CR or LF inside is kept", "[ipcio][json_stream]") {
  const std::string spaced = "{\"a\":\r\n1}";
  result r = feed({" \n" + spaced + "\r\n\t" + a + "  "});
  CHECK(r.messages == std::vector<std::string>{spaced, a});
  CHECK(r.errors.empty());
}

TEST_CASE("garbage between objects is skipped and reported once per run", "[ipcio][json_stream]") {
  result r = feed({a + "garbage]]\"" , "more}" + b});
  CHECK(r.messages == std::vector<std::string>{a, b});
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0] == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("an object over max_message is skipped whole, the next one arrives", "[ipcio][json_stream]") {
  const std::string big = R"({"data":")" + std::string(200, 'x') + "\"}";
  json_stream_limits lim{.max_message = 100, .max_depth = 8};
  result r = feed({a.substr(0, 10), a.substr(10) + big.substr(0, 150), big.substr(150) + b}, lim);
  CHECK(r.messages == std::vector<std::string>{a, b});
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0] == absl::StatusCode::kResourceExhausted);

  json_stream js(lim);
  std::size_t peak = 0;
  for (int i = 0; i < 1000; ++i) {  // a 10 KB message buffers at most max_message bytes
    js.feed(std::string(i == 0 ? "{\"d\":\"" : "") + std::string(10, 'y'), [](std::string&&) {},
            [](absl::Status) {});
    peak = std::max(peak, js.buffered());
  }
  CHECK(peak <= 100);
}

TEST_CASE("nesting deeper than max_depth is skipped, not parsed", "[ipcio][json_stream]") {
  const std::string deep = "{\"d\":" + std::string(100, '[') + std::string(100, ']') + "}";
  const std::string ok = "{\"d\":[[[]]]}";  // depth 4
  result r = feed({deep + ok}, {.max_message = 1 << 20, .max_depth = 4});
  CHECK(r.messages == std::vector<std::string>{ok});
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0] == absl::StatusCode::kResourceExhausted);
}

TEST_CASE("a truncated object stays buffered until the rest arrives", "[ipcio][json_stream]") {
  json_stream js;
  std::vector<std::string> got;
  auto keep = [&](std::string&& m) { got.push_back(std::move(m)); };
  auto fail = [](absl::Status) { FAIL("no error expected"); };
  js.feed(a.substr(0, 20), keep, fail);
  CHECK(got.empty());
  CHECK(js.buffered() == 20);
  CHECK_FALSE(js.idle());
  js.feed(a.substr(20), keep, fail);
  CHECK(got == std::vector<std::string>{a});
  CHECK(js.idle());
}
