// conch/lua/value.hpp
// value: a Lua value in transit on a channel (what chan<conch::lua::value> carries).
//
//   conch::chan<conch::lua::value> ch(8);            // the kind of channel conch.chan() makes
//   ch.try_send(conch::lua::value(std::int64_t{42}));
//   if (auto v = ch.try_recv(); v && v->is_integer()) use(v->integer());
//
// A Lua state is single-threaded, while channels cross states and threads, so
// nothing on a channel refers into a Lua state: a value is a self-contained
// C++ copy. Booleans, integers, floats and strings are copied. A table is
// copied when it is sent, as a graph (a snapshot: later changes on either
// side are not seen by the other; metatables are not copied): a table
// reachable twice is copied once and arrives as one table reachable twice,
// and a cycle arrives as the same cycle (the edge that closes it is a weak
// back reference, so copies never keep themselves alive). The cost
// is linear in the distinct tables; a value larger than the channel's
// max_value is refused. A channel travels as a handle to the same channel;
// a socket, server or UDP socket as a handle to the same connection (its
// `in`/`out`/`connections` channels work from any thread and any runtime,
// but its I/O runs on the runtime that made it and ends with it). In one Lua
// state a channel or socket that comes back is the same Lua object, so they
// work as table keys. nil, functions, coroutines and other userdata cannot
// be sent. Values are immutable once built, so copies share tables.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "conch/chan/chan.hpp"
#include "conch/net/socket.hpp"
#include "conch/net/udp.hpp"

namespace conch::lua {

/// The largest value a Lua state sends on a channel unless the channel says
/// otherwise (conch.chan{max_value = bytes}): 256 MiB, counted as the bytes of
/// its strings plus a fixed cost per table entry and per table. A larger
/// value is refused with an error; nothing is sent and the channel works on.
inline constexpr std::size_t default_max_value = std::size_t{256} << 20;

struct table;
class any_chan;

/// A Lua value copied out of a Lua state (see the file comment).
class value {
 public:
  using table_ptr = std::shared_ptr<const table>;
  using chan_ptr = std::shared_ptr<const any_chan>;
  /// monostate is nil: it never travels on a channel, but a default-constructed
  /// value holds it.
  /// A back reference to an enclosing table (what closes a cycle).
  struct table_ref {
    std::weak_ptr<const table> t;
  };
  /// The rarer kinds, behind one pointer so the common ones stay cheap to
  /// move and destroy: net objects (handles to their connection) and back
  /// references.
  using extra = std::variant<net::socket, net::server, net::udp_socket, table_ref>;
  using extra_ptr = std::shared_ptr<const extra>;
  using storage = std::variant<std::monostate, bool, std::int64_t, double, std::string, table_ptr, chan_ptr, extra_ptr>;

  value() noexcept = default;
  explicit value(bool b) noexcept : data(b) {}
  explicit value(std::int64_t i) noexcept : data(i) {}
  explicit value(double d) noexcept : data(d) {}
  explicit value(std::string s) noexcept : data(std::move(s)) {}
  explicit value(const char* s) : data(std::string(s)) {}
  explicit value(table_ptr t) noexcept : data(std::move(t)) {}
  explicit value(chan_ptr c) noexcept : data(std::move(c)) {}
  /// These allocate (std::bad_alloc).
  explicit value(net::socket s) : data(std::make_shared<const extra>(std::move(s))) {}
  explicit value(net::server s) : data(std::make_shared<const extra>(std::move(s))) {}
  explicit value(net::udp_socket u) : data(std::make_shared<const extra>(std::move(u))) {}
  explicit value(table_ref t) : data(std::make_shared<const extra>(std::move(t))) {}

