// Local submission helpers (wizmail/admin/submit.hpp).
#include "wizmail/admin/submit.hpp"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <grp.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <ctime>
#include <random>

#include "control/unix_socket.hpp"
#include "mime/date.hpp"
#include "mime/header_section.hpp"
#include "smtp/parser.hpp"
#include "util/strings.hpp"
#include "util/utf8.hpp"
#include "mime/header_codec.hpp"

namespace wizmail::submit {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// No header at all: no empty line and not one field, so the text is all
// body and what is added goes before an empty line of its own.
bool all_body(const mime::HeaderSection& head, std::string_view message) {
  if (head.ended || message.empty()) return false;
  for (const auto& f : head.fields)
    if (!f.name.empty()) return false;
  return true;
}

// Addresses of an RFC 5322 address-list: display names, quoted strings,
// comments and groups are stepped over; what is inside <> or a bare
// addr-spec is kept.
std::vector<std::string> parse_address_list(std::string_view v) {
  std::vector<std::string> out;
  std::string current;      // bare text of the current item (outside quotes/comments)
  std::string angle;        // inside <>
  bool in_angle = false, have_angle = false;
  int comment = 0;
  bool quoted = false;
  auto flush = [&] {
    std::string a = have_angle ? angle : std::string(util::trim(current));
    // A bare item may still hold a display-name-less "name addr" mix; keep
    // the last word that looks like an address.
    if (!have_angle) {
      auto words = util::split_list(a, ' ');
      a.clear();
      for (auto& w : words)
        if (w.find('@') != std::string::npos) a = w;
    }
    a = std::string(util::trim(a));
    if (!a.empty()) out.push_back(a);
    current.clear();
    angle.clear();
    in_angle = have_angle = false;
  };
  for (std::size_t i = 0; i < v.size(); ++i) {
    char c = v[i];
    if (quoted) {
      if (c == '\\') ++i;
      else if (c == '"') quoted = false;
      if (in_angle && c != '"') angle += c;
      continue;
    }
    if (comment > 0) {
      if (c == '\\') ++i;
      else if (c == '(') ++comment;
      else if (c == ')') --comment;
      continue;
    }
    if (c == '"') {
      quoted = true;
      continue;
    }
    if (c == '(') {
      comment = 1;
      continue;
    }
    if (in_angle) {
      if (c == '>') in_angle = false;
      else angle += c;
      continue;
    }
    if (c == '<') {
      in_angle = have_angle = true;
      angle.clear();
      continue;
    }
    if (c == ':') {  // group name ends
      current.clear();
      continue;
    }
    if (c == ',' || c == ';') {
      flush();
      continue;
    }
    current += c;
  }
  flush();
  return out;
}

}  // namespace

Result<SubjectBody> parse_subject_body(std::string_view content) {
  if (content.starts_with("\xEF\xBB\xBF")) content.remove_prefix(3);
  if (!util::valid_utf8(content)) return fail(Errc::invalid_argument, "the subject-and-body file is not UTF-8");
  if (content.find('\0') != std::string_view::npos)
    return fail(Errc::invalid_argument, "the subject-and-body file contains a NUL byte");
  SubjectBody sb;
  auto nl = content.find('\n');
  std::string_view first = nl == std::string_view::npos ? content : content.substr(0, nl);
  if (!first.empty() && first.back() == '\r') first.remove_suffix(1);
  if (first.find('\r') != std::string_view::npos)
    return fail(Errc::invalid_argument, "the subject line contains a CR");
  sb.subject = std::string(util::trim(first));
  if (nl != std::string_view::npos) sb.body = std::string(content.substr(nl + 1));
  return sb;
}

bool valid_address(std::string_view a) {
  if (a.empty() || a.size() > 254) return false;
  for (char c : a) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7F || c == '<' || c == '>' || c == '"' || c == ',' || c == ';' ||
        c == '(' || c == ')' || c == '\\')
      return false;
  }
  auto at = a.rfind('@');
  if (at == std::string_view::npos) return true;
  return at > 0 && at + 1 < a.size() && a.find('@') == at;
}

