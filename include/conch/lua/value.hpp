// conch/lua/value.hpp
// value: a Lua value in transit on a channel (what chan<conch::lua::value> carries).
//
//   conch::chan<conch::lua::value> ch(8);            // the kind of channel conch.chan() makes
//   ch.try_send(conch::lua::value(std::int64_t{42}));
//   if (auto v = ch.try_recv(); v && v->is_integer()) use(v->integer());
//
// A Lua state is single-threaded, while channels cross states and threads, so
// nothing on a channel refers into a Lua state: a value is a self-contained
// C++ copy. Booleans, integers, floats and strings are copied; a table is
// deep-copied when it is sent (a snapshot: later changes on either side are
// not seen by the other; metatables are not copied); a channel travels as a
// handle to the same channel. nil, functions, coroutines and other userdata
// cannot be sent. Values are immutable once built, so copies share tables.
#pragma once

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

struct table;
class any_chan;

/// A Lua value copied out of a Lua state (see the file comment).
class value {
 public:
  using table_ptr = std::shared_ptr<const table>;
  using chan_ptr = std::shared_ptr<const any_chan>;
  /// monostate is nil: it never travels on a channel, but a default-constructed
  /// value holds it.
  using storage =
      std::variant<std::monostate, bool, std::int64_t, double, std::string, table_ptr, chan_ptr>;

  value() noexcept = default;
  explicit value(bool b) noexcept : data(b) {}
  explicit value(std::int64_t i) noexcept : data(i) {}
  explicit value(double d) noexcept : data(d) {}
  explicit value(std::string s) noexcept : data(std::move(s)) {}
  explicit value(const char* s) : data(std::string(s)) {}
  explicit value(table_ptr t) noexcept : data(std::move(t)) {}
  explicit value(chan_ptr c) noexcept : data(std::move(c)) {}

  bool is_nil() const noexcept { return data.index() == 0; }
  bool is_boolean() const noexcept { return data.index() == 1; }
  bool is_integer() const noexcept { return data.index() == 2; }
  bool is_float() const noexcept { return data.index() == 3; }
  bool is_string() const noexcept { return data.index() == 4; }
  bool is_table() const noexcept { return data.index() == 5; }
  bool is_chan() const noexcept { return data.index() == 6; }

  /// The payload; the caller checks the kind first (std::get semantics).
  bool boolean() const { return std::get<1>(data); }
  std::int64_t integer() const { return std::get<2>(data); }
  double number() const { return is_integer() ? static_cast<double>(integer()) : std::get<3>(data); }
  const std::string& string() const { return std::get<4>(data); }
  const table& tbl() const { return *std::get<5>(data); }
  const any_chan& chan() const { return *std::get<6>(data); }

  storage data;
};

/// A deep copy of a Lua table: its key/value pairs in traversal order.
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

  template <class T>
  explicit any_chan(conch::chan<T> c) noexcept : ch_(std::move(c)) {}

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
  friend bool operator==(const any_chan& a, const any_chan& b) noexcept {
    return a.core() == b.core();
  }

 private:
  storage ch_;
};

}  // namespace conch::lua
