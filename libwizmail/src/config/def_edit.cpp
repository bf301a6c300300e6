#include "config/def_edit.hpp"

#include <sys/stat.h>

#include "util/fs.hpp"
#include "util/strings.hpp"

namespace wizmail::config {

namespace {
struct Line {
  std::string_view body;  // without its line end
  std::string_view end;   // "\n", "\r\n" or "" (the last line without one)
};

std::vector<Line> split_lines(std::string_view text) {
  std::vector<Line> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto nl = text.find('\n', pos);
    if (nl == std::string_view::npos) {
      out.push_back({text.substr(pos), {}});
      break;
    }
    std::size_t body_end = nl > pos && text[nl - 1] == '\r' ? nl - 1 : nl;
    out.push_back({text.substr(pos, body_end - pos), text.substr(body_end, nl + 1 - body_end)});
    pos = nl + 1;
  }
  return out;
}

// The key of a key=value line; nullopt for comments, blank lines and
// lines without '='.
std::optional<std::string_view> key_of(std::string_view body) {
  if (body.starts_with("\xEF\xBB\xBF")) body.remove_prefix(3);
  auto t = util::trim(body);
  if (t.empty() || t.starts_with('#') || t.starts_with("//")) return std::nullopt;
  auto eq = t.find('=');
  if (eq == std::string_view::npos) return std::nullopt;
  return util::trim(t.substr(0, eq));
}

bool named(std::string_view key, const std::vector<std::string_view>& names) {
  for (auto n : names)
    if (util::iequals(key, n)) return true;
  return false;
}
}  // namespace

Result<std::string> set_def_value(std::string_view text, const std::vector<std::string_view>& names,
                                  std::optional<std::string_view> value) {
  if (names.empty()) return fail(Errc::invalid_argument, "no key given");
  if (value) {
    if (value->find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos)
      return fail(Errc::invalid_argument, "a value is one line: no line break or NUL");
    if (util::trim(*value).size() != value->size())
      return fail(Errc::invalid_argument, "a value cannot start or end with blanks");
  }
  auto lines = split_lines(text);
  std::string_view eol = "\n";
  for (const auto& l : lines)
    if (!l.end.empty()) {
      eol = l.end;
      break;
    }
  std::string out;
  out.reserve(text.size() + 64);
  bool done = false;
  for (const auto& l : lines) {
    auto k = key_of(l.body);
    if (k && named(*k, names)) {
      if (value && !done) {
        bool bom = l.body.starts_with("\xEF\xBB\xBF");
        util::append(out, bom ? "\xEF\xBB\xBF" : "", names.front(), "=", *value, l.end.empty() ? eol : l.end);
      }
      done = true;
      continue;
    }
    util::append(out, l.body, l.end);
  }
  if (value && !done) {
    if (!out.empty() && !out.ends_with('\n')) out += eol;
    util::append(out, names.front(), "=", *value, eol);
  }
  return out;
}

std::optional<std::string> def_value(std::string_view text, const std::vector<std::string_view>& names) {
  for (const auto& l : split_lines(text)) {
    auto k = key_of(l.body);
    if (!k || !named(*k, names)) continue;
    auto eq = l.body.find('=');
    return std::string(util::trim(l.body.substr(eq + 1)));
  }
  return std::nullopt;
}

Status write_def_file(const std::filesystem::path& path, std::string_view text) {
  unsigned mode = 0640;
  struct stat st{};
  if (::stat(path.c_str(), &st) == 0) mode = st.st_mode & 07777;
  return util::write_file_atomic(path, text, mode);
}

}  // namespace wizmail::config
