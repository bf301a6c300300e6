#include "wizmail/account_store.hpp"

#include <arpa/inet.h>
#include <crypt.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <memory>
#include <optional>
#include <system_error>
#include <utility>

#include "util/fd.hpp"
#include "store/store_util.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"

namespace wizmail {

namespace fs = std::filesystem;
using util::UniqueFd;

namespace {

constexpr std::string_view kCryptMarker = "{CRYPT}";
constexpr std::size_t kMaxNameLen = 64;
constexpr std::size_t kMaxPasswordLen = 1024;
constexpr std::size_t kMaxAddressLen = 254;

constexpr bool name_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
         c == '-';
}

Status validate_password(std::string_view pw, PasswordScheme scheme) {
  if (pw.empty()) return fail(Errc::invalid_argument, "the password is empty");
  if (pw.size() > kMaxPasswordLen)
    return fail(Errc::invalid_argument, "the password is longer than 1024 octets");
  if (pw.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos)
    return fail(Errc::invalid_argument, "the password contains CR, LF or NUL");
  if (scheme == PasswordScheme::plain && pw.starts_with(kCryptMarker))
    return fail(Errc::invalid_argument,
                "a plain password may not start with {CRYPT} (it would be read as a hash)");
  return {};
}

// Constant time for equal lengths; the length itself is not secret enough to
// matter (a hash has a fixed length, and a plain password's length leaks
// through the protocol anyway).
bool equal_ct(std::string_view a, std::string_view b) noexcept {
  std::size_t n = std::max(a.size(), b.size());
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  for (std::size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned>(x ^ y);
  }
  return diff == 0;
}

Result<std::string> hash_password(std::string_view pw) {
  char salt[CRYPT_GENSALT_OUTPUT_SIZE];
  if (!crypt_gensalt_rn("$6$", 0, nullptr, 0, salt, sizeof salt))
    return fail_errno("crypt_gensalt", errno);
  auto data = std::make_unique<crypt_data>();
  std::string p(pw);
  const char* h = crypt_r(p.c_str(), salt, data.get());
  if (!h || *h == '*') return fail(Errc::internal, "crypt(3) could not hash the password");
  return std::string(h);
}

std::string password_file_contents(std::string_view stored) {
  std::string out(stored);
  out += '\n';
  return out;
}

Result<std::string> make_stored_password(std::string_view pw, PasswordScheme scheme) {
  if (auto st = validate_password(pw, scheme); !st) return unexpected(st.error());
  if (scheme == PasswordScheme::plain) return std::string(pw);
  auto h = hash_password(pw);
  if (!h) return unexpected(h.error());
  return std::string(kCryptMarker) + *h;
}

// "127.000.000.001" → "127.0.0.1"; nullopt when it is not a dotted quad.
std::optional<std::string> parse_padded_ipv4(std::string_view s) {
  if (!std::all_of(s.begin(), s.end(), [](char c) { return c == '.' || (c >= '0' && c <= '9'); }))
    return std::nullopt;
  auto parts = util::split_list(s, '.');
  if (parts.size() != 4 || std::count(s.begin(), s.end(), '.') != 3) return std::nullopt;
  std::string out;
  for (const auto& p : parts) {
    if (p.empty() || p.size() > 3 ||
        !std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return std::nullopt;
    int v = std::stoi(p);
    if (v > 255) return std::nullopt;
    if (!out.empty()) out += '.';
    out += std::to_string(v);
  }
  return out;
}

// Canonical text of an IP address and the form written to the `ip` file.
struct IpForms {
  std::string canonical;
  std::string file;
};

std::optional<IpForms> parse_ip(std::string_view ip) {
  if (ip.empty() || ip.size() > 64) return std::nullopt;
  std::string s(ip);
  if (s.find('\0') != std::string::npos) return std::nullopt;
  unsigned char v4[4];
  unsigned char v6[16];
  bool is_v4 = false;
  if (inet_pton(AF_INET, s.c_str(), v4) == 1) {
    is_v4 = true;
  } else if (auto padded = parse_padded_ipv4(s)) {
    if (inet_pton(AF_INET, padded->c_str(), v4) != 1) return std::nullopt;
    is_v4 = true;
  } else if (inet_pton(AF_INET6, s.c_str(), v6) == 1) {
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::equal(mapped, mapped + 12, v6)) {
      std::copy(v6 + 12, v6 + 16, v4);
      is_v4 = true;
    }
  } else {
    return std::nullopt;
  }
  IpForms f;
  if (is_v4) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", v4[0], v4[1], v4[2], v4[3]);
    f.canonical = buf;
    std::snprintf(buf, sizeof buf, "%03u.%03u.%03u.%03u", v4[0], v4[1], v4[2], v4[3]);
    f.file = buf;
  } else {
    char buf[INET6_ADDRSTRLEN];
    if (!inet_ntop(AF_INET6, v6, buf, sizeof buf)) return std::nullopt;
    f.canonical = buf;
    f.file = buf;
  }
  return f;
}

