#include "config/parser.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "util/strings.hpp"

namespace wizmail::config {

namespace {

bool valid_key_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '_' || c == '-' || c == '.';
}

std::string printable_byte(unsigned char c) {
  static const char* hex = "0123456789abcdef";
  std::string out = "0x";
  out += hex[c >> 4];
  out += hex[c & 15];
  return out;
}

// Check one line's bytes; empty string = fine, else the problem.
std::string check_line_bytes(std::string_view line) {
  for (std::size_t i = 0; i < line.size();) {
    auto c = static_cast<unsigned char>(line[i]);
    if (c < 0x80) {
      if (c == 0) return "NUL byte: this is not a text file";
      if ((c < 0x20 && c != '\t') || c == 0x7f)
        return "control character " + printable_byte(c) + " in column " + std::to_string(i + 1) +
               " (binary data?)";
      ++i;
      continue;
    }
    std::size_t n = util::utf8_sequence_length(line.substr(i));
    if (n == 0)
      return "invalid UTF-8 (byte " + printable_byte(c) + " in column " + std::to_string(i + 1) +
             "); def files must be UTF-8";
    i += n;
  }
  return {};
}

}  // namespace

void for_each_def_line(std::string_view text, const std::string& path,
                       std::vector<ConfigDiagnostic>& diagnostics,
                       const std::function<void(int, std::string_view)>& on_line) {
  const std::size_t first = diagnostics.size();
  auto error = [&](int line, std::string msg) {
    diagnostics.push_back({ConfigDiagnostic::Severity::error, path, line, {}, std::move(msg)});
  };
  if (text.starts_with("\xef\xbb\xbf")) text.remove_prefix(3);

  int line_no = 0;
  while (!text.empty()) {
    if (diagnostics.size() - first >= static_cast<std::size_t>(kMaxErrors)) {
      error(line_no + 1, "too many errors; the rest of the file was not read");
      break;
    }
    ++line_no;
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (line.ends_with('\r')) line.remove_suffix(1);

    if (auto problem = check_line_bytes(line); !problem.empty()) {
      bool nul = problem.starts_with("NUL");
      error(line_no, std::move(problem));
      if (nul) break;  // a binary file: one clear message is enough
      continue;
    }
    std::string_view t = util::trim(line);
    if (t.empty() || t.starts_with('#') || t.starts_with("//")) continue;
    on_line(line_no, t);
  }
}

DefText parse_def_text(std::string_view text, const std::string& path) {
  DefText out;
  auto error = [&](int line, std::string key, std::string msg) {
    out.diagnostics.push_back({ConfigDiagnostic::Severity::error, path, line, std::move(key),
                               std::move(msg)});
  };
  for_each_def_line(text, path, out.diagnostics, [&](int line_no, std::string_view t) {
    auto eq = t.find('=');
    if (eq == std::string_view::npos) {
      error(line_no, {}, "expected key=value, got '" + std::string(t.substr(0, 60)) + "'");
      return;
    }
    std::string_view key = util::trim(t.substr(0, eq));
    std::string_view value = util::trim(t.substr(eq + 1));
    if (key.empty()) {
      error(line_no, {}, "missing key before '='");
      return;
    }
    bool key_ok = key.size() <= 128;
    for (char c : key) key_ok = key_ok && valid_key_char(c);
    if (!key_ok) {
      error(line_no, std::string(key.substr(0, 60)),
            "invalid key name (letters, digits, '_', '-' and '.' only)");
      return;
    }
    out.lines.push_back({std::string(key), std::string(value), line_no});
  });
  return out;
}

Result<std::string> read_def_file(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    int e = errno;
    if (e == ENOENT) return fail(Errc::not_found, path.string() + ": no such file");
    return fail_errno(path.string() + ": cannot open", e);
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st{};
  if (::fstat(fd, &st) != 0) return fail_errno(path.string() + ": cannot stat", errno);
  if (S_ISDIR(st.st_mode)) return fail(Errc::io, path.string() + ": is a directory, not a file");
  if (!S_ISREG(st.st_mode)) return fail(Errc::io, path.string() + ": is not a regular file");
  if (static_cast<std::size_t>(st.st_size) > kMaxDefFileSize)
    return fail(Errc::limit, path.string() + ": too large (" + std::to_string(st.st_size) +
                                 " bytes; a def file may have at most " +
                                 std::to_string(kMaxDefFileSize) + ")");
  std::string data;
  char buf[16384];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno(path.string() + ": cannot read", errno);
    }
    if (n == 0) break;
    data.append(buf, static_cast<std::size_t>(n));
    if (data.size() > kMaxDefFileSize)
      return fail(Errc::limit, path.string() + ": too large");
  }
  return data;
}

}  // namespace wizmail::config
