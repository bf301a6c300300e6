// The public header first: it must be self-contained.
#include "wizmail/config.hpp"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <map>

#include "config/parser.hpp"
#include "config/table.hpp"
#include "helpers.hpp"

using namespace wizmail;
using config::Key;
using config::Type;
using Severity = ConfigDiagnostic::Severity;
using cfgtest::TempDir;
namespace fs = std::filesystem;

namespace {

const fs::path kHome = "/h";

ConfigLoad parse_one(std::string_view file, std::string text) {
  return parse_config_texts(kHome, {{std::string(file), std::move(text)}});
}

std::vector<ConfigDiagnostic> errors_of(const ConfigLoad& r) {
  std::vector<ConfigDiagnostic> out;
  for (const auto& d : r.diagnostics)
    if (d.severity == Severity::error) out.push_back(d);
  return out;
}

std::string path_of(const Key& k) { return "/h/def/" + std::string(config::file_name(k.file)); }

// Values each type must refuse.
std::vector<std::string> bad_values(const Key& k) {
  std::vector<std::string> out;
  switch (k.type) {
    case Type::integer:
      out = {"abc", "12x", "1.5", "+3", "0x10", "99999999999999999999999"};
      if (k.min > INT_MIN && k.min > std::numeric_limits<std::int64_t>::min())
        out.push_back(std::to_string(k.min - 1));
      if (k.max < INT_MAX) out.push_back(std::to_string(k.max + 1));
      break;
    case Type::bytes:
      out = {"abc", "10Q", "1.5M", "M", "99999999999999999999G"};
      if (k.min > std::numeric_limits<std::int64_t>::min()) out.push_back(std::to_string(k.min - 1));
      if (k.max < std::numeric_limits<std::int64_t>::max()) out.push_back(std::to_string(k.max + 1));
      break;
    case Type::boolean: out = {"2", "yes", "-1", "on", "TRUEx"}; break;
    case Type::hostname: out = {"bad host", "a..b", "-x.example", "x-.example", "a@b", "ex\xc3\xa4mple.org"}; break;
    case Type::path: out = {"relative/path", "mailbox"}; break;
    case Type::user: out = {"Root!", "9abc", "a b", std::string(40, 'a')}; break;
    case Type::domain_list: out = {"ok.example,bad domain", "a..b", "x,-y.example"}; break;
    case Type::address_list: out = {"noatsign", "a@", "@b.example", "a b@c.example", "x@bad domain"}; break;
    case Type::ip_list: out = {"1.2.3.999", "example.com", "127.0.0.1/8", "111.222.333.4444"}; break;
    case Type::cidr_list: out = {"10.0.0.0/33", "::1/129", "1.2.3.4/x", "1.2.3", "10.0.0.0/", "example.com"}; break;
    case Type::host_port: out = {"host:0", "host:70000", "[::1", "bad host", "host:x", "[::1]x"}; break;
    case Type::ip_port_list: out = {"example.com", "1.2.3.4:0", "1.2.3.4:99999", "[::1]:", "1.2.3.4:53,x"}; break;
    case Type::choice: out = {"maybe", "verify,encrypt", "may be", "MAYx", "0"}; break;
    case Type::text: break;  // any UTF-8 text is fine; encoding is tested below
    case Type::text_list:
      // Items checked by the key (dnsbl_sites): its bad syntax.
      if (k.check_item)
        out = {"zen.example*0", "zen.example*x", "bl.example=127.0.0", "*2", "ok.example bad..zone",
               "ok.example,=127.0.0.2"};
      break;
  }
  return out;
}

}  // namespace

TEST_CASE("the table's defaults are the Config struct's defaults") {
  Config c;
  for (const Key& k : config::keys()) {
    CAPTURE(k.name);
    CHECK(config::format_value(k, k.field.get(c)) == config::format_value(k, config::default_of(k)));
    CHECK(!k.doc.empty());
    CHECK(!k.example.empty());
    if (!k.default_value.empty()) CHECK(config::parse_value(k, k.default_value).has_value());
  }
}

