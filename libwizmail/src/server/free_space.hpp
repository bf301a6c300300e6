// Free space of the file systems mail is written to, for the SMTP check at
// MAIL and RCPT (queue_minfree, smtp::Environment::storage_allows).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <optional>
#include <vector>

namespace wizmail::server {

class FreeSpace {
 public:
  // statvfs() of one folder at most once per interval, shared by every
  // session: cheap on a local disk, a round trip on NFS, and asked at every
  // MAIL and RCPT. The price: a disk that fills faster than that is caught
  // by the write itself (451 after DATA), as before.
  static constexpr std::chrono::milliseconds kInterval{250};

  // Bytes free in the file system holding `dir`; nullopt when statvfs
  // fails (no refusal is made on a guess).
  std::optional<std::uint64_t> bytes(const std::filesystem::path& dir);

  // Whether `dir` keeps `minfree` bytes free after a message of `size`.
  bool allows(const std::filesystem::path& dir, std::int64_t minfree, std::int64_t size);

 private:
  struct Entry {
    std::filesystem::path dir;
    std::chrono::steady_clock::time_point at;
    std::optional<std::uint64_t> free;
  };
  std::mutex mu_;
  std::vector<Entry> entries_;  // a few: the mailbox folder, the queue
};

}  // namespace wizmail::server