// The first CSV field of a member line, trimmed; empty for blank/comment lines.
std::string_view member_of_line(std::string_view line) {
  line = util::trim(line);
  if (line.empty() || line.front() == '#') return {};
  return util::trim(line.substr(0, line.find(',')));
}

// Lines of a file, without their terminators.
std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    out.push_back(line);
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return out;
}

// An exclusive flock on a folder, held for a read-modify-write of a file in it.
Result<UniqueFd> lock_dir(const fs::path& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return fail_errno("open " + dir.string(), errno);
  while (::flock(fd.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return fail_errno("lock " + dir.string(), errno);
  }
  return fd;
}

}  // namespace

AccountStore::AccountStore(fs::path mailbox_dir) : dir_(std::move(mailbox_dir)) {}

Status AccountStore::validate_name(std::string_view name) {
  if (name.empty()) return fail(Errc::invalid_argument, "account name is empty");
  if (name.size() > kMaxNameLen)
    return fail(Errc::invalid_argument,
                "account name " + store::quote(name) + " is longer than 64 characters");
  if (name.front() == '.')
    return fail(Errc::invalid_argument,
                "account name " + store::quote(name) + " may not start with '.'");
  for (char c : name) {
    if (!name_char(c))
      return fail(Errc::invalid_argument,
                  "account name " + store::quote(name) +
                      " may only hold a-z, 0-9, '.', '_' and '-'");
  }
  return {};
}

Result<std::string> AccountStore::normalize_name(std::string_view name) {
  std::string n = util::to_lower(name);
  if (auto st = validate_name(n); !st) {
    // Report the name as the user typed it.
    if (n != name) {
      Error e = st.error();
      e.message = "account name " + store::quote(name) + " is invalid: " + e.message;
      return unexpected(std::move(e));
    }
    return unexpected(st.error());
  }
  return n;
}

Status AccountStore::validate_address(std::string_view a) {
  auto bad = [&](std::string_view why) {
    return fail(Errc::invalid_argument,
                "mail address " + store::quote(a) + " is invalid: " + std::string(why));
  };
  if (a.empty()) return fail(Errc::invalid_argument, "mail address is empty");
  if (a.size() > kMaxAddressLen) return bad("longer than 254 octets");
  auto at = a.rfind('@');
  if (at == std::string_view::npos) return bad("no '@'");
  std::string_view local = a.substr(0, at), domain = a.substr(at + 1);
  if (local.empty()) return bad("empty local part");
  if (local.size() > 64) return bad("local part longer than 64 octets");
  if (domain.empty()) return bad("empty domain");
  for (char c : local)
    if (!util::is_atext(c) && c != '.') return bad("character not allowed in the local part");
  if (local.front() == '.' || local.back() == '.' ||
      local.find("..") != std::string_view::npos)
    return bad("misplaced '.' in the local part");
  if (domain.front() == '[') {
    if (domain.back() != ']' || domain.size() < 3) return bad("bad address literal");
    std::string lit(domain.substr(1, domain.size() - 2));
    if (lit.starts_with("IPv6:") || lit.starts_with("ipv6:")) lit = lit.substr(5);
    unsigned char buf[16];
    if (inet_pton(AF_INET, lit.c_str(), buf) != 1 && inet_pton(AF_INET6, lit.c_str(), buf) != 1)
      return bad("bad address literal");
    return {};
  }
  if (domain.front() == '.' || domain.back() == '.' ||
      domain.find("..") != std::string_view::npos)
    return bad("misplaced '.' in the domain");
  for (char c : domain) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.';
    if (!ok) return bad("character not allowed in the domain");
  }
  return {};
}

bool AccountStore::is_protected(std::string_view name) noexcept {
  return util::iequals(name, "notifi") || util::iequals(name, "postmaster");
}

