#include "wizmail/quarantine.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <system_error>

#include "util/fs.hpp"
#include "util/strings.hpp"
#include "wizmail/queue.hpp"

namespace wizmail {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view reason_field = "X-Wizmail-Quarantine: ";
constexpr std::string_view from_field = "X-Wizmail-Envelope-From: <";
constexpr std::string_view to_field = "X-Wizmail-Envelope-To: <";

std::string clean(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  return out;
}

Status check_id(std::string_view id) {
  if (!RelayQueue::validate_id(id)) return fail(Errc::invalid_argument, util::cat("bad quarantine id '", id, "'"));
  return {};
}

fs::path file_of(const fs::path& dir, std::string_view id) { return dir / util::cat(id, ".eml"); }

// When it was quarantined: the file's time (0 when it cannot be read).
std::int64_t created_of(const fs::path& path) {
  struct stat st{};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<std::int64_t>(st.st_mtime) : 0;
}

// The fields in front of a quarantined file and the message's size,
// without keeping the message: the first 64 KiB are read, the whole file
// only when the fields run longer (very many recipients).
Result<QuarantinedMessage> read_fields(const fs::path& path) {
  constexpr std::size_t prefix = 64 * 1024;
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(Errc::not_found, util::cat("cannot open ", path.string()));
  std::string text(prefix, '\0');
  in.read(text.data(), static_cast<std::streamsize>(prefix));
  text.resize(static_cast<std::size_t>(in.gcount()));
  const bool whole = in.eof();
  in.clear();
  in.seekg(0, std::ios::end);
  const auto file_size = static_cast<std::uint64_t>(in.tellg());
  auto q = parse_quarantine_record(text);
  if (!q && !whole) {
    auto all = util::read_file(path);
    if (!all) return unexpected(all.error());
    text = std::move(*all);
    q = parse_quarantine_record(text);
  }
  if (!q) return q;
  const auto fields = text.size() - q->message.size();
  q->size = file_size - fields;
  q->message.clear();
  q->message.shrink_to_fit();
  return q;
}

}  // namespace

std::string quarantine_record(std::string_view reason, std::string_view sender,
                              const std::vector<std::string>& recipients, std::string_view message) {
  std::string out = util::cat(reason_field, clean(reason), "\r\n", from_field, clean(sender), ">\r\n");
  for (const auto& r : recipients) util::append(out, to_field, clean(r), ">\r\n");
  out += message;
  return out;
}

Result<QuarantinedMessage> parse_quarantine_record(std::string_view text) {
  QuarantinedMessage q;
  bool have_reason = false, have_from = false;
  std::size_t pos = 0;
  for (;;) {
    auto eol = text.find("\r\n", pos);
    if (eol == std::string_view::npos) return fail(Errc::parse, "quarantine file: the envelope fields are cut");
    auto line = text.substr(pos, eol - pos);
    if (!have_reason) {
      if (!line.starts_with(reason_field)) return fail(Errc::parse, "quarantine file: no X-Wizmail-Quarantine field");
      q.reason = std::string(line.substr(reason_field.size()));
      have_reason = true;
    } else if (!have_from) {
      if (!line.starts_with(from_field) || !line.ends_with('>'))
        return fail(Errc::parse, "quarantine file: no X-Wizmail-Envelope-From field");
      q.sender = std::string(line.substr(from_field.size(), line.size() - from_field.size() - 1));
      have_from = true;
    } else if (line.starts_with(to_field)) {
      if (!line.ends_with('>') || line.size() == to_field.size() + 1)
        return fail(Errc::parse, "quarantine file: a malformed X-Wizmail-Envelope-To field");
      q.recipients.emplace_back(line.substr(to_field.size(), line.size() - to_field.size() - 1));
    } else {
      break;  // the message begins here
    }
    pos = eol + 2;
  }
  if (q.recipients.empty()) return fail(Errc::parse, "quarantine file: no X-Wizmail-Envelope-To field");
  q.message = std::string(text.substr(pos));
  q.size = q.message.size();
  return q;
}

Result<std::string> quarantine_message(const fs::path& quarantine_dir, std::string_view reason,
                                       std::string_view sender, const std::vector<std::string>& recipients,
                                       std::string_view message) {
  if (auto st = util::make_dirs(quarantine_dir, 0700); !st) return unexpected(st.error());
  if (auto st = util::fsync_dir(quarantine_dir.parent_path()); !st) return unexpected(st.error());
  std::string id = util::unique_name_part();
  if (auto st = util::write_file_atomic(file_of(quarantine_dir, id), quarantine_record(reason, sender, recipients, message),
                                        0600);
      !st)
    return unexpected(st.error());
  return id;
}

Result<QuarantinedMessage> load_quarantined(const fs::path& quarantine_dir, std::string_view id) {
  if (auto st = check_id(id); !st) return unexpected(st.error());
  const auto path = file_of(quarantine_dir, id);
  auto text = util::read_file(path);
  if (!text) {
    if (text.error().code == Errc::not_found)
      return fail(Errc::not_found, util::cat("no quarantined message '", id, "'"));
    return unexpected(text.error());
  }
  auto q = parse_quarantine_record(*text);
  if (!q) return fail(Errc::parse, util::cat(path.string(), ": ", q.error().message));
  q->id = std::string(id);
  q->created = created_of(path);
  return q;
}

Result<std::vector<QuarantinedMessage>> list_quarantine(const fs::path& quarantine_dir) {
  std::vector<QuarantinedMessage> out;
  std::error_code ec;
  fs::directory_iterator it(quarantine_dir, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory) return out;
    return fail(Errc::io, util::cat(quarantine_dir.string(), ": ", ec.message()));
  }
  for (const auto& entry : it) {
    const auto name = entry.path().filename().string();
    if (!name.ends_with(".eml")) continue;
    const auto id = std::string_view(name).substr(0, name.size() - 4);
    if (!RelayQueue::validate_id(id)) continue;
    auto q = read_fields(entry.path());
    if (!q) continue;  // released or deleted meanwhile, or not ours
    q->id = std::string(id);
    q->created = created_of(entry.path());
    out.push_back(std::move(*q));
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.created != b.created ? a.created < b.created : a.id < b.id; });
  return out;
}

Status delete_quarantined(const fs::path& quarantine_dir, std::string_view id) {
  if (auto st = check_id(id); !st) return st;
  std::error_code ec;
  if (!fs::remove(file_of(quarantine_dir, id), ec)) {
    if (ec) return fail(Errc::io, util::cat("cannot remove quarantined message '", id, "': ", ec.message()));
    return fail(Errc::not_found, util::cat("no quarantined message '", id, "'"));
  }
  return util::fsync_dir(quarantine_dir);
}

}  // namespace wizmail
