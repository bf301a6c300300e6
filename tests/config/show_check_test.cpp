#include <doctest/doctest.h>
#include <sys/stat.h>

#include <algorithm>

#include "config/table.hpp"
#include "util/strings.hpp"
#include "helpers.hpp"
#include "wizmail/admin/control.hpp"
#include "wizmail/config.hpp"

using namespace wizmail;
using config::Key;
using Severity = ConfigDiagnostic::Severity;
using cfgtest::TempDir;
namespace fs = std::filesystem;

namespace {

const ConfigDiagnostic* find(const std::vector<ConfigDiagnostic>& ds, std::string_view key,
                             Severity sev) {
  for (const auto& d : ds)
    if (d.key == key && d.severity == sev) return &d;
  return nullptr;
}

std::size_t count_errors(const std::vector<ConfigDiagnostic>& ds) {
  return static_cast<std::size_t>(std::count_if(ds.begin(), ds.end(), [](const auto& d) {
    return d.severity == Severity::error;
  }));
}

// A config as `wizmail setup` leaves it, with one listener address.
Config setup_config(const std::string& bind) {
  DefFileOptions opt;
  opt.smtp_port = 2525;
  opt.pop_port = 1110;
  opt.bind_address = {bind};
  opt.domain = "example.org";
  std::vector<std::pair<std::string, std::string>> texts;
  for (const auto& f : def_file_names()) texts.emplace_back(f, default_def_file(f, opt));
  auto r = parse_config_texts("/h", texts);
  REQUIRE(r.ok());
  return *r.config;
}

}  // namespace

TEST_CASE("default_def_file: every key, a comment each, safe values, parses cleanly") {
  for (const auto& f : def_file_names()) {
    CAPTURE(f);
    std::string text = default_def_file(f, 2525, 1110);
    CHECK(default_def_file("def/" + f, 2525, 1110) == text);
    auto r = parse_config_texts("/h", {{f, text}});
    REQUIRE(r.ok());
    CHECK(r.diagnostics.empty());
    for (const Key& k : config::keys()) {
      if (config::file_name(k.file) != f) continue;
      CAPTURE(k.name);
      auto at = text.find(util::cat("\n", k.name, "="));
      CHECK((at != std::string::npos) == !k.obsolete);
      if (k.obsolete) continue;
      // The line before the key is its comment, from the table.
      auto comment = text.rfind(util::cat("# ", k.doc), at);
      CHECK(comment != std::string::npos);
    }
  }
  auto r = parse_config_texts("/h", {{"smtpenv.dat", default_def_file("smtpenv.dat", 2525, 1110)},
                                     {"popenv.dat", default_def_file("popenv.dat", 2525, 1110)}});
  REQUIRE(r.ok());
  CHECK(r.config->smtp.port == 2525);
  CHECK(r.config->pop.port == 1110);
  CHECK_FALSE(r.config->smtp.relay);
  CHECK(r.config->smtp.send_permits_only_smtp_auth);
  // Port 0 means the default.
  r = parse_config_texts("/h", {{"smtpenv.dat", default_def_file("smtpenv.dat")}});
  REQUIRE(r.ok());
  CHECK(r.config->smtp.port == 25);
  CHECK(default_def_file("nonsense.dat").empty());
}

TEST_CASE("setup's files pass config check on loopback") {
  Config c = setup_config("127.0.0.1");
  CHECK(c.smtp.bind_address == std::vector<std::string>{"127.0.0.1"});
  CHECK(c.server.domain == "example.org");
  auto ds = check_config(c);
  CHECK(count_errors(ds) == 0);
  CHECK(ds.empty());
}

