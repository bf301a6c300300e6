// Shared by the ops tests: a temporary home and aged files.
#pragma once

#include "unix_time.hpp"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <chrono>
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

// The current unix second by system_clock (clock_gettime), the clock that
// names queue ids and files (util::unique_name_part). Not std::time(): on
// Linux it reads the coarse clock, up to a tick behind, so in the last
// milliseconds of a second time() still says N while an id made a moment
// earlier already says N + 1 (measured: 0.65 % of samples; it made
// metrics_test's `oldest_created <= now_s()` fail on a clean clone).
inline std::int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace wizmail::test
