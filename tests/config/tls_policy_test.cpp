// Outbound TLS policy: the levels, def/tls_policy.def (good and bad lines,
// file:line errors), the look-up (exact domain, .subdomains, the default)
// and the file loaded with the home's other def files.
#include <doctest/doctest.h>

#include "helpers.hpp"
#include "wizmail/config.hpp"

using namespace wizmail;
using Severity = ConfigDiagnostic::Severity;
namespace fs = std::filesystem;

namespace {

const std::string kPath = "/h/def/tls_policy.def";

TlsPolicyTable parse(std::string_view text, std::vector<ConfigDiagnostic>& diags) {
  return TlsPolicyTable::parse(text, kPath, diags);
}

}  // namespace

TEST_CASE("TLS levels: the four words, any case; nothing else") {
  CHECK(parse_tls_level("none") == TlsLevel::none);
  CHECK(parse_tls_level("may") == TlsLevel::may);
  CHECK(parse_tls_level("ENCRYPT") == TlsLevel::encrypt);
  CHECK(parse_tls_level("Verify") == TlsLevel::verify);
  for (auto bad : {"", "secure", "dane", "mayx", " may", "verify "}) CHECK_FALSE(parse_tls_level(bad));
  for (auto l : {TlsLevel::none, TlsLevel::may, TlsLevel::encrypt, TlsLevel::verify})
    CHECK(parse_tls_level(to_string(l)) == l);
}

TEST_CASE("tls_policy.def: comments, blanks, tabs, CRLF, BOM, U-labels") {
  std::vector<ConfigDiagnostic> diags;
  auto t = parse("\xEF\xBB\xBF# outbound TLS\n"
                 "\n"
                 "example.com\tverify\r\n"
                 "   .example.com   encrypt   # its subdomains\n"
                 "Plain.Example.NET none\n"
                 "b\xC3\xBC" "ro.test may\n"
                 "[192.0.2.1] encrypt\n",
                 diags);
  CHECK(diags.empty());
  REQUIRE(t.rules().size() == 5);
  CHECK(t.rules()[0].domain == "example.com");
  CHECK_FALSE(t.rules()[0].subdomains);
  CHECK(t.rules()[0].line == 3);
  CHECK(t.rules()[1].subdomains);
  CHECK(t.rules()[1].level == TlsLevel::encrypt);
  CHECK(t.rules()[2].domain == "plain.example.net");
  CHECK(t.rules()[3].domain == "xn--bro-hoa.test");
  CHECK(t.rules()[4].domain == "[192.0.2.1]");
}

TEST_CASE("tls_policy.def look-up: exact domain, nearest .parent, else nothing") {
  std::vector<ConfigDiagnostic> diags;
  auto t = parse("example.com verify\n"
                 ".example.com encrypt\n"
                 ".deep.example.com none\n"
                 "other.test may\n"
                 "[192.0.2.1] encrypt\n",
                 diags);
  REQUIRE(diags.empty());
  CHECK(t.find("example.com") == TlsLevel::verify);     // the domain itself
  CHECK(t.find("EXAMPLE.COM.") == TlsLevel::verify);    // any case, root dot
  CHECK(t.find("mx.example.com") == TlsLevel::encrypt);  // a subdomain
  CHECK(t.find("a.b.example.com") == TlsLevel::encrypt);
  CHECK(t.find("x.deep.example.com") == TlsLevel::none);  // the nearest parent wins
  CHECK(t.find("deep.example.com") == TlsLevel::encrypt);  // .deep… is for its subdomains only
  CHECK(t.find("other.test") == TlsLevel::may);
  CHECK_FALSE(t.find("sub.other.test"));  // no ".other.test" entry
  CHECK_FALSE(t.find("example.org"));
  CHECK_FALSE(t.find("notexample.com"));  // not a subdomain: a suffix of the text only
  CHECK_FALSE(t.find("com"));
  CHECK_FALSE(t.find(""));
  CHECK(t.find("[192.0.2.1]") == TlsLevel::encrypt);
  CHECK(t.find("b\xC3\xBCro.example.com") == TlsLevel::encrypt);  // U-label looked up as A-label

  // The configured default for everything else; the table comes first.
  Config c;
  c.tls_policy = t;
  CHECK(c.tls_level_for("example.org") == TlsLevel::may);
  c.smtp.smtp_tls_security_level = "verify";
  CHECK(c.tls_level_for("example.org") == TlsLevel::verify);
  CHECK(c.tls_level_for("x.deep.example.com") == TlsLevel::none);
  c.smtp.smtp_tls_security_level = "none";
  CHECK(c.tls_level_for("example.com") == TlsLevel::verify);
  CHECK(c.tls_level_for("") == TlsLevel::none);
}

