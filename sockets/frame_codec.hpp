// sockets/frame_codec.hpp
// frame_decoder / frame_encoder: cut received bytes into frames, add delimiters or prefixes to sent ones.
//
// Invariants:
//  - The decoder holds at most one partial frame, never more than max_frame
//    bytes (+4 header bytes): an oversized frame is refused as soon as its
//    length (or its delimiter-less prefix) exceeds max_frame, not at its end.
//  - Frames come out in stream order, each exactly once.
// Loop thread only (one decoder per connection).
#pragma once

#include <sys/uio.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "conch/net/framing.hpp"

namespace conch::net::detail {

/// Per-loop recycling of string buffers: the writer gives back the strings
/// it has sent, the decoder builds the next received chunks in them, so an
/// echo or proxy flow allocates nothing in steady state. Buffers of
/// min_capacity..max_capacity bytes are kept (at most max_kept, max_kept_bytes
/// in all: twice the stream ring); heap strings below min_capacity go on a
/// list of their own (at most max_small_kept). Why these bounds:
/// bench/NOTES.md, "string pool". One loop thread.
class string_pool {
 public:
  static constexpr std::size_t min_capacity = 1024;
  static constexpr std::size_t max_capacity = 64 * 1024;
  static constexpr std::size_t max_kept = 512;
  static constexpr std::size_t max_kept_bytes = 8u << 20;

  /// A string holding [p, p+n), in a recycled buffer when one fits.
  std::string make(const char* p, std::size_t n) {
    std::string s;
    if (n > sso_capacity_ && n < min_capacity && !small_.empty() && small_.back().capacity() >= n)
      s = pop(small_);
    else if (n >= min_capacity / 2 && !free_.empty() && free_.back().capacity() >= n)
      s = pop_large();
    s.assign(p, n);  // a recycled buffer has room: no allocation
    return s;
  }
  /// A string of `n` bytes (contents unspecified: zeros or old data), in a
  /// recycled buffer when there is one.
  std::string blank(std::size_t n) {
    std::string s = free_.empty() ? std::string() : pop_large();
    s.resize(n);  // within capacity: only the grown tail is written
    return s;
  }
  /// Takes a string whose contents are no longer needed.
  void give(std::string&& s) noexcept {
    const std::size_t c = s.capacity();
    if (c < min_capacity) {
      if (c > sso_capacity_ && small_.size() < max_small_kept) small_.push_back(std::move(s));
      return;
    }
    if (c > max_capacity || free_.size() >= max_kept ||
        kept_bytes_ + c > max_kept_bytes)
      return;
    kept_bytes_ += c;
    free_.push_back(std::move(s));  // reserved: never allocates
  }
  string_pool() {
    free_.reserve(max_kept);
    small_.reserve(max_small_kept);
  }
  /// Frees every kept buffer (the loop went idle after many connections
  /// ended: reactor::idle). The pool refills as strings come back.
  void release() noexcept {
    free_.clear();
    small_.clear();
    kept_bytes_ = 0;
  }

 private:
  static std::string pop(std::vector<std::string>& v) noexcept {
    std::string s = std::move(v.back());
    v.pop_back();
    return s;
  }
  std::string pop_large() noexcept {
    std::string s = pop(free_);
    kept_bytes_ -= s.capacity();
    return s;
  }

  static constexpr std::size_t max_small_kept = 1024;
  /// What a string holds without a heap buffer (nothing to recycle). Not a
  /// constant: clang cannot evaluate libstdc++'s std::string() at compile time.
  std::size_t sso_capacity_ = std::string().capacity();
  std::vector<std::string> free_;
  std::vector<std::string> small_;  // capacities in (sso_capacity_, min_capacity)
  std::size_t kept_bytes_ = 0;  // sum of the kept strings' capacities
};

class frame_decoder {
 public:
  /// `pool` (may be null) supplies buffers for large frames.
  frame_decoder(framing f, std::size_t max_frame, string_pool* pool = nullptr) noexcept
      : kind_(f.type),
        delim_(f.delimiter),
        any_eol_(f.type == framing::kind::lines && f.ends == framing::line_end::lf_cr_crlf),
        max_(max_frame == 0 ? 1 : max_frame),
        pool_(pool) {}

  /// The largest frame it accepts.
  std::size_t max_frame() const noexcept { return max_; }

  /// Consumes `n` bytes; calls emit(std::string&&) for each complete frame.
  /// Returns kResourceExhausted once a frame is over max_frame (the decoder
  /// is then unusable).
  template <class Emit>
  absl::Status feed(const char* p, std::size_t n, Emit&& emit) {
    switch (kind_) {
      case framing::kind::raw:
        while (n > 0) {  // chunks as they come, cut to max_frame
          std::size_t k = n < max_ ? n : max_;
          emit(make(p, k));
          p += k;
          n -= k;
        }
        return absl::OkStatus();
      case framing::kind::lines:
        if (any_eol_) return feed_any_eol(p, n, emit);
        return feed_delimited(p, n, emit);
      case framing::kind::delimited:
        return feed_delimited(p, n, emit);
      case framing::kind::length_prefixed:
        return feed_prefixed(p, n, emit);
    }
    return absl::OkStatus();
  }

