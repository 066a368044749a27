// tests/fuzz/address.cpp
// Fuzz target `address`: the address parser (every form lsocket allows) and the printing of kernel addresses.
//
// Input: [selector] bytes...
//   selector % 4 == 0..2: bytes is an address string for address::parse and
//     parse_spec (with and without a required port); never a lookup.
//   selector % 4 == 3: bytes is a raw sockaddr (family from the first bytes)
//     for address::from_sockaddr, then host()/to_string()/port().
// Oracles: nothing throws (an exception would abort: no try here); a refusal
// is kInvalidArgument quoting at most 200 bytes of the input; an address
// that parses prints to a string that parses back to the same address.
#include <sys/socket.h>
#include <sys/un.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "conch/net/address.hpp"
#include "sockets/address_util.hpp"
#include "tests/fuzz/fuzz_check.hpp"

namespace {

namespace net = conch::net;

void check_refusal(const absl::Status& st) {
  FUZZ_CHECK(st.code() == absl::StatusCode::kInvalidArgument, "a refusal that is not kInvalidArgument");
  FUZZ_CHECK(st.message().size() < 512, "an error message that quotes too much of the input");
}

void round_trip(const net::address& a) {
  const std::string printed = a.to_string();
  if (printed.empty()) return;  // unnamed Unix address: nothing to parse back
  auto again = net::address::parse(printed);
  FUZZ_CHECK(again.ok(), std::string("a printed address does not parse back: " + printed).c_str());
  FUZZ_CHECK(*again == a, std::string("a printed address parses to another: " + printed).c_str());
  FUZZ_CHECK(again->to_string() == printed, "printing is not stable");
}

void parse_text(std::string_view text) {
  auto a = net::address::parse(text);
  if (a.ok()) {
    FUZZ_CHECK(!a->empty(), "parse gave the empty address");
    if (a->is_ip()) FUZZ_CHECK(a->port() >= 0 && a->port() <= 65535, "port out of range");
    round_trip(*a);
  } else {
    check_refusal(a.status());
  }
  for (bool require_port : {true, false}) {
    auto s = net::detail::parse_spec(text, require_port);
    if (!s.ok()) {
      check_refusal(s.status());
      continue;
    }
    if (s->k == net::detail::address_spec::kind::inet && !s->numeric) {
      // A name for the resolver: printable and without the characters that
      // would make it an address form.
      FUZZ_CHECK(!s->host.empty(), "a name that is empty");
      FUZZ_CHECK(s->host.size() <= 253, "a name longer than DNS allows");
      for (char c : s->host)
        FUZZ_CHECK((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '-' || c == '.' || c == '_',
                   "a name with a character no host name has");
    } else {
      round_trip(s->addr);
    }
  }
}

void print_sockaddr(const std::uint8_t* p, std::size_t n) {
  sockaddr_storage ss{};
  const std::size_t len = n < sizeof ss ? n : sizeof ss;
  std::memcpy(&ss, p, len);
  // Steer the family towards the ones address knows, so the fuzzer need not guess them.
  static const sa_family_t families[] = {AF_INET, AF_INET6, AF_UNIX, AF_UNSPEC};
  if (len >= sizeof(sa_family_t)) ss.ss_family = families[p[0] % 4];
  auto a = net::address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), static_cast<socklen_t>(len));
  (void)a.host();
  (void)a.to_string();
  (void)a.port();
  (void)a.is_abstract();
  (void)a.with_port(n > 0 ? p[0] : 0).port();
  FUZZ_CHECK(a.size() <= sizeof(sockaddr_storage), "an address longer than sockaddr_storage");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t* p = data + 1;
  const std::size_t n = size - 1;
  if (data[0] % 4 == 3)
    print_sockaddr(p, n);
  else
    parse_text(std::string_view(reinterpret_cast<const char*>(p), n));
  return 0;
}