TEST_CASE("every key of the manual and of SPEC §2 is in the table, in its file") {
  const std::map<std::string, std::vector<std::string>> spec = {
      {"smtpenv.dat",
       {"port", "submission_port", "smtps_port", "bind_address", "subhost", "relay",
        "pop_before_smtp", "pop_befor_smtp_time_to_live", "use_dustbox", "address_permits_relay",
        "resend_timeout", "resend_scan_interval", "send_permits_only_smtp_auth", "multiprocessing",
        "multiprocessing_exempt", "send_max_during_a_day", "reject_domain", "reject_mailaddress",
        "reject_mailaddres", "max_mail_size", "queue_minfree", "max_recipients", "auth_requires_tls", "smart_host",
        "dns_servers", "smtp_tls_security_level", "smtp_tls_ca_file", "outbound_port", "outbound_max_connections", "outbound_max_per_destination", "session_timeout", "junk_command_limit", "greet_wait",
        "greet_wait_exempt", "greet_pass_ttl", "host", "delay_warning_time", "bounce_size_limit",
        "client_connection_limit", "command_deadline", "data_min_rate", "auth_penalty_delay",
        "auth_penalty_max_delay", "auth_concurrency_limit", "auth_block_failures", "auth_block_time",
        "srs", "srs_domain", "srs_max_age", "spf_check", "spf_reject_fail", "dkim_verify", "dmarc_check",
        "dmarc_reject", "dmarc_reject_exempt", "mail_auth_temperror_defer", "authserv_id", "mail_auth_exempt",
        "smtpd_milters", "non_smtpd_milters", "milter_default_action",
        "milter_connect_timeout", "milter_command_timeout", "milter_content_timeout", "dnsbl_sites",
        "dnsbl_threshold", "dnsbl_exempt", "dnsbl_action"}},
      {"popenv.dat", {"host", "port", "pop3s_port", "uidl_interval", "dustbox"}},
      {"wiz98msenv.dat",
       {"domain", "alias", "log_size_max", "mailing_list_from_kind", "mailing_list_to_kind",
        "mailing_list_mail_header_x_element", "mailing_list_public_level",
        "mailing_list_subject_header", "mailing_list_filter_string", "mailbox_capacity_mail_count",
        "mailbox_capacity_mail_size", "application_cooperation_wait_for_apl_end",
        "application_cooperation_timeout", "mailbox_path", "dustbox_path", "time_out_of_stop",
        "tls_cert_file", "tls_key_file", "dustbox_keep_days", "run_as_user", "metrics_port",
        "proxy_trusted_networks", "redis_url", "redis_lease_seconds", "cluster_heartbeat_seconds", "cluster_takeover_seconds", "admin_port", "admin_bind_address", "admin_tls", "admin_accounts"}}};
  std::size_t total = 0;
  for (const auto& [file, names] : spec) {
    config::DefFile f;
    REQUIRE(config::file_from_name(file, f));
    for (const auto& n : names) {
      CAPTURE(n);
      CHECK(config::find_key(f, n) != nullptr);
      if (n != "reject_mailaddres") ++total;
    }
  }
  CHECK(config::keys().size() == total);
}