std::string encode_header_value(std::string_view utf8, std::size_t first_line_used) {
  return mime::encode_header(utf8, "UTF-8", first_line_used);
}

std::string rfc5322_date(std::chrono::system_clock::time_point t) { return mime::rfc5322_date(t); }

std::string new_message_id(std::string_view hostname) {
  static std::atomic<unsigned> counter{0};
  thread_local std::mt19937_64 rng{std::random_device{}()};
  auto now = std::chrono::system_clock::now().time_since_epoch();
  char buf[96];
  std::snprintf(buf, sizeof buf, "%llx.%x.%u.%llx",
                static_cast<unsigned long long>(std::chrono::duration_cast<std::chrono::microseconds>(now).count()),
                static_cast<unsigned>(::getpid()), counter.fetch_add(1),
                static_cast<unsigned long long>(rng() & 0xFFFFFFFFFFull));
  std::string host(hostname.empty() ? "localhost" : hostname);
  return util::cat("<", buf, "@", host, ">");
}

std::string build_text_message(const TextMessage& m) {
  std::string out;
  out += "Date: " + rfc5322_date(std::chrono::system_clock::now()) + "\r\n";
  out += "From: " + m.from + "\r\n";
  std::string to;
  for (const auto& a : m.to) to += (to.empty() ? "" : ",\r\n ") + a;
  out += "To: " + (to.empty() ? std::string("undisclosed-recipients:;") : to) + "\r\n";
  out += "Subject: " + encode_header_value(m.subject, 9) + "\r\n";
  out += "Message-ID: " + new_message_id(m.hostname) + "\r\n";
  out += m.extra_headers;
  out += "MIME-Version: 1.0\r\n";
  out += "Content-Type: text/plain; charset=UTF-8\r\n";
  std::string body = util::to_crlf(m.body);
  bool ascii = true;
  for (char c : body)
    if (static_cast<unsigned char>(c) >= 0x80 || c == '\0') ascii = false;
  bool long_line = false;
  for (std::size_t p = 0, q; p < body.size(); p = q + 2) {
    q = body.find("\r\n", p);
    if (q == std::string::npos) q = body.size();
    if (q - p > 998) long_line = true;
  }
  if (ascii && !long_line) {
    out += "Content-Transfer-Encoding: 7bit\r\n\r\n";
    out += body;
    if (!body.empty() && !body.ends_with("\r\n")) out += "\r\n";
  } else {
    out += "Content-Transfer-Encoding: base64\r\n\r\n";
    auto b64 = smtp::base64_encode(body);
    for (std::size_t i = 0; i < b64.size(); i += 76) out += b64.substr(i, 76) + "\r\n";
  }
  return out;
}

std::string read_message(std::string_view input, bool ignore_dots) {
  std::string msg = util::to_crlf(input);
  if (!ignore_dots) {
    // A line with a single "." ends the message (classic sendmail without -i).
    std::size_t p = 0;
    while (p <= msg.size()) {
      auto q = msg.find("\r\n", p);
      std::string_view line = std::string_view(msg).substr(p, q == std::string::npos ? std::string::npos : q - p);
      if (line == ".") {
        msg.resize(p);
        break;
      }
      if (q == std::string::npos) break;
      p = q + 2;
    }
  }
  if (!msg.empty() && !msg.ends_with("\r\n")) msg += "\r\n";
  return msg;
}

Result<HeaderRecipients> recipients_from_headers(std::string_view message) {
  HeaderRecipients r;
  std::string msg(message);
  std::vector<std::pair<std::size_t, std::size_t>> bcc;
  for (const auto& f : mime::split_header_section(msg).fields) {
    bool is_bcc = util::iequals(f.name, "Bcc");
    if (util::iequals(f.name, "To") || util::iequals(f.name, "Cc") || is_bcc) {
      for (auto& a : parse_address_list(mime::unfold_value(f.text))) {
        if (!valid_address(a))
          return fail(Errc::invalid_argument, util::cat("bad address in ", f.name, ": ", a));
        r.recipients.push_back(std::move(a));
      }
    }
    if (is_bcc) bcc.emplace_back(f.offset, f.offset + f.text.size());
  }
  for (auto it = bcc.rbegin(); it != bcc.rend(); ++it) msg.erase(it->first, it->second - it->first);
  r.message = std::move(msg);
  return r;
}

