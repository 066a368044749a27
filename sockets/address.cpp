// sockets/address.cpp
// address: parsing by lsocket's rules, formatting, resolve() on the blocking pool, interfaces().
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cerrno>
#include <cstddef>
#include <cstring>

#include "conch/chan/go.hpp"
#include "conch/core/status.hpp"
#include "conch/net/address.hpp"
#include "sockets/address_util.hpp"

namespace conch::net {

namespace {

constexpr std::size_t kSunPathMax = sizeof(sockaddr_un::sun_path) - 1;  // 107 + NUL

// The message quotes at most the first 200 bytes of what the caller gave: a
// hostile megabyte-long "address" does not become a megabyte-long error.
absl::Status bad(std::string_view text, std::string_view why) {
  constexpr std::size_t kQuoted = 200;
  std::string shown(text.substr(0, kQuoted));
  if (text.size() > kQuoted) shown += "...";
  return absl::InvalidArgumentError("bad address '" + shown + "': " + std::string(why));
}

// A part of the input (a zone, a port, a host) for a message: at most 64 bytes.
std::string part(std::string_view p) {
  constexpr std::size_t kShown = 64;
  return p.size() <= kShown ? std::string(p) : std::string(p.substr(0, kShown)) + "...";
}

// Reads an unsigned decimal of at most `max` from `digits` (all '0'-'9',
// not empty) without std::stoul, which throws on overflow: false if the
// value is over `max` (however many digits it has).
bool decimal_within(std::string_view digits, std::uint64_t max, std::uint64_t& out) noexcept {
  std::uint64_t v = 0;
  for (char c : digits) {
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
    if (v > max) return false;  // checked every digit: v*10 never overflows 64 bits
  }
  out = v;
  return true;
}

bool all_digits(std::string_view s) noexcept {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

// The interface index an IPv6 zone ("%eth0", "%2") names: a name must be an
// existing interface, a number must be 1..2^32-1 (the width of
// sin6_scope_id; 0 means "no zone" and is refused rather than ignored).
absl::StatusOr<std::uint32_t> zone_index(std::string_view text, std::string_view zone) {
  if (zone.empty()) return bad(text, "empty zone id after '%'");
  if (all_digits(zone)) {
    std::uint64_t v = 0;
    if (!decimal_within(zone, 0xffffffffu, v) || v == 0)
      return bad(text, "zone id " + part(zone) + " is out of range (1-4294967295)");
    return static_cast<std::uint32_t>(v);
  }
  // IF_NAMESIZE counts the NUL: a longer name cannot exist.
  unsigned idx = zone.size() < IF_NAMESIZE ? if_nametoindex(std::string(zone).c_str()) : 0;
  if (idx == 0) return bad(text, "zone '" + part(zone) + "' is not a network interface");
  return static_cast<std::uint32_t>(idx);
}

// Numeric IPv4 or IPv6 (with an optional %zone) into `out`: true if `host`
// is numeric, false if it is not (a name, for the caller to judge), or a
// status for a numeric IPv6 address whose zone is bad. `text` is the whole
// address string, for messages. `host` holds no NUL (parse_spec checks).
absl::StatusOr<bool> parse_numeric(std::string_view text, const std::string& host, int port,
                                   address& out) {
  sockaddr_storage ss{};
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<std::uint16_t>(port));
    out = address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), sizeof(sockaddr_in));
    return true;
  }
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  std::string h = host;
  std::string_view zone;
  const auto pct = host.find('%');
  if (pct != std::string::npos) {
    zone = std::string_view(host).substr(pct + 1);
    h.resize(pct);
  }
  if (inet_pton(AF_INET6, h.c_str(), &v6->sin6_addr) != 1) return false;
  v6->sin6_family = AF_INET6;
  v6->sin6_port = htons(static_cast<std::uint16_t>(port));
  if (pct != std::string::npos) {
    CONCH_ASSIGN_OR_RETURN(v6->sin6_scope_id, zone_index(text, zone));
  }
  out = address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), sizeof(sockaddr_in6));
  return true;
}

// A port: 1 to 5 decimal digits, 0..65535.
absl::StatusOr<int> parse_port(std::string_view text, std::string_view p) {
  if (p.empty()) return bad(text, "empty port after ':'");
  std::uint64_t v = 0;
  if (!all_digits(p))
    return bad(text, "port '" + part(p) + "' is not a number from 0 to 65535");
  if (!decimal_within(p, 65535, v))
    return bad(text, "port " + part(p) + " is out of range (0-65535)");
  return static_cast<int>(v);
}

}  // namespace

// ---- address ----

address::address() noexcept : ss_{}, len_(0) { ss_.ss_family = AF_UNSPEC; }

