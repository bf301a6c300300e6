#include "wizmail/hooks.hpp"

#include <sys/stat.h>

#include <array>
#include <optional>

#include "util/strings.hpp"

namespace wizmail {

namespace {

Error def_error(const std::string& file, int line, std::string_view key, std::string_view msg) {
  std::string m = file + ":" + std::to_string(line) + ": ";
  if (!key.empty()) m += std::string(key) + ": ";
  m += msg;
  return Error{Errc::parse, std::move(m)};
}

bool regular_file(const std::filesystem::path& p) {
  struct stat st{};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

Result<std::vector<std::string>> split_command_line(std::string_view bin) {
  std::vector<std::string> out;
  std::string cur;
  bool in_word = false, quoted = false;
  for (char c : bin) {
    if (c == '"') {
      quoted = !quoted;
      in_word = true;
      continue;
    }
    if (!quoted && (c == ' ' || c == '\t')) {
      if (in_word) out.push_back(std::move(cur));
      cur.clear();
      in_word = false;
      continue;
    }
    cur += c;
    in_word = true;
  }
  if (quoted) return fail(Errc::parse, "unterminated quote");
  if (in_word) out.push_back(std::move(cur));
  return out;
}

namespace {
// "YYYY-MM-DD" with a month 01-12 and a day 01-31 (compared as text).
bool is_date(std::string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return false;
  for (std::size_t i : {0, 1, 2, 3, 5, 6, 8, 9})
    if (s[i] < '0' || s[i] > '9') return false;
  auto month = s.substr(5, 2), day = s.substr(8, 2);
  return month >= "01" && month <= "12" && day >= "01" && day <= "31";
}
}  // namespace

bool hook_active_on(const HookDef& def, std::string_view today) {
  if (!def.active_from.empty() && today < def.active_from) return false;
  if (!def.active_until.empty() && today > def.active_until) return false;
  return true;
}

Result<HookDef> parse_hook_def(std::string_view text, const std::string& file) {
  HookDef def;
  bool have_bin = false, have_perm = false, have_stdin = false;
  std::array<std::optional<std::string>, 100> params;
  if (text.find('\0') != std::string_view::npos)
    return unexpected(def_error(file, 0, {}, "holds a NUL byte"));
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // a BOM from a Windows editor
  int lineno = 0;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    auto nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
    ++lineno;
    line = util::trim(line);
    if (line.empty() || line.starts_with('#') || line.starts_with("//")) continue;
    auto eq = line.find('=');
    if (eq == std::string_view::npos) return unexpected(def_error(file, lineno, {}, "expected key=value"));
    std::string key = util::to_lower(util::trim(line.substr(0, eq)));
    std::string_view value = util::trim(line.substr(eq + 1));
    if (key == "bin") {
      if (have_bin) return unexpected(def_error(file, lineno, key, "duplicate key"));
      auto words = split_command_line(value);
      if (!words) return unexpected(def_error(file, lineno, key, words.error().message));
      if (words->empty()) return unexpected(def_error(file, lineno, key, "empty program"));
      def.command = std::move(*words);
      have_bin = true;
    } else if (key == "permission_mailaddress") {
      if (have_perm) return unexpected(def_error(file, lineno, key, "duplicate key"));
      for (auto& a : util::split_list(value)) def.permission.push_back(util::to_lower(a));
      have_perm = true;
    } else if (key == "stdin") {
      if (have_stdin) return unexpected(def_error(file, lineno, key, "duplicate key"));
      if (value != "0" && value != "1")
        return unexpected(def_error(file, lineno, key, "must be 0 or 1"));
      def.stdin_message = value == "1";
      have_stdin = true;
    } else if (key == "active_from" || key == "active_until") {
      auto& slot = key == "active_from" ? def.active_from : def.active_until;
      if (!slot.empty()) return unexpected(def_error(file, lineno, key, "duplicate key"));
      if (!is_date(value)) return unexpected(def_error(file, lineno, key, "must be a date YYYY-MM-DD"));
      slot = std::string(value);
    } else if (key.starts_with("param")) {
      auto n = util::parse_int(std::string_view(key).substr(5));
      if (!n || *n < 1 || *n > 99 || key.size() > 7 || key[5] == '0' || key[5] == '-')
        return unexpected(def_error(file, lineno, key, "unknown key (param1 … param99)"));
      auto& slot = params[static_cast<std::size_t>(*n)];
      if (slot) return unexpected(def_error(file, lineno, key, "duplicate key"));
      slot = std::string(value);
    } else {
      return unexpected(def_error(file, lineno, key,
                                  "unknown key (bin, param1 … param99, permission_mailaddress, stdin, active_from, active_until)"));
    }
  }
  if (!have_bin) return unexpected(def_error(file, 0, "bin", "missing"));
  for (std::size_t i = 1; i < params.size() && params[i]; ++i) def.params.push_back(*params[i]);
  return def;
}

bool hook_permits(const HookDef& def, std::string_view sender) {
  if (def.permission.empty()) return true;
  if (sender.empty()) return false;
  std::string s = util::to_lower(sender);
  auto at = s.rfind('@');
  std::string_view domain = at == std::string::npos ? std::string_view{} : std::string_view(s).substr(at + 1);
  for (const auto& p : def.permission) {
    if (p.find('@') != std::string::npos) {
      if (p == s) return true;
    } else if (!domain.empty() && p == domain) {
      return true;
    }
  }
  return false;
}

std::vector<std::string> hook_argv(const HookDef& def, const HookTokens& t) {
  std::vector<std::string> argv;
  auto add = [&](const std::string& a) {
    if (a == "FROM_ADDRESS") argv.push_back(t.from_address);
    else if (a == "TO_ADDRESS") argv.push_back(t.to_address);
    else if (a == "SUBJECT") argv.push_back(t.subject);
    else if (a == "MAILFILE_PATH") argv.push_back(t.mailfile_path);
    else argv.push_back(a);
  };
  for (std::size_t i = 0; i < def.command.size(); ++i) {
    // The program itself is never a token.
    if (i == 0) argv.push_back(def.command[0]);
    else add(def.command[i]);
  }
  for (const auto& p : def.params) add(p);
  return argv;
}

std::vector<HookFile> hook_files(const std::filesystem::path& dir) {
  std::vector<HookFile> out;
  for (int i = 1; i <= 99; ++i) {
    auto p = dir / (i == 1 ? std::string("exec.def") : "exec" + std::to_string(i) + ".def");
    if (!regular_file(p)) break;
    out.push_back({HookKind::exec, p});
  }
  if (auto p = dir / "forward.def"; regular_file(p)) out.push_back({HookKind::forward, p});
  if (auto p = dir / "reply.def"; regular_file(p)) out.push_back({HookKind::reply, p});
  return out;
}

std::string_view to_string(HookKind k) noexcept {
  switch (k) {
    case HookKind::exec: return "exec";
    case HookKind::forward: return "forward";
    case HookKind::reply: return "reply";
  }
  return "exec";
}

}  // namespace wizmail
