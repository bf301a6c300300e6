// The Sender Rewriting Scheme (SRS, Shevek's scheme as libsrs2 and PostSRSd
// implement it), written small because Debian 12 ships no libsrs2. Pure: the
// caller gives the time and the secrets; nothing here touches a file.
//
// A forwarder that relays mail of a foreign sender would fail that sender's
// SPF, so it sends with an envelope sender of its own domain that encodes the
// original one, and turns a bounce to that address back into the original:
//
//   forward  user@example.org        → SRS0=HHHH=TT=example.org=user@srs.domain
//   forward  SRS0=opaque@example.org → SRS1=HHHH=example.org==opaque@srs.domain
//   forward  SRS1=X=first.example==opaque@example.org
//                                    → SRS1=HHHH=first.example==opaque@srs.domain
//   reverse  SRS0=HHHH=TT=example.org=user@…        → user@example.org
//   reverse  SRS1=HHHH=first.example==opaque@…      → SRS0=opaque@first.example
//
// HHHH: the first `hash_length` characters of the base64url text of
// HMAC-SHA1(secret, the lower-cased fields), PostSRSd 2's alphabet (A–Z a–z
// 0–9 - _); a hash is compared without ASCII case and with '+' ≡ '-' and
// '/' ≡ '_', so addresses from libsrs2 (standard base64) and from mailers
// that change case still reverse. TT: the day (Unix time / 86400) modulo
// 1024 in two base32 characters (A–Z 2–7); a time stamp more than
// `max_age_days` in the past, or in the future, is refused. Every address
// this produces is the one libsrs2 1.0.14 / PostSRSd 2 produces for the same
// secret and time (tests/srs/srs_test.cpp holds PostSRSd's vectors).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wizmail/error.hpp"

namespace wizmail::srs {

struct Options {
  // The first signs; every one is accepted when reversing (rotation).
  std::vector<std::string> secrets;
  int max_age_days = 21;  // libsrs2's default
  int hash_length = 4;    // libsrs2's default; 1–20
  char separator = '=';   // after SRS0/SRS1: '=', '+' or '-'
};

// Why reverse() refused an address (its Error carries the SMTP reply too).
enum class Refusal {
  not_srs,    // no SRS0/SRS1 tag: an ordinary address (Errc::not_found, no SMTP code)
  malformed,  // tagged, but a field is missing (550 5.1.1)
  expired,    // the time stamp is out of date (550 5.1.1)
  forged,     // the hash does not match (550 5.7.1)
};

class Rewriter {
 public:
  // Errc::invalid_argument when there is no secret, an empty one, a hash
  // length out of 1–20, a separator other than = + - or max_age_days out of
  // 1–1000 (the time stamp wraps after 1024 days).
  static Result<Rewriter> make(Options options);

  // The SRS form of `sender` (local@domain) at `srs_domain` on the day of
  // `now` (Unix seconds). A sender already at `srs_domain` (any case) is
  // returned as it is. Errc::invalid_argument: no '@', an empty local part
  // or domain, or a foreign SRS0/SRS1 address without its fields.
  Result<std::string> forward(std::string_view sender, std::string_view srs_domain, std::int64_t now) const;

  // The address an SRS address (its domain is not looked at) stands for.
  // On refusal the Error says why (refusal_of() tells which) and, but for
  // not_srs, holds the 550 reply for an RCPT to it.
  Result<std::string> reverse(std::string_view address, std::int64_t now) const;

  const Options& options() const noexcept { return o_; }

 private:
  explicit Rewriter(Options o) : o_(std::move(o)) {}
  std::string hash(const std::string& secret, std::initializer_list<std::string_view> fields) const;
  bool hash_ok(std::string_view given, std::initializer_list<std::string_view> fields) const;

  Options o_;
};

// An RCPT address, as the SMTP server sees it: nullopt when it is no SRS
// address at `srs_domain` (lower-case ASCII; the address's domain compares
// without case) and takes its usual way; else the address it reverses to,
// or the refusal (with its 550 reply).
std::optional<Result<std::string>> reverse_recipient(const Rewriter& rewriter, std::string_view srs_domain,
                                                     std::string_view address, std::int64_t now);

// Does the local part (or a whole address) start with an SRS tag
// (SRS0 or SRS1, any case, then '=', '+' or '-')?
bool is_srs_address(std::string_view address) noexcept;

// Which refusal a reverse() error is.
Refusal refusal_of(const Error& e) noexcept;

// The two characters of the time stamp for `now`, and its day back (0–1023;
// -1 for a character outside the base32 alphabet, any case accepted).
std::string timestamp(std::int64_t now);
int timestamp_day(std::string_view stamp) noexcept;

}  // namespace wizmail::srs