TEST_CASE("every key: a good value, the empty value, and every bad value") {
  for (const Key& k : config::keys()) {
    CAPTURE(k.name);
    CAPTURE(config::file_name(k.file));
    const std::string file(config::file_name(k.file));

    // A good value (the table's example) is taken and differs from the default.
    auto good = parse_one(file, std::string(k.name) + "=" + std::string(k.example) + "\n");
    REQUIRE(good.ok());
    auto want = config::parse_value(k, k.example);
    REQUIRE(want.has_value());
    std::string got = config::format_value(k, k.field.get(*good.config));
    CHECK(got == config::format_value(k, *want));
    CHECK(got != config::format_value(k, config::default_of(k)));

    // key= (empty) leaves the default, with no diagnostic other than obsolescence.
    auto empty = parse_one(file, std::string(k.name) + "=  \n");
    REQUIRE(empty.ok());
    CHECK(config::format_value(k, k.field.get(*empty.config)) ==
          config::format_value(k, config::default_of(k)));
    CHECK(empty.diagnostics.size() == (k.obsolete ? 1u : 0u));

    // Bad values: an error naming file, line and key; no config.
    for (const auto& bad : bad_values(k)) {
      CAPTURE(bad);
      auto r = parse_one(file, "# comment\n" + std::string(k.name) + "=" + bad + "\n");
      CHECK_FALSE(r.ok());
      auto errs = errors_of(r);
      REQUIRE(errs.size() == 1);
      CHECK(errs[0].file == path_of(k));
      CHECK(errs[0].line == 2);
      CHECK(errs[0].key == k.name);
      CHECK(errs[0].to_string().starts_with(path_of(k) + ":2: " + std::string(k.name) + ": "));
    }

    // Range bounds are accepted.
    if (k.type == Type::integer || k.type == Type::bytes) {
      for (auto v : {k.min, k.max}) {
        auto r = parse_one(file, std::string(k.name) + "=" + std::to_string(v));
        REQUIRE(r.ok());
        CHECK(std::get<std::int64_t>(k.field.get(*r.config)) == v);
      }
    }
  }
}

TEST_CASE("numbers: messages say what was wrong") {
  auto r = parse_one("smtpenv.dat", "port=70000\nmultiprocessing=abc\n");
  auto e = errors_of(r);
  REQUIRE(e.size() == 2);
  CHECK(e[0].to_string() == "/h/def/smtpenv.dat:1: port: 70000 is out of range (allowed: 1–65535)");
  CHECK(e[1].to_string() == "/h/def/smtpenv.dat:2: multiprocessing: 'abc' is not a whole number");
}

TEST_CASE("byte sizes take K/M/G suffixes") {
  auto r = parse_one("smtpenv.dat", "max_mail_size=10M\n");
  REQUIRE(r.ok());
  CHECK(r.config->smtp.max_mail_size == 10 * 1024 * 1024);
  r = parse_one("wiz98msenv.dat", "log_size_max=64k\nmailbox_capacity_mail_size=2G\n");
  REQUIRE(r.ok());
  CHECK(r.config->server.log_size_max == 64 * 1024);
  CHECK(r.config->server.mailbox_capacity_mail_size == 2LL * 1024 * 1024 * 1024);
}

TEST_CASE("booleans: 0/1 and TRUE/FALSE in any case, as popenv dustbox uses") {
  for (auto [text, want] : {std::pair{"1", true}, {"0", false}, {"TRUE", true}, {"false", false},
                            {"True", true}, {"FaLsE", false}}) {
    CAPTURE(text);
    auto r = parse_one("popenv.dat", std::string("dustbox=") + text);
    REQUIRE(r.ok());
    CHECK(r.config->pop.dustbox == want);
    r = parse_one("smtpenv.dat", std::string("relay=") + text);
    REQUIRE(r.ok());
    CHECK(r.config->smtp.relay == want);
  }
}

TEST_CASE("lists are comma-separated and trimmed; IPv6 and CIDRs validate") {
  auto r = parse_one("smtpenv.dat",
                     "address_permits_relay = 127.0.0.1 , 192.0.2.0/24,2001:db8::/32,::1\n"
                     "bind_address=::1,127.0.0.1\n"
                     "dns_servers=192.0.2.53:5353,[2001:db8::1]:53,2001:db8::2\n"
                     "smart_host=[2001:db8::25]:587\n");
  REQUIRE(r.ok());
  CHECK(r.config->smtp.address_permits_relay ==
        std::vector<std::string>{"127.0.0.1", "192.0.2.0/24", "2001:db8::/32", "::1"});
  CHECK(r.config->smtp.bind_address == std::vector<std::string>{"::1", "127.0.0.1"});
  CHECK(r.config->smtp.dns_servers.size() == 3);
  CHECK(r.config->smtp.smart_host == "[2001:db8::25]:587");
}

