#include "wizmail/admin/mime.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include <gmime/gmime.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "util/fd.hpp"
#include "util/fs.hpp"
#include "util/utf8.hpp"

namespace wizmail {

namespace fs = std::filesystem;
using util::UniqueFd;

namespace {

// Text for a Linux reader: valid UTF-8, CRLF → LF, NUL dropped.
std::string clean_text(std::string_view s) {
  std::string t;
  t.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') continue;
    if (s[i] == '\0') continue;
    t += s[i];
  }
  return util::repair_utf8(t, "\xef\xbf\xbd");
}

// One header line: control characters (folding leftovers included) become
// spaces so a value can never start a line of its own.
std::string clean_header(std::string_view s) {
  std::string t = util::repair_utf8(s, "\xef\xbf\xbd");
  for (auto& c : t)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  return t;
}

void gmime_init_once() {
  static std::once_flag once;
  std::call_once(once, [] { g_mime_init(); });
}

// "name.ext" → ("name", ".ext") when the extension is short and not the
// whole name.
std::pair<std::string, std::string> split_ext(const std::string& name) {
  auto dot = name.rfind('.');
  if (dot == std::string::npos || dot == 0 || name.size() - dot > 16) return {name, ""};
  return {name.substr(0, dot), name.substr(dot)};
}

std::string with_suffix(const std::string& name, int k, bool is_dir) {
  if (k == 0) return name;
  if (is_dir) return name + "-" + std::to_string(k);
  auto [stem, ext] = split_ext(name);
  return stem + "-" + std::to_string(k) + ext;
}

constexpr int max_suffix = 100000;

// Create a new file under `dfd`; never replaces anything.
Result<std::pair<UniqueFd, std::string>> create_unique_file(int dfd, const std::string& name,
                                                            const fs::path& shown) {
  for (int k = 0; k < max_suffix; ++k) {
    auto n = with_suffix(name, k, false);
    int fd = ::openat(dfd, n.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd >= 0) return std::pair<UniqueFd, std::string>(UniqueFd(fd), n);
    if (errno != EEXIST) return fail_errno("create " + (shown / n).string(), errno);
  }
  return fail(Errc::limit, "too many files named like " + (shown / name).string());
}

Result<std::pair<UniqueFd, std::string>> create_unique_dir(int dfd, const std::string& name,
                                                           const fs::path& shown) {
  for (int k = 0; k < max_suffix; ++k) {
    auto n = with_suffix(name, k, true);
    if (::mkdirat(dfd, n.c_str(), 0755) == 0) {
      int fd = ::openat(dfd, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) return fail_errno("open " + (shown / n).string(), errno);
      return std::pair<UniqueFd, std::string>(UniqueFd(fd), n);
    }
    if (errno != EEXIST) return fail_errno("mkdir " + (shown / n).string(), errno);
  }
  return fail(Errc::limit, "too many folders named like " + (shown / name).string());
}

struct Writer {
  const MimeParseOptions& opt;
  MimeParseReport& report;

  struct Folder {
    int fd;
    fs::path path;
    int bodies = 0;        // body.txt, body-1.txt, ...
    bool html = false;     // body.html written
    int parts = 0;         // part-N for unnamed attachments
    int messages = 0;      // message-N
    UniqueFd attachments;  // attachments/, made on first use
  };

  Status write_file(int dfd, const fs::path& dir, const std::string& name, std::string_view data) {
    auto f = create_unique_file(dfd, name, dir);
    if (!f) return unexpected(f.error());
    auto path = dir / f->second;
    if (auto st = util::write_all(f->first.get(), data, path); !st) return st;
    report.written.push_back(path);
    return {};
  }

  Status write_headers(Folder& out, GMimeObject* obj) {
    std::string text;
    GMimeHeaderList* hl = g_mime_object_get_header_list(obj);
    int n = hl ? g_mime_header_list_get_count(hl) : 0;
    for (int i = 0; i < n; ++i) {
      GMimeHeader* h = g_mime_header_list_get_header_at(hl, i);
      const char* name = g_mime_header_get_name(h);
      const char* value = g_mime_header_get_value(h);
      text += clean_header(name ? name : "") + ": " + clean_header(value ? value : "") + "\n";
    }
    return write_file(out.fd, out.path, "headers.txt", text);
  }

  Result<int> attachments_dir(Folder& out) {
    if (!out.attachments) {
      auto d = create_unique_dir(out.fd, "attachments", out.path);
      if (!d) return unexpected(d.error());
      out.attachments = std::move(d->first);
    }
    return out.attachments.get();
  }

