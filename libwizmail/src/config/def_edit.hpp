// Private: changing one key of a def file's text (the web console's
// configuration, account and list settings; docs/console.md). Pure: text in,
// text out. Every other line — comments, blank lines, other keys, their
// order and the file's line ends — is kept as it was.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wizmail/error.hpp"

namespace wizmail::config {

// `text` with key `names.front()` set to `value`: the first line whose key
// is one of `names` (case-insensitive; a key's synonyms) becomes
// "<names.front()>=<value>", later lines with one of those keys are dropped
// (a def file may hold a key once); without such a line one is appended.
// `value` nullopt removes the key's lines (the default applies again).
// A value holding CR, LF or NUL, or with surrounding blanks, is refused
// (Errc::invalid_argument): a def line cannot hold it.
Result<std::string> set_def_value(std::string_view text, const std::vector<std::string_view>& names,
                                  std::optional<std::string_view> value);

// The value of the first line whose key is one of `names`; nullopt when none.
std::optional<std::string> def_value(std::string_view text, const std::vector<std::string_view>& names);

// Write a def file's new text atomically and durably (util::write_file_atomic),
// keeping the mode of the file it replaces (0640 for a new one).
Status write_def_file(const std::filesystem::path& path, std::string_view text);

}  // namespace wizmail::config