TEST_CASE("dnsbl_sites: postscreen syntax, commas or blanks, each item checked") {
  auto r = parse_one("smtpenv.dat",
                     "dnsbl_sites = zen.spamhaus.org*2, bl.example=127.0.0.[2..11]*3 \t"
                     "list.dnswl.org=127.0.[0..255].[1..3]*-2\ndnsbl_threshold=3\ndnsbl_exempt=none\n");
  REQUIRE(r.ok());
  CHECK(r.config->smtp.dnsbl_sites == std::vector<std::string>{"zen.spamhaus.org*2", "bl.example=127.0.0.[2..11]*3",
                                                                "list.dnswl.org=127.0.[0..255].[1..3]*-2"});
  CHECK(r.config->smtp.dnsbl_threshold == 3);
  CHECK(r.config->smtp.dnsbl_exempt.empty());
  r = parse_one("smtpenv.dat", "dnsbl_sites=zen.spamhaus.org bl.example*0\n");
  auto e = errors_of(r);
  REQUIRE(e.size() == 1);
  CHECK(e[0].to_string() ==
        "/h/def/smtpenv.dat:1: dnsbl_sites: 'bl.example*0': a weight of 0 does nothing (positive: block list, "
        "negative: allow list)");
  r = parse_one("smtpenv.dat", "dnsbl_threshold=0\n");
  CHECK_FALSE(r.ok());
  CHECK(parse_one("smtpenv.dat", "").config->smtp.dnsbl_action == "enforce");
  r = parse_one("smtpenv.dat", "dnsbl_action=drop\n");
  REQUIRE(r.ok());
  CHECK(r.config->smtp.dnsbl_action == "drop");
  r = parse_one("smtpenv.dat", "dnsbl_action=reject\n");
  e = errors_of(r);
  REQUIRE(e.size() == 1);
  CHECK(e[0].to_string().find("dnsbl_action") != std::string::npos);
  CHECK(e[0].to_string().find("enforce, drop or ignore") != std::string::npos);
}

TEST_CASE("the manual's spellings and synonyms") {
  auto r = parse_one("smtpenv.dat",
                     "pop_befor_smtp_time_to_live=45\nreject_mailaddres=news@localhost,dm@localhost\n");
  REQUIRE(r.ok());
  CHECK(r.diagnostics.empty());
  CHECK(r.config->smtp.pop_befor_smtp_time_to_live == 45);
  CHECK(r.config->smtp.reject_mailaddress ==
        std::vector<std::string>{"news@localhost", "dm@localhost"});
  r = parse_one("smtpenv.dat", "pop_before_smtp_time_to_live=46\n");
  REQUIRE(r.ok());
  CHECK(r.config->smtp.pop_befor_smtp_time_to_live == 46);
}

TEST_CASE("duplicate keys are errors, also through a synonym or another case") {
  auto r = parse_one("smtpenv.dat", "port=25\nrelay=0\nport=26\n");
  auto e = errors_of(r);
  REQUIRE(e.size() == 1);
  CHECK(e[0].to_string() == "/h/def/smtpenv.dat:3: port: duplicate key (first set on line 1)");
  r = parse_one("smtpenv.dat", "reject_mailaddress=a@b.example\nreject_mailaddres=c@d.example\n");
  CHECK(errors_of(r).size() == 1);
  r = parse_one("smtpenv.dat", "port=\nPORT=26\n");
  CHECK(errors_of(r).size() == 1);
}