TEST_CASE("show_config: one key=value line per key, grouped by file") {
  auto r = parse_config_texts("/h", {{"smtpenv.dat", "relay=1\nport=2525\n"},
                                     {"popenv.dat", "dustbox=true\n"}});
  REQUIRE(r.ok());
  std::string s = show_config(*r.config);
  CHECK(s.find("port=2525  # smtpenv.dat\n") != std::string::npos);
  CHECK(s.find("relay=1  # smtpenv.dat\n") != std::string::npos);
  CHECK(s.find("submission_port=0  # smtpenv.dat, default\n") != std::string::npos);
  CHECK(s.find("dustbox=TRUE  # popenv.dat\n") != std::string::npos);
  CHECK(s.find("port=110  # popenv.dat, default\n") != std::string::npos);
  CHECK(s.find("\nhost=") == s.find("\nhost=localhost  # popenv.dat"));  // obsolete smtp host hidden
  auto smtp_at = s.find("# /h/def/smtpenv.dat"), pop_at = s.find("# /h/def/popenv.dat"),
       srv_at = s.find("# /h/def/wiz98msenv.dat");
  CHECK(smtp_at < pop_at);
  CHECK(pop_at < srv_at);
  for (const Key& k : config::keys()) {
    if (k.obsolete) continue;
    CAPTURE(k.name);
    std::string line = std::string(k.name) + "=";
    std::string tag = "  # " + std::string(config::file_name(k.file));
    std::size_t n = 0;
    for (auto at = s.find("\n" + line); at != std::string::npos; at = s.find("\n" + line, at + 1)) {
      auto eol = s.find('\n', at + 1);
      if (s.substr(at, eol - at).find(tag) != std::string::npos) ++n;
    }
    CHECK(n == 1);
  }
}

TEST_CASE("show_config_json is valid JSON with typed values and escaped strings") {
  auto r = parse_config_texts(
      "/h", {{"smtpenv.dat", "port=2525\nrelay=1\nbind_address=127.0.0.1,::1\n"},
             {"wiz98msenv.dat", "mailing_list_filter_string=a\"b,c\\d,未承諾広告\n"}});
  REQUIRE(r.ok());
  std::string j = show_config_json(*r.config);
  CHECK(cfgtest::valid_json(j));
  CHECK(j.find("\"port\": 2525") != std::string::npos);
  CHECK(j.find("\"relay\": true") != std::string::npos);
  // Lists are arrays of strings, each escaped (read back with a JSON parser).
  auto doc = control::parse_json(j);
  REQUIRE(doc);
  auto strings = [&](std::string_view file, std::string_view key) {
    std::vector<std::string> out;
    const auto* v = doc->get("files") ? doc->get("files")->get(file) : nullptr;
    v = v ? v->get(key) : nullptr;
    REQUIRE(v);
    REQUIRE(v->is_array());
    for (const auto& item : v->items) {
      REQUIRE(item.string());
      out.push_back(*item.string());
    }
    return out;
  };
  CHECK(strings("smtpenv.dat", "bind_address") == std::vector<std::string>{"127.0.0.1", "::1"});
  CHECK(strings("wiz98msenv.dat", "mailing_list_filter_string") ==
        std::vector<std::string>{"a\"b", "c\\d", "未承諾広告"});
  CHECK(j.find("\"a\\\"b\"") != std::string::npos);  // the quote escaped in the text itself
  // Strings that never came through the parser are escaped too.
  Config c;
  c.home = "/h\"\n\x01";
  c.server.domain = "bad\xff\x7f";
  c.warnings.push_back({Severity::warning, "f\tx", 3, "k", "quote \" and \\"});
  std::string j2 = show_config_json(c);
  CHECK(cfgtest::valid_json(j2));
  CHECK(j2.find("\\u0001") != std::string::npos);
  CHECK(j2.find("\xEF\xBF\xBD") != std::string::npos);  // the stray byte became U+FFFD
  // The checker itself refuses broken JSON.
  CHECK_FALSE(cfgtest::valid_json("{\"a\": 1,}"));
  CHECK_FALSE(cfgtest::valid_json("{\"a\": \"\x01\"}"));
  CHECK_FALSE(cfgtest::valid_json("[1 2]"));
}

