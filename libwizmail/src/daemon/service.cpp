// systemd unit and notify (wizmail/admin/daemon.hpp).
#include <errno.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "util/fs.hpp"
#include "util/strings.hpp"
#include "wizmail/account_store.hpp"
#include "wizmail/admin/daemon.hpp"
#include "store/maildir_delivery.hpp"
#include "wizmail/admin/submit.hpp"

extern char** environ;

namespace wizmail::daemon {

namespace fs = std::filesystem;

namespace {

// systemd splits ExecStart= on spaces, expands % and $, and unquotes; only
// plain absolute paths are written (anything else is refused, not escaped).
bool unit_safe_path(const fs::path& p) {
  const auto& s = p.native();
  if (s.empty() || s.front() != '/') return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '/' ||
              c == '.' || c == '_' || c == '-' || c == '+' || c == '@' || c == ',' || c == ':' || c == '=';
    if (!ok) return false;
  }
  return true;
}

bool valid_user(std::string_view u) {
  if (u.empty() || u.size() > 32) return false;
  for (char c : u)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-' || c == '.'))
      return false;
  return u.front() != '-';
}

// systemctl ARGS... without a shell; its exit status.
Result<int> systemctl(std::vector<std::string> args) {
  args.insert(args.begin(), "systemctl");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid;
  int rc = ::posix_spawnp(&pid, "systemctl", nullptr, nullptr, argv.data(), environ);
  if (rc != 0) return fail_errno("run systemctl", rc);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return fail_errno("wait for systemctl", errno);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

const fs::path kSystemUnitDir = "/etc/systemd/system";

// Absolute, normalised, without a trailing slash.
fs::path plain_path(const fs::path& p) {
  auto n = fs::absolute(p).lexically_normal();
  if (n.native().size() > 1 && n.native().back() == '/') n = n.parent_path();
  return n;
}

bool inside(const fs::path& p, const fs::path& dir) {
  auto rel = p.lexically_relative(dir);
  return !rel.empty() && *rel.begin() != "..";
}

// "ReadWritePaths=HOME [-PATH...]": the home must exist; the others may be
// missing at start (systemd skips a "-" path) and the server says why it
// cannot use them.
std::string read_write_line(const fs::path& home, const std::vector<fs::path>& writable) {
  std::string line = "ReadWritePaths=" + home.string();
  for (const auto& w : writable) line += " -" + w.string();
  return line;
}

}  // namespace

std::vector<fs::path> writable_paths(const Config& config) {
  const fs::path home = plain_path(config.home);
  std::vector<fs::path> candidates;
  for (const auto& dir : {config.mailbox_dir(), config.dustbox_dir()}) {
    candidates.push_back(plain_path(dir));
    // A symbolic link leads the server elsewhere: that must be writable.
    std::error_code ec;
    auto real = fs::canonical(dir, ec);
    if (!ec) candidates.push_back(plain_path(real));
  }
  std::vector<fs::path> out;
  for (const auto& c : candidates) {
    if (c == home || inside(c, home)) continue;
    if (std::find(out.begin(), out.end(), c) != out.end()) continue;
    out.push_back(c);
  }
  // Drop a path inside another one listed.
  std::vector<fs::path> kept;
  for (const auto& c : out) {
    bool covered = false;
    for (const auto& o : out)
      if (o != c && inside(c, o)) covered = true;
    if (!covered) kept.push_back(c);
  }
  return kept;
}

UnitOptions unit_options(const Config& config) {
  UnitOptions o;
  o.home = config.home;
  o.time_out_of_stop = config.server.time_out_of_stop;
  o.writable = writable_paths(config);
  return o;
}

std::string unit_name() { return "wizmail.service"; }

bool systemd_running() {
  std::error_code ec;
  return fs::is_directory("/run/systemd/system", ec);
}

Result<std::string> systemd_unit(const UnitOptions& o) {
  auto home = plain_path(o.home);
  if (!unit_safe_path(home))
    return fail(Errc::invalid_argument, "the home path cannot be written into a unit file "
                                        "(use letters, digits and / . _ - + @ , : = only): " + home.string());
  for (const auto& w : o.writable)
    if (!unit_safe_path(w))
      return fail(Errc::invalid_argument, "a folder the server writes cannot be written into a unit file "
                                          "(use letters, digits and / . _ - + @ , : = only): " + w.string());
  if (!unit_safe_path(o.program))
    return fail(Errc::invalid_argument, "the server program must be an absolute plain path: " + o.program.string());
  if (!o.user.empty() && !valid_user(o.user)) return fail(Errc::invalid_argument, "bad user name: " + o.user);
  std::string u;
  u += "# Written by `wizmail service install`; remove with `wizmail service uninstall`.\n";
  u += "[Unit]\n";
  u += "Description=wizmail mail server (" + home.string() + ")\n";
  u += "After=network-online.target\n";
  u += "Wants=network-online.target\n\n";
  u += "[Service]\n";
  // The server runs in the foreground; systemd tracks it as the main process.
  u += "Type=simple\n";
  u += "Environment=WIZ98MS_HOME=" + home.string() + "\n";
  u += "ExecStart=" + o.program.string() + " --home " + home.string() + "\n";
  u += "ExecReload=/bin/kill -HUP $MAINPID\n";
  // SIGTERM = graceful stop (sessions get time_out_of_stop), then SIGKILL.
  u += "KillMode=mixed\n";
  u += "TimeoutStopSec=" + std::to_string(o.time_out_of_stop + 30) + "\n";
  u += "Restart=on-failure\n";
  u += "RestartSec=5\n";
  u += "LimitNOFILE=65536\n";
  if (!o.user.empty()) {
    u += "User=" + o.user + "\n";
    u += "AmbientCapabilities=CAP_NET_BIND_SERVICE\n";
    u += "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n";
  } else {
    // Root binds the ports and drops to run_as_user (set it in wizenv.def).
    u += "CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_SETUID CAP_SETGID CAP_CHOWN "
         "CAP_DAC_OVERRIDE CAP_FOWNER\n";
  }
  u += "NoNewPrivileges=yes\n";
  u += "ProtectSystem=strict\n";
  // Everything else is read-only (ProtectSystem=strict): the home and every
  // folder outside it that the server writes (mailbox_path, dustbox_path).
  u += read_write_line(home, o.writable) + "\n";
  u += "ProtectHome=read-only\n";
  u += "PrivateTmp=yes\n";
  u += "PrivateDevices=yes\n";
  u += "ProtectKernelTunables=yes\n";
  u += "ProtectKernelModules=yes\n";
  u += "ProtectControlGroups=yes\n";
  u += "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n";
  u += "RestrictNamespaces=yes\n";
  u += "RestrictRealtime=yes\n";
  u += "RestrictSUIDSGID=yes\n";
  u += "LockPersonality=yes\n";
  u += "SystemCallArchitectures=native\n\n";
  u += "[Install]\n";
  u += "WantedBy=multi-user.target\n";
  return u;
}

Result<ServiceResult> install_service(const UnitOptions& o, const fs::path& unit_dir) {
  auto text = systemd_unit(o);
  if (!text) return unexpected(text.error());
  auto dir = unit_dir.empty() ? kSystemUnitDir : unit_dir;
  if (auto st = util::make_dirs(dir, 0755); !st) return unexpected(st.error());
  ServiceResult r;
  r.unit_file = dir / unit_name();
  if (auto st = util::write_file_atomic(r.unit_file, *text, 0644); !st) return unexpected(st.error());
  if (systemd_running() && dir == kSystemUnitDir) {
    r.systemctl_ran = true;
    auto rc = systemctl({"daemon-reload"});
    if (!rc) return unexpected(rc.error());
    if (*rc != 0) return fail(Errc::io, "systemctl daemon-reload failed (exit " + std::to_string(*rc) + ")");
    rc = systemctl({"enable", unit_name()});
    if (!rc) return unexpected(rc.error());
    if (*rc != 0) return fail(Errc::io, "systemctl enable failed (exit " + std::to_string(*rc) + ")");
  }
  return r;
}

std::vector<ConfigDiagnostic> config_check(const fs::path& home, const fs::path& unit_dir, std::string_view node) {
  ConfigLoad r = load_config_report(home, node);
  std::vector<ConfigDiagnostic> out = std::move(r.diagnostics);
  if (!r.config) return out;
  for (auto& d : check_config(*r.config)) out.push_back(std::move(d));
  // An installed unit written for other folders keeps the new ones read-only.
  if (auto stale = stale_unit(unit_options(*r.config), unit_dir))
    out.push_back(ConfigDiagnostic{ConfigDiagnostic::Severity::warning, {}, 0, {}, *stale});
  return out;
}

std::optional<std::string> stale_unit(const UnitOptions& o, const fs::path& unit_dir) {
  const fs::path file = (unit_dir.empty() ? kSystemUnitDir : unit_dir) / unit_name();
  auto text = util::read_file(file);
  if (!text) return std::nullopt;
  const auto home = plain_path(o.home);
  const std::string want = read_write_line(home, o.writable);
  bool ours = false;
  std::string have;
  for (const auto& line : util::split_list(*text, '\n')) {
    if (line == "Environment=WIZ98MS_HOME=" + home.string()) ours = true;
    if (line.starts_with("ReadWritePaths=")) have = line;
  }
  if (!ours || have == want) return std::nullopt;
  return file.string() + " is out of date: it has \"" + have + "\" but the configuration needs \"" +
         want + "\" (run `wizmail service install` again, then `systemctl restart wizmail`)";
}

Result<ServiceResult> uninstall_service(const fs::path& unit_dir) {
  auto dir = unit_dir.empty() ? kSystemUnitDir : unit_dir;
  ServiceResult r;
  r.unit_file = dir / unit_name();
  std::error_code ec;
  if (!fs::exists(r.unit_file, ec)) return fail(Errc::not_found, "no unit file " + r.unit_file.string());
  bool managed = systemd_running() && dir == kSystemUnitDir;
  if (managed) {
    r.systemctl_ran = true;
    auto rc = systemctl({"disable", "--now", unit_name()});
    if (!rc) return unexpected(rc.error());
  }
  if (::unlink(r.unit_file.c_str()) != 0) return fail_errno("remove " + r.unit_file.string(), errno);
  (void)util::fsync_dir(dir);
  if (managed) {
    auto rc = systemctl({"daemon-reload"});
    if (!rc) return unexpected(rc.error());
  }
  return r;
}

Result<NotifyResult> notify(const Config& config, std::string_view content) {
  auto sb = submit::parse_subject_body(content);
  if (!sb) return unexpected(sb.error());
  AccountStore store(config.mailbox_dir());
  auto names = store.list();
  if (!names) return unexpected(names.error());
  NotifyResult out;
  const std::string domain = config.server.domain;
  const std::string from = "notifi@" + domain;
  // Staged files stay open until commit: deliver in bounded batches.
  constexpr std::size_t kBatch = 128;
  struct Pending {
    std::string account;
    std::size_t index;
  };
  std::vector<Pending> pending;
  auto batch = std::make_unique<DeliveryBatch>();
  auto flush = [&]() -> Status {
    if (pending.empty()) return {};
    auto st = batch->commit();
    for (const auto& p : pending) {
      auto results = batch->results(p.index);
      if (!results.empty() && results[0]) out.delivered.push_back(p.account);
      else
        out.failed.emplace_back(p.account, results.empty() ? std::string("not delivered")
                                                           : results[0].error().message);
    }
    pending.clear();
    batch = std::make_unique<DeliveryBatch>();
    return st;
  };
  for (const auto& name : *names) {
    const bool system = name == "notifi" || name == "postmaster";
    auto kind = system ? Result<AccountKind>(AccountKind::none) : store.lookup(name);
    if (!kind) {
      out.failed.emplace_back(name, kind.error().message);
      continue;
    }
    if (*kind != AccountKind::mailbox) {  // notifi, postmaster, a list (or gone meanwhile)
      out.skipped.push_back(name);
      continue;
    }
    auto dir = store.account_dir(name);
    if (!dir) {
      out.failed.emplace_back(name, dir.error().message);
      continue;
    }
    submit::TextMessage m;
    m.from = from;
    m.to = {name + "@" + domain};
    m.subject = sb->subject;
    m.body = sb->body;
    m.hostname = domain;
    m.extra_headers = "Auto-Submitted: auto-generated\r\n";
    // Stored as a final delivery (Return-Path, Delivered-To) like all mail.
    auto text = final_headers(from, m.to.front()) + submit::build_text_message(m);
    auto staged = StagedMessage::create(*dir / "tmp");
    if (!staged) {
      out.failed.emplace_back(name, staged.error().message);
      continue;
    }
    if (auto st = staged->write(text); !st) {
      out.failed.emplace_back(name, st.error().message);
      continue;
    }
    if (auto st = staged->finish(); !st) {
      out.failed.emplace_back(name, st.error().message);
      continue;
    }
    pending.push_back({name, batch->add(std::move(*staged), {*dir})});
    if (pending.size() >= kBatch) (void)flush();
  }
  (void)flush();
  return out;
}

}  // namespace wizmail::daemon