  /// At EOF: delivers a trailing frame that lacks its delimiter; kDataLoss if
  /// EOF cut a length-prefixed frame short.
  template <class Emit>
  absl::Status finish(Emit&& emit) {
    if (kind_ == framing::kind::length_prefixed) {
      if (hdr_len_ == 0 && partial_.empty()) return absl::OkStatus();
      return absl::DataLossError("connection closed inside a length-prefixed frame (" +
                                 std::to_string(partial_.size()) + " of " +
                                 std::to_string(hdr_len_ == 4 ? need_ : 0) +
                                 " bytes received)");
    }
    if (!partial_.empty()) {
      std::string f = std::move(partial_);
      partial_.clear();
      if (kind_ == framing::kind::lines && f.back() == '\r') f.pop_back();
      emit(std::move(f));
    }
    return absl::OkStatus();
  }

  /// Bytes held for an incomplete frame.
  std::size_t buffered() const noexcept { return partial_.size(); }

 private:
  std::string make(const char* p, std::size_t n) {
    return pool_ != nullptr ? pool_->make(p, n) : std::string(p, n);
  }

  absl::Status too_big(std::size_t n) const {
    return absl::ResourceExhaustedError("peer sent a frame of " +
                                        std::string(n == SIZE_MAX ? "more than " : "") +
                                        std::to_string(n == SIZE_MAX ? max_ : n) +
                                        " bytes, over max_frame (" + std::to_string(max_) + ")");
  }

  /// The frame held so far plus [p, p+seg): one copy, in a pooled buffer
  /// when nothing was held.
  std::string complete(const char* p, std::size_t seg) {
    if (partial_.empty()) return make(p, seg);
    partial_.append(p, seg);
    std::string f = std::move(partial_);
    partial_.clear();
    return f;
  }

  /// The most bytes a frame of `len` bytes ending in `last` may hold before
  /// its delimiter: max_, plus one for lines' '\r', which belongs to the
  /// line end (max_frame counts no delimiter).
  std::size_t room(std::size_t len, char last) const noexcept {
    return kind_ == framing::kind::lines && len > 0 && last == '\r' ? max_ + 1 : max_;
  }

  template <class Emit>
  absl::Status feed_delimited(const char* p, std::size_t n, Emit& emit) {
    while (n > 0) {
      const void* hit = std::memchr(p, delim_, n);
      if (hit == nullptr) {
        if (partial_.size() + n > room(n, p[n - 1])) return too_big(SIZE_MAX);
        partial_.append(p, n);
        return absl::OkStatus();
      }
      std::size_t seg = static_cast<std::size_t>(static_cast<const char*>(hit) - p);
      const std::size_t len = partial_.size() + seg;
      const char last = seg > 0 ? p[seg - 1] : partial_.empty() ? '\0' : partial_.back();
      if (len > room(len, last)) return too_big(len - (last == '\r' ? 1 : 0));
      std::string f = complete(p, seg);
      if (kind_ == framing::kind::lines && !f.empty() && f.back() == '\r') f.pop_back();
      emit(std::move(f));
      p += seg + 1;
      n -= seg + 1;
    }
    return absl::OkStatus();
  }

  /// lines with line_end::lf_cr_crlf: '\n', '\r' and "\r\n" each end a
  /// line. After a '\r', skip_lf_ says a '\n' that follows (maybe in the
  /// next read) belongs to the same line end.
  template <class Emit>
  absl::Status feed_any_eol(const char* p, std::size_t n, Emit& emit) {
    while (n > 0) {
      if (skip_lf_) {
        skip_lf_ = false;
        if (*p == '\n') {
          ++p;
          --n;
          continue;
        }
      }
      std::size_t seg = 0;
      while (seg < n && p[seg] != '\n' && p[seg] != '\r') ++seg;
      if (seg == n) {
        if (partial_.size() + n > max_) return too_big(SIZE_MAX);
        partial_.append(p, n);
        return absl::OkStatus();
      }
      if (partial_.size() + seg > max_) return too_big(partial_.size() + seg);
      std::string f = complete(p, seg);
      emit(std::move(f));
      skip_lf_ = p[seg] == '\r';
      p += seg + 1;
      n -= seg + 1;
    }
    return absl::OkStatus();
  }