TEST_CASE("tls_policy.def: bad lines are errors naming file and line; good lines stay") {
  struct Bad {
    std::string line;
    std::string says;
  };
  const Bad bad[] = {
      {"example.com", "expected 'destination level', got 1 field"},
      {"example.com verify extra", "got 3 fields"},
      {"example.com secure", "'secure' is not a TLS level"},
      {"example.com dane", "is not a TLS level"},
      {"example.com 1", "is not a TLS level"},
      {"bad..domain verify", "is not a domain name"},
      {"-x.example verify", "is not a domain name"},
      {"a@b.example verify", "is not a domain name"},
      {". verify", "is not a domain name"},
      {".[192.0.2.1] verify", "is not a domain name"},
      {"exa mple.com,verify may", "got 3 fields"},
      {"ok.example=verify", "got 1 field"},
  };
  for (const auto& b : bad) {
    CAPTURE(b.line);
    std::vector<ConfigDiagnostic> diags;
    auto t = parse("# head\ngood.example encrypt\n" + b.line + "\n.good.example verify\n", diags);
    REQUIRE(diags.size() == 1);
    CHECK(diags[0].severity == Severity::error);
    CHECK(diags[0].file == kPath);
    CHECK(diags[0].line == 3);
    CHECK(diags[0].message.find(b.says) != std::string::npos);
    CHECK(diags[0].to_string().starts_with(kPath + ":3: "));
    CHECK(t.rules().size() == 2);  // the good lines around it
  }
  SUBCASE("a destination given twice") {
    std::vector<ConfigDiagnostic> diags;
    auto t = parse("a.example verify\n.a.example may\nA.Example. none\n", diags);
    REQUIRE(diags.size() == 1);
    CHECK(diags[0].line == 3);
    CHECK(diags[0].message.find("already given on line 1") != std::string::npos);
    CHECK(t.find("a.example") == TlsLevel::verify);
  }
}

TEST_CASE("tls_policy.def is read with the home: a bad line fails the load, the level key is checked") {
  auto r = parse_config_texts("/h", {{"tls_policy.def", "example.com verify\nexample.net sometimes\n"}});
  CHECK_FALSE(r.ok());
  REQUIRE(r.diagnostics.size() == 1);
  CHECK(r.diagnostics[0].to_string().starts_with("/h/def/tls_policy.def:2: "));

  auto good = parse_config_texts("/h", {{"tls_policy.def", "example.com verify\n"},
                                       {"smtpenv.dat", "smtp_tls_security_level=ENCRYPT\n"}});
  REQUIRE(good.ok());
  CHECK(good.config->smtp.smtp_tls_security_level == "encrypt");
  CHECK(good.config->tls_level_for("example.com") == TlsLevel::verify);
  CHECK(good.config->tls_level_for("example.org") == TlsLevel::encrypt);

  auto bad_key = parse_config_texts("/h", {{"smtpenv.dat", "smtp_tls_security_level=secure\n"}});
  CHECK_FALSE(bad_key.ok());
  REQUIRE(!bad_key.diagnostics.empty());
  CHECK(bad_key.diagnostics[0].message.find("none, may, encrypt or verify") != std::string::npos);

  // No file: the default level everywhere.
  auto none = parse_config_texts("/h", {});
  REQUIRE(none.ok());
  CHECK(none.config->tls_policy.empty());
  CHECK(none.config->tls_level_for("example.com") == TlsLevel::may);
}

TEST_CASE("config check: the verify level needs a readable smtp_tls_ca_file") {
  auto r = parse_config_texts("/h", {{"tls_policy.def", "example.com verify\n"},
                                    {"smtpenv.dat", "smtp_tls_ca_file=/nonexistent/ca.pem\n"}});
  REQUIRE(r.ok());
  auto diags = check_config(*r.config);
  bool found = false;
  for (const auto& d : diags)
    if (d.key == "smtp_tls_ca_file" && d.severity == Severity::error) found = true;
  CHECK(found);
  auto may = parse_config_texts("/h", {{"smtpenv.dat", "smtp_tls_ca_file=/nonexistent/ca.pem\n"}});
  REQUIRE(may.ok());
  for (const auto& d : check_config(*may.config)) CHECK(d.key != "smtp_tls_ca_file");
}
