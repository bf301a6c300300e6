// The checker of `wizmail check-dns` (src/mailauth/dns_check.hpp) over fixed
// DNS answers: no sockets. A correct zone first, then each thing that can be
// wrong with it, and DNS time-outs (never a FAIL of the record).
#include "mailauth/dns_check.hpp"

#include <arpa/nameser.h>
#include <doctest/doctest.h>

#include <string>

using namespace wizmail;
using namespace wizmail::mailauth;
using outbound::DnsRecords;

namespace {

const dkim::PrivateKey& rsa_key() {
  static const dkim::PrivateKey k = *dkim::generate_key(dkim::Algorithm::rsa_sha256);
  return k;
}
const dkim::PrivateKey& other_rsa_key() {
  static const dkim::PrivateKey k = *dkim::generate_key(dkim::Algorithm::rsa_sha256);
  return k;
}
const dkim::PrivateKey& ed_key() {
  static const dkim::PrivateKey k = *dkim::generate_key(dkim::Algorithm::ed25519_sha256);
  return k;
}

const Error timeout{Errc::temporary, "DNS: Timeout while contacting DNS servers"};

// example.test as docs/internet.md says to publish it, for mail.example.test
// at 192.0.2.25 and 2001:db8::25.
DnsAnswers good_zone() {
  DnsAnswers d;
  d.set("example.test", ns_t_mx, {"10 mail.example.test"});
  d.set("mail.example.test", ns_t_a, {"192.0.2.25"});
  d.set("mail.example.test", ns_t_aaaa, {"2001:db8::25"});
  d.set("25.2.0.192.in-addr.arpa", ns_t_ptr, {"mail.example.test"});
  d.set(reverse_name(*util::IpAddress::parse("2001:db8::25")), ns_t_ptr, {"mail.example.test"});
  d.set("example.test", ns_t_txt, {"google-site-verification=abc", "v=spf1 mx -all"});
  d.set("mail.example.test", ns_t_txt, {"v=spf1 a -all"});
  d.set("wizmail._domainkey.example.test", ns_t_txt, {dkim::key_record(rsa_key())});
  d.set("wizmail-ed25519._domainkey.example.test", ns_t_txt, {dkim::key_record(ed_key())});
  d.set("_dmarc.example.test", ns_t_txt, {"v=DMARC1; p=reject; rua=mailto:dmarc@example.test"});
  d.set("_mta-sts.example.test", ns_t_txt, {"v=STSv1; id=2026120601"});
  return d;
}

DnsCheckInput good_input() {
  DnsCheckInput in;
  in.domain = "example.test";
  in.host_name = "mail.example.test";
  in.dkim_keys.push_back({"wizmail", "/home/def/dkim/example.test/wizmail.key", true, rsa_key()});
  in.dkim_keys.push_back({"wizmail-ed25519", "/home/def/dkim/example.test/wizmail-ed25519.key", false, ed_key()});
  return in;
}

std::vector<DnsFinding> run(DnsAnswers d, const DnsCheckInput& in = good_input()) { return evaluate_dns(in, d); }

std::string dump(const std::vector<DnsFinding>& f) {
  std::string out;
  for (const auto& x : f)
    out += std::string(to_string(x.level)) + " " + x.check + " " + x.message + (x.temporary ? " [temp]" : "") +
           (x.fix.empty() ? "" : "\n   fix: " + x.fix) + "\n";
  return out;
}

// The findings of one check at one level whose message holds `text`.
std::size_t count(const std::vector<DnsFinding>& f, std::string_view check, DnsCheckLevel level,
                  std::string_view text = {}) {
  std::size_t n = 0;
  for (const auto& x : f)
    if (x.check == check && x.level == level && x.message.find(text) != std::string::npos) ++n;
  return n;
}

std::size_t count_level(const std::vector<DnsFinding>& f, DnsCheckLevel level) {
  std::size_t n = 0;
  for (const auto& x : f) n += x.level == level;
  return n;
}

const DnsFinding* first(const std::vector<DnsFinding>& f, std::string_view check, DnsCheckLevel level) {
  for (const auto& x : f)
    if (x.check == check && x.level == level) return &x;
  return nullptr;
}

using L = DnsCheckLevel;

}  // namespace

