// Shared helpers of the fuzz targets (docs/fuzzing.md).
//
// Each target defines LLVMFuzzerTestOneInput(). It is linked either with
// libFuzzer (meson -Dfuzz=true, clang) or with replay_main.cpp (every build:
// the `fuzz-*` tests feed each corpus file once). A property that does not
// hold calls FUZZ_CHECK's failure path, which prints what broke and aborts:
// libFuzzer saves the input as a crash, the replay test fails.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#define FUZZ_CHECK(cond)                                                            \
  do {                                                                              \
    if (!(cond)) ::wizmail::fuzz::check_failed(#cond, __FILE__, __LINE__, nullptr); \
  } while (0)
#define FUZZ_CHECK_MSG(cond, msg)                                                          \
  do {                                                                                     \
    if (!(cond)) ::wizmail::fuzz::check_failed(#cond, __FILE__, __LINE__, std::string(msg)); \
  } while (0)

namespace wizmail::fuzz {

[[noreturn]] inline void check_failed(const char* what, const char* file, int line,
                                      const std::string* detail) {
  std::fprintf(stderr, "%s:%d: property failed: %s\n", file, line, what);
  if (detail) std::fprintf(stderr, "  %s\n", detail->c_str());
  std::abort();
}
[[noreturn]] inline void check_failed(const char* what, const char* file, int line,
                                      const std::string& detail) {
  check_failed(what, file, line, &detail);
}

// The input as a stream of decisions: bytes taken from the front.
class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size)
      : s_(reinterpret_cast<const char*>(data), size) {}
  explicit Input(std::string_view s) : s_(s) {}

  bool empty() const noexcept { return s_.empty(); }
  std::size_t size() const noexcept { return s_.size(); }
  // One byte (0 when exhausted).
  std::uint8_t byte() noexcept {
    if (s_.empty()) return 0;
    auto b = static_cast<std::uint8_t>(s_.front());
    s_.remove_prefix(1);
    return b;
  }
  // Everything that is left.
  std::string_view rest() noexcept {
    auto r = s_;
    s_ = {};
    return r;
  }
  // Up to `n` bytes.
  std::string_view take(std::size_t n) noexcept {
    auto r = s_.substr(0, n);
    s_.remove_prefix(r.size());
    return r;
  }
  // Up to the next `sep` (excluded, and consumed), or everything left.
  std::string_view until(char sep) noexcept {
    auto p = s_.find(sep);
    auto r = s_.substr(0, p);
    s_.remove_prefix(p == std::string_view::npos ? s_.size() : p + 1);
    return r;
  }

 private:
  std::string_view s_;
};

// Chunk sizes for feeding a stream piece by piece, from a seed: a cycle of
// 1..64-octet pieces so that every boundary position is reached.
class Chunker {
 public:
  explicit Chunker(std::uint8_t seed) : state_(seed | 1u) {}
  std::size_t next() noexcept {
    state_ = state_ * 1103515245u + 12345u;
    return 1 + ((state_ >> 16) % 64);
  }

 private:
  std::uint32_t state_;
};

// Escape bytes for a failure message.
inline std::string show(std::string_view s, std::size_t max = 400) {
  std::string out;
  for (char ch : s.substr(0, max)) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '\r') out += "\\r";
    else if (c == '\n') out += "\\n";
    else if (c == '\\') out += "\\\\";
    else if (c < 0x20 || c >= 0x7f) {
      static const char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += ch;
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

}  // namespace wizmail::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
