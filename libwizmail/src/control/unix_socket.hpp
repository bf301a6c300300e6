// Blocking UNIX-socket helpers shared by the control client and the tools.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <utility>

#include "wizmail/error.hpp"

namespace wizmail::control {

// The name to bind or connect a UNIX socket at `path` by, however long the
// path: sun_path holds 107 bytes, and a home on a deep mount (a network
// file system's) makes longer ones. Such a path is reached through its
// folder, opened here (O_PATH), as /proc/self/fd/N/NAME; bind() and
// connect() resolve that while this object lives (Linux, with /proc
// mounted). A short path is used as it is.
class UnixSocketName {
 public:
  static Result<UnixSocketName> make(const std::filesystem::path& path);
  UnixSocketName(UnixSocketName&& o) noexcept : name_(std::move(o.name_)), dir_(std::exchange(o.dir_, -1)) {}
  UnixSocketName& operator=(UnixSocketName&&) = delete;
  UnixSocketName(const UnixSocketName&) = delete;
  ~UnixSocketName();
  const std::string& name() const { return name_; }

 private:
  UnixSocketName(std::string name, int dir) : name_(std::move(name)), dir_(dir) {}
  std::string name_;
  int dir_ = -1;
};

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