TEST_CASE("a correct zone: every check OK, MTA-STS for information") {
  auto f = run(good_zone());
  INFO(dump(f));
  CHECK_FALSE(any_failure(f));
  CHECK(count_level(f, L::warn) == 0);
  CHECK(count(f, "MX", L::ok, "10 mail.example.test → 192.0.2.25, 2001:db8::25 (this server)") == 1);
  CHECK(count(f, "A/AAAA", L::ok, "mail.example.test → 192.0.2.25, 2001:db8::25") == 1);
  CHECK(count(f, "PTR", L::ok, "192.0.2.25 → mail.example.test → 192.0.2.25 (forward-confirmed)") == 1);
  CHECK(count(f, "PTR", L::ok, "2001:db8::25 → mail.example.test") == 1);
  CHECK(count(f, "SPF", L::ok, "\"v=spf1 mx -all\" passes for 192.0.2.25, 2001:db8::25") == 1);
  CHECK(count(f, "SPF (HELO)", L::ok) == 1);
  CHECK(count(f, "DKIM", L::ok, "selector wizmail (in use): wizmail._domainkey.example.test matches") == 1);
  CHECK(count(f, "DKIM", L::ok, "selector wizmail-ed25519 (not in use)") == 1);
  CHECK(count(f, "DMARC", L::ok, "(p=reject)") == 1);
  CHECK(count(f, "MTA-STS", L::info, "well-formed") == 1);
  for (const auto& x : f)
    if (x.level == L::ok) CHECK(x.fix.empty());
  // --address that the name has: the same.
  auto in = good_input();
  in.addresses = {"192.0.2.25", "2001:DB8:0::25"};
  CHECK_FALSE(any_failure(run(good_zone(), in)));
  CHECK(count_level(run(good_zone(), in), L::warn) == 0);
}

TEST_CASE("MX: missing, domain absent, null MX, pointing elsewhere, host without address") {
  {
    auto d = good_zone();
    d.set("example.test", ns_t_mx, Result<DnsRecords>(DnsRecords{DnsRecords::Status::no_data, {}, 0}));
    auto f = run(d);
    INFO(dump(f));
    REQUIRE(count(f, "MX", L::fail, "example.test has no MX record") == 1);
    CHECK(first(f, "MX", L::fail)->fix == "publish `example.test. IN MX 10 mail.example.test.`");
  }
  {
    auto d = good_zone();
    d.set("example.test", ns_t_mx, Result<DnsRecords>(DnsRecords{DnsRecords::Status::nx_domain, {}, 0}));
    CHECK(count(run(d), "MX", L::fail, "does not exist in DNS (NXDOMAIN)") == 1);
  }
  {
    auto d = good_zone();
    d.set("example.test", ns_t_mx, {"0 "});
    CHECK(count(run(d), "MX", L::fail, "null MX") == 1);
  }
  {
    // The only MX is someone else's host.
    auto d = good_zone();
    d.set("example.test", ns_t_mx, {"10 mx.other.test"});
    d.set("mx.other.test", ns_t_a, {"198.51.100.7"});
    auto f = run(d);
    INFO(dump(f));
    CHECK(count(f, "MX", L::fail, "no MX host of example.test points to this server (192.0.2.25, 2001:db8::25): "
                                  "10 mx.other.test → 198.51.100.7") == 1);
    CHECK(count(f, "MX", L::ok) == 0);
    CHECK(any_failure(f));
  }
  {
    // Ours first, a backup elsewhere, a third without an address: OK plus two WARNs.
    auto d = good_zone();
    d.set("example.test", ns_t_mx, {"20 backup.other.test", "10 mail.example.test", "30 gone.example.test"});
    d.set("backup.other.test", ns_t_a, {"198.51.100.8"});
    auto f = run(d);
    INFO(dump(f));
    CHECK(count(f, "MX", L::ok, "10 mail.example.test") == 1);
    CHECK(count(f, "MX", L::warn, "MX hosts pointing elsewhere: 20 backup.other.test → 198.51.100.8") == 1);
    CHECK(count(f, "MX", L::warn, "30 gone.example.test (no A/AAAA record)") == 1);
    CHECK(count(f, "MX", L::fail) == 0);
  }
  {
    // An --address that is not the name's still counts as ours for the MX.
    auto d = good_zone();
    d.set("example.test", ns_t_mx, {"10 mx2.example.test"});
    d.set("mx2.example.test", ns_t_a, {"203.0.113.9"});
    auto in = good_input();
    in.addresses = {"203.0.113.9"};
    auto f = run(d, in);
    INFO(dump(f));
    CHECK(count(f, "MX", L::ok, "10 mx2.example.test → 203.0.113.9") == 1);
    // … but the server's name does not resolve to it: forward-confirmation fails.
    CHECK(count(f, "A/AAAA", L::fail, "not 203.0.113.9") == 1);
  }
}