  Status write_part(Folder& out, GMimePart* part) {
    GMimeObject* obj = GMIME_OBJECT(part);
    const char* filename = g_mime_part_get_filename(part);
    const char* disposition = g_mime_object_get_disposition(obj);
    bool attachment = (filename && *filename) ||
                      (disposition && g_ascii_strcasecmp(disposition, "attachment") == 0);
    GMimeContentType* ct = g_mime_object_get_content_type(obj);
    bool plain = ct && g_mime_content_type_is_type(ct, "text", "plain");
    bool html = ct && g_mime_content_type_is_type(ct, "text", "html");
    if (!attachment && GMIME_IS_TEXT_PART(obj) && (plain || (html && !out.html))) {
      char* t = g_mime_text_part_get_text(GMIME_TEXT_PART(part));
      std::string text = clean_text(t ? t : "");
      g_free(t);
      std::string name;
      if (html) {
        name = "body.html";
        out.html = true;
      } else {
        name = out.bodies == 0 ? "body.txt" : "body-" + std::to_string(out.bodies) + ".txt";
        ++out.bodies;
      }
      return write_file(out.fd, out.path, name, text);
    }
    ++out.parts;
    std::string fallback = "part-" + std::to_string(out.parts);
    if (!filename && ct) {
      // An unnamed text part keeps a readable extension.
      if (html) fallback += ".html";
      else if (g_mime_content_type_is_type(ct, "text", "*")) fallback += ".txt";
    }
    std::string name = sanitize_file_name(filename ? filename : "", fallback, opt.max_name_bytes);
    auto adir = attachments_dir(out);
    if (!adir) return unexpected(adir.error());
    auto shown = out.path / "attachments";
    auto f = create_unique_file(*adir, name, shown);
    if (!f) return unexpected(f.error());
    auto path = shown / f->second;
    GMimeDataWrapper* content = g_mime_part_get_content(part);
    if (content) {
      // The stream owns a duplicate, so `f` still closes its own descriptor.
      int dup = ::fcntl(f->first.get(), F_DUPFD_CLOEXEC, 0);
      if (dup < 0) return fail_errno("dup " + path.string(), errno);
      GMimeStream* s = g_mime_stream_fs_new(dup);
      ssize_t n = g_mime_data_wrapper_write_to_stream(content, s);
      int fl = g_mime_stream_flush(s);
      g_object_unref(s);
      if (n < 0 || fl != 0) return fail(Errc::io, "write " + path.string() + " failed");
    }
    report.written.push_back(path);
    ++report.attachments;
    return {};
  }

  Status walk(Folder& out, GMimeObject* obj, int depth) {
    if (!obj) return {};
    if (depth > opt.max_depth) return fail(Errc::limit, "MIME structure nested too deep");
    if (GMIME_IS_MULTIPART(obj)) {
      GMimeMultipart* mp = GMIME_MULTIPART(obj);
      int n = g_mime_multipart_get_count(mp);
      for (int i = 0; i < n; ++i)
        if (auto st = walk(out, g_mime_multipart_get_part(mp, i), depth + 1); !st) return st;
      return {};
    }
    if (GMIME_IS_MESSAGE_PART(obj)) {
      GMimeMessage* inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
      if (!inner) return {};
      ++out.messages;
      auto d = create_unique_dir(out.fd, "message-" + std::to_string(out.messages), out.path);
      if (!d) return unexpected(d.error());
      Folder sub{d->first.get(), out.path / d->second, 0, false, 0, 0, UniqueFd()};
      return write_message(sub, inner, depth + 1);
    }
    if (GMIME_IS_PART(obj)) return write_part(out, GMIME_PART(obj));
    return {};
  }

  Status write_message(Folder& out, GMimeMessage* msg, int depth) {
    ++report.messages;
    if (auto st = write_headers(out, GMIME_OBJECT(msg)); !st) return st;
    return walk(out, g_mime_message_get_mime_part(msg), depth);
  }

  // One mail file into a new folder under `dfd`.
  Status parse_file(int dfd, const fs::path& dir, const fs::path& input, std::string_view base) {
    UniqueFd in(::open(input.c_str(), O_RDONLY | O_CLOEXEC));
    if (!in) return fail_errno("open " + input.string(), errno);
    struct stat st {};
    if (::fstat(in.get(), &st) != 0 || !S_ISREG(st.st_mode))
      return fail(Errc::invalid_argument, input.string() + " is not a regular file");
    GMimeStream* stream = g_mime_stream_fs_new(in.release());
    GMimeParser* parser = g_mime_parser_new_with_stream(stream);
    g_object_unref(stream);
    GMimeParserOptions* po = g_mime_parser_options_new();
    g_mime_parser_options_set_rfc2047_compliance_mode(po, GMIME_RFC_COMPLIANCE_LOOSE);
    g_mime_parser_options_set_parameter_compliance_mode(po, GMIME_RFC_COMPLIANCE_LOOSE);
    // Undeclared 8-bit text: UTF-8 first, then what Japanese mail used, then
    // a single-byte charset that decodes anything.
    const char* charsets[] = {"UTF-8", "ISO-2022-JP", "EUC-JP", "Shift_JIS", "windows-1252", nullptr};
    g_mime_parser_options_set_fallback_charsets(po, charsets);
    GMimeMessage* msg = g_mime_parser_construct_message(parser, po);
    g_object_unref(parser);
    Status result;
    if (!msg) {
      result = fail(Errc::parse, input.string() + ": not a mail message");
    } else {
      auto d = create_unique_dir(dfd, sanitize_file_name(base, "message", opt.max_name_bytes), dir);
      if (!d) {
        result = unexpected(d.error());
      } else {
        Folder top{d->first.get(), dir / d->second, 0, false, 0, 0, UniqueFd()};
        result = write_message(top, msg, 0);
      }
      g_object_unref(msg);
    }
    g_mime_parser_options_free(po);
    return result;
  }

