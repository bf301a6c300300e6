#include "srs/secret.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>

#include "util/base64.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

namespace wizmail::srs {

namespace fs = std::filesystem;

fs::path secret_file(const fs::path& home) { return home / "def" / "srs.secret"; }

Result<bool> create_secret_file(const fs::path& file) {
  unsigned char raw[24];
  std::size_t got = 0;
  while (got < sizeof raw) {
    const ssize_t n = ::getrandom(raw + got, sizeof raw - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno("getrandom for the SRS secret", errno);
    }
    got += static_cast<std::size_t>(n);
  }
  const std::string text =
      util::base64_encode(std::string_view(reinterpret_cast<const char*>(raw), sizeof raw)) + "\n";
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return false;
    return fail_errno("create " + file.string(), errno);
  }
  Status st = util::write_all(fd, text, file);
  if (st && ::fsync(fd) != 0) st = fail_errno("fsync " + file.string(), errno);
  ::close(fd);
  if (st) st = util::fsync_dir(file.parent_path());
  if (!st) {
    ::unlink(file.c_str());  // never leave a half-written secret to be used
    return unexpected(st.error());
  }
  return true;
}

Result<std::vector<std::string>> parse_secrets(std::string_view text, const fs::path& file) {
  std::vector<std::string> out;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    out.emplace_back(line);
  }
  if (out.empty()) return fail(Errc::parse, file.string() + ": no SRS secret in the file");
  return out;
}

Result<std::vector<std::string>> load_secrets(const fs::path& file) {
  if (auto c = create_secret_file(file); !c) return unexpected(c.error());
  auto text = util::read_file(file);
  if (!text) return unexpected(text.error());
  return parse_secrets(*text, file);
}

}  // namespace wizmail::srs