TEST_CASE("A/AAAA and PTR: forward-confirmed reverse DNS") {
  {
    auto d = good_zone();
    d.set("25.2.0.192.in-addr.arpa", ns_t_ptr, Result<DnsRecords>(DnsRecords{DnsRecords::Status::nx_domain, {}, 0}));
    auto f = run(d);
    INFO(dump(f));
    REQUIRE(count(f, "PTR", L::fail, "192.0.2.25 has no PTR record") == 1);
    CHECK(first(f, "PTR", L::fail)->fix.find("set its PTR to mail.example.test") != std::string::npos);
    CHECK(count(f, "PTR", L::ok, "2001:db8::25") == 1);
  }
  {
    auto d = good_zone();
    d.set("25.2.0.192.in-addr.arpa", ns_t_ptr, {"host-192-0-2-25.provider.test."});
    CHECK(count(run(d), "PTR", L::fail, "PTR of 192.0.2.25 is host-192-0-2-25.provider.test, not mail.example.test") == 1);
  }
  {
    // No name at all: the A/AAAA check fails, and the MX cannot be matched.
    auto d = good_zone();
    d.set("mail.example.test", ns_t_a, Result<DnsRecords>(DnsRecords{DnsRecords::Status::nx_domain, {}, 0}));
    d.set("mail.example.test", ns_t_aaaa, Result<DnsRecords>(DnsRecords{DnsRecords::Status::nx_domain, {}, 0}));
    auto f = run(d);
    INFO(dump(f));
    CHECK(count(f, "A/AAAA", L::fail, "mail.example.test has no A/AAAA record") == 1);
    CHECK(count(f, "MX", L::fail, "its addresses are unknown") == 1);
    CHECK(count(f, "SPF", L::warn, "not evaluated") == 1);
  }
  {
    // The home's default name: not a DNS name.
    auto in = good_input();
    in.host_name = "localhost";
    in.addresses = {"192.0.2.25"};
    auto f = run(good_zone(), in);
    INFO(dump(f));
    REQUIRE(count(f, "A/AAAA", L::fail, "'localhost' is not a DNS name") == 1);
    CHECK(first(f, "A/AAAA", L::fail)->fix.find("domain= in def/wiz98msenv.dat") != std::string::npos);
    CHECK(count(f, "PTR", L::fail, "not localhost") == 1);
  }
}

