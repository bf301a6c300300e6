// SMTP command-line framing and argument parsing (no I/O).
//
// Line rules (summarised in src/smtp/README.md):
// - A command line ends at LF; a CR right before it is removed. Bare LF is
//   accepted for commands as Postfix does (it cannot smuggle anything: only
//   CRLF.CRLF ends DATA, see body.hpp).
// - Limit: 512 octets including CRLF (RFC 5321 §4.5.3.1.4). Lines starting
//   with "AUTH " and SASL responses may hold up to max_auth_line (12 KiB by
//   default) because initial responses can be long. A longer line is
//   discarded up to and including its LF and reported once as too_long; it is
//   never executed. Memory stays bounded by the limit.
// - A line holding NUL, another control character (except HT), DEL or
//   octets over 0x7f is reported as `bad_bytes` (500 5.5.2) — except that
//   MAIL and RCPT lines may hold valid UTF-8 (SMTPUTF8 addresses, RFC
//   6531; the session checks the SMTPUTF8 parameter).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/base64.hpp"
#include "util/xtext.hpp"

namespace wizmail::smtp {

class LineReader {
 public:
  enum class Status { line, need_more, too_long, bad_bytes };

  // Takes bytes from the front of `in` (advancing it). On `line`, `line`
  // views the command without its CR LF, valid until the next call.
  // `sasl` = the next line is a SASL response (long limit).
  Status next(std::string_view& in, std::string_view& line, std::size_t limit,
              std::size_t auth_limit, bool sasl);

  // Forget a partial line (STARTTLS, end of session).
  void reset() noexcept {
    partial_.clear();
    discarding_ = false;
    partial_ready_ = false;
  }
  bool empty() const noexcept { return partial_.empty() && !discarding_; }
  // A line has begun and not ended yet (the line returned last does not count).
  bool mid_line() const noexcept { return (!partial_ready_ && !partial_.empty()) || discarding_; }

 private:
  std::string partial_;
  bool discarding_ = false;
  bool partial_ready_ = false;  // partial_ holds the line returned last time
};

// "VERB rest": the verb (letters only) and the argument after one or more
// spaces. An empty line gives an empty verb.
struct CommandLine {
  std::string_view verb;
  std::string_view args;
};
CommandLine split_command(std::string_view line) noexcept;

// One ESMTP parameter "KEYWORD[=VALUE]" (RFC 5321 §4.1.2).
struct EsmtpParam {
  std::string_view keyword;
  std::string_view value;
  bool has_value = false;
};

// Parse the parameters after a path: empty, or SP-separated esmtp-params.
// Returns false on a syntax error. At most `max` parameters.
bool parse_params(std::string_view s, std::vector<EsmtpParam>& out,
                  std::size_t max = 16);

// RFC 3461 xtext ("+HH" escapes), util/xtext.hpp.
using util::decode_xtext;
using util::encode_xtext;

// Strict base64 for SASL (util/base64.hpp).
using util::base64_decode;
using util::base64_encode;

}  // namespace wizmail::smtp