  bool is_nil() const noexcept { return data.index() == 0; }
  bool is_boolean() const noexcept { return data.index() == 1; }
  bool is_integer() const noexcept { return data.index() == 2; }
  bool is_float() const noexcept { return data.index() == 3; }
  bool is_string() const noexcept { return data.index() == 4; }
  /// A table, held (index 5) or a back reference to an enclosing one.
  bool is_table() const noexcept { return data.index() == 5 || extra_is(3); }
  bool is_chan() const noexcept { return data.index() == 6; }
  bool is_socket() const noexcept { return extra_is(0); }
  bool is_server() const noexcept { return extra_is(1); }
  bool is_udp() const noexcept { return extra_is(2); }
  /// A back reference (is_table() too).
  bool is_back_ref() const noexcept { return extra_is(3); }

  /// The payload; the caller checks the kind first (std::get semantics).
  bool boolean() const { return std::get<1>(data); }
  std::int64_t integer() const { return std::get<2>(data); }
  double number() const { return is_integer() ? static_cast<double>(integer()) : std::get<3>(data); }
  const std::string& string() const { return std::get<4>(data); }
  /// The table. For a back reference the table lives as long as the value
  /// that encloses it; once that is gone this throws std::bad_weak_ptr.
  const table& tbl() const {
    if (data.index() == 7) return *table_ptr(std::get<3>(*std::get<7>(data)).t);  // the encloser owns it
    return *std::get<5>(data);
  }
  const any_chan& chan() const { return *std::get<6>(data); }
  const net::socket& socket() const { return std::get<0>(*std::get<7>(data)); }
  const net::server& server() const { return std::get<1>(*std::get<7>(data)); }
  const net::udp_socket& udp() const { return std::get<2>(*std::get<7>(data)); }

  storage data;

 private:
  bool extra_is(std::size_t i) const noexcept {
    const extra_ptr* e = std::get_if<7>(&data);
    return e != nullptr && *e != nullptr && (*e)->index() == i;
  }
};

/// A copy of a Lua table: its key/value pairs in traversal order.
struct table {
  std::vector<std::pair<value, value>> entries;
  /// The value stored under the string key `k`, or null.
  const value* find(std::string_view k) const noexcept {
    for (const auto& [key, v] : entries)
      if (key.is_string() && key.string() == k) return &v;
    return nullptr;
  }
  /// The value stored under the integer key `i`, or null.
  const value* find(std::int64_t i) const noexcept {
    for (const auto& [key, v] : entries)
      if (key.is_integer() && key.integer() == i) return &v;
    return nullptr;
  }
};

/// A handle to a channel of any element type a Lua state can use: the
/// channels Lua creates (chan<value>), the typed channels C++ hands over, and
/// the sockets layer's channels of connections and datagrams (a server's
/// `connections`, a UDP socket's `in`/`out`).
class any_chan {
 public:
  using storage = std::variant<conch::chan<value>, conch::chan<std::string>,
                               conch::chan<std::int64_t>, conch::chan<double>,
                               conch::chan<net::socket>, conch::chan<net::datagram>>;

  /// `max_value`: the largest value (in bytes, see default_max_value) a Lua
  /// state may send on this channel; it travels with the handle.
  template <class T>
  explicit any_chan(conch::chan<T> c, std::size_t max_value = default_max_value) noexcept
      : ch_(std::move(c)), max_value_(max_value) {}

  /// The typed handle if this channel carries T, else null.
  template <class T>
  const conch::chan<T>* get_if() const noexcept {
    return std::get_if<conch::chan<T>>(&ch_);
  }
  /// Which alternative of `storage` this is: 0 value, 1 string, 2 int64,
  /// 3 double, 4 socket, 5 datagram.
  std::size_t kind() const noexcept { return ch_.index(); }
  conch::detail::chan_core* core() const noexcept {
    return std::visit([](const auto& c) { return conch::detail::get_core(c); }, ch_);
  }
  /// The send limit given at creation (conch.chan{max_value = n}).
  std::size_t max_value() const noexcept { return max_value_; }
  friend bool operator==(const any_chan& a, const any_chan& b) noexcept {
    return a.core() == b.core();
  }

 private:
  storage ch_;
  std::size_t max_value_;
};

}  // namespace conch::lua
