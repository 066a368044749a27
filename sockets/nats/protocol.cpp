// sockets/nats/protocol.cpp
// The NATS protocol decoder and encoders (see protocol.hpp for the invariants).
//
// Invariants: buf_[pos_, size) holds the bytes not consumed; scanned_ bytes
// of them are known to hold no '\n' (so a control line split over many reads
// is scanned once). While in_payload_, pending_ holds the parsed MSG/HMSG
// line and need_ + 2 bytes (payload and CRLF) are awaited. No locks: a
// decoder belongs to one connection's reader.
#include "sockets/nats/protocol.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace conch::nats::detail {

namespace {

absl::string_view av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// A short, printable excerpt of hostile bytes for an error message.
std::string excerpt(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 40)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (s.size() > 40) out += "...";
  return out;
}

bool is_space(char c) { return c == ' ' || c == '\t'; }

// Splits a control line's arguments on runs of spaces and tabs.
std::vector<std::string_view> split_args(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && is_space(s[i])) ++i;
    std::size_t j = i;
    while (j < s.size() && !is_space(s[j])) ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

// A decimal count: digits only, no sign, no overflow.
bool parse_count(std::string_view s, std::uint64_t& v) {
  if (s.empty() || s.size() > 19) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (absl::ascii_tolower(static_cast<unsigned char>(a[i])) != absl::ascii_tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

}  // namespace

// ---- decoder ----

absl::Status decoder::feed(std::string_view bytes, std::vector<server_op>& out) {
  if (failed_) return absl::FailedPreconditionError("nats: the decoder failed before");
  // Compact before appending, so buf_ never grows past what is unconsumed.
  if (pos_ > 0 && (pos_ == buf_.size() || pos_ > 4096)) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  buf_.append(bytes.data(), bytes.size());
  for (;;) {
    const std::size_t avail = buf_.size() - pos_;
    if (in_payload_) {
      if (avail < need_ + 2) return absl::OkStatus();  // wait for the rest
      const char* p = buf_.data() + pos_;
      // The payload must end with CRLF (a lone LF is tolerated, as for lines).
      std::size_t end = need_;
      if (p[end] == '\r' && p[end + 1] == '\n') {
        end += 2;
      } else if (p[end] == '\n') {
        end += 1;
      } else {
        failed_ = true;
        return absl::InvalidArgumentError(
            absl::StrCat("nats: a message payload of ", need_,
                         " bytes is not followed by CRLF (the server's byte count is wrong)"));
      }
      if (pending_.has_headers) {
        pending_.headers.assign(p, header_len_);
        pending_.payload.assign(p + header_len_, need_ - header_len_);
      } else {
        pending_.payload.assign(p, need_);
      }
      out.push_back(std::move(pending_));
      pending_ = server_op{};
      pos_ += end;
      in_payload_ = false;
      continue;
    }
    const char* start = buf_.data() + pos_;
    const void* nl = std::memchr(start + scanned_, '\n', avail - scanned_);
    if (nl == nullptr) {
      scanned_ = avail;
      if (avail > max_control_) {
        failed_ = true;
        return absl::ResourceExhaustedError(absl::StrCat(
            "nats: a control line over ", max_control_, " bytes: ", excerpt({start, avail})));
      }
      return absl::OkStatus();
    }
    std::size_t len = static_cast<std::size_t>(static_cast<const char*>(nl) - start);
    const std::size_t consumed = len + 1;
    if (len > max_control_) {
      failed_ = true;
      return absl::ResourceExhaustedError(
          absl::StrCat("nats: a control line over ", max_control_, " bytes: ", excerpt({start, len})));
    }
    if (len > 0 && start[len - 1] == '\r') --len;
    const std::string_view line(start, len);
    scanned_ = 0;
    pos_ += consumed;
    if (absl::Status st = control_line(line, out); !st.ok()) {
      failed_ = true;
      return st;
    }
  }
}

// Parses one control line (without its line end); a MSG/HMSG line sets
// in_payload_ and waits for the bytes.
absl::Status decoder::control_line(std::string_view line, std::vector<server_op>& out) {
  std::size_t i = 0;
  while (i < line.size() && !is_space(line[i])) ++i;
  const std::string_view name = line.substr(0, i);
  const std::string_view rest = line.substr(i);
  server_op op;
  if (iequals(name, "MSG") || iequals(name, "HMSG")) {
    const bool h = name.size() == 4;
    const std::vector<std::string_view> a = split_args(rest);
    // MSG subject sid [reply] size; HMSG subject sid [reply] hsize size.
    const std::size_t counts = h ? 2 : 1;
    if (a.size() != 2 + counts && a.size() != 3 + counts)
      return absl::InvalidArgumentError(absl::StrCat("nats: malformed ", av(name), ": ", excerpt(line)));
    std::uint64_t sid = 0, total = 0, hlen = 0;
    if (!parse_count(a[1], sid) || !parse_count(a.back(), total) ||
        (h && !parse_count(a[a.size() - 2], hlen)))
      return absl::InvalidArgumentError(absl::StrCat("nats: bad number in ", av(name), ": ", excerpt(line)));
    if (h && hlen > total)
      return absl::InvalidArgumentError(
          absl::StrCat("nats: HMSG header size over its total size: ", excerpt(line)));
    if (total > max_payload_)
      return absl::ResourceExhaustedError(
          absl::StrCat("nats: a message of ", total, " bytes is over the limit of ", max_payload_));
    op.type = server_op::kind::msg;
    op.subject.assign(a[0]);
    op.sid = sid;
    if (a.size() == 3 + counts) op.reply.assign(a[2]);
    op.has_headers = h;
    pending_ = std::move(op);
    need_ = static_cast<std::size_t>(total);
    header_len_ = static_cast<std::size_t>(hlen);
    in_payload_ = true;
    return absl::OkStatus();
  }
  if (iequals(name, "PING") || iequals(name, "PONG") || iequals(name, "+OK")) {
    if (!split_args(rest).empty())
      return absl::InvalidArgumentError(absl::StrCat("nats: unexpected arguments: ", excerpt(line)));
    op.type = iequals(name, "PING") ? server_op::kind::ping
              : iequals(name, "PONG") ? server_op::kind::pong
                                      : server_op::kind::ok;
    out.push_back(std::move(op));
    return absl::OkStatus();
  }
  if (iequals(name, "INFO")) {
    std::size_t b = 0;
    while (b < rest.size() && is_space(rest[b])) ++b;
    op.type = server_op::kind::info;
    op.payload.assign(rest.substr(b));
    out.push_back(std::move(op));
    return absl::OkStatus();
  }
  if (iequals(name, "-ERR")) {
    std::string_view m = rest;
    while (!m.empty() && is_space(m.front())) m.remove_prefix(1);
    while (!m.empty() && is_space(m.back())) m.remove_suffix(1);
    if (m.size() >= 2 && m.front() == '\'' && m.back() == '\'') m = m.substr(1, m.size() - 2);
    op.type = server_op::kind::err;
    op.payload.assign(m);
    out.push_back(std::move(op));
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat("nats: unknown op from the server: ", excerpt(line)));
}

// ---- headers ----

absl::StatusOr<header_block> parse_headers(std::string_view block) {
  constexpr std::string_view version = "NATS/1.0";
  if (block.substr(0, version.size()) != version)
    return absl::InvalidArgumentError(
        absl::StrCat("nats: a header block must start with NATS/1.0: ", excerpt(block)));
  header_block h;
  std::size_t eol = block.find('\n');
  std::string_view first = block.substr(version.size(), eol == std::string_view::npos ? block.npos
                                                                                      : eol - version.size());
  if (!first.empty() && first.back() == '\r') first.remove_suffix(1);
  while (!first.empty() && is_space(first.front())) first.remove_prefix(1);
  // An inline status: three digits, then an optional description.
  if (first.size() >= 3 && std::all_of(first.begin(), first.begin() + 3, [](char c) { return c >= '0' && c <= '9'; })) {
    h.status = (first[0] - '0') * 100 + (first[1] - '0') * 10 + (first[2] - '0');
    std::string_view d = first.substr(3);
    while (!d.empty() && is_space(d.front())) d.remove_prefix(1);
    h.description.assign(d);
  }
  std::size_t i = eol == std::string_view::npos ? block.size() : eol + 1;
  while (i < block.size()) {
    std::size_t e = block.find('\n', i);
    std::string_view l = block.substr(i, e == std::string_view::npos ? block.npos : e - i);
    i = e == std::string_view::npos ? block.size() : e + 1;
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    if (l.empty()) continue;  // the blank line that ends the block
    const std::size_t colon = l.find(':');
    if (colon == std::string_view::npos || colon == 0) continue;  // not a field: skipped
    std::string_view v = l.substr(colon + 1);
    while (!v.empty() && is_space(v.front())) v.remove_prefix(1);
    while (!v.empty() && is_space(v.back())) v.remove_suffix(1);
    h.fields.emplace_back(std::string(l.substr(0, colon)), std::string(v));
  }
  return h;
}

absl::StatusOr<std::string> encode_headers(const std::vector<std::pair<std::string, std::string>>& h) {
  std::string out = "NATS/1.0\r\n";
  for (const auto& [k, v] : h) {
    if (k.empty()) return absl::InvalidArgumentError("nats: an empty header name");
    for (unsigned char c : k)
      if (c <= ' ' || c == ':' || c == 0x7f)
        return absl::InvalidArgumentError(absl::StrCat("nats: bad header name '", excerpt(k), "'"));
    for (char c : v)
      if (c == '\r' || c == '\n')
        return absl::InvalidArgumentError(absl::StrCat("nats: header ", k, " has a line break in its value"));
    absl::StrAppend(&out, k, ": ", v, "\r\n");
  }
  out += "\r\n";
  return out;
}

// ---- subjects and encoders ----

absl::Status check_subject(std::string_view s, bool wildcards, std::string_view what) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("nats: bad ", av(what), " '", excerpt(s), "': ", av(why)));
  };
  if (s.empty()) return bad("empty");
  std::size_t i = 0;
  while (i <= s.size()) {
    std::size_t e = s.find('.', i);
    if (e == std::string_view::npos) e = s.size();
    const std::string_view tok = s.substr(i, e - i);
    if (tok.empty()) return bad("an empty token");
    for (unsigned char c : tok)
      if (c <= ' ' || c == 0x7f) return bad("whitespace or a control byte");
    if (wildcards && tok.size() > 1 && (tok.find('*') != tok.npos || tok.find('>') != tok.npos))
      return bad("a wildcard inside a token");
    if (wildcards && tok == ">" && e != s.size()) return bad("'>' before the last token");
    if (!wildcards && (tok == "*" || tok == ">")) return bad("a wildcard where none may be");
    i = e + 1;
  }
  return absl::OkStatus();
}

void encode_pub(std::string& out, std::string_view subject, std::string_view reply,
                std::string_view headers, std::string_view data) {
  char num[24];
  out.reserve(out.size() + subject.size() + reply.size() + headers.size() + data.size() + 48);
  out += headers.empty() ? "PUB " : "HPUB ";
  out.append(subject);
  out += ' ';
  if (!reply.empty()) {
    out.append(reply);
    out += ' ';
  }
  if (!headers.empty()) {
    auto r = std::to_chars(num, num + sizeof num, headers.size());
    out.append(num, r.ptr);
    out += ' ';
  }
  auto r = std::to_chars(num, num + sizeof num, headers.size() + data.size());
  out.append(num, r.ptr);
  out += "\r\n";
  out.append(headers);
  out.append(data);
  out += "\r\n";
}

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      out += b;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
}

}  // namespace conch::nats::detail
