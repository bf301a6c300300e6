// A small tmpfs for one test, to fill up: the honest way to meet ENOSPC
// (tests run as root; see tests/e2e/disk_full.py for the same in Python).
// Unmounted (lazily, so an open descriptor cannot keep it) and removed
// afterwards.
#pragma once

#include <fcntl.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "temp_dir.hpp"

namespace wizmail::test {

class SmallTmpfs {
 public:
  // `options` as for mount -o, e.g. "size=256k,nr_inodes=64".
  explicit SmallTmpfs(const std::string& options) : dir_("wizmail-tmpfs") {
    if (::mount("tmpfs", dir_.path().c_str(), "tmpfs", 0, options.c_str()) != 0)
      throw std::system_error(errno, std::generic_category(),
                              "mount -t tmpfs " + dir_.path().string() + " (tests run as root)");
  }
  SmallTmpfs(const SmallTmpfs&) = delete;
  SmallTmpfs& operator=(const SmallTmpfs&) = delete;
  ~SmallTmpfs() { ::umount2(dir_.path().c_str(), MNT_DETACH); }

  const std::filesystem::path& path() const { return dir_.path(); }

  // New options (e.g. a larger size) in place: mount -o remount.
  void remount(const std::string& options) {
    if (::mount("tmpfs", dir_.path().c_str(), "tmpfs", MS_REMOUNT, options.c_str()) != 0)
      throw std::system_error(errno, std::generic_category(), "remount " + dir_.path().string());
  }

  // Write zeros to <path>/.filler until no block is left.
  void fill_blocks() {
    const auto f = path() / ".filler";
    int fd = ::open(f.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "create " + f.string());
    static const char zeros[4096] = {};
    while (::write(fd, zeros, sizeof zeros) > 0) {
    }
    // Whatever part of a page is left.
    while (::write(fd, zeros, 1) > 0) {
    }
    ::close(fd);
  }
  // Create empty files <path>/.inode.N until no inode is left.
  void fill_inodes() {
    for (int i = 0;; ++i) {
      const auto f = path() / (".inode." + std::to_string(i));
      int fd = ::open(f.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
      if (fd < 0) break;
      ::close(fd);
      inodes_.push_back(f);
    }
  }
  // Give the room back.
  void free_all() {
    std::error_code ec;
    std::filesystem::remove(path() / ".filler", ec);
    for (const auto& f : inodes_) std::filesystem::remove(f, ec);
    inodes_.clear();
  }

 private:
  TempDir dir_;
  std::vector<std::filesystem::path> inodes_;
};

}  // namespace wizmail::test