TEST_CASE("SPF: none, two records, not covering us, ~all, ?all, +all, no all, invalid") {
  auto with_spf = [](std::vector<std::string> txt) {
    auto d = good_zone();
    d.set("example.test", ns_t_txt, std::move(txt));
    return run(d);
  };
  {
    auto f = with_spf({"google-site-verification=abc"});
    REQUIRE(count(f, "SPF", L::fail, "example.test has no SPF record") == 1);
    CHECK(first(f, "SPF", L::fail)->fix == "publish `example.test. IN TXT \"v=spf1 mx -all\"` (mx: the MX hosts may send)");
  }
  {
    auto f = with_spf({"v=spf1 mx -all", "v=spf1 ip4:192.0.2.25 -all"});
    INFO(dump(f));
    REQUIRE(count(f, "SPF", L::fail, "example.test has 2 SPF records (permerror") == 1);
    CHECK(first(f, "SPF", L::fail)->fix == "merge them into one v=spf1 record");
    CHECK(count(f, "SPF", L::ok) == 0);
  }
  {
    auto f = with_spf({"v=spf1 ip4:198.51.100.0/24 -all"});
    INFO(dump(f));
    REQUIRE(count(f, "SPF", L::fail, "gives fail for 192.0.2.25") == 1);
    CHECK(count(f, "SPF", L::fail, "gives fail for 2001:db8::25") == 1);
    CHECK(first(f, "SPF", L::fail)->fix.find("add ip4:192.0.2.25") == 0);
    CHECK(count(f, "SPF", L::ok) == 0);
  }
  {
    // ~all covering us: a warning, no failure.
    auto f = with_spf({"v=spf1 mx ~all"});
    INFO(dump(f));
    CHECK(count(f, "SPF", L::warn, "ends in ~all") == 1);
    CHECK(count(f, "SPF", L::ok, "passes for 192.0.2.25") == 1);
    CHECK(count(f, "SPF", L::fail) == 0);
  }
  {
    auto f = with_spf({"v=spf1 ?all"});  // covers nobody: neutral for us
    INFO(dump(f));
    CHECK(count(f, "SPF", L::warn, "ends in ?all") == 1);
    CHECK(count(f, "SPF", L::fail, "gives neutral for 192.0.2.25") == 1);
  }
  {
    auto f = with_spf({"v=spf1 mx +all"});
    CHECK(count(f, "SPF", L::fail, "ends in +all") == 1);
  }
  {
    auto f = with_spf({"v=spf1 mx"});
    CHECK(count(f, "SPF", L::warn, "has no all term") == 1);
    CHECK(count(f, "SPF", L::ok) == 1);
  }
  {
    // redirect= to a record that covers us: no all term of its own needed.
    auto d = good_zone();
    d.set("example.test", ns_t_txt, {"v=spf1 redirect=_spf.example.test"});
    d.set("_spf.example.test", ns_t_txt, {"v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 -all"});
    auto f = run(d);
    INFO(dump(f));
    CHECK(count(f, "SPF", L::ok) == 1);
    CHECK(count(f, "SPF", L::warn) == 0);
  }
  {
    auto f = with_spf({"v=spf1 ip4:192.0.2.300 -all"});
    INFO(dump(f));
    CHECK(count(f, "SPF", L::fail, "gives permerror") >= 1);
  }
  {
    // The HELO name without its own record: a warning.
    auto d = good_zone();
    d.set("mail.example.test", ns_t_txt, Result<DnsRecords>(DnsRecords{DnsRecords::Status::no_data, {}, 0}));
    auto f = run(d);
    CHECK(count(f, "SPF (HELO)", L::warn, "mail.example.test has no SPF record") == 1);
    CHECK_FALSE(any_failure(f));
  }
}