Result<fs::path> AccountStore::account_dir(std::string_view name) const {
  auto n = normalize_name(name);
  if (!n) return unexpected(n.error());
  return dir_ / *n;
}

namespace {

// The account folder `dir` of a valid name: true when it is there, false when
// nothing has that name, an error when the store cannot tell. Only ENOENT
// means "no account": EACCES, EIO, ELOOP, ENOTDIR (the mailbox folder itself
// is not a folder) … are faults, and so is a non-folder with the account's
// name (list() skips it, create() refuses the name: the store is damaged).
Result<bool> account_folder_present(const fs::path& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT) return false;
    return fail_errno("stat " + dir.string(), errno);
  }
  if (!S_ISDIR(st.st_mode))
    return fail(Errc::io, dir.string() + " is not a folder: the account cannot be used");
  return true;
}

}  // namespace

Result<AccountKind> AccountStore::lookup(std::string_view name) const {
  auto d = account_dir(name);
  if (!d) return AccountKind::none;  // an invalid name is nobody
  auto present = account_folder_present(*d);
  if (!present) return unexpected(present.error());
  if (!*present) return AccountKind::none;
  const fs::path ml = *d / "ml.def";
  struct stat st {};
  if (::stat(ml.c_str(), &st) == 0) return S_ISREG(st.st_mode) ? AccountKind::mailing_list : AccountKind::mailbox;
  if (errno == ENOENT) return AccountKind::mailbox;
  return fail_errno("stat " + ml.string(), errno);
}

namespace {

struct ExtraFile {
  std::string name;
  std::string contents;
  unsigned mode;
};

// Build the account under a hidden name, then rename it into place without
// replacing anything: nobody ever sees a half-made account.
Status create_account(const fs::path& mailbox, const std::string& name,
                      const std::string& stored_password,
                      const std::vector<ExtraFile>& extra) {
  struct stat st {};
  if (::stat(mailbox.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return fail(Errc::not_found, "mailbox folder " + mailbox.string() +
                                     " does not exist (run `wizmail setup` first)");
  const fs::path final_dir = mailbox / name;
  if (::lstat(final_dir.c_str(), &st) == 0)
    return fail(Errc::already_exists, "account " + name + " already exists");

  const fs::path staging = mailbox / (".creating-" + name + "." + util::unique_name_part());
  auto cleanup = [&] {
    std::error_code ec;
    fs::remove_all(staging, ec);
  };
  auto build = [&]() -> Status {
    if (::mkdir(staging.c_str(), 0700) != 0) return fail_errno("mkdir " + staging.string(), errno);
    for (const char* sub : {"new", "cur", "tmp"}) {
      fs::path p = staging / sub;
      if (::mkdir(p.c_str(), 0700) != 0) return fail_errno("mkdir " + p.string(), errno);
    }
    if (auto s = util::write_file_atomic(staging / "password",
                                         password_file_contents(stored_password), 0600);
        !s)
      return s;
    for (const auto& f : extra) {
      if (auto s = util::write_file_atomic(staging / f.name, f.contents, f.mode); !s) return s;
    }
    return util::fsync_dir(staging);
  };
  if (auto s = build(); !s) {
    cleanup();
    return s;
  }
  // Never replaces: an account made meanwhile by somebody else stays theirs.
  if (int e = store::rename_noreplace(staging, final_dir); e != 0) {
    cleanup();
    if (e == EEXIST || e == ENOTEMPTY)
      return fail(Errc::already_exists, "account " + name + " already exists");
    return fail_errno("rename " + staging.string() + " to " + final_dir.string(), e);
  }
  return util::fsync_dir(mailbox);
}

}  // namespace

Status AccountStore::create(std::string_view name, std::string_view password,
                            PasswordScheme scheme) {
  auto n = normalize_name(name);
  if (!n) return unexpected(n.error());
  auto stored = make_stored_password(password, scheme);
  if (!stored) return unexpected(stored.error());
  return create_account(dir_, *n, *stored, {});
}

Status AccountStore::create_mailing_list(std::string_view name, std::string_view password,
                                         std::string_view admin) {
  auto n = normalize_name(name);
  if (!n) return unexpected(n.error());
  if (!admin.empty()) {
    if (auto st = validate_address(admin); !st) return st;
  }
  auto stored = make_stored_password(password, PasswordScheme::plain);
  if (!stored) return unexpected(stored.error());
  // ml.def in the manual's key=value format; an empty admin_mail_address is
  // "unset", which means postmaster@<domain> (SPEC §7).
  std::string ml_def = "count=0\nadmin_mail_address=";
  ml_def += admin;
  ml_def += '\n';
  return create_account(dir_, *n, *stored,
                        {{"ml.def", std::move(ml_def), 0644}, {"ml_member.csv", "", 0644}});
}

Status AccountStore::remove(std::string_view name) {
  auto n = normalize_name(name);
  if (!n) return unexpected(n.error());
  if (is_protected(*n))
    return fail(Errc::permission_denied, "account " + *n + " cannot be deleted");
  const fs::path d = dir_ / *n;
  auto present = account_folder_present(d);
  if (!present) return unexpected(present.error());
  if (!*present) return fail(Errc::not_found, "no account " + *n);
  // The account disappears with one rename; what follows only frees space.
  // (An account that is a symbolic link loses the link only: remove_all
  // never follows it out of the mailbox folder.)
  const fs::path aside = dir_ / (".deleted-" + *n + "." + util::unique_name_part());
  if (::rename(d.c_str(), aside.c_str()) != 0)
    return fail_errno("rename " + d.string() + " to " + aside.string(), errno);
  if (auto s = util::fsync_dir(dir_); !s) return s;
  std::error_code ec;
  fs::remove_all(aside, ec);
  if (ec)
    return fail(Errc::io, "account " + *n + " was deleted, but its old folder " +
                              aside.string() + " could not be removed: " + ec.message());
  return {};
}

Result<std::vector<std::string>> AccountStore::list() const {
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir_.c_str()), ::closedir);
  if (!d) return fail_errno("open " + dir_.string(), errno);
  std::vector<std::string> out;
  for (;;) {
    errno = 0;
    dirent* e = ::readdir(d.get());
    if (!e) break;
    std::string_view nm = e->d_name;
    if (!validate_name(nm)) continue;
    bool listed = e->d_type == DT_DIR;
    if (e->d_type == DT_UNKNOWN || e->d_type == DT_LNK) {
      struct stat st {};
      if (::fstatat(::dirfd(d.get()), e->d_name, &st, 0) == 0)
        listed = S_ISDIR(st.st_mode);
      else
        // A link that cannot be followed (ELOOP, EACCES …) may be an
        // account: listed, so that whoever looks it up meets the fault
        // (lookup() says why); a dangling link is nobody.
        listed = errno != ENOENT;
    }
    if (listed) out.emplace_back(nm);
  }
  if (errno != 0) return fail_errno("read " + dir_.string(), errno);
  std::sort(out.begin(), out.end());
  return out;
}

