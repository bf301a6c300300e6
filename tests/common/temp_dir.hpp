// A temporary folder for one test, removed afterwards (every test area:
// tests/meson.build puts tests/common on the include path).
#pragma once

#include <stdlib.h>

#include <cerrno>
#include <filesystem>
#include <set>
#include <string>
#include <system_error>

namespace wizmail::test {

class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "wizmail-test",
                   const std::filesystem::path& under = std::filesystem::temp_directory_path()) {
    std::string tmpl = (under / (prefix + "-XXXXXX")).string();
    if (!::mkdtemp(tmpl.data())) throw std::system_error(errno, std::generic_category(), "mkdtemp " + tmpl);
    path_ = tmpl;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A folder on tmpfs /dev/shm: on another filesystem than the temp folder,
// for the cross-filesystem paths. Without a writable /dev/shm the test fails
// (the constructor throws), never skips: such tests exist to prove those paths.
class ShmDir : public TempDir {
 public:
  explicit ShmDir(const std::string& prefix = "wizmail-store") : TempDir(prefix, "/dev/shm") {}
};

// Every path under `root` (relative), for "nothing else changed" checks.
inline std::set<std::string> tree(const std::filesystem::path& root) {
  std::set<std::string> out;
  for (auto& e : std::filesystem::recursive_directory_iterator(root))
    out.insert(std::filesystem::relative(e.path(), root).string());
  return out;
}

inline std::size_t count_files(const std::filesystem::path& dir) {
  std::size_t n = 0;
  for (auto& e : std::filesystem::directory_iterator(dir)) {
    (void)e;
    ++n;
  }
  return n;
}

}  // namespace wizmail::test