TEST_CASE("unknown keys warn with the nearest key and do not fail") {
  auto r = parse_one("smtpenv.dat", "prot=25\nrelay=0\n");
  REQUIRE(r.ok());
  REQUIRE(r.config->warnings.size() == 1);
  CHECK(r.config->warnings[0].severity == Severity::warning);
  CHECK(r.config->warnings[0].to_string() ==
        "/h/def/smtpenv.dat:1: prot: unknown key 'prot'; did you mean 'port'?");
  r = parse_one("smtpenv.dat", "pop_befor_smtp_time_to_liv=5\n");
  REQUIRE(r.ok());
  CHECK(r.config->warnings[0].message ==
        "unknown key 'pop_befor_smtp_time_to_liv'; did you mean 'pop_befor_smtp_time_to_live'?");
  // A key of another file says where it belongs.
  r = parse_one("smtpenv.dat", "domain=example.org\n");
  REQUIRE(r.ok());
  CHECK(r.config->server.domain == "localhost");
  CHECK(r.config->warnings[0].message.find("belongs in wiz98msenv.dat") != std::string::npos);
  // Nothing near: just unknown.
  r = parse_one("popenv.dat", "completely_unrelated_setting=1\n");
  REQUIRE(r.ok());
  CHECK(r.config->warnings[0].message == "unknown key 'completely_unrelated_setting' (ignored)");
}

TEST_CASE("the obsolete smtpenv host is accepted with a warning and becomes a local domain") {
  auto r = parse_config_texts(kHome, {{"smtpenv.dat", "host=Mail.Example.ORG\nsubhost=x.example\n"},
                                      {"wiz98msenv.dat", "domain=example.org\nalias=example.com,EXAMPLE.org\n"}});
  REQUIRE(r.ok());
  REQUIRE(r.config->warnings.size() == 1);
  CHECK(r.config->warnings[0].key == "host");
  CHECK(r.config->warnings[0].message.find("obsolete") != std::string::npos);
  CHECK(r.config->local_domains() ==
        std::vector<std::string>{"example.org", "example.com", "x.example", "mail.example.org"});
}

TEST_CASE("comments, blank lines, spaces, case, CRLF and a BOM") {
  auto r = parse_one("smtpenv.dat",
                     "\xef\xbb\xbf# a comment\r\n"
                     "// another comment\r\n"
                     "   # indented comment\r\n"
                     "\r\n"
                     "  PORT   =   2525   \r\n"
                     "\t relay\t=\t1\r\n");
  REQUIRE(r.ok());
  CHECK(r.diagnostics.empty());
  CHECK(r.config->smtp.port == 2525);
  CHECK(r.config->smtp.relay);
  // '#' inside a value is part of it (no inline comments).
  r = parse_one("wiz98msenv.dat", "mailing_list_filter_string=a#b,未承諾広告 ,c//d\n");
  REQUIRE(r.ok());
  CHECK(r.config->server.mailing_list_filter_string ==
        std::vector<std::string>{"a#b", "未承諾広告", "c//d"});
  // CRLF keeps line numbers right.
  r = parse_one("smtpenv.dat", "port=25\r\nrelay=7\r\n");
  REQUIRE(errors_of(r).size() == 1);
  CHECK(errors_of(r)[0].line == 2);
  // No final newline.
  r = parse_one("smtpenv.dat", "port=2526");
  REQUIRE(r.ok());
  CHECK(r.config->smtp.port == 2526);
}

TEST_CASE("syntax errors: no '=', no key, bad key characters") {
  auto r = parse_one("smtpenv.dat", "port 25\n=5\nmy key=1\nok=\n");
  auto e = errors_of(r);
  REQUIRE(e.size() == 3);
  CHECK(e[0].line == 1);
  CHECK(e[0].message.find("expected key=value") != std::string::npos);
  CHECK(e[1].line == 2);
  CHECK(e[1].message == "missing key before '='");
  CHECK(e[2].line == 3);
  CHECK(e[2].message.find("invalid key name") != std::string::npos);
}