std::string complete_headers(std::string_view message, std::string_view from, std::string_view hostname) {
  auto head = mime::split_header_section(message);
  auto has = [&](std::string_view name) {
    for (const auto& f : head.fields)
      if (util::iequals(f.name, name)) return true;
    return false;
  };
  std::string add;
  if (!has("Date")) add += "Date: " + rfc5322_date(std::chrono::system_clock::now()) + "\r\n";
  if (!has("From")) add += "From: " + std::string(from.empty() ? "MAILER-DAEMON" : from) + "\r\n";
  if (!has("Message-ID")) add += "Message-ID: " + new_message_id(hostname) + "\r\n";
  if (all_body(head, message)) return add + "\r\n" + std::string(message);
  return add + std::string(message);
}

std::string add_missing_fields(std::string_view message, const std::vector<std::string>& fields) {
  auto head = mime::split_header_section(message);
  std::string add;
  for (const auto& f : fields) {
    auto colon = f.find(':');
    if (colon == std::string::npos) continue;
    std::string_view name = util::trim(std::string_view(f).substr(0, colon));
    bool has = false;
    for (const auto& p : head.fields) has = has || util::iequals(p.name, name);
    if (!has) add += f;
  }
  if (add.empty()) return std::string(message);
  if (all_body(head, message)) return add + "\r\n" + std::string(message);
  return add + std::string(message);
}

bool empty_message(std::string_view message) {
  return message.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

namespace {

std::vector<std::string> split_addresses(std::string_view s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ',') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else if (c != ' ' && c != '\t') {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

unexpected<Error> usage_error(std::string why) { return fail(Errc::invalid_argument, std::move(why)); }

Result<CommandLine> parse_manual(const std::vector<std::string>& args) {
  CommandLine c;
  c.ignore_dots = true;
  std::vector<std::string> positional;
  std::string mf, sb;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    auto value = [&](std::string& into) {
      if (i + 1 >= args.size()) return false;
      into = args[++i];
      return true;
    };
    if (a == "-mf") {
      if (!value(mf)) return usage_error("-mf needs a file");
    } else if (a == "-sb") {
      if (!value(sb)) return usage_error("-sb needs a file");
    } else if (a == "-onlyonce") {
      if (!value(c.onlyonce)) return usage_error("-onlyonce needs a file");
    } else if (a == "-del") {
      c.del = true;
    } else if (a == "--auto-replied") {
      c.auto_replied = true;
    } else if (a == "-nowait") {
      // accepted and ignored, like every manual command
    } else if (!a.empty() && a[0] == '-' && a != "-") {
      return usage_error("unknown option " + a);
    } else {
      positional.push_back(a);
    }
  }
  if (positional.size() != 2) return usage_error("FROM and TO are needed");
  if (!mf.empty() && !sb.empty()) return usage_error("-mf and -sb exclude each other");
  if (c.del && mf.empty()) return usage_error("-del goes with -mf");
  if (!c.onlyonce.empty() && sb.empty()) return usage_error("-onlyonce goes with -sb");
  c.form = mf.empty() ? CommandLine::Form::subject_body : CommandLine::Form::stored_file;
  c.file = mf.empty() ? sb : mf;
  c.sender = positional[0];
  c.recipients = split_addresses(positional[1]);
  return c;
}

Result<CommandLine> parse_classic(const std::vector<std::string>& args) {
  CommandLine c;
  bool options_done = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    if (options_done || a.empty() || a[0] != '-') {
      for (auto& r : split_addresses(a)) c.recipients.push_back(r);
      continue;
    }
    if (a == "--") {
      options_done = true;
    } else if (a == "-t") {
      c.from_headers = true;
    } else if (a == "-i" || a == "-oi") {
      c.ignore_dots = true;
    } else if (a == "-f" || a == "-r" || a == "-F") {
      if (i + 1 >= args.size()) return usage_error(a + " needs a value");
      if (a != "-F") c.sender_given = true;
      (a == "-F" ? c.full_name : c.sender) = args[++i];
    } else if (a.starts_with("-f") || a.starts_with("-r")) {
      c.sender_given = true;
      c.sender = a.substr(2);
    } else if (a.starts_with("-F")) {
      c.full_name = a.substr(2);
    } else if (a == "-B") {
      // body type (Debian's cron passes -B8BITMIME): the server takes 8-bit
      if (i + 1 >= args.size()) return usage_error("-B needs a value");
      ++i;
    } else if (a.starts_with("-B") || a == "-bm" || a == "-v" || a.starts_with("-od") || a.starts_with("-oe") ||
               a == "-om" || a == "-U" || a == "-nowait") {
      // sendmail compatibility: body type, delivery mode, error mode, verbosity
    } else {
      return usage_error("unsupported option " + a);
    }
  }
  return c;
}

}  // namespace

