// Shared by the ops tests: a temporary home and aged files.
#pragma once

#include "unix_time.hpp"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include "temp_dir.hpp"
#include "wizmail/config.hpp"

namespace wizmail::test {

class TempHome : public TempDir {
 public:
  TempHome() : TempDir("wizmail-ops") {}

  // A Config for this home from def-file texts (pure: nothing read from disk).
  std::shared_ptr<const Config> config(const std::string& smtpenv = "", const std::string& wizenv = "") const {
    auto load = parse_config_texts(path(), {{"smtpenv.dat", smtpenv}, {"wiz98msenv.dat", wizenv}});
    return load.config;
  }
};

inline void write(const std::filesystem::path& p, const std::string& data) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << data;
}

// Set a file's mtime (and atime) to `when` (unix seconds), without following links.
inline void set_mtime(const std::filesystem::path& p, std::int64_t when) {
  timespec ts[2];
  ts[0].tv_sec = ts[1].tv_sec = static_cast<time_t>(when);
  ts[0].tv_nsec = ts[1].tv_nsec = 0;
  if (::utimensat(AT_FDCWD, p.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0)
    throw std::system_error(errno, std::generic_category(), "utimensat " + p.string());
}

}  // namespace wizmail::test
