// Private: what the web console shows of the logs (docs/console.md): the
// end of a file, the lines holding a text, one session's lines. Reading is
// bounded: only the last `max_bytes` of a file are read, never a whole big
// log; the selection itself is pure (select_lines) and unit-tested.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "wizmail/error.hpp"

namespace wizmail::server::console {

struct LogQuery {
  std::size_t max_lines = 200;  // the last this many lines that match
  std::string contains;         // substring (case-sensitive); empty = any line
  std::string session;          // the session field (after date and time) equals it; empty = any
};

// The lines of `text` that match `q`, the last `q.max_lines` of them, in
// file order. `cut_front`: `text` starts inside the file, so its first line
// may be partial and is dropped.
std::vector<std::string> select_lines(std::string_view text, const LogQuery& q, bool cut_front);

// A log line "<date> <time> <session> <peer> <account> <text>" (server/log.hpp)
// belongs to `session`.
bool line_of_session(std::string_view line, std::string_view session) noexcept;

// A session id as the logs write it: 1 to 32 letters and digits.
bool valid_session_id(std::string_view id) noexcept;

// select_lines() over the last `max_bytes` of `file`, and when the file is
// shorter, of its rotated predecessor `<file>.1` before it. A missing file
// has no lines.
Result<std::vector<std::string>> read_log_lines(const std::filesystem::path& file, const LogQuery& q,
                                                std::size_t max_bytes);

}  // namespace wizmail::server::console