Result<CommandLine> parse_command_line(const std::vector<std::string>& args, bool invoked_as_sendmail,
                                       bool in_hook) {
  Result<CommandLine> c = fail(Errc::internal, "no form");
  const bool manual = std::find(args.begin(), args.end(), "-mf") != args.end() ||
                      std::find(args.begin(), args.end(), "-sb") != args.end();
  if (manual) {
    c = parse_manual(args);
  } else {
    std::vector<std::string> bare;
    bool option = false;
    for (const auto& a : args) {
      if (a == "-nowait") continue;
      if (!a.empty() && a[0] == '-') option = true;
      else bare.push_back(a);
    }
    if (!option && bare.size() == 2 && (!invoked_as_sendmail || in_hook)) {
      // The manual's forwarding recipe: `sendmail FROM TO` with the mail on
      // standard input, read to its end (a "." line is data).
      CommandLine m;
      m.form = CommandLine::Form::manual_stdin;
      m.ignore_dots = true;
      m.sender = bare[0];
      m.recipients = split_addresses(bare[1]);
      c = std::move(m);
    } else {
      c = parse_classic(args);
    }
  }
  if (!c) return c;
  if (c->form == CommandLine::Form::classic) {
    if (!c->sender.empty() && c->sender != "<>" && !valid_address(c->sender))
      return usage_error("bad sender address: " + c->sender);
  } else {
    if (!valid_address(c->sender)) return usage_error("bad sender address: " + c->sender);
    if (c->recipients.empty()) return usage_error("no recipient");
  }
  for (const auto& r : c->recipients)
    if (!valid_address(r)) return usage_error("bad recipient address: " + r);
  return c;
}

int exit_status(const Error& e) {
  namespace x = exit_code;
  if (e.code == Errc::permission_denied) return x::no_perm;
  if (e.code == Errc::unavailable) return x::temp_fail;
  if (e.smtp_code >= 400 && e.smtp_code < 500) return x::temp_fail;
  if (e.smtp_code >= 500) return e.enhanced.starts_with("5.1.") ? x::no_user : x::unavailable;
  switch (e.code) {
    case Errc::invalid_argument:
    case Errc::parse: return x::data_err;
    case Errc::not_found: return x::no_input;
    case Errc::protocol: return x::protocol;
    case Errc::internal: return x::software;
    default: return x::temp_fail;  // io, temporary, busy, limit: try again later
  }
}

namespace {

// An exclusive lock on `file` (created 0600 when missing) for the -onlyonce
// record; the descriptor is returned open.
Result<int> lock_file(const fs::path& file) {
  int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return fail_errno("open " + file.string(), errno);
  if (::flock(fd, LOCK_EX) != 0) {
    int err = errno;
    ::close(fd);
    return fail_errno("lock " + file.string(), err);
  }
  return fd;
}

Result<std::string> read_fd(int fd) {
  std::string out;
  char buf[8192];
  if (::lseek(fd, 0, SEEK_SET) < 0) return fail_errno("seek", errno);
  for (;;) {
    auto n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno("read", errno);
    if (n == 0) return out;
    out.append(buf, static_cast<std::size_t>(n));
  }
}

bool pair_in(std::string_view text, std::string_view from, std::string_view to) {
  for (const auto& line : util::split_list(text, '\n')) {
    auto parts = util::split_list(line, ',');
    if (parts.size() == 2 && util::iequals(util::trim(parts[0]), from) &&
        util::iequals(util::trim(parts[1]), to))
      return true;
  }
  return false;
}

}  // namespace