namespace {

// The writer and start time of a leftover "<prefix><name>.<sec>.M<usec>P<pid>Q<seq>".
struct LeftoverStamp {
  std::int64_t sec = 0;
  pid_t pid = 0;
};

std::optional<LeftoverStamp> parse_leftover(std::string_view nm) {
  auto dot = nm.rfind('.');
  if (dot == std::string_view::npos || dot == 0) return std::nullopt;
  std::string_view mid = nm.substr(dot + 1);  // M<usec>P<pid>Q<seq>
  auto dot0 = nm.rfind('.', dot - 1);
  if (dot0 == std::string_view::npos) return std::nullopt;
  std::string_view sec = nm.substr(dot0 + 1, dot - dot0 - 1);
  auto p = mid.find('P'), q = mid.find('Q');
  if (mid.empty() || mid[0] != 'M' || p == std::string_view::npos || q == std::string_view::npos ||
      q < p)
    return std::nullopt;
  auto sec_v = util::parse_int(sec);
  auto pid_v = util::parse_int(mid.substr(p + 1, q - p - 1));
  if (!sec_v || *sec_v < 0 || !pid_v || *pid_v <= 0 || *pid_v > 0x3fffffff) return std::nullopt;
  return LeftoverStamp{*sec_v, static_cast<pid_t>(*pid_v)};
}

}  // namespace