address address::from_sockaddr(const sockaddr* sa, socklen_t len) noexcept {
  address a;
  if (sa == nullptr || len < static_cast<socklen_t>(sizeof(sa_family_t))) return a;
  if (len > static_cast<socklen_t>(sizeof a.ss_)) len = sizeof a.ss_;
  std::memcpy(&a.ss_, sa, static_cast<std::size_t>(len));
  a.len_ = len;
  return a;
}

int address::family() const noexcept { return len_ == 0 ? AF_UNSPEC : ss_.ss_family; }

bool address::is_abstract() const noexcept {
  auto* un = reinterpret_cast<const sockaddr_un*>(&ss_);
  return family() == AF_UNIX && len_ > static_cast<socklen_t>(offsetof(sockaddr_un, sun_path)) &&
         un->sun_path[0] == '\0';
}

std::string address::host() const {
  char buf[INET6_ADDRSTRLEN + IF_NAMESIZE + 2];
  switch (family()) {
    case AF_INET: {
      auto* v4 = reinterpret_cast<const sockaddr_in*>(&ss_);
      inet_ntop(AF_INET, &v4->sin_addr, buf, sizeof buf);
      return buf;
    }
    case AF_INET6: {
      auto* v6 = reinterpret_cast<const sockaddr_in6*>(&ss_);
      inet_ntop(AF_INET6, &v6->sin6_addr, buf, sizeof buf);
      std::string s = buf;
      if (v6->sin6_scope_id != 0) {
        char name[IF_NAMESIZE];
        s += '%';
        s += if_indextoname(v6->sin6_scope_id, name) != nullptr ? std::string(name)
                                                                : std::to_string(v6->sin6_scope_id);
      }
      return s;
    }
    case AF_UNIX: {
      auto* un = reinterpret_cast<const sockaddr_un*>(&ss_);
      if (len_ <= static_cast<socklen_t>(offsetof(sockaddr_un, sun_path))) return "";  // unnamed
      std::size_t n = static_cast<std::size_t>(len_) - offsetof(sockaddr_un, sun_path);
      if (un->sun_path[0] == '\0') return "@" + std::string(un->sun_path + 1, n - 1);
      return std::string(un->sun_path, strnlen(un->sun_path, n));
    }
    default:
      return "";
  }
}

std::string address::to_string() const {
  switch (family()) {
    case AF_INET:
      return host() + ":" + std::to_string(port());
    case AF_INET6:
      return "[" + host() + "]:" + std::to_string(port());
    default:
      return host();
  }
}

int address::port() const noexcept {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&ss_)->sin_port);
  if (family() == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&ss_)->sin6_port);
  return 0;
}

address address::with_port(int p) const noexcept {
  address a = *this;
  if (family() == AF_INET)
    reinterpret_cast<sockaddr_in*>(&a.ss_)->sin_port = htons(static_cast<std::uint16_t>(p));
  else if (family() == AF_INET6)
    reinterpret_cast<sockaddr_in6*>(&a.ss_)->sin6_port = htons(static_cast<std::uint16_t>(p));
  return a;
}

bool operator==(const address& a, const address& b) noexcept {
  return a.len_ == b.len_ &&
         std::memcmp(&a.ss_, &b.ss_, static_cast<std::size_t>(a.len_)) == 0;
}

absl::StatusOr<address> address::parse(std::string_view text) {
  CONCH_ASSIGN_OR_RETURN(detail::address_spec spec, detail::parse_spec(text, true));
  if (spec.k != detail::address_spec::kind::inet || spec.numeric) return spec.addr;
  return bad(text, "'" + part(spec.host) + "' is a host name; look it up with conch::net::resolve()");
}

// ---- resolve ----

namespace {
task<absl::StatusOr<std::vector<address>>> resolve_impl(std::string text) {
  CONCH_CO_ASSIGN_OR_RETURN(detail::address_spec spec, detail::parse_spec(text, false));
  if (spec.k != detail::address_spec::kind::inet || spec.numeric)
    co_return std::vector<address>{spec.addr};
  std::string host = spec.host;
  int port = spec.port;
  auto ch = conch::thread([host, port] { return detail::lookup_blocking(host, port); });
  auto r = co_await ch.recv();
  if (!r) co_return absl::UnavailableError("resolve('" + text + "'): the runtime is shutting down");
  co_return std::move(*r);
}
}  // namespace

task<absl::StatusOr<std::vector<address>>> resolve(std::string_view host) {
  // Not a coroutine itself: the string is copied into the task's frame now,
  // so the caller's string_view may die before the task runs.
  return resolve_impl(std::string(host));
}

// ---- interfaces ----

