// File-system primitives with the durability rules of SPEC §3.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "wizmail/error.hpp"

namespace wizmail::util {

// fsync the directory itself so that a create/rename/link in it is durable.
Status fsync_dir(const std::filesystem::path& dir);

// Write all of `data` to `fd` (short writes and EINTR retried); `path`
// names the file in the error.
Status write_all(int fd, std::string_view data, const std::filesystem::path& path);

// Write `data` to `path` atomically and durably: write a temporary file beside
// it, fsync, rename over `path`, fsync the directory. `mode` is the new file's.
Status write_file_atomic(const std::filesystem::path& path, std::string_view data,
                         unsigned mode = 0644);

// Read a whole (small) file. Errc::not_found when it does not exist.
Result<std::string> read_file(const std::filesystem::path& path);

// Create a directory (and parents) with `mode`; existing is fine.
Status make_dirs(const std::filesystem::path& dir, unsigned mode = 0755);

// Bytes free for unprivileged writers (statvfs f_bavail) on the file system
// holding `path`: what a server not running as root can still use, and the
// conservative figure for one that does (as Postfix's fsspace()).
Result<std::uint64_t> free_space(const std::filesystem::path& path);

// A process-unique, time-ordered name part: "<sec>.M<usec>P<pid>Q<seq>".
std::string unique_name_part();

// An exclusive flock on "<file>.lock" (created 0600 beside `file`), held
// until the object goes: writers of one def file serialise on it across
// threads and processes.
class FileLock {
 public:
  static Result<FileLock> acquire(const std::filesystem::path& file);
  FileLock(FileLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  FileLock& operator=(FileLock&&) = delete;
  ~FileLock();

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// This host's name, with '/' and ':' escaped as Maildir requires: the last
// part of every Maildir file name this process writes.
const std::string& maildir_hostname();
// Replace it for the whole process: a node of a shared home names its files
// after the node (Server::create does, docs/cluster.md), so two nodes on one
// host never make the same name. Call before any thread writes a Maildir.
void set_maildir_hostname(std::string_view name);

}  // namespace wizmail::util
