// SMTP reply parser (RFC 5321 §4.2), sans I/O: bytes in, whole replies out.
// "250-first", "250-second", "250 last" is one reply of three lines; every
// line must carry the same code. Bare LF line ends are accepted (some peers
// send them); a line over kMaxLine octets or a reply over kMaxLines lines is
// an error, so a hostile peer cannot make us buffer without bound.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "wizmail/relay.hpp"

namespace wizmail::outbound {

class ReplyParser {
 public:
  static constexpr std::size_t kMaxLine = 4096;
  static constexpr std::size_t kMaxLines = 500;

  enum class Status { need_more, done, bad };
  struct Step {
    Status status = Status::need_more;
    std::size_t used = 0;  // octets of the input taken (whole lines only)
  };

  // Take whole lines from `in` until one reply is complete. On `done` the
  // reply is in reply(); call reset() (or take()) before the next one. On
  // `bad`, error() says why and the connection should be dropped.
  Step parse(std::string_view in);
  SmtpReply take();
  const std::string& error() const noexcept { return error_; }

 private:
  SmtpReply cur_;
  bool done_ = false;
  std::string error_;
};

// EHLO keywords (upper-cased) with their parameters, from an EHLO reply
// (its first line is the greeting and is skipped).
std::vector<std::string> ehlo_capabilities(const SmtpReply& ehlo);
// The capability `keyword` (case-insensitive): its parameters ("" when it
// has none), or nothing when absent.
std::optional<std::string> find_capability(const std::vector<std::string>& caps, std::string_view keyword);

}  // namespace wizmail::outbound