TEST_CASE("binary junk, NUL bytes and invalid UTF-8 are clear errors") {
  SUBCASE("NUL") {
    auto r = parse_one("smtpenv.dat", std::string("port=25\nrel\0ay=1\n\0\0\0", 18));
    auto e = errors_of(r);
    REQUIRE(e.size() == 1);
    CHECK(e[0].line == 2);
    CHECK(e[0].message == "NUL byte: this is not a text file");
  }
  SUBCASE("invalid UTF-8, overlong forms, surrogates") {
    for (std::string bad : std::vector<std::string>{"\xff\xfe", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe3\x81",
                            "\x80"}) {
      CAPTURE(bad);
      auto r = parse_one("wiz98msenv.dat", "domain=example.org\nmailing_list_filter_string=a" + bad + "\n");
      auto e = errors_of(r);
      REQUIRE(e.size() == 1);
      CHECK(e[0].line == 2);
      CHECK(e[0].message.find("invalid UTF-8") != std::string::npos);
    }
  }
  SUBCASE("control characters") {
    auto r = parse_one("smtpenv.dat", "port=2\x01" "5\nrelay=\x1b[0m\n");
    CHECK(errors_of(r).size() == 2);
    CHECK(errors_of(r)[0].message.find("control character 0x01") != std::string::npos);
  }
  SUBCASE("a binary file stops at a bounded number of errors") {
    std::string junk;
    for (int i = 0; i < 5000; ++i) junk += static_cast<char>(0x80 + (i * 7) % 0x7f), junk += (i % 50 ? "" : "\n");
    auto r = parse_one("smtpenv.dat", junk);
    CHECK_FALSE(r.ok());
    CHECK(r.diagnostics.size() <= static_cast<std::size_t>(config::kMaxErrors) + 1);
    CHECK(r.diagnostics.back().message.find("too many errors") != std::string::npos);
  }
  SUBCASE("valid multi-byte UTF-8 passes") {
    CHECK(util::utf8_sequence_length("\xe3\x81\x82") == 3);
    CHECK(util::utf8_sequence_length("\xf0\x9f\x98\x80") == 4);
    CHECK(util::utf8_sequence_length("\xc3\xa9") == 2);
  }
}

TEST_CASE("load_config: missing files take defaults, errors of all files are collected") {
  TempDir home;
  SUBCASE("no def folder at all") {
    auto c = load_config(home.path);
    REQUIRE(c.has_value());
    CHECK((*c)->smtp.port == 25);
    CHECK((*c)->pop.port == 110);
    CHECK((*c)->mailbox_dir() == home.path / "mailbox");
    CHECK((*c)->dustbox_dir() == home.path / "dustbox");
  }
  SUBCASE("every error of every file, in one message") {
    cfgtest::write(home.path / "def/smtpenv.dat", "port=0\nrelay=maybe\n");
    cfgtest::write(home.path / "def/popenv.dat", "port=x\n");
    cfgtest::write(home.path / "def/wiz98msenv.dat", "mailbox_path=relative\n");
    auto c = load_config(home.path);
    REQUIRE_FALSE(c.has_value());
    const auto& m = c.error().message;
    CHECK(m.find((home.path / "def/smtpenv.dat").string() + ":1: port:") != std::string::npos);
    CHECK(m.find((home.path / "def/smtpenv.dat").string() + ":2: relay:") != std::string::npos);
    CHECK(m.find((home.path / "def/popenv.dat").string() + ":1: port:") != std::string::npos);
    CHECK(m.find((home.path / "def/wiz98msenv.dat").string() + ":1: mailbox_path:") != std::string::npos);
    CHECK(std::count(m.begin(), m.end(), '\n') == 3);
  }
  SUBCASE("a directory where a file should be") {
    fs::create_directories(home.path / "def/popenv.dat");
    auto r = load_config_report(home.path);
    CHECK_FALSE(r.ok());
    REQUIRE(r.diagnostics.size() == 1);
    CHECK(r.diagnostics[0].file == (home.path / "def/popenv.dat").string());
    CHECK(r.diagnostics[0].message.find("directory") != std::string::npos);
  }
  SUBCASE("permission denied") {
    cfgtest::write(home.path / "def/smtpenv.dat", "port=25\n");
    REQUIRE(::chmod((home.path / "def/smtpenv.dat").c_str(), 0) == 0);
    if (::geteuid() == 0) {
      // root reads anything; the directory case above covers unreadable files.
      CHECK(load_config(home.path).has_value());
    } else {
      auto c = load_config(home.path);
      REQUIRE_FALSE(c.has_value());
      CHECK(c.error().message.find("Permission denied") != std::string::npos);
    }
  }
  SUBCASE("a huge file") {
    cfgtest::write(home.path / "def/smtpenv.dat", std::string(config::kMaxDefFileSize + 10, '#'));
    auto c = load_config(home.path);
    REQUIRE_FALSE(c.has_value());
    CHECK(c.error().message.find("too large") != std::string::npos);
  }
  SUBCASE("a missing home") {
    auto c = load_config(home.path / "nope");
    REQUIRE_FALSE(c.has_value());
    CHECK(c.error().message.find("does not exist") != std::string::npos);
  }
  SUBCASE("mailbox_path and dustbox_path move the folders") {
    cfgtest::write(home.path / "def/wiz98msenv.dat", "mailbox_path=/srv/mb\ndustbox_path=/srv/db\n");
    auto c = load_config(home.path);
    REQUIRE(c.has_value());
    CHECK((*c)->mailbox_dir() == "/srv/mb");
    CHECK((*c)->dustbox_dir() == "/srv/db");
  }
}

