// mailauth (src/mailauth/mailauth.hpp): the pure pieces and SPF, DKIM and
// DMARC over a fake Dns — no sockets. SPF is libspf2's evaluation, DMARC
// libopendmarc's, fed by our DNS layer: these tests also prove that layer
// (answers, NXDOMAIN, no data, time-outs) is what the libraries see.
#include "mailauth/mailauth.hpp"

#include <arpa/nameser.h>
#include <doctest/doctest.h>

#include <map>
#include <string>

using namespace wizmail;
using namespace wizmail::mailauth;
using outbound::DnsRecords;

namespace {

// name|type → records; "TEMP" as the only record: a time-out.
struct FakeDns {
  std::map<std::string, std::vector<std::string>> txt, a;
  std::vector<std::string> asked;
  Dns fn() {
    return [this](std::string_view name, int type) -> Result<DnsRecords> {
      std::string n(name);
      asked.push_back(n);
      auto& table = type == ns_t_txt ? txt : a;
      if (type != ns_t_txt && type != ns_t_a) return DnsRecords{DnsRecords::Status::no_data, {}, 0};
      auto it = table.find(n);
      if (it == table.end()) return DnsRecords{DnsRecords::Status::nx_domain, {}, 0};
      if (it->second.size() == 1 && it->second[0] == "TEMP") return fail(Errc::temporary, "timed out");
      return DnsRecords{DnsRecords::Status::found, it->second, 300};
    };
  }
};

const PublicSuffixList& psl() {
  static const PublicSuffixList l = PublicSuffixList::parse(
      "// comment\ncom\nnet\nuk\nco.uk\n*.ck\n!www.ck\ntest\n");
  return l;
}

dkim::SignatureResult sig(dkim::Outcome o, std::string d) { return {o, std::move(d), "s1", ""}; }

}  // namespace

TEST_CASE("organisational domains from the public suffix list") {
  const auto& l = psl();
  CHECK(l.organizational_domain("mail.example.com") == "example.com");
  CHECK(l.organizational_domain("Example.COM.") == "example.com");
  CHECK(l.organizational_domain("a.b.example.co.uk") == "example.co.uk");
  CHECK(l.organizational_domain("co.uk") == "co.uk");
  CHECK(l.organizational_domain("x.y.foo.ck") == "y.foo.ck");  // *.ck: foo.ck is a suffix
  CHECK(l.organizational_domain("a.www.ck") == "www.ck");      // !www.ck: not a suffix
  CHECK(l.organizational_domain("host.unknowntld") == "host.unknowntld");  // default rule "*"
  CHECK(l.organizational_domain("localhost") == "localhost");
  auto real = PublicSuffixList::load("/usr/share/publicsuffix/public_suffix_list.dat");
  REQUIRE(real);
  CHECK(real->size() > 1000);
  CHECK(real->organizational_domain("a.b.example.co.uk") == "example.co.uk");
  CHECK_FALSE(PublicSuffixList::load("/nonexistent/psl.dat"));
}

TEST_CASE("alignment: relaxed by organisational domain, strict by name") {
  CHECK(aligned(psl(), "mail.example.com", "example.com", false));
  CHECK(aligned(psl(), "a.example.com", "b.example.com", false));
  CHECK_FALSE(aligned(psl(), "example.com", "example.net", false));
  CHECK_FALSE(aligned(psl(), "a.co.uk", "b.co.uk", false));  // different registrations
  CHECK_FALSE(aligned(psl(), "mail.example.com", "example.com", true));
  CHECK(aligned(psl(), "Example.com", "example.COM", true));
  CHECK_FALSE(aligned(psl(), "", "example.com", false));
}

TEST_CASE("the From: domain: one field, one address") {
  CHECK(from_domain("From: Alice <alice@Example.COM>\r\nTo: b@x\r\n\r\n") == "example.com");
  CHECK(from_domain("Subject: x\r\nfrom: alice@example.org\r\n") == "example.org");
  CHECK(from_domain("From: \"Smith, A (<x@evil.com>)\" <a@good.com>\r\n") == "good.com");
  CHECK(from_domain("From: (comment a@evil.com) a@good.com\r\n") == "good.com");
  CHECK(from_domain("From: Alice\r\n <alice@folded.example>\r\n\r\n") == "folded.example");
  CHECK_FALSE(from_domain("To: b@x\r\n\r\n"));
  CHECK_FALSE(from_domain("From: a@one.com\r\nFrom: b@two.com\r\n"));  // two fields
  CHECK_FALSE(from_domain("From: a@one.com, b@two.com\r\n"));          // two addresses
  CHECK_FALSE(from_domain("From: no address here\r\n"));
  CHECK_FALSE(from_domain("From: <a@>\r\n"));
  CHECK_FALSE(from_domain("From: <a@b.com\r\n"));
  // The header section ends at the empty line: a From: in the body is none.
  CHECK_FALSE(from_domain("To: b@x\r\n\r\nFrom: a@body.com\r\n"));
}