TEST_CASE("DKIM: key mismatch, malformed, revoked, wrong type, missing record, no key") {
  auto with_dkim = [](std::vector<std::string> txt, std::string selector = "wizmail") {
    auto d = good_zone();
    d.set(selector + "._domainkey.example.test", ns_t_txt, std::move(txt));
    return run(d);
  };
  {
    auto f = with_dkim({dkim::key_record(other_rsa_key())});
    INFO(dump(f));
    REQUIRE(count(f, "DKIM", L::fail, "selector wizmail (in use): the key published at wizmail._domainkey.example.test "
                                      "is not the public half of /home/def/dkim/example.test/wizmail.key") == 1);
    CHECK(first(f, "DKIM", L::fail)->fix.find("wizmail dkim show example.test --selector wizmail") != std::string::npos);
  }
  {
    // The key not in use, mismatched: a warning only.
    auto d = good_zone();
    d.set("wizmail-ed25519._domainkey.example.test", ns_t_txt,
          {dkim::key_record(*dkim::generate_key(dkim::Algorithm::ed25519_sha256))});
    auto f = run(d);
    CHECK(count(f, "DKIM", L::warn, "selector wizmail-ed25519 (not in use): the key published") == 1);
    CHECK_FALSE(any_failure(f));
  }
  // Malformed records.
  const std::string p = rsa_key().public_key;
  CHECK(count(with_dkim({"v=DKIM1; k=rsa; p=!!notbase64!!"}), "DKIM", L::fail, "malformed record at wizmail._domainkey.example.test: p= is not base64") == 1);
  CHECK(count(with_dkim({"v=DKIM1; k=rsa"}), "DKIM", L::fail, "malformed record at wizmail._domainkey.example.test: no p= tag") == 1);
  CHECK(count(with_dkim({"k=rsa; v=DKIM1; p=" + p}), "DKIM", L::fail, "v= must be the first tag") == 1);
  CHECK(count(with_dkim({"v=DKIM2; p=" + p}), "DKIM", L::fail, "v= must be the first tag and be DKIM1") == 1);
  CHECK(count(with_dkim({"v=DKIM1; p=" + p + "; p=" + p}), "DKIM", L::fail, "appears twice") == 1);
  CHECK(count(with_dkim({"v=DKIM1; k=dsa; p=" + p}), "DKIM", L::fail, "unknown key type k=dsa") == 1);
  CHECK(count(with_dkim({"v=DKIM1; k=rsa; p="}), "DKIM", L::fail, "revoked (empty p=)") == 1);
  CHECK(count(with_dkim({"v=DKIM1; k=ed25519; p=" + p}), "DKIM", L::fail, "publishes k=ed25519 but") == 1);
  CHECK(count(with_dkim({"garbage without tags"}), "DKIM", L::fail, "malformed") == 1);
  // The same key, split by white space into strings and with k= left out: OK.
  {
    std::string spaced = "v=DKIM1; p=" + p.substr(0, 100) + " " + p.substr(100);
    auto f = with_dkim({spaced});
    INFO(dump(f));
    CHECK(count(f, "DKIM", L::ok, "selector wizmail (in use)") == 1);
  }
  {
    auto d = good_zone();
    d.set("wizmail._domainkey.example.test", ns_t_txt,
          Result<DnsRecords>(DnsRecords{DnsRecords::Status::nx_domain, {}, 0}));
    auto f = run(d);
    REQUIRE(count(f, "DKIM", L::fail, "selector wizmail (in use): no TXT record at wizmail._domainkey.example.test") == 1);
    CHECK(first(f, "DKIM", L::fail)->fix ==
          "publish the record `wizmail dkim show example.test --selector wizmail` prints at wizmail._domainkey.example.test");
  }
  {
    auto in = good_input();
    in.dkim_keys.clear();
    auto f = run(good_zone(), in);
    REQUIRE(count(f, "DKIM", L::warn, "no DKIM key for example.test in the home") == 1);
    CHECK(first(f, "DKIM", L::warn)->fix.find("`wizmail dkim keygen example.test`") == 0);
    CHECK_FALSE(any_failure(f));
  }
  {
    auto in = good_input();
    in.dkim_keys[0].key = fail(Errc::parse, "not a PEM private key");
    auto f = run(good_zone(), in);
    CHECK(count(f, "DKIM", L::fail, "wizmail.key cannot be used: not a PEM private key") == 1);
  }
}

TEST_CASE("DMARC: none, p=none, bad policy, no p=, not v=DMARC1 first, two records") {
  auto with_dmarc = [](Result<DnsRecords> r) {
    auto d = good_zone();
    d.set("_dmarc.example.test", ns_t_txt, std::move(r));
    return run(d);
  };
  auto rec = [](std::vector<std::string> v) { return Result<DnsRecords>(DnsRecords{DnsRecords::Status::found, std::move(v), 60}); };
  {
    auto f = with_dmarc(DnsRecords{DnsRecords::Status::nx_domain, {}, 0});
    REQUIRE(count(f, "DMARC", L::fail, "no DMARC record at _dmarc.example.test") == 1);
    CHECK(first(f, "DMARC", L::fail)->fix ==
          "publish `_dmarc.example.test. IN TXT \"v=DMARC1; p=none; rua=mailto:postmaster@example.test\"`");
  }
  {
    auto f = with_dmarc(rec({"v=DMARC1; p=none; rua=mailto:d@example.test"}));
    CHECK(count(f, "DMARC", L::warn, "p=none, receivers take no action") == 1);
    CHECK_FALSE(any_failure(f));
  }
  CHECK(count(with_dmarc(rec({"v=DMARC1; p=quarantine"})), "DMARC", L::ok, "(p=quarantine)") == 1);
  CHECK(count(with_dmarc(rec({"v=DMARC1; p=maybe"})), "DMARC", L::fail, "p=maybe is not none, quarantine or reject") == 1);
  CHECK(count(with_dmarc(rec({"v=DMARC1; rua=mailto:d@example.test"})), "DMARC", L::fail, "has no p= tag") == 1);
  CHECK(count(with_dmarc(rec({"p=reject; v=DMARC1"})), "DMARC", L::fail, "does not start with v=DMARC1") == 1);
  CHECK(count(with_dmarc(rec({"v=DMARC1; p=reject", "v=DMARC1; p=none"})), "DMARC", L::fail, "2 DMARC records") == 1);
  CHECK(count(with_dmarc(rec({"v=DMARC1; p"})), "DMARC", L::fail, "malformed") == 1);
}