TEST_CASE("per-account config.def overrides") {
  TempDir home;
  cfgtest::write(home.path / "def/smtpenv.dat", "send_max_during_a_day=5\nuse_dustbox=1\n");
  cfgtest::write(home.path / "def/wiz98msenv.dat", "mailing_list_from_kind=1\n");
  auto c = load_config(home.path);
  REQUIRE(c.has_value());

  SUBCASE("no config.def: the server's values") {
    auto a = (*c)->account_settings("alice");
    REQUIRE(a.has_value());
    CHECK(a->send_max_during_a_day == 5);
    CHECK(a->use_dustbox);
    CHECK(a->mailing_list_from_kind == 1);
  }
  SUBCASE("the manual's example") {
    cfgtest::write(home.path / "mailbox/ml/config.def",
                   "mailing_list_from_kind=2\nmailing_list_mail_header_x_element=1\n"
                   "send_max_during_a_day=100\nreject_domain=aaa.com\n"
                   "reject_mailaddress=bbb@ccc.com\nuse_dustbox=0\nmailing_list_to_kind=\n");
    auto a = (*c)->account_settings("ml");
    REQUIRE(a.has_value());
    CHECK(a->mailing_list_from_kind == 2);
    CHECK(a->mailing_list_mail_header_x_element == 1);
    CHECK(a->send_max_during_a_day == 100);
    CHECK(a->reject_domain == std::vector<std::string>{"aaa.com"});
    CHECK(a->reject_mailaddress == std::vector<std::string>{"bbb@ccc.com"});
    CHECK_FALSE(a->use_dustbox);
    CHECK(a->mailing_list_to_kind == 0);
    CHECK(a->warnings.empty());
  }
  SUBCASE("a key that may not be overridden is an error naming the file") {
    cfgtest::write(home.path / "mailbox/bob/config.def", "use_dustbox=1\nport=2525\n");
    auto a = (*c)->account_settings("bob");
    REQUIRE_FALSE(a.has_value());
    CHECK(a.error().message ==
          (home.path / "mailbox/bob/config.def").string() +
              ":2: port: may not be set per account (only in def/smtpenv.dat)");
  }
  SUBCASE("bad values, duplicates and unknown keys") {
    cfgtest::write(home.path / "mailbox/bob/config.def",
                   "send_max_during_a_day=lots\nuse_dustbox=1\nuse_dustbox=0\nreject_domian=x.example\n");
    auto a = (*c)->account_settings("bob");
    REQUIRE_FALSE(a.has_value());
    CHECK(a.error().message.find(":1: send_max_during_a_day:") != std::string::npos);
    CHECK(a.error().message.find(":3: use_dustbox: duplicate key") != std::string::npos);
    auto t = (*c)->account_settings_from_text("reject_domian=x.example\n", "cfg");
    REQUIRE(t.has_value());
    REQUIRE(t->warnings.size() == 1);
    CHECK(t->warnings[0].message == "unknown key 'reject_domian'; did you mean 'reject_domain'?");
  }
  SUBCASE("every overridable key, good and bad") {
    for (const Key& k : config::keys()) {
      CAPTURE(k.name);
      auto r = (*c)->account_settings_from_text(std::string(k.name) + "=" + std::string(k.example), "cfg");
      if (!k.account_override) {
        CHECK_FALSE(r.has_value());
        continue;
      }
      CHECK(r.has_value());
      for (const auto& bad : bad_values(k)) {
        CAPTURE(bad);
        CHECK_FALSE((*c)->account_settings_from_text(std::string(k.name) + "=" + bad, "cfg").has_value());
      }
    }
  }
  SUBCASE("exactly SPEC's overridable keys") {
    std::vector<std::string> want = {
        "use_dustbox", "send_max_during_a_day", "reject_domain", "reject_mailaddress",
        "mailing_list_from_kind", "mailing_list_to_kind", "mailing_list_mail_header_x_element",
        "mailing_list_public_level", "mailing_list_subject_header", "mailing_list_filter_string",
        "mailbox_capacity_mail_count", "mailbox_capacity_mail_size",
        "application_cooperation_wait_for_apl_end"};
    std::vector<std::string> got;
    for (const Key& k : config::keys())
      if (k.account_override) got.emplace_back(k.name);
    std::sort(want.begin(), want.end());
    std::sort(got.begin(), got.end());
    CHECK(got == want);
  }
  SUBCASE("account names that could escape are refused before any path is built") {
    for (std::string bad : std::vector<std::string>{"../x", "a/b", "", ".hidden", "..", std::string("a\0b", 3)}) {
      CAPTURE(bad);
      auto a = (*c)->account_settings(bad);
      REQUIRE_FALSE(a.has_value());
      CHECK(a.error().code == Errc::invalid_argument);
    }
  }
  SUBCASE("an unreadable config.def is an error") {
    fs::create_directories(home.path / "mailbox/carol/config.def");
    auto a = (*c)->account_settings("carol");
    REQUIRE_FALSE(a.has_value());
    CHECK(a.error().message.find("config.def") != std::string::npos);
  }
}