TEST_CASE("forged Authentication-Results claiming our authserv-id are removed, others kept") {
  const std::string h =
      "Received: from x\r\n"
      "Authentication-Results: mx.example.org; dmarc=pass header.from=bank.com\r\n"
      "authentication-results:   (forged)\r\n  MX.Example.Org;\r\n\tspf=pass\r\n"
      "Authentication-Results: mx.example.org.evil; spf=pass\r\n"
      "Authentication-Results: other.example; spf=fail\r\n"
      "X-Authentication-Results: mx.example.org; none\r\n"
      "Subject: hi\r\n"
      "\r\n"
      "Authentication-Results: mx.example.org; body line\r\n";
  const std::string got = remove_own_results(h, "mx.example.org");
  CHECK(got ==
        "Received: from x\r\n"
        "Authentication-Results: mx.example.org.evil; spf=pass\r\n"
        "Authentication-Results: other.example; spf=fail\r\n"
        "X-Authentication-Results: mx.example.org; none\r\n"
        "Subject: hi\r\n"
        "\r\n"
        "Authentication-Results: mx.example.org; body line\r\n");
  CHECK(authserv_id_of(" (c (nested)) host.example;spf=pass") == "host.example");
  CHECK(authserv_id_of(" host.example 1; none") == "host.example");
  CHECK(authserv_id_of("") == "");
  // LF-only input and nothing to remove: unchanged.
  CHECK(remove_own_results("A: b\nC: d\n", "mx") == "A: b\nC: d\n");
}

TEST_CASE("the Authentication-Results field") {
  Results r;
  CHECK(format_authentication_results("mx.example.org", r, "") == "Authentication-Results: mx.example.org; none\r\n");
  r.spf_mailfrom = SpfOutcome{SpfResult::pass, "example.com", "mailfrom", "domain designates 1.2.3.4"};
  r.spf_helo = SpfOutcome{SpfResult::none, "mail.example.com", "helo", ""};
  r.dkim_checked = true;
  r.dkim = {sig(dkim::Outcome::pass, "example.com"), {dkim::Outcome::fail, "other.net", "s2", "body hash (mismatch)\r\n"}};
  DmarcOutcome m;
  m.result = DmarcResult::pass;
  m.policy = DmarcPolicy::reject;
  m.from_domain = "example.com";
  r.dmarc = m;
  CHECK(format_authentication_results("mx.example.org", r, "alice@example.com") ==
        "Authentication-Results: mx.example.org;\r\n"
        "\tspf=pass (domain designates 1.2.3.4) smtp.mailfrom=alice@example.com;\r\n"
        "\tspf=none smtp.helo=mail.example.com;\r\n"
        "\tdkim=pass header.d=example.com header.s=s1;\r\n"
        "\tdkim=fail (body hash mismatch) header.d=other.net header.s=s2;\r\n"
        "\tdmarc=pass (p=reject) header.from=example.com\r\n");
  Results n;
  n.dkim_checked = true;
  n.spf_mailfrom = SpfOutcome{SpfResult::temperror, "x.com", "mailfrom", ""};
  CHECK(format_authentication_results("h", n, "we\"ird (x)@x.com") ==
        "Authentication-Results: h;\r\n\tspf=temperror smtp.mailfrom=\"we\\\"ird (x)@x.com\";\r\n\tdkim=none\r\n");
}

