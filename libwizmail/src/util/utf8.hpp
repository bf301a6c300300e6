// The one UTF-8 validator (RFC 3629) and what is built on it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace wizmail::util {

// Length of the valid UTF-8 sequence at s[0], or 0 when it is invalid
// (overlong forms, surrogates and code points over U+10FFFF are invalid).
std::size_t utf8_sequence_length(std::string_view s) noexcept;
// The whole string is valid UTF-8 (ASCII included).
bool valid_utf8(std::string_view s) noexcept;
// Every octet is below 0x80.
bool is_ascii(std::string_view s) noexcept;
// `s` with every octet that does not start a valid sequence replaced by
// `bad` (e.g. U+FFFD for text, "_" for file names).
std::string repair_utf8(std::string_view s, std::string_view bad);

}  // namespace wizmail::util
