#include "server/console_logs.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <deque>

#include "util/strings.hpp"

namespace wizmail::server::console {

bool line_of_session(std::string_view line, std::string_view session) noexcept {
  if (session.empty()) return true;
  // "<date> <time> <session> ...": the third field.
  std::string_view rest = line;
  for (int i = 0; i < 2; ++i) {
    auto sp = rest.find(' ');
    if (sp == std::string_view::npos) return false;
    rest.remove_prefix(sp + 1);
  }
  return rest.substr(0, rest.find(' ')) == session;
}

bool valid_session_id(std::string_view id) noexcept {
  if (id.empty() || id.size() > 32) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  });
}

std::vector<std::string> select_lines(std::string_view text, const LogQuery& q, bool cut_front) {
  std::deque<std::string_view> kept;
  std::size_t pos = 0;
  if (cut_front) {
    auto nl = text.find('\n');
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
  }
  while (pos < text.size() && q.max_lines > 0) {
    auto nl = text.find('\n', pos);
    auto line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    if (!q.contains.empty() && line.find(q.contains) == std::string_view::npos) continue;
    if (!line_of_session(line, q.session)) continue;
    kept.push_back(line);
    if (kept.size() > q.max_lines) kept.pop_front();
  }
  return {kept.begin(), kept.end()};
}

namespace {
// The last `max_bytes` of `file` (all of a smaller one); `cut` says whether
// the text starts inside the file. A missing file is empty.
Result<std::string> read_tail(const std::filesystem::path& file, std::size_t max_bytes, bool& cut) {
  cut = false;
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return std::string();
    return fail_errno(util::cat("open ", file.string()), errno);
  }
  struct stat st{};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return fail(Errc::io, util::cat(file.string(), " is not a regular file"));
  }
  auto size = static_cast<std::size_t>(st.st_size);
  std::size_t start = size > max_bytes ? size - max_bytes : 0;
  cut = start > 0;
  std::string buf(size - start, '\0');
  std::size_t got = 0;
  while (got < buf.size()) {
    auto n = ::pread(fd, buf.data() + got, buf.size() - got, static_cast<off_t>(start + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return fail_errno(util::cat("read ", file.string()), e);
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  ::close(fd);
  buf.resize(got);
  return buf;
}
}  // namespace

Result<std::vector<std::string>> read_log_lines(const std::filesystem::path& file, const LogQuery& q,
                                                std::size_t max_bytes) {
  bool cut = false;
  auto text = read_tail(file, max_bytes, cut);
  if (!text) return unexpected(text.error());
  // Shortly after a rotation the file is short: the rest of the budget goes
  // to the previous file (<file>.1, server/log.hpp), read before it.
  if (!cut && text->size() < max_bytes) {
    bool old_cut = false;
    auto old = read_tail(util::cat(file.string(), ".1"), max_bytes - text->size(), old_cut);
    if (old && !old->empty()) {
      if (!old->ends_with('\n')) *old += '\n';
      *old += *text;
      return select_lines(*old, q, old_cut);
    }
  }
  return select_lines(*text, q, cut);
}

}  // namespace wizmail::server::console
