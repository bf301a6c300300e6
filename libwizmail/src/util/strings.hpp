// Small string helpers shared by parsers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wizmail::util {

// The pieces joined into one string, allocated once. Write this rather than
// `"literal" + std::string(...)`: GCC 12 at -O3 reports a false -Wrestrict
// on that (GCC PR 105329), which fails the release build.
template <class... Parts>
std::string cat(const Parts&... parts) {
  std::string out;
  out.reserve((std::string_view(parts).size() + ... + 0));
  (out.append(std::string_view(parts)), ...);
  return out;
}

// The pieces appended to `out` (the same reason as cat()).
template <class... Parts>
void append(std::string& out, const Parts&... parts) {
  (out.append(std::string_view(parts)), ...);
}

std::string_view trim(std::string_view s) noexcept;
std::string to_lower(std::string_view s);
bool iequals(std::string_view a, std::string_view b) noexcept;
bool istarts_with(std::string_view s, std::string_view prefix) noexcept;

// Split on `sep`, trim each piece, drop empty pieces.
std::vector<std::string> split_list(std::string_view s, char sep = ',');

// Strict decimal parse of the whole string (optional leading '-').
std::optional<std::int64_t> parse_int(std::string_view s) noexcept;

// RFC 5322 atext: the octets of an atom (dot-atom without its dots).
bool is_atext(char c) noexcept;

// Every line end (CRLF, a bare LF, a lone CR) as CRLF.
std::string to_crlf(std::string_view text);

// Levenshtein distance, for "did you mean" suggestions.
std::size_t edit_distance(std::string_view a, std::string_view b);

}  // namespace wizmail::util
