// Base64 (RFC 4648 alphabet), shared by SMTP AUTH, RFC 2047 encoded-words
// and the submit path. Pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace wizmail::util {

std::string base64_encode(std::string_view s);
// Strict (SASL): padding required, no whitespace, nothing after '='.
std::optional<std::string> base64_decode(std::string_view s);
// Lenient (RFC 2047 words from real mailers): stops at the first '=',
// padding optional; any other byte outside the alphabet fails.
std::optional<std::string> base64_decode_lenient(std::string_view s);

}  // namespace wizmail::util