Result<std::size_t> AccountStore::cleanup(std::chrono::seconds max_age) {
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir_.c_str()), ::closedir);
  if (!d) return fail_errno("open " + dir_.string(), errno);
  std::vector<std::string> doomed;
  const std::int64_t now = static_cast<std::int64_t>(std::time(nullptr));
  const pid_t self = ::getpid();
  errno = 0;
  while (dirent* e = ::readdir(d.get())) {
    std::string_view nm = e->d_name;
    if (!nm.starts_with(".creating-") && !nm.starts_with(".deleted-")) {
      errno = 0;
      continue;
    }
    std::int64_t born = -1;
    bool dead = false;
    if (auto stamp = parse_leftover(nm)) {
      born = stamp->sec;
      dead = stamp->pid != self && ::kill(stamp->pid, 0) != 0 && errno == ESRCH;
    } else {
      struct stat st {};
      if (::fstatat(::dirfd(d.get()), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
        born = st.st_mtim.tv_sec;
    }
    if (dead || (born >= 0 && now - born > max_age.count())) doomed.emplace_back(nm);
    errno = 0;
  }
  if (errno != 0) return fail_errno("read " + dir_.string(), errno);
  d.reset();
  std::size_t removed = 0;
  for (const auto& nm : doomed) {
    std::error_code ec;
    // remove_all never follows a symbolic link out of the mailbox folder.
    fs::remove_all(dir_ / nm, ec);
    if (ec) return fail(Errc::io, "remove leftover " + (dir_ / nm).string() + ": " + ec.message());
    ++removed;
  }
  return removed;
}

namespace {

// The account folder of an existing account, Errc::not_found, or the
// error that kept the store from telling (account_folder_present).
Result<fs::path> existing_account(const AccountStore& s, std::string_view name) {
  auto d = s.account_dir(name);
  if (!d) return d;
  auto present = account_folder_present(*d);
  if (!present) return unexpected(present.error());
  if (!*present) return fail(Errc::not_found, "no account " + d->filename().string());
  return d;
}

Result<std::string> read_stored_password(const fs::path& account) {
  auto text = util::read_file(account / "password");
  if (!text) {
    if (text.error().code == Errc::not_found)
      return fail(Errc::not_found,
                  "account " + account.filename().string() + " has no password file");
    return unexpected(text.error());
  }
  std::string_view t = *text;
  t = t.substr(0, t.find('\n'));
  while (!t.empty() && (t.back() == '\r' || t.back() == '\n')) t.remove_suffix(1);
  return std::string(t);
}

}  // namespace

Status AccountStore::set_password(std::string_view name, std::string_view password,
                                  PasswordScheme scheme) {
  auto d = existing_account(*this, name);
  if (!d) return unexpected(d.error());
  auto stored = make_stored_password(password, scheme);
  if (!stored) return unexpected(stored.error());
  return util::write_file_atomic(*d / "password", password_file_contents(*stored), 0600);
}

Result<bool> AccountStore::authenticate(std::string_view name,
                                        std::string_view password) const {
  auto d = existing_account(*this, name);
  if (!d) return unexpected(d.error());
  auto stored = read_stored_password(*d);
  if (!stored) return unexpected(stored.error());
  // An empty password file never lets anybody in.
  if (stored->empty() || password.empty()) return false;
  if (password.find('\0') != std::string_view::npos) return false;
  std::string_view s = *stored;
  if (s.starts_with(kCryptMarker)) {
    s.remove_prefix(kCryptMarker.size());
    auto data = std::make_unique<crypt_data>();
    std::string pw(password), setting(s);
    const char* h = crypt_r(pw.c_str(), setting.c_str(), data.get());
    if (!h || *h == '*') return false;
    return equal_ct(h, s);
  }
  return equal_ct(password, s);
}

Result<std::string> AccountStore::plain_password(std::string_view name) const {
  auto d = existing_account(*this, name);
  if (!d) return unexpected(d.error());
  auto stored = read_stored_password(*d);
  if (!stored) return stored;
  if (stored->starts_with(kCryptMarker))
    return fail(Errc::permission_denied,
                "account " + d->filename().string() +
                    " stores a hashed password; APOP and CRAM-MD5 need a plain one");
  if (stored->empty())
    return fail(Errc::permission_denied,
                "account " + d->filename().string() + " has an empty password");
  return stored;
}

namespace {

Result<fs::path> existing_list(const AccountStore& s, std::string_view name) {
  auto d = existing_account(s, name);
  if (!d) return d;
  struct stat st {};
  if (::stat((*d / "ml.def").c_str(), &st) != 0) {
    if (errno != ENOENT) return fail_errno("stat " + (*d / "ml.def").string(), errno);
    return fail(Errc::not_found, "account " + d->filename().string() + " is not a mailing list");
  }
  return d;
}

Result<std::string> read_members_file(const fs::path& list_dir) {
  auto text = util::read_file(list_dir / "ml_member.csv");
  if (!text && text.error().code == Errc::not_found) return std::string();
  return text;
}

}  // namespace

Result<std::vector<std::string>> AccountStore::members(std::string_view list) const {
  auto d = existing_list(*this, list);
  if (!d) return unexpected(d.error());
  auto text = read_members_file(*d);
  if (!text) return unexpected(text.error());
  std::vector<std::string> out;
  for (auto line : split_lines(*text)) {
    auto m = member_of_line(line);
    if (!m.empty()) out.emplace_back(m);
  }
  return out;
}

Status AccountStore::add_member(std::string_view list, std::string_view address) {
  if (auto st = validate_address(address); !st) return st;
  auto d = existing_list(*this, list);
  if (!d) return unexpected(d.error());
  auto lock = lock_dir(*d);
  if (!lock) return unexpected(lock.error());
  auto text = read_members_file(*d);
  if (!text) return unexpected(text.error());
  for (auto line : split_lines(*text)) {
    if (util::iequals(member_of_line(line), address))
      return fail(Errc::already_exists, std::string(address) + " is already a member of " +
                                            d->filename().string());
  }
  // Keep the file's own line ending (a list edited on Windows uses CRLF).
  const bool crlf = text->find("\r\n") != std::string::npos;
  std::string out = std::move(*text);
  if (!out.empty() && out.back() != '\n') out += crlf ? "\r\n" : "\n";
  out += address;
  out += crlf ? "\r\n" : "\n";
  return util::write_file_atomic(*d / "ml_member.csv", out, 0644);
}

Status AccountStore::remove_member(std::string_view list, std::string_view address) {
  // Lighter than validate_address: a hand-edited file may hold a malformed
  // entry, and the admin must be able to remove it.
  if (address.empty() ||
      address.find_first_of(std::string_view("\r\n\0,", 4)) != std::string_view::npos)
    return fail(Errc::invalid_argument, "mail address " + store::quote(address) + " is invalid");
  auto d = existing_list(*this, list);
  if (!d) return unexpected(d.error());
  auto lock = lock_dir(*d);
  if (!lock) return unexpected(lock.error());
  auto text = read_members_file(*d);
  if (!text) return unexpected(text.error());
  const bool crlf = text->find("\r\n") != std::string::npos;
  std::string out;
  bool found = false;
  for (auto line : split_lines(*text)) {
    if (util::iequals(member_of_line(line), util::trim(address))) {
      found = true;
      continue;
    }
    if (line.empty()) continue;
    out += line;
    out += crlf ? "\r\n" : "\n";
  }
  if (!found)
    return fail(Errc::not_found, std::string(address) + " is not a member of " +
                                     d->filename().string());
  return util::write_file_atomic(*d / "ml_member.csv", out, 0644);
}

Status AccountStore::write_pop_login(std::string_view name, std::string_view ip,
                                     std::int64_t time) {
  auto d = existing_account(*this, name);
  if (!d) return unexpected(d.error());
  auto forms = parse_ip(ip);
  if (!forms) return fail(Errc::invalid_argument, "not an IP address: " + store::quote(ip));
  if (time < 0) return fail(Errc::invalid_argument, "negative login time");
  // Not fsynced: a crash may forget the last login time, which only means
  // one more POP login before relaying; not worth two fsyncs per login.
  return store::replace_file(*d / "ip", std::to_string(time) + "," + forms->file + "\n",
                             0600, false);
}

Result<PopLogin> AccountStore::read_pop_login(std::string_view name) const {
  auto d = existing_account(*this, name);
  if (!d) return unexpected(d.error());
  auto text = util::read_file(*d / "ip");
  if (!text) {
    if (text.error().code == Errc::not_found)
      return fail(Errc::not_found, "account " + d->filename().string() + " has no POP login");
    return unexpected(text.error());
  }
  std::string_view t = util::trim(*text);
  auto comma = t.find(',');
  auto bad = [&] {
    return fail(Errc::parse, (*d / "ip").string() + ": expected `seconds,IP`");
  };
  if (comma == std::string_view::npos) return bad();
  auto secs = util::parse_int(util::trim(t.substr(0, comma)));
  auto forms = parse_ip(util::trim(t.substr(comma + 1)));
  if (!secs || *secs < 0 || !forms) return bad();
  return PopLogin{*secs, forms->canonical};
}

}  // namespace wizmail