TEST_CASE("DMARC: a subdomain without a record inherits the organisational domain's, with sp=") {
  auto sub_input = [] {
    auto in = good_input();
    in.domain = "sub.example.test";
    in.org_domain = "example.test";
    in.dkim_keys.clear();
    return in;
  };
  auto rec = [](std::vector<std::string> v) { return Result<DnsRecords>(DnsRecords{DnsRecords::Status::found, std::move(v), 60}); };
  {
    auto d = good_zone();  // _dmarc.example.test: p=reject, no sp=
    auto f = run(d, sub_input());
    INFO(dump(f));
    CHECK(count(f, "DMARC", L::ok,
                "at _dmarc.example.test, which applies to sub.example.test (no record of its own) (p=reject)") == 1);
  }
  {
    auto d = good_zone();
    d.set("_dmarc.example.test", ns_t_txt, rec({"v=DMARC1; p=reject; sp=none"}));
    auto f = run(d, sub_input());
    INFO(dump(f));
    CHECK(count(f, "DMARC", L::warn, "which applies to sub.example.test (no record of its own): sp=none") == 1);
  }
  {
    auto d = good_zone();
    d.set("_dmarc.example.test", ns_t_txt, rec({"v=DMARC1; p=none; sp=bogus"}));
    CHECK(count(run(d, sub_input()), "DMARC", L::fail, "sp=bogus is not none, quarantine or reject") == 1);
  }
  {
    // The subdomain's own record wins; its sp= is not read.
    auto d = good_zone();
    d.set("_dmarc.sub.example.test", ns_t_txt, rec({"v=DMARC1; p=quarantine; sp=none"}));
    auto f = run(d, sub_input());
    INFO(dump(f));
    CHECK(count(f, "DMARC", L::ok, "\"v=DMARC1; p=quarantine; sp=none\" (p=quarantine)") == 1);
  }
  {
    // Neither: the failure names both places.
    auto d = good_zone();
    d.set("_dmarc.example.test", ns_t_txt, DnsRecords{DnsRecords::Status::nx_domain, {}, 0});
    CHECK(count(run(d, sub_input()), "DMARC", L::fail,
                "no DMARC record at _dmarc.sub.example.test nor at _dmarc.example.test") == 1);
  }
  {
    // The organisational domain's DNS times out: temporary, never a FAIL.
    auto d = good_zone();
    d.set("_dmarc.example.test", ns_t_txt, Result<DnsRecords>(unexpected(timeout)));
    auto f = run(d, sub_input());
    CHECK(count(f, "DMARC", L::fail) == 0);
  }
}

TEST_CASE("MTA-STS: information only, well-formed or not") {
  auto with_sts = [](std::vector<std::string> v) {
    auto d = good_zone();
    d.set("_mta-sts.example.test", ns_t_txt, std::move(v));
    return run(d);
  };
  for (const auto& bad : std::vector<std::string>{"v=STSv1;", "v=STSv1; id=", "v=STSv1; id=has-hyphen",
                                                  "v=STSv1; id=123456789012345678901234567890123", "id=1; v=STSv1"}) {
    auto f = with_sts({bad});
    INFO(bad << "\n" << dump(f));
    CHECK(count(f, "MTA-STS", L::info) == 1);
    CHECK(count(f, "MTA-STS", L::info, "well-formed") == 0);
    CHECK_FALSE(any_failure(f));
    CHECK(count_level(f, L::warn) == 0);
  }
  auto d = good_zone();
  d.set("_mta-sts.example.test", ns_t_txt, Result<DnsRecords>(DnsRecords{DnsRecords::Status::nx_domain, {}, 0}));
  CHECK(count(run(d), "MTA-STS", L::info, "no MTA-STS record at _mta-sts.example.test (optional)") == 1);
}

