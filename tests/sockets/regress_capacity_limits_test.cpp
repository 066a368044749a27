// tests/sockets/regress_capacity_limits_test.cpp
// Issue 19: capacities from a caller are checked before slots are allocated up front.
#include <cstdint>
#include <new>

#include <catch2/catch.hpp>

#include "tests/sockets/net_test_support.hpp"

namespace net = conch::net;

TEST_CASE("a channel capacity whose slots overflow size_t throws bad_alloc",
          "[sockets][limits][hostile]") {
  // Before: capacity * sizeof(T) wrapped to a small block and the buffer
  // ran past it. Only overflowing sizes here: a merely huge one is a real
  // allocation, which a sanitizer reports instead of throwing.
  CHECK_THROWS_AS(conch::chan<int>(SIZE_MAX / 2), std::bad_alloc);
  CHECK_THROWS_AS(conch::chan<std::string>(conch::buffer::sliding(SIZE_MAX / 8)), std::bad_alloc);
  conch::chan<int> ok(1024);
  CHECK(ok.try_send(1));
}

TEST_CASE("socket capacities over options::max_capacity are refused by name",
          "[sockets][limits][hostile]") {
  conch::test::require_io_uring();
  conch::run([]() -> conch::task<void> {
    auto named = [](const absl::Status& st, const char* option) {
      INFO(st.ToString());
      CHECK(st.code() == absl::StatusCode::kInvalidArgument);
      CHECK(std::string(st.message()).find(option) != std::string::npos);
      CHECK(std::string(st.message()).find(std::to_string(net::options::max_capacity)) !=
            std::string::npos);
    };
    net::options huge_in;
    huge_in.in_capacity = std::size_t{1} << 32;
    net::options huge_out;
    huge_out.out_capacity = net::options::max_capacity + 1;
    auto l = net::listen("127.0.0.1:0", huge_in);
    REQUIRE(!l.ok());
    named(l.status(), "in_capacity");
    auto u = net::bind_udp("127.0.0.1:0", huge_out);
    REQUIRE(!u.ok());
    named(u.status(), "out_capacity");
    auto c = co_await net::connect("127.0.0.1:1", huge_out);  // refused before any dial
    REQUIRE(!c.ok());
    named(c.status(), "out_capacity");
    // At the limit: accepted, and the socket works.
    net::options at_limit;
    at_limit.in_capacity = net::options::max_capacity;
    auto srv = net::listen("127.0.0.1:0", at_limit);
    REQUIRE(srv.ok());
    srv->close();
  }(), {.threads = 1});
}
