// JSON output shared by the library and the commands' --json forms.
#pragma once

#include <string>
#include <string_view>

namespace wizmail {

// `s` as a quoted JSON string. JSON must be UTF-8: a byte that does not
// start a valid UTF-8 sequence becomes U+FFFD; control characters are escaped.
std::string json_string(std::string_view s);

}  // namespace wizmail