TEST_CASE("temporary DNS errors: could not check, never a FAIL of the record") {
  struct Case {
    std::string name;
    int type;
    std::string check;
  };
  for (const auto& c : std::vector<Case>{{"example.test", ns_t_mx, "MX"},
                                         {"example.test", ns_t_txt, "SPF"},
                                         {"wizmail._domainkey.example.test", ns_t_txt, "DKIM"},
                                         {"_dmarc.example.test", ns_t_txt, "DMARC"},
                                         {"25.2.0.192.in-addr.arpa", ns_t_ptr, "PTR"},
                                         {"_mta-sts.example.test", ns_t_txt, "MTA-STS"}}) {
    auto d = good_zone();
    d.set(c.name, c.type, Result<DnsRecords>(unexpected(timeout)));
    auto f = run(d);
    INFO(c.name << "\n" << dump(f));
    CHECK_FALSE(any_failure(f));
    const DnsFinding* t = nullptr;
    for (const auto& x : f)
      if (x.check == c.check && x.temporary) t = &x;
    REQUIRE(t);
    CHECK(t->level == (c.check == "MTA-STS" ? L::info : L::warn));
    CHECK(t->message.find("could not check (temporary DNS error)") == 0);
    CHECK(count(f, c.check, L::ok) == (c.check == "PTR" || c.check == "DKIM" ? 1u : 0u));  // the other address / key
  }
  {
    // A name the SPF record includes times out: temperror, not a failure.
    auto d = good_zone();
    d.set("example.test", ns_t_txt, {"v=spf1 include:_spf.provider.test -all"});
    d.set("_spf.provider.test", ns_t_txt, Result<DnsRecords>(unexpected(timeout)));
    auto f = run(d);
    INFO(dump(f));
    CHECK_FALSE(any_failure(f));
    CHECK(count(f, "SPF", L::warn, "could not check (temporary DNS error)") >= 1);
  }
  {
    // The server's name times out, nothing else known: MX cannot be decided.
    auto d = good_zone();
    d.set("mail.example.test", ns_t_a, Result<DnsRecords>(unexpected(timeout)));
    d.set("mail.example.test", ns_t_aaaa, Result<DnsRecords>(unexpected(timeout)));
    auto f = run(d);
    INFO(dump(f));
    CHECK(count(f, "A/AAAA", L::warn, "could not check") == 1);
    CHECK(count(f, "MX", L::warn, "could not check") == 1);
    CHECK_FALSE(any_failure(f));
  }
}

TEST_CASE("the pieces: reverse names, DKIM records, answers gathered once") {
  CHECK(reverse_name(*util::IpAddress::parse("192.0.2.25")) == "25.2.0.192.in-addr.arpa");
  CHECK(reverse_name(*util::IpAddress::parse("::ffff:192.0.2.25")) == "25.2.0.192.in-addr.arpa");
  CHECK(reverse_name(*util::IpAddress::parse("2001:db8::25")) ==
        "5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
  auto r = parse_dkim_record("v=DKIM1; k=ed25519; p=" + ed_key().public_key + ";");
  REQUIRE(r);
  CHECK(r->key_type == "ed25519");
  CHECK(r->public_key.size() == 32);
  CHECK_FALSE(r->revoked);
  CHECK(parse_dkim_record("p=")->revoked);
  CHECK_FALSE(parse_dkim_record(""));

  int asked = 0;
  DnsAnswers live([&](std::string_view name, int) -> Result<DnsRecords> {
    ++asked;
    if (name == "slow.test") return unexpected(timeout);
    return DnsRecords{DnsRecords::Status::found, {"x"}, 60};
  });
  CHECK(live.lookup("A.test.", ns_t_txt)->records == std::vector<std::string>{"x"});
  CHECK(live.lookup("a.test", ns_t_txt));
  CHECK_FALSE(live.lookup("slow.test", ns_t_txt));
  CHECK_FALSE(live.lookup("slow.test", ns_t_txt));
  CHECK(asked == 2);
  CHECK(live.answers().size() == 2);
  DnsAnswers fixed;
  CHECK(fixed.lookup("nothing.test", ns_t_a)->status == DnsRecords::Status::nx_domain);
}
