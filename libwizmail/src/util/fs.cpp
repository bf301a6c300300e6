#include "util/fs.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <string>

#include "util/fd.hpp"

namespace wizmail::util {

namespace fs = std::filesystem;

Status write_all(int fd, std::string_view data, const fs::path& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno("write " + path.string(), errno);
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

Status fsync_dir(const fs::path& dir) {
  UniqueFd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d.get() < 0) return fail_errno("open directory " + dir.string(), errno);
  if (::fsync(d.get()) != 0) return fail_errno("fsync directory " + dir.string(), errno);
  return {};
}

Status write_file_atomic(const fs::path& path, std::string_view data, unsigned mode) {
  fs::path dir = path.parent_path();
  if (dir.empty()) dir = ".";
  // Appended piece by piece: `"." + std::string` trips GCC 12's -Wrestrict
  // false positive (GCC PR 105329) in optimised builds.
  std::string tmp_name = ".";
  tmp_name += path.filename().string();
  tmp_name += ".tmp.";
  tmp_name += unique_name_part();
  fs::path tmp = dir / tmp_name;
  {
    UniqueFd f(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
    if (f.get() < 0) return fail_errno("create " + tmp.string(), errno);
    // The umask must not weaken or widen the mode we were asked for.
    if (::fchmod(f.get(), mode) != 0) {
      int e = errno;
      ::unlink(tmp.c_str());
      return fail_errno("chmod " + tmp.string(), e);
    }
    if (auto st = write_all(f.get(), data, tmp); !st) {
      ::unlink(tmp.c_str());
      return st;
    }
    if (::fsync(f.get()) != 0) {
      int e = errno;
      ::unlink(tmp.c_str());
      return fail_errno("fsync " + tmp.string(), e);
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return fail_errno("rename to " + path.string(), e);
  }
  return fsync_dir(dir);
}

Result<std::string> read_file(const fs::path& path) {
  UniqueFd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (f.get() < 0) return fail_errno("open " + path.string(), errno);
  std::string out;
  char buf[65536];
  while (true) {
    ssize_t n = ::read(f.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno("read " + path.string(), errno);
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

Result<std::uint64_t> free_space(const fs::path& path) {
  struct statvfs v {};
  if (::statvfs(path.c_str(), &v) != 0) return fail_errno("statvfs " + path.string(), errno);
  return static_cast<std::uint64_t>(v.f_bavail) * static_cast<std::uint64_t>(v.f_frsize);
}

Status make_dirs(const fs::path& dir, unsigned mode) {
  std::error_code ec;
  fs::path cur;
  for (const auto& part : dir) {
    cur /= part;
    if (cur.empty() || cur == cur.root_path()) continue;
    if (::mkdir(cur.c_str(), mode) != 0 && errno != EEXIST)
      return fail_errno("mkdir " + cur.string(), errno);
  }
  if (!fs::is_directory(dir, ec))
    return fail(Errc::io, dir.string() + " exists and is not a directory");
  return {};
}

std::string unique_name_part() {
  static std::atomic<unsigned long> seq{0};
  using namespace std::chrono;
  auto now = system_clock::now().time_since_epoch();
  auto sec = duration_cast<seconds>(now).count();
  auto usec = duration_cast<microseconds>(now).count() % 1000000;
  return std::to_string(sec) + ".M" + std::to_string(usec) + "P" +
         std::to_string(::getpid()) + "Q" + std::to_string(seq.fetch_add(1) + 1);
}

namespace {
std::string escape_maildir_host(std::string_view host) {
  std::string out;
  for (char c : host) {
    if (c == '/') out += "\\057";
    else if (c == ':') out += "\\072";
    else out += c;
  }
  return out;
}

std::string& maildir_host_storage() {
  static std::string name = [] {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return std::string("localhost");
    return escape_maildir_host(buf);
  }();
  return name;
}
}  // namespace

const std::string& maildir_hostname() { return maildir_host_storage(); }

void set_maildir_hostname(std::string_view name) { maildir_host_storage() = escape_maildir_host(name); }

Result<FileLock> FileLock::acquire(const std::filesystem::path& file) {
  std::filesystem::path lock = file;
  lock += ".lock";
  int fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return fail_errno("open lock file " + lock.string(), errno);
  while (::flock(fd, LOCK_EX) != 0) {
    if (errno == EINTR) continue;
    int e = errno;
    ::close(fd);
    return fail_errno("lock " + lock.string(), e);
  }
  return FileLock(fd);
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

}  // namespace wizmail::util