  template <class Emit>
  absl::Status feed_prefixed(const char* p, std::size_t n, Emit& emit) {
    // State: hdr_len_ < 4: reading the header; == 4: reading need_ bytes of
    // body into partial_. Back to 0 only when a frame is emitted.
    while (n > 0) {
      if (hdr_len_ < 4) {
        while (hdr_len_ < 4 && n > 0) {
          hdr_[hdr_len_++] = static_cast<unsigned char>(*p++);
          --n;
        }
        if (hdr_len_ < 4) return absl::OkStatus();
        need_ = (std::uint32_t{hdr_[0]} << 24) | (std::uint32_t{hdr_[1]} << 16) |
                (std::uint32_t{hdr_[2]} << 8) | std::uint32_t{hdr_[3]};
        if (need_ > max_) return too_big(need_);
        if (need_ == 0) {
          hdr_len_ = 0;
          emit(std::string());
        }
        continue;
      }
      std::size_t want = need_ - partial_.size();
      std::size_t k = n < want ? n : want;
      if (partial_.empty() && k == need_) {
        emit(make(p, k));  // the whole body in this read: one copy
        hdr_len_ = 0;
      } else {
        // At most 64 KiB ahead: a header alone (a hostile peer, a large
        // max_frame) must not reserve gigabytes before any body arrives.
        if (partial_.empty()) partial_.reserve(need_ < (64u << 10) ? need_ : (64u << 10));
        partial_.append(p, k);
        if (partial_.size() == need_) {
          std::string f = std::move(partial_);
          partial_.clear();
          hdr_len_ = 0;
          emit(std::move(f));
        }
      }
      p += k;
      n -= k;
    }
    return absl::OkStatus();
  }

  framing::kind kind_;
  char delim_;
  bool any_eol_;         // lines with line_end::lf_cr_crlf
  bool skip_lf_ = false;  // any_eol_: the last byte fed was a '\r' that ended a line
  std::size_t max_;
  string_pool* pool_;
  std::string partial_;
  std::uint32_t need_ = 0;
  unsigned hdr_len_ = 0;
  unsigned char hdr_[4] = {};
};

/// Turns a batch of outgoing frames into an iovec array for one sendmsg.
/// The frames and the length headers live here until the send completes.
class frame_encoder {
 public:
  static constexpr std::size_t max_batch = 64;  // frames per send (2 iovecs each, < IOV_MAX)

  explicit frame_encoder(framing f) noexcept : kind_(f.type), delim_(f.delimiter) {
    frames_.reserve(max_batch);
    iov_.reserve(2 * max_batch);
  }

  bool full() const noexcept { return frames_.size() >= max_batch; }
  bool empty() const noexcept { return frames_.empty(); }
  std::size_t bytes() const noexcept { return bytes_; }

  /// Queues a frame (the string is kept until clear()).
  void add(std::string f) {
    frames_.push_back(std::move(f));
    bytes_ += frames_.back().size() + (kind_ == framing::kind::raw ? 0
                                       : kind_ == framing::kind::length_prefixed ? 4 : 1);
  }

  /// Builds the iovecs for everything added (call once per batch).
  void build() {
    iov_.clear();
    for (std::size_t i = 0; i < frames_.size(); ++i) {
      std::string& f = frames_[i];
      if (kind_ == framing::kind::length_prefixed) {
        auto n = static_cast<std::uint32_t>(f.size());
        headers_[i] = {static_cast<unsigned char>(n >> 24), static_cast<unsigned char>(n >> 16),
                       static_cast<unsigned char>(n >> 8), static_cast<unsigned char>(n)};
        iov_.push_back({headers_[i].data(), 4});
      }
      if (!f.empty()) iov_.push_back({f.data(), f.size()});
      if (kind_ == framing::kind::lines || kind_ == framing::kind::delimited)
        iov_.push_back({&delim_, 1});
    }
    pos_ = 0;
  }

  /// The iovecs not yet sent.
  iovec* iov() noexcept { return iov_.data() + pos_; }
  std::size_t iov_count() const noexcept { return iov_.size() - pos_; }

  /// Marks `n` bytes as sent; returns true when everything is.
  bool advance(std::size_t n) noexcept {
    while (n > 0 && pos_ < iov_.size()) {
      iovec& v = iov_[pos_];
      if (n >= v.iov_len) {
        n -= v.iov_len;
        ++pos_;
      } else {
        v.iov_base = static_cast<char*>(v.iov_base) + n;
        v.iov_len -= n;
        n = 0;
      }
    }
    while (pos_ < iov_.size() && iov_[pos_].iov_len == 0) ++pos_;
    return pos_ == iov_.size();
  }

  /// Forgets the batch, handing the sent strings to `pool` (if any).
  void clear(string_pool* pool = nullptr) noexcept {
    if (pool != nullptr)
      for (std::string& f : frames_) pool->give(std::move(f));
    frames_.clear();
    iov_.clear();
    pos_ = 0;
    bytes_ = 0;
  }

 private:
  framing::kind kind_;
  char delim_;
  std::vector<std::string> frames_;
  std::vector<iovec> iov_;
  std::size_t pos_ = 0;
  std::size_t bytes_ = 0;
  std::array<std::array<unsigned char, 4>, max_batch> headers_{};  // last: length_prefixed only
};

}  // namespace conch::net::detail
