#include "config/def_edit.hpp"

#include <sys/stat.h>

#include <mutex>

#include "config/parser.hpp"
#include "config/table.hpp"
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

namespace wizmail {

Result<ConfigEdit> set_config_value(const std::filesystem::path& home, std::string_view key, std::string_view value) {
  const auto* k = config::find_key_any(key);
  if (!k || k->obsolete) return fail(Errc::invalid_argument, util::cat("unknown key '", key, "'"));
  const auto names = config::names_of(*k);
  static std::mutex edit_mu;
  std::lock_guard lk(edit_mu);
  const auto def_dir = home / "def";
  const std::string file(config::file_name(k->file));
  // Every file the loader reads, the edited one changed; then the loader's
  // own parser says whether the result loads.
  std::vector<std::pair<std::string, std::string>> texts;
  std::string edited;
  for (const auto& name : def_file_names()) {
    auto text = config::read_def_file(def_dir / name);
    if (!text && text.error().code != Errc::not_found) return unexpected(text.error());
    if (name == file) {
      auto next = config::set_def_value(text ? *text : std::string(), names,
                                        value.empty() ? std::nullopt : std::optional<std::string_view>(value));
      if (!next)
        return fail(Errc::invalid_argument, util::cat((def_dir / name).string(), ": ", k->name, ": ", next.error().message));
      edited = *next;
      texts.emplace_back(name, *next);
    } else if (text) {
      texts.emplace_back(name, *text);
    }
  }
  for (const char* extra : {"aliases.def", "tls_policy.def"})
    if (auto text = config::read_def_file(def_dir / extra)) texts.emplace_back(extra, *text);
  auto check = parse_config_texts(home, texts);
  if (!check.ok()) {
    // The first error, one in the edited file before any other.
    const ConfigDiagnostic* first = nullptr;
    for (const auto& d : check.diagnostics) {
      if (d.severity != ConfigDiagnostic::Severity::error) continue;
      if (!first || (d.file.ends_with(file) && !first->file.ends_with(file))) first = &d;
    }
    return fail(Errc::invalid_argument, first ? first->to_string() : std::string("the configuration does not load"));
  }
  if (auto st = config::write_def_file(def_dir / file, edited); !st) return unexpected(st.error());
  return ConfigEdit{std::string(k->name), file, std::string(value)};
}

}  // namespace wizmail
