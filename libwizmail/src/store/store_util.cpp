#include "store/store_util.hpp"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "util/fd.hpp"
#include "util/fs.hpp"

namespace wizmail::store {

std::string quote(std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out = "\"";
  std::size_t n = 0;
  for (char ch : s) {
    if (++n > 80) {
      out += "...";
      break;
    }
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += ch;
    }
  }
  out += '"';
  return out;
}

Status replace_file(const std::filesystem::path& path, std::string_view data, unsigned mode,
                    bool durable) {
  if (durable) return util::write_file_atomic(path, data, mode);
  std::filesystem::path tmp = path;
  tmp += ".tmp." + util::unique_name_part();
  util::UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
  if (!fd) return fail_errno("create " + tmp.string(), errno);
  auto undo = [&](int e, const std::string& what) {
    ::unlink(tmp.c_str());
    return fail_errno(what, e);
  };
  if (::fchmod(fd.get(), mode) != 0) return undo(errno, "chmod " + tmp.string());
  while (!data.empty()) {
    ssize_t w = ::write(fd.get(), data.data(), data.size());
    if (w < 0) {
      if (errno == EINTR) continue;
      return undo(errno, "write " + tmp.string());
    }
    data.remove_prefix(static_cast<std::size_t>(w));
  }
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) return undo(errno, "rename to " + path.string());
  return {};
}

int rename_noreplace_fallback(const std::filesystem::path& from,
                              const std::filesystem::path& to) noexcept {
  struct stat st {};
  if (::lstat(from.c_str(), &st) != 0) return errno;
  if (!S_ISDIR(st.st_mode)) {
    if (::link(from.c_str(), to.c_str()) == 0) {
      // Both names now lead to the file; dropping the old one cannot fail
      // in a way that loses it.
      if (::unlink(from.c_str()) != 0 && errno != ENOENT) return errno;
      return 0;
    }
    const int e = errno;
    if (e != EPERM && e != EOPNOTSUPP && e != EMLINK && e != ENOSYS) return e;
  }
  if (::lstat(to.c_str(), &st) == 0) return EEXIST;
  if (errno != ENOENT) return errno;
  if (::rename(from.c_str(), to.c_str()) != 0) return errno;
  return 0;
}

int rename_noreplace(const std::filesystem::path& from, const std::filesystem::path& to) noexcept {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return 0;
  const int e = errno;
  if (e == EINVAL || e == ENOSYS) return rename_noreplace_fallback(from, to);
  return e;
}

}  // namespace wizmail::store