TEST_CASE("check_config: relaying") {
  SUBCASE("relay=1 reachable from outside is an error, on loopback a warning") {
    Config c = setup_config("0.0.0.0");
    c.smtp.relay = true;
    CHECK(find(check_config(c), "relay", Severity::error) != nullptr);
    c = setup_config("127.0.0.1");
    c.smtp.relay = true;
    CHECK(find(check_config(c), "relay", Severity::warning) != nullptr);
    CHECK(count_errors(check_config(c)) == 0);
    c.smtp.bind_address.clear();  // all addresses
    CHECK(find(check_config(c), "relay", Severity::error) != nullptr);
  }
  SUBCASE("relay=0 without AUTH-only and without POP before SMTP") {
    Config c = setup_config("127.0.0.1");
    c.smtp.send_permits_only_smtp_auth = false;
    auto ds = check_config(c);
    auto d = find(ds, "send_permits_only_smtp_auth", Severity::warning);
    REQUIRE(d != nullptr);
    CHECK(d->message.find("forges a local sender") != std::string::npos);
    CHECK(d->file == "/h/def/smtpenv.dat");
    c.smtp.pop_before_smtp = true;
    CHECK(find(check_config(c), "send_permits_only_smtp_auth", Severity::warning) == nullptr);
    CHECK(find(check_config(c), "pop_before_smtp", Severity::warning) != nullptr);
  }
  SUBCASE("address_permits_relay for the whole Internet") {
    Config c = setup_config("127.0.0.1");
    c.smtp.address_permits_relay = {"127.0.0.1", "0.0.0.0/0"};
    CHECK(find(check_config(c), "address_permits_relay", Severity::error) != nullptr);
    c.smtp.address_permits_relay = {"::/0"};
    CHECK(find(check_config(c), "address_permits_relay", Severity::error) != nullptr);
    c.smtp.address_permits_relay = {"10.0.0.0/4"};
    CHECK(find(check_config(c), "address_permits_relay", Severity::warning) != nullptr);
    c.smtp.address_permits_relay = {"192.0.2.0/24"};
    CHECK(find(check_config(c), "address_permits_relay", Severity::warning) == nullptr);
  }
  SUBCASE("proxy_trusted_networks that trust everybody") {
    Config c = setup_config("0.0.0.0");
    c.server.proxy_trusted_networks = {"10.0.0.10", "0.0.0.0/0"};
    auto ds = check_config(c);
    auto d = find(ds, "proxy_trusted_networks", Severity::error);
    REQUIRE(d != nullptr);
    CHECK(d->message.find("any client can claim any address") != std::string::npos);
    CHECK(d->file == "/h/def/wiz98msenv.dat");
    c.server.proxy_trusted_networks = {"::/0"};
    CHECK(find(check_config(c), "proxy_trusted_networks", Severity::error) != nullptr);
    c = setup_config("127.0.0.1");  // only loopback can connect: a warning
    c.server.proxy_trusted_networks = {"0.0.0.0/0"};
    CHECK(find(check_config(c), "proxy_trusted_networks", Severity::warning) != nullptr);
    CHECK(find(check_config(c), "proxy_trusted_networks", Severity::error) == nullptr);
    c.server.proxy_trusted_networks = {"10.0.0.0/8"};
    CHECK(find(check_config(c), "proxy_trusted_networks", Severity::warning) != nullptr);
    c.server.proxy_trusted_networks = {"10.0.0.10", "10.0.1.0/24"};
    CHECK(find(check_config(c), "proxy_trusted_networks", Severity::warning) == nullptr);
  }
  SUBCASE("redis_url malformed: a warning naming what is wrong; good ones and none are quiet") {
    Config c = setup_config("127.0.0.1");
    CHECK(find(check_config(c), "redis_url", Severity::warning) == nullptr);
    c.server.redis_url = "redis://10.0.0.5:6379/0";
    CHECK(find(check_config(c), "redis_url", Severity::warning) == nullptr);
    c.server.redis_url = "unix:///run/redis/redis.sock";
    CHECK(find(check_config(c), "redis_url", Severity::warning) == nullptr);
    for (const char* bad : {"10.0.0.5:6379", "redis://10.0.0.5:99999", "redis://h/x", "http://h"}) {
      CAPTURE(bad);
      c.server.redis_url = bad;
      auto ds = check_config(c);
      auto d = find(ds, "redis_url", Severity::warning);
      REQUIRE(d != nullptr);
      CHECK(d->message.find(bad) != std::string::npos);
      CHECK(d->file == "/h/def/wiz98msenv.dat");
    }
  }
}

