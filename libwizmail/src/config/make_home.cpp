// make_home (wizmail/home.hpp): what `wizmail setup` does, for every caller.
#include "wizmail/home.hpp"

#include <arpa/inet.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string_view>

#include "srs/secret.hpp"
#include "wizmail/account_store.hpp"
#include "wizmail/config.hpp"

namespace wizmail {

namespace fs = std::filesystem;

namespace {

std::string random_password() {
  static constexpr char alphabet[] = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
  constexpr std::size_t n = sizeof alphabet - 1;
  std::string out;
  unsigned char buf[64];
  while (out.size() < 16) {
    ssize_t got = ::getrandom(buf, sizeof buf, 0);
    if (got <= 0) continue;
    for (ssize_t i = 0; i < got && out.size() < 16; ++i) {
      // Reject bytes that would bias the choice.
      if (buf[i] >= 256 - (256 % n)) continue;
      out += alphabet[buf[i] % n];
    }
  }
  return out;
}

bool valid_ip(const std::string& s) {
  unsigned char b[16];
  return inet_pton(AF_INET, s.c_str(), b) == 1 || inet_pton(AF_INET6, s.c_str(), b) == 1;
}

bool valid_domain(std::string_view d) {
  if (d.empty() || d.size() > 253 || d.front() == '.' || d.back() == '.' || d.front() == '-' ||
      d.find("..") != std::string_view::npos)
    return false;
  for (char c : d) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
      return false;
  }
  return true;
}

const char* const kInitialAccounts[] = {"administrator", "forward", "notifi", "postmaster"};

// The manual's sample (フォーワーディング機能2): forward every mail of the
// `forward` account with the sendmail tool.
std::string sample_forward_def(const std::string& domain) {
  std::string t =
      "// forward.def: run for every mail stored in this account (SPEC §8).\n"
      "// The manual's sample: hand the mail file to the sendmail tool, which\n"
      "// forwards it. Change param2 to the address mail should go to, or delete\n"
      "// this file to keep mail here.\n"
      "// wizmail-sendmail FROM TO -mf MAILFILE\n"
      "bin=wizmail-sendmail\n"
      "param1=FROM_ADDRESS\n"
      "param2=postmaster@";
  t.append(domain).append("\nparam3=-mf\nparam4=MAILFILE_PATH\n");
  return t;
}

// A fresh file, so no other writer: created exclusively and durably.
Status write_new_file(const fs::path& p, const std::string& text) {
  std::string tmp_name = p.string() + ".new";
  FILE* fp = std::fopen(tmp_name.c_str(), "wx");
  if (!fp) return fail_errno("create " + tmp_name, errno);
  bool ok = std::fwrite(text.data(), 1, text.size(), fp) == text.size();
  ok = std::fflush(fp) == 0 && ok;
  ok = ::fsync(::fileno(fp)) == 0 && ok;
  ok = std::fclose(fp) == 0 && ok;
  if (!ok || ::link(tmp_name.c_str(), p.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp_name.c_str());
    return fail_errno("write " + p.string(), e ? e : EIO);
  }
  ::unlink(tmp_name.c_str());
  return {};
}

Status make_dir(const fs::path& d) {
  std::error_code mk;
  fs::create_directories(d, mk);
  if (mk) return fail(Errc::io, "cannot create " + d.string() + ": " + mk.message());
  return {};
}

}  // namespace