  void parse_tree(int in_dfd, const fs::path& in_path, int out_dfd, const fs::path& out_path, int depth) {
    int dup = ::fcntl(in_dfd, F_DUPFD_CLOEXEC, 0);
    DIR* d = dup >= 0 ? ::fdopendir(dup) : nullptr;
    if (!d) {
      if (dup >= 0) ::close(dup);
      report.errors.push_back("cannot read folder " + in_path.string() + ": " + std::strerror(errno));
      return;
    }
    std::vector<std::string> names;
    while (dirent* de = ::readdir(d))
      if (std::strcmp(de->d_name, ".") != 0 && std::strcmp(de->d_name, "..") != 0) names.emplace_back(de->d_name);
    ::closedir(d);
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
      struct stat st {};
      auto p = in_path / n;
      if (::fstatat(in_dfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      if (S_ISREG(st.st_mode)) {
        if (auto s = parse_file(out_dfd, out_path, p, n); !s) report.errors.push_back(s.error().message);
      } else if (S_ISDIR(st.st_mode)) {
        if (depth >= opt.max_input_depth) {
          report.errors.push_back(p.string() + ": folders nested too deep; skipped");
          continue;
        }
        UniqueFd sub(::openat(in_dfd, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!sub) {
          report.errors.push_back("cannot open " + p.string() + ": " + std::strerror(errno));
          continue;
        }
        auto od = create_unique_dir(out_dfd, sanitize_file_name(n, "folder", opt.max_name_bytes), out_path);
        if (!od) {
          report.errors.push_back(od.error().message);
          continue;
        }
        parse_tree(sub.get(), p, od->first.get(), out_path / od->second, depth + 1);
      } else if (S_ISLNK(st.st_mode)) {
        report.errors.push_back(p.string() + " is a symbolic link; skipped");
      }
    }
  }
};

}  // namespace

std::string sanitize_file_name(std::string_view name, std::string_view fallback, std::size_t max_bytes) {
  auto cut = name.find_last_of("/\\");
  if (cut != std::string_view::npos) name.remove_prefix(cut + 1);
  std::string s = util::repair_utf8(name, "_");
  for (auto& c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || std::strchr("<>:\"|?*", c) != nullptr) c = '_';
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '.')) s.pop_back();
  std::size_t lead = 0;
  while (lead < s.size() && s[lead] == ' ') ++lead;
  s.erase(0, lead);
  if (!s.empty() && (s[0] == '.' || s[0] == '-')) s[0] = '_';
  if (max_bytes < 8) max_bytes = 8;
  if (s.size() > max_bytes) {
    auto [stem, ext] = split_ext(s);
    if (ext.size() * 2 > max_bytes) ext.clear();
    std::size_t keep = max_bytes - ext.size();
    // Back off to a UTF-8 boundary (never inside a sequence).
    while (keep > 0 && (static_cast<unsigned char>(stem[keep]) & 0xc0) == 0x80) --keep;
    s = stem.substr(0, keep) + ext;
    while (!s.empty() && (s.back() == ' ' || s.back() == '.')) s.pop_back();
  }
  if (s.empty() || s == "." || s == "..") return std::string(fallback);
  return s;
}

Result<MimeParseReport> parse_mail_files(const fs::path& input, const fs::path& out_dir,
                                         const MimeParseOptions& options) {
  gmime_init_once();
  struct stat st {};
  if (::stat(input.c_str(), &st) != 0) return fail_errno("input " + input.string(), errno);
  if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
    return fail(Errc::invalid_argument, "input " + input.string() + " is neither a file nor a folder");
  if (S_ISDIR(st.st_mode)) {
    // Writing inside the folder being read would feed the output back in.
    std::error_code e1, e2;
    auto in_abs = fs::weakly_canonical(input, e1);
    auto out_abs = fs::weakly_canonical(out_dir, e2);
    if (!e1 && !e2) {
      auto rel = out_abs.lexically_relative(in_abs);
      if (!rel.empty() && *rel.begin() != "..")
        return fail(Errc::invalid_argument, "output folder " + out_dir.string() + " is inside the input folder");
    }
  }
  if (auto mk = util::make_dirs(out_dir, 0755); !mk) return unexpected(mk.error());
  UniqueFd out(::open(out_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!out) return fail_errno("open " + out_dir.string(), errno);
  MimeParseReport report;
  Writer w{options, report};
  if (S_ISREG(st.st_mode)) {
    auto base = input.filename().string();
    if (auto s = w.parse_file(out.get(), out_dir, input, base); !s) report.errors.push_back(s.error().message);
  } else {
    UniqueFd in(::open(input.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!in) return fail_errno("open " + input.string(), errno);
    w.parse_tree(in.get(), input, out.get(), out_dir, 0);
  }
  return report;
}

}  // namespace wizmail