TEST_CASE("check_config: TLS") {
  TempDir d;
  cfgtest::write(d.path / "cert.pem", "-----BEGIN CERTIFICATE-----\n");
  cfgtest::write(d.path / "key.pem", "-----BEGIN PRIVATE KEY-----\n");
  SUBCASE("only one of the pair") {
    Config c = setup_config("127.0.0.1");
    c.server.tls_cert_file = (d.path / "cert.pem").string();
    CHECK(find(check_config(c), "tls_key_file", Severity::error) != nullptr);
  }
  SUBCASE("unreadable, missing or not a file") {
    Config c = setup_config("127.0.0.1");
    c.server.tls_cert_file = (d.path / "missing.pem").string();
    c.server.tls_key_file = d.path.string();
    auto ds = check_config(c);
    CHECK(find(ds, "tls_cert_file", Severity::error) != nullptr);
    CHECK(find(ds, "tls_key_file", Severity::error) != nullptr);
  }
  SUBCASE("readable pair: no TLS error; AUTH before TLS is a warning when exposed") {
    Config c = setup_config("192.0.2.1");
    c.server.tls_cert_file = (d.path / "cert.pem").string();
    c.server.tls_key_file = (d.path / "key.pem").string();
    auto ds = check_config(c);
    CHECK(find(ds, "tls_cert_file", Severity::error) == nullptr);
    CHECK(find(ds, "tls_key_file", Severity::error) == nullptr);
    CHECK(find(ds, "auth_requires_tls", Severity::warning) != nullptr);
    c.smtp.auth_requires_tls = true;
    CHECK(find(check_config(c), "auth_requires_tls", Severity::warning) == nullptr);
    CHECK(count_errors(check_config(c)) == 0);
    c = setup_config("127.0.0.1");
    c.server.tls_cert_file = (d.path / "cert.pem").string();
    c.server.tls_key_file = (d.path / "key.pem").string();
    CHECK(find(check_config(c), "auth_requires_tls", Severity::warning) == nullptr);
  }
  SUBCASE("TLS ports without a certificate") {
    Config c = setup_config("127.0.0.1");
    c.smtp.smtps_port = 4650;
    c.pop.pop3s_port = 9950;
    auto ds = check_config(c);
    CHECK(find(ds, "smtps_port", Severity::error) != nullptr);
    CHECK(find(ds, "pop3s_port", Severity::error) != nullptr);
    c = setup_config("192.0.2.1");
    c.smtp.submission_port = 5870;
    CHECK(find(check_config(c), "submission_port", Severity::warning) != nullptr);
    c.smtp.auth_requires_tls = true;
    CHECK(find(check_config(c), "auth_requires_tls", Severity::error) != nullptr);
  }
}

TEST_CASE("check_config: the web console") {
  Config c = setup_config("127.0.0.1");
  c.server.admin_port = 8443;
  CHECK(count_errors(check_config(c)) == 0);
  CHECK(find(check_config(c), "admin_bind_address", Severity::warning) == nullptr);
  SUBCASE("exposed without TLS: a warning") {
    c.server.admin_bind_address = {"0.0.0.0"};
    CHECK(find(check_config(c), "admin_bind_address", Severity::warning) != nullptr);
    c.server.admin_port = 0;  // off: nothing to say
    CHECK(find(check_config(c), "admin_bind_address", Severity::warning) == nullptr);
  }
  SUBCASE("not exactly one address: an error") {
    c.server.admin_bind_address = {"127.0.0.1", "::1"};
    CHECK(find(check_config(c), "admin_bind_address", Severity::error) != nullptr);
    c.server.admin_bind_address = {};
    CHECK(find(check_config(c), "admin_bind_address", Severity::error) != nullptr);
  }
  SUBCASE("admin_accounts must be account names") {
    c.server.admin_accounts = {"postmaster", "<b>x</b>"};
    auto ds = check_config(c);
    auto d = find(ds, "admin_accounts", Severity::error);
    REQUIRE(d != nullptr);
    CHECK(d->message.find("<b>x</b>") != std::string::npos);
    c.server.admin_accounts = {"postmaster"};
    CHECK(find(check_config(c), "admin_accounts", Severity::error) == nullptr);
  }
}

TEST_CASE("check_config: colliding ports, paths, limits") {
  SUBCASE("every pair of ports") {
    struct P {
      const char* key;
      int* field;
    };
    for (std::size_t i = 0; i < std::size_t{7}; ++i) {
      for (std::size_t j = i + 1; j < std::size_t{7}; ++j) {
        Config x = setup_config("127.0.0.1");
        P xp[] = {{"port", &x.smtp.port},          {"submission_port", &x.smtp.submission_port},
                  {"smtps_port", &x.smtp.smtps_port}, {"port", &x.pop.port},
                  {"pop3s_port", &x.pop.pop3s_port}, {"metrics_port", &x.server.metrics_port},
                  {"admin_port", &x.server.admin_port}};
        *xp[i].field = 40000;
        *xp[j].field = 40000;
        auto ds = check_config(x);
        const ConfigDiagnostic* hit = nullptr;
        for (const auto& dd : ds)
          if (dd.key == xp[j].key && dd.message.find("40000 is also") != std::string::npos) hit = &dd;
        CAPTURE(i);
        CAPTURE(j);
        REQUIRE(hit != nullptr);
        CHECK(hit->severity == Severity::error);
      }
    }
  }
  SUBCASE("relative mailbox_path, nested dustbox") {
    Config c = setup_config("127.0.0.1");
    c.server.mailbox_path = "mailbox";
    CHECK(find(check_config(c), "mailbox_path", Severity::error) != nullptr);
    c.server.mailbox_path = "/srv/mail";
    c.server.dustbox_path = "/srv/mail/dust";
    CHECK(find(check_config(c), "dustbox_path", Severity::error) != nullptr);
    c.server.dustbox_path = "/srv/dust";
    CHECK(count_errors(check_config(c)) == 0);
  }
  SUBCASE("a mailbox too small for the largest message; domain=localhost exposed") {
    Config c = setup_config("192.0.2.1");
    c.server.mailbox_capacity_mail_size = 1000;
    c.server.domain = "localhost";
    auto ds = check_config(c);
    CHECK(find(ds, "mailbox_capacity_mail_size", Severity::warning) != nullptr);
    CHECK(find(ds, "domain", Severity::warning) != nullptr);
  }
}

