// ml.def of a mailing-list account (SPEC §7): count, admin_mail_address,
// return_path, name. Writers serialise on an flock'd lock file beside it
// (ml.def.lock), so concurrent increments from threads and processes never
// lose a count; every write is write_file_atomic (crash-safe).
#include <limits>
#include <map>

#include "config/parser.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"
#include "wizmail/config.hpp"

namespace wizmail {

namespace fs = std::filesystem;

namespace config {

namespace {

Status check_ml_value(std::string_view key, const std::string& v) {
  for (char c : v) {
    if (c == '\n' || c == '\r' || c == '\0')
      return fail(Errc::invalid_argument,
                  "ml.def " + std::string(key) + " may not contain line breaks or NUL");
  }
  return {};
}

}  // namespace

Result<MailingListSettings> parse_ml_def(std::string_view text, const std::string& path) {
  auto parsed = config::parse_def_text(text, path);
  std::vector<ConfigDiagnostic> diags = parsed.diagnostics;
  MailingListSettings ml;
  std::map<std::string, int> seen;
  for (const auto& line : parsed.lines) {
    std::string key = util::to_lower(line.key);
    auto err = [&](std::string msg) {
      diags.push_back({ConfigDiagnostic::Severity::error, path, line.line, line.key, std::move(msg)});
    };
    if (key != "count" && key != "admin_mail_address" && key != "return_path" && key != "name") {
      err("unknown key in ml.def (count, admin_mail_address, return_path, name)");
      continue;
    }
    if (auto [it, fresh] = seen.emplace(key, line.line); !fresh) {
      err("duplicate key (first set on line " + std::to_string(it->second) + ")");
      continue;
    }
    if (key == "count") {
      if (line.value.empty()) continue;
      auto n = util::parse_int(line.value);
      if (!n || *n < 0) err("'" + line.value + "' is not a whole number 0 or more");
      else ml.count = *n;
    } else if (key == "admin_mail_address") {
      ml.admin_mail_address = line.value;
    } else if (key == "return_path") {
      ml.return_path = line.value;
    } else {
      ml.name = line.value;
    }
  }
  std::string msg;
  for (const auto& d : diags) {
    if (!msg.empty()) msg += '\n';
    msg += d.to_string();
  }
  if (!msg.empty()) return fail(Errc::parse, msg);
  return ml;
}

Result<std::string> format_ml_def(const MailingListSettings& ml) {
  if (ml.count < 0) return fail(Errc::invalid_argument, "ml.def count may not be negative");
  for (auto [key, v] : {std::pair<std::string_view, const std::string*>{"admin_mail_address",
                                                                        &ml.admin_mail_address},
                        {"return_path", &ml.return_path},
                        {"name", &ml.name}}) {
    if (auto st = check_ml_value(key, *v); !st) return unexpected(st.error());
    if (std::string(util::trim(*v)) != *v)
      return fail(Errc::invalid_argument,
                  "ml.def " + std::string(key) + " may not start or end with spaces");
  }
  std::string text = "count=";
  text.append(std::to_string(ml.count)).append("\n");
  text.append("admin_mail_address=").append(ml.admin_mail_address).append("\n");
  text.append("return_path=").append(ml.return_path).append("\n");
  text.append("name=").append(ml.name).append("\n");
  return text;
}

}  // namespace config

namespace {

Result<MailingListSettings> read_ml_def(const fs::path& file) {
  auto data = config::read_def_file(file);
  if (!data) return unexpected(data.error());
  return config::parse_ml_def(*data, file.string());
}

Status write_ml_def(const fs::path& file, const MailingListSettings& ml) {
  auto text = config::format_ml_def(ml);
  if (!text) return unexpected(text.error());
  return util::write_file_atomic(file, *text, 0644);
}

}  // namespace

Result<MailingListSettings> load_ml_def(const fs::path& file) { return read_ml_def(file); }

Status save_ml_def(const fs::path& file, const MailingListSettings& ml) {
  auto lock = util::FileLock::acquire(file);
  if (!lock) return unexpected(lock.error());
  return write_ml_def(file, ml);
}

Result<std::int64_t> increment_ml_count(const fs::path& file) {
  return increment_ml_count(file, [&file](std::int64_t current) -> Result<std::int64_t> {
    if (current == std::numeric_limits<std::int64_t>::max())
      return fail(Errc::limit, file.string() + ": count cannot grow any further");
    return current + 1;
  });
}

Result<std::int64_t> increment_ml_count(const fs::path& file,
                                        const std::function<Result<std::int64_t>(std::int64_t)>& next) {
  auto lock = util::FileLock::acquire(file);
  if (!lock) return unexpected(lock.error());
  auto ml = read_ml_def(file);
  if (!ml) return unexpected(ml.error());
  auto n = next(ml->count);
  if (!n) return unexpected(n.error());
  if (*n <= ml->count) return *n;
  ml->count = *n;
  if (auto st = write_ml_def(file, *ml); !st) return unexpected(st.error());
  return ml->count;
}

}  // namespace wizmail