absl::StatusOr<std::vector<interface_info>> interfaces() {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return detail::errno_status(errno, "getifaddrs");
  std::vector<interface_info> out;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    int fam = i->ifa_addr->sa_family;
    if (fam != AF_INET && fam != AF_INET6) continue;
    socklen_t len = fam == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
    interface_info info;
    info.name = i->ifa_name;
    info.family = fam;
    info.addr = address::from_sockaddr(i->ifa_addr, len);
    if (i->ifa_netmask != nullptr) {
      // The kernel leaves the mask's family unset on some paths: fix it up.
      sockaddr_storage m{};
      std::memcpy(&m, i->ifa_netmask, len);
      m.ss_family = static_cast<sa_family_t>(fam);
      info.netmask = address::from_sockaddr(reinterpret_cast<sockaddr*>(&m), len);
    }
    info.index = if_nametoindex(i->ifa_name);
    info.up = (i->ifa_flags & IFF_UP) != 0;
    info.loopback = (i->ifa_flags & IFF_LOOPBACK) != 0;
    info.multicast = (i->ifa_flags & IFF_MULTICAST) != 0;
    out.push_back(std::move(info));
  }
  freeifaddrs(list);
  return out;
}

}  // namespace conch::net

namespace conch::net::detail {

absl::StatusOr<address_spec> parse_spec(std::string_view text, bool require_port) {
  address_spec s;
  if (text.empty()) return bad(text, "empty (expected host:port, [v6]:port, a path or @name)");
  if (text[0] == '@') {  // Linux abstract socket: '@' becomes the leading NUL
    std::string_view name = text.substr(1);
    if (name.empty()) return bad(text, "an abstract socket needs a name after '@'");
    if (name.size() > kSunPathMax) return bad(text, "abstract name longer than 107 bytes");
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path + 1, name.data(), name.size());
    s.k = address_spec::kind::unix_abstract;
    s.addr = address::from_sockaddr(reinterpret_cast<sockaddr*>(&un),
                                    static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 +
                                                           name.size()));
    return s;
  }
  if (text.find('/') != std::string_view::npos) {  // a Unix socket path
    if (text.size() > kSunPathMax)
      return bad(text, "Unix socket path is " + std::to_string(text.size()) +
                           " bytes; the limit is 107");
    if (text.find('\0') != std::string_view::npos) return bad(text, "NUL byte in a Unix path");
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path, text.data(), text.size());
    s.k = address_spec::kind::unix_path;
    s.addr = address::from_sockaddr(reinterpret_cast<sockaddr*>(&un),
                                    static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) +
                                                           text.size() + 1));
    return s;
  }
  std::string_view host, port;
  bool has_port = false;
  if (text[0] == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos) return bad(text, "'[' without a closing ']'");
    host = text.substr(1, close - 1);
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':') return bad(text, "expected ':port' after ']'");
      port = rest.substr(1);
      has_port = true;
    }
    if (host.empty()) return bad(text, "empty IPv6 address in brackets");
  } else {
    auto colon = text.rfind(':');
    if (colon != std::string_view::npos && text.find(':') != colon) {
      // Several colons: a bare IPv6 address. Fine without a port (resolve);
      // with one it is ambiguous.
      if (require_port)
        return bad(text, "an IPv6 address needs brackets and a port: [addr]:port");
      host = text;
    } else if (colon != std::string_view::npos) {
      host = text.substr(0, colon);
      port = text.substr(colon + 1);
      has_port = true;
    } else {
      host = text;
    }
  }
  if (has_port) {
    CONCH_ASSIGN_OR_RETURN(s.port, parse_port(text, port));
  } else if (require_port) {
    return bad(text, "missing port (expected host:port, [v6]:port, a path with '/' or @name)");
  }
  // inet_pton and getaddrinfo read C strings: a NUL would cut the host
  // short ("1.2.3.4\0junk" would pass as 1.2.3.4).
  if (host.find('\0') != std::string_view::npos) return bad(text, "NUL byte in the host");
  s.k = address_spec::kind::inet;
  s.host = std::string(host == "*" ? std::string_view() : host);
  if (s.host.empty()) {
    sockaddr_in any{};
    any.sin_family = AF_INET;
    any.sin_addr.s_addr = htonl(INADDR_ANY);
    any.sin_port = htons(static_cast<std::uint16_t>(s.port));
    s.addr = address::from_sockaddr(reinterpret_cast<sockaddr*>(&any), sizeof any);
    s.numeric = true;
  } else {
    CONCH_ASSIGN_OR_RETURN(s.numeric, parse_numeric(text, s.host, s.port, s.addr));
    if (text[0] == '[' && (!s.numeric || s.addr.family() != AF_INET6))
      return bad(text, "'" + part(s.host) + "' is not an IPv6 address");
    // A name goes to getaddrinfo (maybe to DNS): only what a host name may
    // hold (letters, digits, '-', '.', '_'; at most 253 bytes), so junk is
    // refused here, not sent to a resolver.
    if (!s.numeric && s.host.find_first_not_of("abcdefghijklmnopqrstuvwxyz"
                                               "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                               "0123456789-._") != std::string::npos)
      return bad(text, "'" + part(s.host) + "' is neither an IP address nor a host name");
    if (!s.numeric && s.host.size() > 253)
      return bad(text, "host name longer than 253 bytes");
  }
  return s;
}

absl::StatusOr<std::vector<address>> local_addresses(std::string_view text, const char* what) {
  CONCH_ASSIGN_OR_RETURN(address_spec s, parse_spec(text, true));
  if (s.k != address_spec::kind::inet || s.numeric) return std::vector<address>{s.addr};
  if (s.host == "localhost") {  // without a lookup: 127.0.0.1 (getaddrinfo may list ::1 first)
    sockaddr_in lo{};
    lo.sin_family = AF_INET;
    lo.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lo.sin_port = htons(static_cast<std::uint16_t>(s.port));
    return std::vector<address>{address::from_sockaddr(reinterpret_cast<sockaddr*>(&lo), sizeof lo)};
  }
  // AI_PASSIVE: addresses to bind (it matters only for a null host, which the
  // wildcard forms never reach: they are numeric). No AI_ADDRCONFIG: glibc
  // ignores loopback addresses when it checks which families are configured,
  // so it would hide "::1" on a host whose only other addresses are IPv4;
  // an address of a family the machine lacks just fails bind() and the next
  // one is tried.
  auto found = lookup_blocking(s.host, s.port, AI_PASSIVE);
  if (!found.ok())
    return absl::Status(found.status().code(), std::string(what) + "('" + std::string(text) +
                                                   "'): " + std::string(found.status().message()));
  return found;
}

absl::StatusOr<std::vector<address>> lookup_blocking(const std::string& host, int port,
                                                     int flags) {
  addrinfo hints{};
  hints.ai_flags = flags;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;  // one entry per address, not per socket type
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0) {
    std::string msg = "cannot resolve '" + host + "': " +
                      (rc == EAI_SYSTEM ? std::string(std::strerror(errno)) : gai_strerror(rc));
    if (rc == EAI_NONAME || rc == EAI_NODATA || rc == EAI_FAMILY) return absl::NotFoundError(msg);
    if (rc == EAI_AGAIN) return absl::UnavailableError(msg);
    return absl::UnknownError(msg);
  }
  std::vector<address> out;
  for (addrinfo* i = res; i != nullptr; i = i->ai_next) {
    if (i->ai_family != AF_INET && i->ai_family != AF_INET6) continue;
    address a = address::from_sockaddr(i->ai_addr, i->ai_addrlen).with_port(port);
    bool dup = false;
    for (const address& b : out) dup = dup || b == a;
    if (!dup) out.push_back(a);
  }
  freeaddrinfo(res);
  if (out.empty()) return absl::NotFoundError("cannot resolve '" + host + "': no IP addresses");
  return out;
}

