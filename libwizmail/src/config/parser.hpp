// The `key=value` def-file format (SPEC §2), shared by the three server files,
// per-account config.def and ml.def. Pure: text in, lines and diagnostics out.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "util/strings.hpp"
#include "util/utf8.hpp"
#include "wizmail/config.hpp"

namespace wizmail::config {

struct DefLine {
  std::string key;    // as written (trimmed)
  std::string value;  // trimmed; empty = unset
  int line = 0;       // 1-based
};

struct DefText {
  std::vector<DefLine> lines;
  std::vector<ConfigDiagnostic> diagnostics;  // syntax and encoding errors
};

// Split `text` into key=value lines. Accepts `#` and `//` comment lines, blank
// lines, CRLF or LF line ends and a leading UTF-8 BOM. Invalid UTF-8, NUL
// bytes, other control characters and lines without '=' are errors naming
// `path` and the line. After kMaxErrors errors the rest of the file is skipped.
DefText parse_def_text(std::string_view text, const std::string& path);

// The line loop of every def format (also aliases.def): BOM, CR LF, the byte
// checks and comment lines as above; `on_line(line, text)` gets each other
// line trimmed and may append its own diagnostics (they count towards
// kMaxErrors).
void for_each_def_line(std::string_view text, const std::string& path,
                       std::vector<ConfigDiagnostic>& diagnostics,
                       const std::function<void(int, std::string_view)>& on_line);

inline constexpr int kMaxErrors = 20;
inline constexpr std::size_t kMaxDefFileSize = 1 << 20;

// Read a def file. Errc::not_found when it does not exist; a directory, an
// unreadable file or one over kMaxDefFileSize is an error naming the path.
Result<std::string> read_def_file(const std::filesystem::path& path);

// ml.def (SPEC §7) from text: keys count, admin_mail_address, return_path,
// name; unknown or duplicate keys and a bad count are errors (Errc::parse,
// one "path:line" diagnostic a line). `path` only names the file.
Result<MailingListSettings> parse_ml_def(std::string_view text, const std::string& path);
// The text save_ml_def writes; Errc::invalid_argument for a value that the
// file cannot hold (a line break, NUL, surrounding spaces, a negative count).
Result<std::string> format_ml_def(const MailingListSettings& ml);

}  // namespace wizmail::config
