// RFC 3461 §4 xtext: printable US-ASCII except '+' and '=' as is, every
// other octet as "+HH" (upper-case hex). Used by the ESMTP AUTH, ENVID and
// ORCPT parameters and the delivery-status fields built from them.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace wizmail::util {

// nullopt when malformed: a character outside "!".."~", a bare '=', or a
// '+' not followed by two upper-case hex digits.
std::optional<std::string> decode_xtext(std::string_view s);
std::string encode_xtext(std::string_view s);

}  // namespace wizmail::util