std::string describe(std::string_view verb, const address& a, std::string_view text) {
  std::string printed = a.to_string();
  std::string out = std::string(verb) + " " + printed;
  if (text != printed) out += " ('" + std::string(text) + "')";
  return out;
}

absl::Status check_options(const options& o, std::string_view what) {
  auto over = [&](const char* name, std::size_t v) {
    return absl::InvalidArgumentError(std::string(what) + ": " + name + " " + std::to_string(v) +
                                      " is over the limit of " +
                                      std::to_string(options::max_capacity) +
                                      " (options::max_capacity)");
  };
  if (o.in_capacity > options::max_capacity) return over("in_capacity", o.in_capacity);
  if (o.out_capacity > options::max_capacity) return over("out_capacity", o.out_capacity);
  return absl::OkStatus();
}

// absl::ErrnoToStatus's code and message, but the text comes from glibc's
// strerror_r: absl's own strerror table is set up lazily inside Debian's
// libabsl, which TSan cannot see, so two loops failing at once for the first
// time were reported as a race.
absl::Status errno_status(int err, const std::string& what) {
  char buf[128];
  const char* text = strerror_r(err, buf, sizeof buf);  // GNU: returns the text
  return absl::Status(absl::ErrnoToStatusCode(err), what + ": " + text);
}

address sock_name(int fd) noexcept {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
  return address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

address peer_name(int fd) noexcept {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return {};
  return address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

}  // namespace conch::net::detail