Result<bool> onlyonce_seen(const fs::path& file, std::string_view from, std::string_view to) {
  auto fd = lock_file(file);
  if (!fd) return unexpected(fd.error());
  auto text = read_fd(*fd);
  ::close(*fd);
  if (!text) return unexpected(text.error());
  return pair_in(*text, from, to);
}

Status onlyonce_record(const fs::path& file, std::string_view from, std::string_view to) {
  if (!valid_address(from) || !valid_address(to))
    return fail(Errc::invalid_argument, "cannot record an invalid address");
  auto fd = lock_file(file);
  if (!fd) return unexpected(fd.error());
  auto text = read_fd(*fd);
  Status st;
  if (!text) st = unexpected(text.error());
  else if (!pair_in(*text, from, to)) {
    std::string line = std::string(from) + "," + std::string(to) + "\n";
    if (!text->empty() && text->back() != '\n') line = "\n" + line;
    if (::lseek(*fd, 0, SEEK_END) < 0 ||
        ::write(*fd, line.data(), line.size()) != static_cast<ssize_t>(line.size()) || ::fsync(*fd) != 0)
      st = fail_errno("write " + file.string(), errno);
  }
  ::close(*fd);
  return st;
}

// ---- The SMTP client over the submit socket

namespace {

class Client {
 public:
  Client(int fd, Clock::time_point deadline) : fd_(fd), deadline_(deadline) {}
  ~Client() { ::close(fd_); }

  struct Reply {
    int code = 0;
    std::string text;
  };

  Result<Reply> reply() {
    Reply r;
    for (;;) {
      auto line = control::read_line_buffered(fd_, buf_, 4096, deadline_);
      if (!line) return unexpected(line.error());
      if (line->size() < 3) return fail(Errc::protocol, "bad reply from the server: " + *line);
      auto code = util::parse_int(std::string_view(*line).substr(0, 3));
      if (!code) return fail(Errc::protocol, "bad reply from the server: " + *line);
      r.code = static_cast<int>(*code);
      if (!r.text.empty()) r.text += ' ';
      r.text += *line;
      if (line->size() == 3 || (*line)[3] != '-') return r;
    }
  }