TEST_CASE("policy: p=reject failures refused, exemptions, temperror never a 5xx") {
  Policy p;
  DmarcOutcome m;
  m.from_domain = "bank.example";
  m.result = DmarcResult::fail;
  m.policy = DmarcPolicy::reject;
  auto d = decide_data(p, m);
  CHECK(d.kind == Decision::Kind::reject);
  CHECK(d.reply.starts_with("550 5.7.1 "));
  m.policy = DmarcPolicy::quarantine;
  CHECK(decide_data(p, m).kind == Decision::Kind::accept);
  m.policy = DmarcPolicy::none;
  CHECK(decide_data(p, m).kind == Decision::Kind::accept);
  m.policy = DmarcPolicy::reject;
  p.dmarc_reject_exempt = {"Bank.Example"};
  CHECK(decide_data(p, m).kind == Decision::Kind::accept);
  m.from_domain = "mail.bank.example";
  CHECK(decide_data(p, m).kind == Decision::Kind::accept);
  m.from_domain = "notbank.example";
  CHECK(decide_data(p, m).kind == Decision::Kind::reject);
  p.dmarc_reject = false;
  CHECK(decide_data(p, m).kind == Decision::Kind::accept);
  p.dmarc_reject = true;
  m.result = DmarcResult::temperror;
  CHECK(decide_data(p, m).kind == Decision::Kind::accept);
  p.temperror_defer = true;
  d = decide_data(p, m);
  CHECK(d.kind == Decision::Kind::defer);
  CHECK(d.reply.starts_with("451 4.7.5 "));
  m.result = DmarcResult::pass;
  CHECK(decide_data(p, m).kind == Decision::Kind::accept);

  Policy q;
  SpfOutcome s{SpfResult::fail, "forger.example", "mailfrom", ""};
  CHECK(decide_mail(q, s).kind == Decision::Kind::accept);  // recorded only by default
  q.spf_reject_fail = true;
  CHECK(decide_mail(q, s).reply.starts_with("550 5.7.23 "));
  s.result = SpfResult::softfail;
  CHECK(decide_mail(q, s).kind == Decision::Kind::accept);
  s.result = SpfResult::temperror;
  CHECK(decide_mail(q, s).kind == Decision::Kind::accept);
  q.temperror_defer = true;
  CHECK(decide_mail(q, s).reply.starts_with("451 4.7.24 "));
}

TEST_CASE("SPF through our DNS layer (libspf2)") {
  FakeDns dns;
  dns.txt["example.com"] = {"v=spf1 ip4:192.0.2.0/24 include:_spf.example.net -all"};
  dns.txt["_spf.example.net"] = {"v=spf1 a:relay.example.net ~all"};
  dns.a["relay.example.net"] = {"198.51.100.7"};
  dns.txt["soft.example"] = {"v=spf1 ~all"};
  dns.txt["broken.example"] = {"v=spf1 ip4:300.1.1.1 -all"};
  dns.txt["slow.example"] = {"TEMP"};
  dns.txt["mail.example.com"] = {"v=spf1 a -all"};
  dns.a["mail.example.com"] = {"192.0.2.25"};
  auto f = dns.fn();
  CHECK(check_spf(f, "192.0.2.9", "mail.example.com", "a@example.com", "mx.test").result == SpfResult::pass);
  CHECK(check_spf(f, "198.51.100.7", "h", "a@example.com", "mx.test").result == SpfResult::pass);
  auto o = check_spf(f, "203.0.113.5", "h", "a@Example.com", "mx.test");
  CHECK(o.result == SpfResult::fail);
  CHECK(o.domain == "example.com");
  CHECK(check_spf(f, "203.0.113.5", "h", "a@soft.example", "mx.test").result == SpfResult::softfail);
  CHECK(check_spf(f, "203.0.113.5", "h", "a@nospf.example", "mx.test").result == SpfResult::none);
  CHECK(check_spf(f, "203.0.113.5", "h", "a@broken.example", "mx.test").result == SpfResult::permerror);
  auto t = check_spf(f, "203.0.113.5", "h", "a@slow.example", "mx.test");
  CHECK(t.result == SpfResult::temperror);
  // HELO identity, and the null sender checked as postmaster@helo.
  auto h = check_spf(f, "192.0.2.25", "mail.example.com", "", "mx.test", true);
  CHECK(h.result == SpfResult::pass);
  CHECK(h.identity == "helo");
  CHECK(check_spf(f, "192.0.2.26", "mail.example.com", "", "mx.test").result == SpfResult::fail);
  CHECK(check_spf(f, "192.0.2.26", "[192.0.2.26]", "", "mx.test").result == SpfResult::none);
  CHECK(check_spf(f, "2001:db8::1", "h", "a@example.com", "mx.test").result == SpfResult::fail);
  // A loopback client gets no free ride (libspf2's "localhost is always
  // allowed" is skipped: mail_auth_exempt decides who is checked).
  CHECK(check_spf(f, "127.0.0.1", "h", "a@example.com", "mx.test").result == SpfResult::fail);
  CHECK(check_spf(f, "::1", "h", "a@example.com", "mx.test").result == SpfResult::fail);
}

