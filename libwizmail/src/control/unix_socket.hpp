// Blocking UNIX-socket helpers shared by the control client and the tools.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>

#include "wizmail/error.hpp"

namespace wizmail::control {

// A connected SOCK_STREAM socket (close-on-exec). Errc::unavailable when
// nobody listens at `path` (absent or refused).
Result<int> connect_unix(const std::filesystem::path& path);
// Read up to the first '\n' (not included, nor a CR before it); bytes after
// it are dropped.
Result<std::string> read_line(int fd, std::size_t max, std::chrono::steady_clock::time_point deadline);
// The same, keeping bytes after the line in `buf` for the next call.
Result<std::string> read_line_buffered(int fd, std::string& buf, std::size_t max,
                                      std::chrono::steady_clock::time_point deadline);

}  // namespace wizmail::control