TEST_CASE("'none' empties a list whose default is not empty, and show prints it back") {
  auto r = parse_one("smtpenv.dat", "multiprocessing_exempt=none\n");
  REQUIRE(r.ok());
  CHECK(r.config->smtp.multiprocessing_exempt.empty());
  const Key* k = config::find_key(config::DefFile::smtpenv, "multiprocessing_exempt");
  REQUIRE(k != nullptr);
  CHECK(config::format_value(*k, k->field.get(*r.config)) == "none");
  // Elsewhere 'none' is just a (bad) value.
  CHECK_FALSE(parse_one("smtpenv.dat", "address_permits_relay=none\n").ok());
  CHECK_FALSE(parse_one("smtpenv.dat", "bind_address=none\n").ok());
}

TEST_CASE("random input never crashes and errors stay bounded") {
  std::uint32_t seed = 12345;
  auto next = [&] {
    seed = seed * 1664525u + 1013904223u;
    return seed >> 8;
  };
  const std::string alphabet = "port=relay1,0#/ \t\r\nab.:[]\xe3\x81\x82\xff\x01";
  for (int round = 0; round < 300; ++round) {
    std::string text;
    std::size_t len = next() % 400;
    for (std::size_t i = 0; i < len; ++i) text += alphabet[next() % alphabet.size()];
    for (const auto& f : def_file_names()) {
      auto r = parse_config_texts(kHome, {{f, text}});
      CHECK(r.diagnostics.size() <= static_cast<std::size_t>(config::kMaxErrors) + 1 + 400);
      CHECK(r.ok() == errors_of(r).empty());
    }
  }
}
