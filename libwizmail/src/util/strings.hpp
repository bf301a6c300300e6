// Small string helpers shared by parsers.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wizmail::util {

std::string_view trim(std::string_view s) noexcept;
std::string to_lower(std::string_view s);
bool iequals(std::string_view a, std::string_view b) noexcept;
bool istarts_with(std::string_view s, std::string_view prefix) noexcept;

// Split on `sep`, trim each piece, drop empty pieces.
std::vector<std::string> split_list(std::string_view s, char sep = ',');

// Strict decimal parse of the whole string (optional leading '-').
std::optional<std::int64_t> parse_int(std::string_view s) noexcept;

// Levenshtein distance, for "did you mean" suggestions.
std::size_t edit_distance(std::string_view a, std::string_view b);

}  // namespace wizmail::util
