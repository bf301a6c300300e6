// `wizmail config check`: combinations of settings that are dangerous or
// cannot work. Each finding names the def file and the key it is about.
#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "config/table.hpp"
#include "state/redis_url.hpp"
#include "util/ip.hpp"
#include "util/strings.hpp"
#include "wizmail/account_store.hpp"
#include "wizmail/config.hpp"

namespace wizmail {

namespace fs = std::filesystem;
using Severity = ConfigDiagnostic::Severity;

namespace {

bool is_loopback(std::string_view ip) {
  std::string s(ip);
  in_addr a4{};
  if (::inet_pton(AF_INET, s.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
  in6_addr a6{};
  if (::inet_pton(AF_INET6, s.c_str(), &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
  return false;
}

// True when a listener may be reachable from other hosts.
bool exposed(const Config& c) {
  if (c.smtp.bind_address.empty()) return true;
  for (const auto& a : c.smtp.bind_address)
    if (!is_loopback(a)) return true;
  return false;
}

// Why `file` cannot serve as a TLS file, or "" when it can be read.
std::string tls_file_problem(const std::string& file) {
  struct stat st{};
  if (::stat(file.c_str(), &st) != 0) return std::string("cannot use ") + file + ": " + std::strerror(errno);
  if (!S_ISREG(st.st_mode)) return file + " is not a regular file";
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::string("cannot read ") + file + ": " + std::strerror(errno);
  ::close(fd);
  if (st.st_size == 0) return file + " is empty";
  return {};
}

}  // namespace

std::vector<ConfigDiagnostic> check_config(const Config& c) {
  std::vector<ConfigDiagnostic> out;
  auto path_of = [&](std::string_view file) { return (c.home / "def" / std::string(file)).string(); };
  const std::string smtpenv = path_of("smtpenv.dat");
  const std::string popenv = path_of("popenv.dat");
  const std::string wizenv = path_of("wiz98msenv.dat");
  auto add = [&](Severity s, const std::string& file, std::string key, std::string msg) {
    out.push_back({s, file, 0, std::move(key), std::move(msg)});
  };
  const bool outside = exposed(c);
  const bool tls = c.tls_configured();

  // --- relaying ---
  if (c.smtp.relay) {
    add(outside ? Severity::error : Severity::warning, smtpenv, "relay",
        outside ? "relay=1 makes an open relay reachable from other hosts; anybody can send "
                  "spam through this server (set relay=0)"
                : "relay=1 relays for anybody who can connect (only loopback is bound now)");
  } else if (!c.smtp.send_permits_only_smtp_auth && !c.smtp.pop_before_smtp) {
    add(Severity::warning, smtpenv, "send_permits_only_smtp_auth",
        "relay=0 with send_permits_only_smtp_auth=0 and pop_before_smtp=0 relays for anyone who "
        "forges a local sender address (an open relay by today's standards); set "
        "send_permits_only_smtp_auth=1");
  } else if (!c.smtp.send_permits_only_smtp_auth && c.smtp.pop_before_smtp) {
    add(Severity::warning, smtpenv, "pop_before_smtp",
        "POP before SMTP lets anyone behind the same IP (NAT, shared hosts) relay for "
        "pop_befor_smtp_time_to_live minutes; SMTP AUTH (send_permits_only_smtp_auth=1) is safer");
  }
  for (const auto& net : c.smtp.address_permits_relay) {
    auto block = util::CidrBlock::parse(net);
    int prefix = block ? static_cast<int>(block->prefix) : -1;
    if (prefix == 0) {
      add(Severity::error, smtpenv, "address_permits_relay",
          net + " lets every address on the Internet relay (an open relay)");
    } else if (prefix > 0 && prefix < 8) {
      add(Severity::warning, smtpenv, "address_permits_relay",
          net + " lets a very large network relay");
    }
  }
  for (const auto& net : c.smtp.multiprocessing_exempt) {
    if (auto block = util::CidrBlock::parse(net); block && block->prefix == 0)
      add(Severity::warning, smtpenv, "multiprocessing_exempt",
          net + " exempts every client from the multiprocessing session limit");
  }

  for (const auto& net : c.server.proxy_trusted_networks) {
    auto block = util::CidrBlock::parse(net);
    int prefix = block ? static_cast<int>(block->prefix) : -1;
    if (prefix == 0) {
      add(outside ? Severity::error : Severity::warning, wizenv, "proxy_trusted_networks",
          net + " trusts every peer's PROXY header: any client can claim any address, and relay "
                "rules, DNSBL, limits and auth penalties follow the claim (name the balancers)");
    } else if (prefix > 0 && prefix < 16) {
      add(Severity::warning, wizenv, "proxy_trusted_networks",
          net + " trusts the PROXY header of a very large network (name the balancers)");
    }
  }

  if (!c.server.redis_url.empty()) {
    if (auto a = state::parse_redis_url(c.server.redis_url); !a)
      add(Severity::warning, wizenv, "redis_url",
          util::cat(a.error().message, " (the server will not start with it)"));
  }

  // --- TLS ---
  const bool cert = !c.server.tls_cert_file.empty();
  const bool key = !c.server.tls_key_file.empty();
  if (cert != key) {
    add(Severity::error, wizenv, cert ? "tls_key_file" : "tls_cert_file",
        "tls_cert_file and tls_key_file must be set together (TLS stays off with only one)");
  }
  for (auto [name, file] : {std::pair<const char*, const std::string*>{"tls_cert_file",
                                                                       &c.server.tls_cert_file},
                            {"tls_key_file", &c.server.tls_key_file}}) {
    if (file->empty()) continue;
    if (file->front() != '/') {
      add(Severity::error, wizenv, name, "'" + *file + "' is not an absolute path");
      continue;
    }
    if (auto problem = tls_file_problem(*file); !problem.empty())
      add(Severity::error, wizenv, name, problem);
  }
  if (c.smtp.smtps_port != 0 && !tls)
    add(Severity::error, smtpenv, "smtps_port",
        "smtps_port needs tls_cert_file and tls_key_file (implicit TLS)");
  if (c.pop.pop3s_port != 0 && !tls)
    add(Severity::error, popenv, "pop3s_port",
        "pop3s_port needs tls_cert_file and tls_key_file (implicit TLS)");
  if (c.smtp.submission_port != 0 && !tls && outside)
    add(Severity::warning, smtpenv, "submission_port",
        "the submission port requires AUTH, but without TLS the passwords cross the network "
        "in clear text");
  if (c.smtp.auth_requires_tls && !tls) {
    add(outside ? Severity::error : Severity::warning, smtpenv, "auth_requires_tls",
        "auth_requires_tls=1 without tls_cert_file/tls_key_file: only loopback clients can "
        "authenticate");
  }
  if (!c.smtp.auth_requires_tls && tls && outside)
    add(Severity::warning, smtpenv, "auth_requires_tls",
        "TLS is configured but auth_requires_tls=0: clients may send passwords before "
        "STARTTLS; set auth_requires_tls=1");
  if (!tls && outside && c.smtp.send_permits_only_smtp_auth)
    add(Severity::warning, wizenv, "tls_cert_file",
        "no TLS certificate: SMTP AUTH and POP3 passwords cross the network in clear text");

  // --- milters (docs/milter.md; the milter area parses them at run time) ---
  for (auto [key, list] : {std::pair<const char*, const std::vector<std::string>*>{"smtpd_milters", &c.smtp.smtpd_milters},
                           {"non_smtpd_milters", &c.smtp.non_smtpd_milters}}) {
    for (const auto& spec : *list) {
      std::string_view v = spec;
      const bool unix_path = (v.starts_with("unix:/") || v.starts_with("local:/"));
      bool inet = false;
      if (v.starts_with("inet:") || v.starts_with("inet6:")) {
        auto rest = v.substr(v.find(':') + 1);
        auto colon = rest.rfind(':');
        auto port = colon == std::string_view::npos ? std::nullopt : util::parse_int(rest.substr(colon + 1));
        inet = colon != std::string_view::npos && colon > 0 && port && *port >= 1 && *port <= 65535;
      }
      if (!unix_path && !inet)
        add(Severity::error, smtpenv, key,
            "'" + spec + "' is no milter address (inet:host:port or unix:/path); the session fails "
            "over to milter_default_action");
    }
  }
  // --- outbound TLS policy (docs/outbound.md) ---
  {
    bool verify = c.tls_level_for("") == TlsLevel::verify;
    for (const auto& r : c.tls_policy.rules()) verify = verify || r.level == TlsLevel::verify;
    if (verify) {
      if (auto problem = tls_file_problem(c.smtp.smtp_tls_ca_file); !problem.empty())
        add(Severity::error, smtpenv, "smtp_tls_ca_file",
            problem + " (the verify TLS level needs it: such mail waits in the queue)");
    }
  }
  if (const auto& a = c.smtp.milter_default_action; a != "tempfail" && a != "accept" && a != "reject")
    add(Severity::error, smtpenv, "milter_default_action",
        "'" + a + "' is not tempfail, accept or reject (tempfail is used)");

  // --- ports ---
  struct Port {
    const std::string* file;
    const char* key;
    int port;
  };
  const Port ports[] = {{&smtpenv, "port", c.smtp.port},
                        {&smtpenv, "submission_port", c.smtp.submission_port},
                        {&smtpenv, "smtps_port", c.smtp.smtps_port},
                        {&popenv, "port", c.pop.port},
                        {&popenv, "pop3s_port", c.pop.pop3s_port},
                        {&wizenv, "metrics_port", c.server.metrics_port},
                        {&wizenv, "admin_port", c.server.admin_port}};
  for (std::size_t i = 0; i < std::size(ports); ++i) {
    for (std::size_t j = i + 1; j < std::size(ports); ++j) {
      if (ports[i].port == 0 || ports[i].port != ports[j].port) continue;
      std::string other = std::string(ports[i].key) + " in " +
                          fs::path(*ports[i].file).filename().string();
      add(Severity::error, *ports[j].file, ports[j].key,
          "port " + std::to_string(ports[j].port) + " is also " + other);
    }
  }

  if (c.server.admin_bind_address.size() != 1)
    add(Severity::error, wizenv, "admin_bind_address", "give exactly one address");
  if (c.server.admin_port > 0 && c.server.admin_bind_address.size() == 1 &&
      !is_loopback(c.server.admin_bind_address.front()) &&
      !(c.server.admin_tls && c.tls_configured()))
    add(Severity::warning, wizenv, "admin_bind_address",
        "the web console listens on " + c.server.admin_bind_address.front() +
            " without TLS: its passwords and session cookies cross the network in clear");
  for (const auto& a : c.server.admin_accounts)
    if (!AccountStore::validate_name(a))
      add(Severity::error, wizenv, "admin_accounts", "'" + a + "' is not a valid account name");

  // --- paths ---
  for (auto [name, p] : {std::pair<const char*, const std::string*>{"mailbox_path",
                                                                    &c.server.mailbox_path},
                         {"dustbox_path", &c.server.dustbox_path}}) {
    if (!p->empty() && p->front() != '/')
      add(Severity::error, wizenv, name, "'" + *p + "' is not an absolute path");
  }
  {
    auto mb = c.mailbox_dir().lexically_normal();
    auto db = c.dustbox_dir().lexically_normal();
    auto inside = [](const fs::path& a, const fs::path& b) {  // a within or equal b
      auto rel = a.lexically_relative(b);
      return !rel.empty() && *rel.begin() != "..";
    };
    if (inside(mb, db) || inside(db, mb))
      add(Severity::error, wizenv, "dustbox_path",
          "the mailbox folder (" + mb.string() + ") and the dustbox (" + db.string() +
              ") must not contain each other");
  }

  // --- limits and identity ---
  if (c.server.mailbox_capacity_mail_size >= 0 &&
      c.server.mailbox_capacity_mail_size < c.smtp.max_mail_size)
    add(Severity::warning, wizenv, "mailbox_capacity_mail_size",
        "mailbox_capacity_mail_size (" + std::to_string(c.server.mailbox_capacity_mail_size) +
            ") is smaller than max_mail_size (" + std::to_string(c.smtp.max_mail_size) +
            "): the largest accepted messages can never be stored");
  if (c.server.mailbox_capacity_mail_count == 0)
    add(Severity::warning, wizenv, "mailbox_capacity_mail_count",
        "mailbox_capacity_mail_count=0: no account can receive any mail");
  if (outside && (util::iequals(c.server.domain, "localhost") || c.server.domain.empty()))
    add(Severity::warning, wizenv, "domain",
        "domain=localhost on a server reachable from other hosts: bounces and notices will come "
        "from MAILER-DAEMON@localhost; set your mail domain");
  if (c.smtp.srs) {
    const std::string& d = c.smtp.srs_domain.empty() ? c.server.domain : c.smtp.srs_domain;
    if (util::iequals(d, "localhost") || d.empty() || d.front() == '[')
      add(Severity::warning, smtpenv, c.smtp.srs_domain.empty() ? "srs" : "srs_domain",
          "srs=1 with SRS addresses at " + (d.empty() ? std::string("no domain") : d) +
              ": bounces to forwarded mail cannot reach them; set srs_domain (or domain) to a "
              "domain whose MX is this server");
  }
  return out;
}

}  // namespace wizmail