TEST_CASE("DMARC verdicts (libopendmarc) with SPF and DKIM alignment") {
  auto real = PublicSuffixList::load("/usr/share/publicsuffix/public_suffix_list.dat");
  REQUIRE(real);
  const std::optional<std::string> reject = "v=DMARC1; p=reject";
  SpfOutcome spf_pass{SpfResult::pass, "example.com", "mailfrom", ""};
  SpfOutcome spf_other{SpfResult::pass, "bulk.net", "mailfrom", ""};
  SpfOutcome spf_fail{SpfResult::fail, "example.com", "mailfrom", ""};
  SpfOutcome spf_temp{SpfResult::temperror, "example.com", "mailfrom", ""};
  using O = dkim::Outcome;
  auto ev = [&](const SpfOutcome& s, std::vector<dkim::SignatureResult> d,
                const std::optional<std::string>& rec = std::optional<std::string>("v=DMARC1; p=reject")) {
    return evaluate_dmarc("192.0.2.1", "example.com", rec, "example.com", s, d, *real);
  };
  auto m = ev(spf_pass, {});
  CHECK(m.result == DmarcResult::pass);
  CHECK(m.spf_aligned);
  m = ev(spf_other, {sig(O::pass, "example.com")});
  CHECK(m.result == DmarcResult::pass);
  CHECK(m.dkim_aligned);
  CHECK_FALSE(m.spf_aligned);
  m = ev(spf_other, {sig(O::pass, "mail.example.com")});  // relaxed (default) alignment
  CHECK(m.result == DmarcResult::pass);
  m = ev(spf_other, {sig(O::pass, "mail.example.com")}, std::string("v=DMARC1; p=reject; adkim=s"));
  CHECK(m.result == DmarcResult::fail);
  m = ev(spf_other, {sig(O::pass, "bulk.net")});  // misaligned: both pass, neither aligned
  CHECK(m.result == DmarcResult::fail);
  CHECK(m.policy == DmarcPolicy::reject);
  m = ev(spf_fail, {sig(O::fail, "example.com")});
  CHECK(m.result == DmarcResult::fail);
  m = ev(spf_fail, {}, std::string("v=DMARC1; p=quarantine"));
  CHECK(m.result == DmarcResult::fail);
  CHECK(m.policy == DmarcPolicy::quarantine);
  m = ev(spf_fail, {}, std::string("v=DMARC1; p=none"));
  CHECK(m.policy == DmarcPolicy::none);
  m = ev(spf_fail, {}, std::nullopt);
  CHECK(m.result == DmarcResult::none);
  m = ev(spf_fail, {}, std::string("v=DMARC1; p=bogus"));
  CHECK(m.result == DmarcResult::permerror);
  // A failure that a temporary error may have caused is temperror, never fail.
  m = ev(spf_temp, {});
  CHECK(m.result == DmarcResult::temperror);
  m = ev(spf_other, {sig(O::temperror, "example.com")});
  CHECK(m.result == DmarcResult::temperror);
  CHECK(decide_data(Policy{}, m).kind == Decision::Kind::accept);
}

TEST_CASE("DMARC record look-up: the From: domain, then its organisational domain") {
  auto real = PublicSuffixList::load("/usr/share/publicsuffix/public_suffix_list.dat");
  REQUIRE(real);
  FakeDns dns;
  dns.txt["_dmarc.example.com"] = {"v=spf1 -all", "v=DMARC1; p=reject; sp=none"};
  dns.txt["_dmarc.slow.example"] = {"TEMP"};
  auto f = dns.fn();
  SpfOutcome bad{SpfResult::fail, "forger.net", "mailfrom", ""};
  auto m = check_dmarc(f, "192.0.2.1", "example.com", bad, {}, *real);
  CHECK(m.result == DmarcResult::fail);
  CHECK(m.policy == DmarcPolicy::reject);
  CHECK(m.record_domain == "example.com");
  dns.asked.clear();
  m = check_dmarc(f, "192.0.2.1", "news.example.com", bad, {}, *real);
  CHECK(dns.asked == std::vector<std::string>{"_dmarc.news.example.com", "_dmarc.example.com"});
  CHECK(m.result == DmarcResult::fail);
  CHECK(m.record_domain == "example.com");
  CHECK(m.policy == DmarcPolicy::none);  // sp=none for subdomains
  m = check_dmarc(f, "192.0.2.1", "nodmarc.org", bad, {}, *real);
  CHECK(m.result == DmarcResult::none);
  m = check_dmarc(f, "192.0.2.1", "slow.example", bad, {}, *real);
  CHECK(m.result == DmarcResult::temperror);
  CHECK(decide_data(Policy{}, m).kind == Decision::Kind::accept);
}