TEST_CASE("docs/configuration.md is generated from the table") {
  auto doc = cfgtest::slurp(cfgtest::source_dir() / "docs" / "configuration.md");
  std::string gen = config_reference_markdown();
  if (doc != gen) {
    FAIL("docs/configuration.md differs from the key table; regenerate it with "
         "`build/apps/wizmail/wizmail config reference > docs/configuration.md`");
  }
  for (const Key& k : config::keys()) {
    CAPTURE(k.name);
    CHECK(gen.find("| `" + std::string(k.name) + "`") != std::string::npos);
  }
}

TEST_CASE("check_config: SRS addresses need a reachable domain") {
  Config c = setup_config("127.0.0.1");  // domain=example.org
  c.smtp.srs = true;
  CHECK(find(check_config(c), "srs", Severity::warning) == nullptr);
  CHECK(find(check_config(c), "srs_domain", Severity::warning) == nullptr);
  c.server.domain = "localhost";
  CHECK(find(check_config(c), "srs", Severity::warning) != nullptr);
  c.smtp.srs_domain = "srs.example.org";
  CHECK(find(check_config(c), "srs", Severity::warning) == nullptr);
  c.smtp.srs_domain = "[192.0.2.1]";
  CHECK(find(check_config(c), "srs_domain", Severity::warning) != nullptr);
  c.smtp.srs = false;
  CHECK(find(check_config(c), "srs_domain", Severity::warning) == nullptr);
  auto r = parse_config_texts("/h", {{"smtpenv.dat", "srs=1\nsrs_domain=srs.example.org\nsrs_max_age=30\n"}});
  REQUIRE(r.ok());
  CHECK(r.config->smtp.srs);
  CHECK(r.config->smtp.srs_domain == "srs.example.org");
  CHECK(r.config->smtp.srs_max_age == 30);
  CHECK_FALSE(parse_config_texts("/h", {{"smtpenv.dat", "srs_max_age=1024\n"}}).ok());
  CHECK_FALSE(parse_config_texts("/h", {{"smtpenv.dat", "srs_max_age=0\n"}}).ok());
}

TEST_CASE("check_config: milter addresses and the default action") {
  Config c = setup_config("127.0.0.1");
  c.smtp.smtpd_milters = {"inet:127.0.0.1:11332", "unix:/run/opendkim/opendkim.sock", "inet:[::1]:8891"};
  c.smtp.non_smtpd_milters = {"local:/run/x.sock"};
  CHECK(find(check_config(c), "smtpd_milters", Severity::error) == nullptr);
  CHECK(find(check_config(c), "non_smtpd_milters", Severity::error) == nullptr);
  CHECK(find(check_config(c), "milter_default_action", Severity::error) == nullptr);
  for (const char* bad : {"127.0.0.1:11332", "inet:host", "inet:h:0", "inet:h:99999", "unix:relative", "tcp:h:1"}) {
    CAPTURE(bad);
    c.smtp.smtpd_milters = {bad};
    CHECK(find(check_config(c), "smtpd_milters", Severity::error) != nullptr);
  }
  c.smtp.non_smtpd_milters = {"inet:"};
  CHECK(find(check_config(c), "non_smtpd_milters", Severity::error) != nullptr);
  c.smtp.milter_default_action = "quarantine";
  CHECK(find(check_config(c), "milter_default_action", Severity::error) != nullptr);
}