  Status send(std::string_view data) {
    while (!data.empty()) {
      auto n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return fail_errno("write to the server", errno);
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    return {};
  }

  // Send a command, expect a reply in [lo, hi].
  Status command(std::string_view line, int expect) {
    if (!line.empty())
      if (auto st = send(std::string(line) + "\r\n"); !st) return st;
    auto r = reply();
    if (!r) return unexpected(r.error());
    if (r->code / 100 != expect / 100) {
      Error e(r->code >= 500 ? Errc::invalid_argument : Errc::temporary,
              "the server refused " + (line.empty() ? std::string("the connection") : std::string(line)) +
                  ": " + r->text);
      e.smtp_code = r->code;
      // "550 5.1.1 ...": the enhanced status code (RFC 3463), if any.
      if (auto sp = r->text.find(' ', 4); r->text.size() > 4 && sp != std::string::npos) {
        std::string_view code = std::string_view(r->text).substr(4, sp - 4);
        if (code.size() >= 5 && code[1] == '.' && code.find_first_not_of("0123456789.") == std::string_view::npos)
          e.enhanced = std::string(code);
      }
      return unexpected(std::move(e));
    }
    return {};
  }

 private:
  int fd_;
  Clock::time_point deadline_;
  std::string buf_;
};

}  // namespace

namespace {

std::string user_name(uid_t uid) {
  if (passwd* pw = ::getpwuid(uid); pw && pw->pw_name) return pw->pw_name;
  return "uid " + std::to_string(uid);
}
std::string group_name(gid_t gid) {
  if (group* gr = ::getgrgid(gid); gr && gr->gr_name) return gr->gr_name;
  return "gid " + std::to_string(gid);
}

// Why this user may not submit, and what to do about it: the socket's owner,
// group and mode, or the folder on its path that may not be searched.
std::string who_may_submit(const fs::path& socket) {
  const std::string me = user_name(::getuid());
  struct stat st {};
  if (::stat(socket.c_str(), &st) != 0) {
    // A folder on the way may not be searched (x) by this user: name it.
    fs::path dir;
    for (fs::path p = socket.parent_path(); !p.empty(); p = p.parent_path()) {
      if (::access(p.c_str(), X_OK) != 0) dir = p;
      if (p == p.root_path()) break;
    }
    if (dir.empty()) return "the socket cannot be reached by " + me;
    struct stat ds {};
    std::string who;
    if (::stat(dir.c_str(), &ds) == 0) {
      char mode[8];
      std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(ds.st_mode & 07777));
      who = " (owner " + user_name(ds.st_uid) + ", group " + group_name(ds.st_gid) + ", mode " + mode + ")";
    }
    return "the folder " + dir.string() + who + " may not be searched by " + me +
           "; its mode forbids: give its group or others search permission (x)";
  }
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  const std::string owner = user_name(st.st_uid), grp = group_name(st.st_gid);
  std::string text = "the socket belongs to " + owner + ", group " + grp + ", mode " + mode + ": only " + owner +
                     ", root";
  if (st.st_mode & 0060) text += " and members of group " + grp;
  text += " may submit mail";
  if (st.st_mode & 0060)
    text += "; join the group (usermod -aG " + grp + " " + me + ", then log in again) or run as " + owner;
  else
    text += "; run as " + owner;
  return text;
}

}  // namespace

Status send(const fs::path& socket, const Envelope& env, std::string_view message,
            std::chrono::seconds timeout) {
  if (env.recipients.empty()) return fail(Errc::invalid_argument, "no recipients");
  if (!env.sender.empty() && !valid_address(env.sender))
    return fail(Errc::invalid_argument, "bad sender address: " + env.sender);
  for (const auto& r : env.recipients)
    if (!valid_address(r)) return fail(Errc::invalid_argument, "bad recipient address: " + r);
  auto fd = control::connect_unix(socket);
  if (!fd) {
    if (fd.error().code == Errc::unavailable)
      return fail(Errc::unavailable, "the wizmail server is not running (" + socket.string() + ")");
    if (fd.error().code == Errc::permission_denied)
      return fail(Errc::permission_denied, fd.error().message + ": " + who_may_submit(socket));
    return unexpected(fd.error());
  }
  Client c(*fd, Clock::now() + timeout);
  if (auto st = c.command("", 220); !st) {
    // Refused at the greeting: the server's own check of who may submit.
    if (st.error().smtp_code >= 500)
      return fail(Errc::permission_denied, st.error().message + "; " + who_may_submit(socket));
    return st;
  }
  if (auto st = c.command("EHLO localhost", 250); !st) return st;
  if (auto st = c.command("MAIL FROM:<" + env.sender + ">", 250); !st) return st;
  for (const auto& r : env.recipients)
    if (auto st = c.command("RCPT TO:<" + r + ">", 250); !st) return st;
  if (auto st = c.command("DATA", 354); !st) return st;
  // Dot-stuffing; the message already has CRLF line ends.
  std::string norm = util::to_crlf(message);
  std::string data;
  data.reserve(norm.size() + 64);
  bool bol = true;
  for (char ch : norm) {
    if (bol && ch == '.') data += '.';
    data += ch;
    bol = ch == '\n';
  }
  if (!data.empty() && !data.ends_with("\r\n")) data += "\r\n";
  data += ".\r\n";
  if (auto st = c.send(data); !st) return st;
  if (auto st = c.command("", 250); !st) return st;
  (void)c.command("QUIT", 221);
  return {};
}

}  // namespace wizmail::submit