TEST_CASE("DKIM keys through Dns") {
  FakeDns dns;
  dns.txt["s1._domainkey.example.com"] = {"something else", "v=DKIM1; k=rsa; p=ABC"};
  dns.txt["s2._domainkey.slow.example"] = {"TEMP"};
  auto keys = dkim_keys(dns.fn());
  auto a = keys("s1._domainkey.example.com");
  CHECK(a.status == dkim::KeyAnswer::Status::found);
  CHECK(a.record == "v=DKIM1; k=rsa; p=ABC");
  CHECK(keys("s2._domainkey.slow.example").status == dkim::KeyAnswer::Status::temporary);
  CHECK(keys("s9._domainkey.none.example").status == dkim::KeyAnswer::Status::not_found);
}

TEST_CASE("client name: PTR forward-confirmed, as Postfix's client_name") {
  // ptr: reverse name → PTR names; fwd: name|type → addresses.
  std::map<std::string, std::vector<std::string>> ptr, fwd;
  std::vector<std::string> asked;
  Dns dns = [&](std::string_view name, int type) -> Result<DnsRecords> {
    std::string n(name);
    asked.push_back(n);
    auto& table = type == ns_t_ptr ? ptr : fwd;
    auto key = type == ns_t_ptr ? n : n + (type == ns_t_aaaa ? "|aaaa" : "|a");
    auto it = table.find(key);
    if (it == table.end()) return DnsRecords{DnsRecords::Status::nx_domain, {}, 0};
    if (it->second.size() == 1 && it->second[0] == "TEMP") return fail(Errc::temporary, "timed out");
    return DnsRecords{DnsRecords::Status::found, it->second, 300};
  };
  ptr["7.2.0.192.in-addr.arpa"] = {"Mail.Example.TEST."};
  fwd["mail.example.test|a"] = {"192.0.2.9", "192.0.2.7"};
  auto n = mailauth::client_name(dns, "192.0.2.7");
  CHECK(n.name == "mail.example.test");
  CHECK(n.ptr == "mail.example.test");

  // A PTR that does not point back: unknown, the PTR name kept apart.
  ptr["8.2.0.192.in-addr.arpa"] = {"liar.example.test", "also.example.test"};
  fwd["liar.example.test|a"] = {"198.51.100.1"};
  fwd["also.example.test|a"] = {"192.0.2.8"};
  n = mailauth::client_name(dns, "192.0.2.8");
  CHECK(n.name == "also.example.test");  // the second name confirms
  CHECK(n.ptr == "liar.example.test");
  ptr["10.2.0.192.in-addr.arpa"] = {"liar.example.test"};
  n = mailauth::client_name(dns, "192.0.2.10");
  CHECK(n.name.empty());
  CHECK(n.ptr == "liar.example.test");

  // No PTR, a DNS failure, a forward failure, nonsense: unknown.
  CHECK(mailauth::client_name(dns, "192.0.2.99").name.empty());
  ptr["11.2.0.192.in-addr.arpa"] = {"TEMP"};
  CHECK(mailauth::client_name(dns, "192.0.2.11").ptr.empty());
  ptr["12.2.0.192.in-addr.arpa"] = {"slow.example.test"};
  fwd["slow.example.test|a"] = {"TEMP"};
  n = mailauth::client_name(dns, "192.0.2.12");
  CHECK(n.name.empty());
  CHECK(n.ptr == "slow.example.test");
  asked.clear();
  CHECK(mailauth::client_name(dns, "not an address").name.empty());
  CHECK(asked.empty());

  // IPv6: nibbles reversed, AAAA asked; an IPv4-mapped client is its IPv4.
  ptr["1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"] = {"v6.example.test"};
  fwd["v6.example.test|aaaa"] = {"2001:db8::1"};
  CHECK(mailauth::client_name(dns, "2001:db8::1").name == "v6.example.test");
  CHECK(mailauth::client_name(dns, "::ffff:192.0.2.7").name == "mail.example.test");

  // At most 10 names are checked: an answer of 50 costs 11 questions.
  std::vector<std::string> many;
  for (int i = 0; i < 50; ++i) {
    std::string n = "n";  // not "lit" + string: GCC 12 -Wrestrict false positive at -O3
    n += std::to_string(i);
    n += ".example.test";
    many.push_back(std::move(n));
  }
  ptr["13.2.0.192.in-addr.arpa"] = many;
  asked.clear();
  CHECK(mailauth::client_name(dns, "192.0.2.13").name.empty());
  CHECK(asked.size() == 11);
}