Result<HomeReport> make_home(const fs::path& home_in, const HomeOptions& o) {
  // 1. Check everything first.
  if (home_in.empty()) return fail(Errc::invalid_argument, "no home directory given");
  for (const auto& b : o.bind_address)
    if (!valid_ip(b)) return fail(Errc::invalid_argument, "bind_address: " + b + " is not an IP address");
  if (!o.domain.empty() && !valid_domain(o.domain))
    return fail(Errc::invalid_argument, "domain: " + o.domain + " is not a domain name");
  if (o.smtp_port < 0 || o.smtp_port > 65535)
    return fail(Errc::invalid_argument, "smtp_port: " + std::to_string(o.smtp_port) + " is not a port (1-65535)");
  if (o.pop_port < 0 || o.pop_port > 65535)
    return fail(Errc::invalid_argument, "pop_port: " + std::to_string(o.pop_port) + " is not a port (1-65535)");
  if (!o.password.empty() && (o.password.size() > 1024 || o.password.find_first_of("\r\n") != std::string::npos ||
                              o.password.starts_with("{CRYPT}")))
    return fail(Errc::invalid_argument, "password: not usable as a password (CR/LF, {CRYPT} or too long)");

  HomeReport report;
  const fs::path home = fs::absolute(home_in);
  report.home = home;
  std::error_code ec;
  if (fs::exists(home, ec) && !fs::is_directory(home, ec))
    return fail(Errc::invalid_argument, home.string() + " exists and is not a directory");
  const fs::path def = home / "def";
  bool any_def = false;
  for (const auto& f : def_file_names()) any_def = any_def || fs::exists(def / f, ec);
  if (any_def) {
    // Existing def files must load, or we cannot know where mail lives.
    auto cfg = load_config(home);
    if (!cfg)
      return fail(Errc::parse, "the existing configuration has errors; nothing was changed:\n" + cfg.error().message);
  }

  // 2. The layout (SPEC §1).
  for (const char* sub : {"def", "mailbox", "resendmail", "deadmail", "dustbox", "var/log", "var/run", "var/trace"})
    if (auto st = make_dir(home / sub); !st) return unexpected(st.error());

  // 3. The def files: only the missing ones.
  DefFileOptions dopt;
  dopt.smtp_port = o.smtp_port;
  dopt.pop_port = o.pop_port;
  dopt.bind_address = o.bind_address;
  dopt.domain = o.domain;
  for (const auto& f : def_file_names()) {
    const fs::path p = def / f;
    if (fs::exists(p, ec)) {
      report.def_kept.push_back(f);
      const bool ignored = (f == "smtpenv.dat" && (o.smtp_port || !o.bind_address.empty())) ||
                           (f == "popenv.dat" && o.pop_port) || (f == "wiz98msenv.dat" && !o.domain.empty());
      if (ignored) report.options_not_applied.push_back(f);
      continue;
    }
    std::string text = default_def_file(f, dopt);
    if (text.empty()) return fail(Errc::internal, "no default contents for def/" + f);
    if (auto st = write_new_file(p, text); !st) return unexpected(st.error());
    report.def_written.push_back(f);
  }
  // The SRS secret, so that turning srs on later needs nothing more; an
  // existing secret is never replaced (addresses made with it must reverse).
  auto secret = srs::create_secret_file(srs::secret_file(home));
  if (!secret) return unexpected(secret.error());
  report.srs_secret_written = *secret;

  auto cfg = load_config(home);
  if (!cfg) return unexpected(cfg.error());
  const Config& c = **cfg;
  for (const fs::path& d : {c.mailbox_dir(), c.dustbox_dir()})
    if (auto st = make_dir(d); !st) return unexpected(st.error());

  // 4. The initial accounts: only the missing ones.
  AccountStore store(c.mailbox_dir());
  for (const char* name : kInitialAccounts) {
    auto kind = store.lookup(name);
    if (!kind) return unexpected(kind.error());
    HomeReport::Account a;
    a.name = name;
    if (*kind != AccountKind::none) {
      report.accounts.push_back(std::move(a));
      continue;
    }
    const std::string pw = o.password.empty() ? random_password() : o.password;
    if (auto st = store.create(name, pw); !st) return unexpected(st.error());
    a.created = true;
    if (o.password.empty()) a.password = pw;
    if (std::string_view(name) == "forward") {
      auto dir = store.account_dir(name);
      std::FILE* fp = dir ? std::fopen((*dir / "forward.def").c_str(), "wx") : nullptr;
      const std::string text = sample_forward_def(c.server.domain);
      bool ok = fp && std::fwrite(text.data(), 1, text.size(), fp) == text.size();
      if (fp) ok = std::fclose(fp) == 0 && ok;
      if (!ok) report.warnings.push_back("could not write the sample forward.def");
    }
    report.accounts.push_back(std::move(a));
  }
  return report;
}

}  // namespace wizmail
