// Header text in any charset (RFC 2047 encoded-words), for the mailing-list
// subject rewrite and the SUBJECT hook token. Charset work is glibc iconv.
#pragma once

#include <string>
#include <string_view>

#include "wizmail/error.hpp"

namespace wizmail::mime {

// Convert `in` from charset `from` to charset `to` (iconv names). Errors:
// an unknown charset (Errc::invalid_argument) or bytes that are not valid in
// `from` / not representable in `to` (Errc::parse).
Result<std::string> convert_charset(std::string_view in, std::string_view from,
                                    std::string_view to);

// Whether `s` is well-formed UTF-8 (no overlongs, no surrogates).
bool is_utf8(std::string_view s) noexcept;

struct DecodedHeader {
  std::string utf8;     // the whole value as UTF-8
  std::string charset;  // charset of the first encoded-word (lower case); empty if none
  bool had_encoded_words = false;
  bool had_raw_8bit = false;  // unencoded bytes ≥ 0x80 (raw UTF-8 or Shift_JIS)
};

// Decode an unfolded header value: encoded-words (B and Q, any charset
// iconv knows; "shift_jis" is read as CP932, its superset that mailers use),
// whitespace between adjacent encoded-words dropped (RFC 2047 §6.2). Raw
// bytes: valid UTF-8 as is, raw ISO-2022-JP (ESC sequences) and raw
// Shift_JIS converted; anything undecodable becomes U+FFFD. Never fails.
DecodedHeader decode_header(std::string_view value);

// Encode UTF-8 text as a header value. Printable ASCII without "=?" that
// fits the 998-octet line is returned as is (control characters such as CR
// and LF are always encoded: no caller can inject a header field). Otherwise B encoded-words in `charset` (falling back to UTF-8 when
// the text is not representable in it), each at most 75 octets and holding
// whole characters (each ISO-2022-JP word ends in ASCII state), joined by
// CRLF SP so that no line passes 76 octets; `used` is how much of the first
// line the field name already takes (e.g. 9 for "Subject: ").
std::string encode_header(std::string_view utf8, std::string_view charset = "UTF-8",
                          std::size_t used = 9);

}  // namespace wizmail::mime
