// The checks of `wizmail check-dns` over gathered DNS answers (dns_check.hpp).
// What they check is what docs/internet.md tells people to publish.
#include "mailauth/dns_check.hpp"

#include <arpa/nameser.h>

#include <algorithm>
#include <cctype>
#include <optional>

#include "util/base64.hpp"
#include "util/strings.hpp"

namespace wizmail::mailauth {

std::string normalize_dns_name(std::string_view name) {
  std::string n = util::to_lower(util::trim(name));
  if (!n.empty() && n.back() == '.') n.pop_back();
  return n;
}

namespace {

using outbound::DnsRecords;
using Level = DnsCheckLevel;


class Report {
 public:
  explicit Report(std::string domain) : domain_(std::move(domain)) {}
  void add(std::string_view check, Level level, std::string message, std::string fix = {}) {
    out_.push_back({std::string(check), level, std::move(message), std::move(fix), false});
  }
  // A question that timed out or got SERVFAIL: not the record's fault.
  void temporary(std::string_view check, const Error& e, Level level = Level::warn) {
    out_.push_back({std::string(check), level, util::cat("could not check (temporary DNS error): ", e.message),
                    util::cat("run the check again later; if it persists, look at the name servers answering for ", domain_,
                              " (and its reverse zones) and at dns_servers (smtpenv.dat)"),
                    true});
  }
  std::vector<DnsFinding> take() { return std::move(out_); }

 private:
  std::string domain_;
  std::vector<DnsFinding> out_;
};

bool is_temporary(const Result<DnsRecords>& r) { return !r && r.error().code == Errc::temporary; }

const std::vector<std::string>& found(const Result<DnsRecords>& r) {
  static const std::vector<std::string> none;
  return r && r->status == DnsRecords::Status::found ? r->records : none;
}

std::string join(const std::vector<std::string>& v, std::string_view sep = ", ") {
  std::string out;
  for (const auto& s : v) util::append(out, out.empty() ? "" : sep, s);
  return out;
}

// One of our addresses, as written and as bytes.
struct Address {
  std::string text;
  util::IpAddress ip;
};

bool contains(const std::vector<Address>& list, const util::IpAddress& ip) {
  return std::any_of(list.begin(), list.end(), [&](const Address& a) { return a.ip == ip; });
}

void add_address(std::vector<Address>& list, std::string_view text) {
  auto ip = util::IpAddress::parse(util::trim(text));
  if (ip && !contains(list, *ip)) list.push_back({std::string(util::trim(text)), *ip});
}

// A host's A and AAAA records.
struct HostAddresses {
  std::vector<std::string> addresses;
  std::optional<Error> temporary;  // a question failed temporarily
  std::string problem;             // a question refused (not a valid name)
};

HostAddresses resolve(DnsAnswers& dns, std::string_view host) {
  HostAddresses h;
  for (int type : {ns_t_a, ns_t_aaaa}) {
    auto r = dns.lookup(host, type);
    if (!r) {
      if (r.error().code == Errc::temporary) h.temporary = r.error();
      else h.problem = r.error().message;
      continue;
    }
    for (const auto& a : found(r)) h.addresses.push_back(a);
  }
  return h;
}

// "tag=value" pairs of a DKIM, DMARC or MTA-STS record (RFC 6376 §3.2):
// separated by ';', white space around them ignored, a final ';' allowed.
Result<std::vector<std::pair<std::string, std::string>>> parse_tags(std::string_view record) {
  std::vector<std::pair<std::string, std::string>> tags;
  for (const auto& part : util::split_list(record, ';')) {
    auto t = util::trim(part);
    if (t.empty()) continue;
    auto eq = t.find('=');
    if (eq == std::string_view::npos) return fail(Errc::parse, util::cat("'", t, "' is no tag=value"));
    std::string name = util::to_lower(util::trim(t.substr(0, eq)));
    if (name.empty()) return fail(Errc::parse, util::cat("'", t, "' has no tag name"));
    for (const auto& [n, v] : tags)
      if (n == name) return fail(Errc::parse, util::cat("tag ", name, "= appears twice"));
    tags.emplace_back(std::move(name), std::string(util::trim(t.substr(eq + 1))));
  }
  return tags;
}

const std::string* tag(const std::vector<std::pair<std::string, std::string>>& tags, std::string_view name) {
  for (const auto& [n, v] : tags)
    if (n == name) return &v;
  return nullptr;
}

bool starts_with_version(std::string_view record, std::string_view version) {
  // "v=spf1", "v=DMARC1", "v=STSv1": the version tag, then a separator or the end.
  auto r = util::trim(record);
  if (!util::istarts_with(r, version)) return false;
  if (r.size() == version.size()) return true;
  const char c = r[version.size()];
  return c == ' ' || c == ';' || c == '\t';
}

// --- MX ---

void check_mx(Report& rep, const DnsCheckInput& in, const std::vector<Address>& ours, DnsAnswers& dns) {
  const std::string& d = in.domain;
  const std::string host = in.host_name;
  auto mx = dns.lookup(d, ns_t_mx);
  if (is_temporary(mx)) return rep.temporary("MX", mx.error());
  const std::string publish = util::cat("publish `", d, ". IN MX 10 ", host, ".`");
  if (!mx) return rep.add("MX", Level::fail, util::cat("MX of ", d, ": ", mx.error().message), publish);
  if (mx->status == DnsRecords::Status::nx_domain)
    return rep.add("MX", Level::fail, util::cat(d, " does not exist in DNS (NXDOMAIN)"),
                   util::cat("create the zone of ", d, " and ", publish));
  if (found(mx).empty())
    return rep.add("MX", Level::fail, util::cat(d, " has no MX record"), publish);

  struct Mx {
    int preference = 0;
    std::string host;
  };
  std::vector<Mx> hosts;
  for (const auto& r : found(mx)) {
    auto sp = r.find(' ');
    Mx m;
    m.preference = static_cast<int>(util::parse_int(r.substr(0, sp)).value_or(0));
    m.host = sp == std::string::npos ? std::string() : normalize_dns_name(r.substr(sp + 1));
    hosts.push_back(std::move(m));
  }
  std::stable_sort(hosts.begin(), hosts.end(), [](const Mx& a, const Mx& b) { return a.preference < b.preference; });
  if (hosts.size() == 1 && hosts[0].host.empty())
    return rep.add("MX", Level::fail, util::cat(d, " has a null MX (\"0 .\", RFC 7505): it accepts no mail"),
                   util::cat("replace it: ", publish));

  std::vector<std::string> here, elsewhere, no_address;
  std::optional<Error> temp;
  for (const auto& m : hosts) {
    const std::string label = util::cat(std::to_string(m.preference), " ", m.host.empty() ? "." : m.host);
    if (m.host.empty()) {
      no_address.push_back(util::cat(label, " (a null MX among others)"));
      continue;
    }
    if (util::IpAddress::parse(m.host)) {
      no_address.push_back(util::cat(label, " (an address, not a host name)"));
      continue;
    }
    auto h = resolve(dns, m.host);
    bool mine = false;
    for (const auto& a : h.addresses)
      if (auto ip = util::IpAddress::parse(a); ip && contains(ours, *ip)) mine = true;
    if (mine) {
      here.push_back(util::cat(label, " → ", join(h.addresses)));
    } else if (!h.addresses.empty()) {
      elsewhere.push_back(util::cat(label, " → ", join(h.addresses)));
    } else if (h.temporary) {
      temp = h.temporary;
    } else {
      no_address.push_back(util::cat(label, " (no A/AAAA record", h.problem.empty() ? "" : ": ", h.problem, ")"));
    }
  }
  if (here.empty()) {
    if (temp) return rep.temporary("MX", *temp);
    std::string what = join(elsewhere, "; ");
    if (!no_address.empty()) util::append(what, what.empty() ? "" : "; ", join(no_address, "; "));
    if (ours.empty())
      return rep.add("MX", Level::fail,
                     util::cat("no MX host of ", d, " can be matched to this server: its addresses are unknown (", what, ")"),
                     util::cat("give them with --address IP, or publish the A/AAAA records of ", host));
    std::vector<std::string> our_text;
    for (const auto& a : ours) our_text.push_back(a.text);
    return rep.add("MX", Level::fail,
                   util::cat("no MX host of ", d, " points to this server (", join(our_text), "): ", what),
                   util::cat(publish, " (", host, " with A/AAAA records of this server's addresses)"));
  }
  rep.add("MX", Level::ok, util::cat(d, " MX ", join(here, "; "), " (this server)"));
  if (!elsewhere.empty())
    rep.add("MX", Level::warn, util::cat("MX hosts pointing elsewhere: ", join(elsewhere, "; ")),
            "keep a second MX only if that host really accepts and queues mail for the domain; else remove it");
  if (!no_address.empty())
    rep.add("MX", Level::warn, util::cat("MX hosts without an address: ", join(no_address, "; ")),
            "an MX must name a host with A/AAAA records (never an address or a CNAME, RFC 5321 §5.1): fix or remove it");
  if (temp) rep.temporary("MX", *temp);
}

// --- A/AAAA of the server's name and the PTR of each address ---

void check_host(Report& rep, const DnsCheckInput& in, const std::vector<Address>& configured,
                const HostAddresses& host_addresses, const std::vector<Address>& ours, DnsAnswers& dns) {
  const std::string& host = in.host_name;
  const bool dns_name = host.find('.') != std::string::npos && !util::IpAddress::parse(host);
  if (!dns_name) {
    rep.add("A/AAAA", Level::fail, util::cat("the server's name '", host, "' is not a DNS name"),
            "set domain= in def/wiz98msenv.dat to the server's public name (e.g. mail.example.org), or give --host-name");
  } else if (host_addresses.temporary && host_addresses.addresses.empty()) {
    rep.temporary("A/AAAA", *host_addresses.temporary);
  } else if (host_addresses.addresses.empty()) {
    std::string example = configured.empty() ? std::string("192.0.2.25") : configured.front().text;
    rep.add("A/AAAA", Level::fail, util::cat(host, " has no A/AAAA record"),
            util::cat("publish `", host, ". IN ", example.find(':') == std::string::npos ? "A" : "AAAA", " ", example,
                      "`"));
  } else {
    std::vector<std::string> missing;
    for (const auto& a : configured) {
      bool listed = false;
      for (const auto& h : host_addresses.addresses)
        if (auto ip = util::IpAddress::parse(h); ip && *ip == a.ip) listed = true;
      if (!listed) missing.push_back(a.text);
    }
    if (missing.empty()) {
      rep.add("A/AAAA", Level::ok, util::cat(host, " → ", join(host_addresses.addresses)));
    } else {
      std::string fix;
      for (const auto& m : missing)
        util::append(fix, fix.empty() ? "publish " : ", ", "`", host, ". IN ", m.find(':') == std::string::npos ? "A" : "AAAA",
                     " ", m, "`");
      rep.add("A/AAAA", Level::fail,
              util::cat(host, " → ", join(host_addresses.addresses), ", not ", join(missing),
                        " (receivers cannot confirm the PTR of an address the name does not have)"),
              std::move(fix));
    }
    if (host_addresses.temporary) rep.temporary("A/AAAA", *host_addresses.temporary);
  }

  // PTR: forward-confirmed reverse DNS of each of our addresses.
  for (const auto& a : ours) {
    auto r = dns.lookup(reverse_name(a.ip), ns_t_ptr);
    if (is_temporary(r)) {
      rep.temporary("PTR", r.error());
      continue;
    }
    const std::string ask = util::cat("ask whoever owns the address block of ", a.text, " to set its PTR to ", host);
    std::vector<std::string> names;
    for (const auto& n : found(r)) names.push_back(normalize_dns_name(n));
    if (names.empty()) {
      rep.add("PTR", Level::fail, util::cat(a.text, " has no PTR record (many receivers refuse such senders)"), ask);
      continue;
    }
    if (std::find(names.begin(), names.end(), host) == names.end()) {
      rep.add("PTR", Level::fail, util::cat("PTR of ", a.text, " is ", join(names), ", not ", host), ask);
      continue;
    }
    bool forward = false;
    for (const auto& h : host_addresses.addresses)
      if (auto ip = util::IpAddress::parse(h); ip && *ip == a.ip) forward = true;
    if (forward)
      rep.add("PTR", Level::ok, util::cat(a.text, " → ", host, " → ", a.text, " (forward-confirmed)"));
    else
      rep.add("PTR", Level::fail, util::cat("PTR of ", a.text, " is ", host, ", but ", host, " does not resolve to it"),
              util::cat("publish `", host, ". IN ", a.text.find(':') == std::string::npos ? "A" : "AAAA", " ", a.text, "`"));
  }
}

// --- SPF ---

// The qualifier of the record's `all` term ('+', '-', '~', '?'), 0 without
// one; `redirect` set when it has redirect=.
char all_qualifier(std::string_view record, bool& redirect) {
  char q = 0;
  redirect = false;
  std::string r = util::to_lower(record);
  std::size_t i = 0;
  while (i < r.size()) {
    while (i < r.size() && (r[i] == ' ' || r[i] == '\t')) ++i;
    std::size_t j = i;
    while (j < r.size() && r[j] != ' ' && r[j] != '\t') ++j;
    std::string_view term(r.data() + i, j - i);
    if (term == "all") q = '+';
    else if (term.size() == 4 && term.substr(1) == "all" && std::string_view("+-~?").find(term[0]) != std::string_view::npos)
      q = term[0];
    else if (term.starts_with("redirect="))
      redirect = true;
    i = j;
  }
  return q;
}

void check_spf_records(Report& rep, const DnsCheckInput& in, const std::vector<Address>& ours, DnsAnswers& dns) {
  const std::string& d = in.domain;
  auto txt = dns.lookup(d, ns_t_txt);
  if (is_temporary(txt)) return rep.temporary("SPF", txt.error());
  std::vector<std::string> spf;
  for (const auto& t : found(txt))
    if (starts_with_version(t, "v=spf1")) spf.push_back(t);
  if (spf.empty())
    return rep.add("SPF", Level::fail, util::cat(d, " has no SPF record (no TXT record starting with v=spf1)"),
                   util::cat("publish `", d, ". IN TXT \"v=spf1 mx -all\"` (mx: the MX hosts may send)"));
  if (spf.size() > 1)
    return rep.add("SPF", Level::fail,
                   util::cat(d, " has ", std::to_string(spf.size()), " SPF records (permerror: receivers ignore them all): \"",
                             join(spf, "\", \""), "\""),
                   "merge them into one v=spf1 record");
  const std::string& record = spf.front();
  if (ours.empty())
    return rep.add("SPF", Level::warn, util::cat("\"", record, "\": this server's addresses are unknown, not evaluated"),
                   util::cat("give them with --address IP, or publish the A/AAAA records of ", in.host_name));
  Dns fn = dns.as_dns();
  std::vector<std::string> passed;
  bool failed = false;
  for (const auto& a : ours) {
    auto r = check_spf(fn, a.text, in.host_name, util::cat("postmaster@", d), in.host_name);
    if (r.result == SpfResult::pass) {
      passed.push_back(a.text);
    } else if (r.result == SpfResult::temperror) {
      rep.temporary("SPF", Error{Errc::temporary, util::cat("SPF of ", d, " for ", a.text, ": ", r.reason)});
      failed = true;
    } else {
      rep.add("SPF", Level::fail,
              util::cat("\"", record, "\" gives ", to_string(r.result), " for ", a.text,
                        r.reason.empty() ? "" : " (", r.reason, r.reason.empty() ? "" : ")"),
              r.result == SpfResult::permerror
                  ? std::string("the record is invalid: correct it (RFC 7208)")
                  : util::cat("add ", a.text.find(':') == std::string::npos ? "ip4:" : "ip6:", a.text,
                              " (or mx, with the MX pointing here) before the all term"));
      failed = true;
    }
  }
  if (!failed && passed.size() == ours.size())
    rep.add("SPF", Level::ok, util::cat("\"", record, "\" passes for ", join(passed)));
  bool redirect = false;
  const char q = all_qualifier(record, redirect);
  if (q == '+')
    rep.add("SPF", Level::fail, util::cat("\"", record, "\" ends in +all: every host on the internet may send as ", d),
            "end the record with -all");
  else if (q == '~' || q == '?')
    rep.add("SPF", Level::warn,
            util::cat("\"", record, "\" ends in ", std::string(1, q), "all: mail from other hosts is only ",
                      q == '~' ? "softfail" : "neutral", ", not refused"),
            "change it to -all once every host that sends as the domain is listed");
  else if (q == 0 && !redirect)
    rep.add("SPF", Level::warn, util::cat("\"", record, "\" has no all term: mail from other hosts is neutral"),
            "end the record with -all");
}

// SPF of the HELO name: bounces (MAIL FROM:<>) are checked against it.
void check_helo_spf(Report& rep, const DnsCheckInput& in, const std::vector<Address>& ours, DnsAnswers& dns) {
  const std::string& host = in.host_name;
  if (host == in.domain || host.find('.') == std::string::npos || ours.empty()) return;
  const std::string fix = util::cat("publish `", host, ". IN TXT \"v=spf1 a -all\"` (bounces are sent with MAIL FROM:<> "
                                                       "and checked against the EHLO name)");
  Dns fn = dns.as_dns();
  std::vector<std::string> passed;
  for (const auto& a : ours) {
    auto r = check_spf(fn, a.text, host, "", host, true);
    if (r.result == SpfResult::pass) {
      passed.push_back(a.text);
    } else if (r.result == SpfResult::temperror) {
      rep.temporary("SPF (HELO)", Error{Errc::temporary, util::cat("SPF of ", host, ": ", r.reason)});
    } else if (r.result == SpfResult::none) {
      return rep.add("SPF (HELO)", Level::warn, util::cat(host, " has no SPF record"), fix);
    } else {
      rep.add("SPF (HELO)", Level::warn, util::cat("SPF of ", host, " gives ", to_string(r.result), " for ", a.text), fix);
    }
  }
  if (passed.size() == ours.size()) rep.add("SPF (HELO)", Level::ok, util::cat("SPF of ", host, " passes for ", join(passed)));
}

// --- DKIM ---

void check_dkim(Report& rep, const DnsCheckInput& in, DnsAnswers& dns) {
  const std::string& d = in.domain;
  if (!in.dkim_problem.empty())
    rep.add("DKIM", Level::warn, in.dkim_problem,
            util::cat("name the key to sign with in def/dkim/", d, "/selector (or `wizmail dkim keygen --activate`)"));
  if (in.dkim_keys.empty()) {
    if (in.dkim_problem.empty())
      rep.add("DKIM", Level::warn, util::cat("no DKIM key for ", d, " in the home: mail from it is not signed"),
              util::cat("`wizmail dkim keygen ", d, "`, publish the record it prints, then `wizmail reload`"));
    return;
  }
  for (const auto& k : in.dkim_keys) {
    // The key in use must be published; another one (being rotated in or
    // out) is worth a warning.
    const Level bad = k.active ? Level::fail : Level::warn;
    const std::string what = util::cat("selector ", k.selector, k.active ? " (in use)" : " (not in use)");
    const std::string name = util::cat(k.selector, "._domainkey.", d);
    const std::string publish = util::cat("publish the record `wizmail dkim show ", d, " --selector ", k.selector,
                                          "` prints at ", name);
    if (!k.key) {
      rep.add("DKIM", bad, util::cat(what, ": ", k.file, " cannot be used: ", k.key.error().message),
              util::cat("make a new key: `wizmail dkim keygen ", d, " --selector ", k.selector, " --force`, publish it"));
      continue;
    }
    auto txt = dns.lookup(name, ns_t_txt);
    if (is_temporary(txt)) {
      rep.temporary("DKIM", txt.error());
      continue;
    }
    const auto& records = found(txt);
    if (records.empty()) {
      rep.add("DKIM", bad, util::cat(what, ": no TXT record at ", name), publish);
      continue;
    }
    // As a verifier: the record that looks like a key record, else the first.
    const std::string* record = &records.front();
    for (const auto& r : records)
      if (util::istarts_with(util::trim(r), "v=DKIM1") || r.find("p=") != std::string::npos) {
        record = &r;
        break;
      }
    auto pub = parse_dkim_record(*record);
    if (!pub) {
      rep.add("DKIM", bad, util::cat(what, ": malformed record at ", name, ": ", pub.error().message), publish);
      continue;
    }
    if (pub->revoked) {
      rep.add("DKIM", bad, util::cat(what, ": the record at ", name, " is revoked (empty p=)"), publish);
      continue;
    }
    const bool ed = k.key->algorithm == dkim::Algorithm::ed25519_sha256;
    if (pub->key_type != (ed ? "ed25519" : "rsa")) {
      rep.add("DKIM", bad,
              util::cat(what, ": ", name, " publishes k=", pub->key_type, " but ", k.file, " is an ",
                        ed ? "ed25519" : "rsa", " key"),
              publish);
      continue;
    }
    auto mine = util::base64_decode(k.key->public_key);
    if (!mine || *mine != pub->public_key) {
      rep.add("DKIM", bad, util::cat(what, ": the key published at ", name, " is not the public half of ", k.file),
              util::cat(publish, " (then wait for the old record's TTL)"));
      continue;
    }
    rep.add("DKIM", Level::ok,
            util::cat(what, ": ", name, " matches ", k.file, " (", dkim::to_string(k.key->algorithm),
                      ed ? "" : util::cat(", ", std::to_string(k.key->bits), " bits"), ")"));
  }
}

// --- DMARC ---

void check_dmarc_record(Report& rep, const DnsCheckInput& in, DnsAnswers& dns) {
  std::string name = util::cat("_dmarc.", in.domain);
  const std::string publish =
      util::cat("publish `", name, ". IN TXT \"v=DMARC1; p=none; rua=mailto:postmaster@", in.domain, "\"`");
  auto txt = dns.lookup(name, ns_t_txt);
  if (is_temporary(txt)) return rep.temporary("DMARC", txt.error());
  std::vector<std::string> dmarc;
  for (const auto& t : found(txt))
    if (starts_with_version(t, "v=DMARC1")) dmarc.push_back(t);
  // A subdomain without a record of its own: receivers use the
  // organisational domain's, with its sp= policy (RFC 7489 §6.6.3).
  std::string inherited;  // the organisational record's name, when it applies
  if (dmarc.empty() && found(txt).empty() && !in.org_domain.empty() && in.org_domain != in.domain) {
    const std::string org_name = util::cat("_dmarc.", in.org_domain);
    auto org = dns.lookup(org_name, ns_t_txt);
    if (is_temporary(org)) return rep.temporary("DMARC", org.error());
    for (const auto& t : found(org))
      if (starts_with_version(t, "v=DMARC1")) dmarc.push_back(t);
    if (!dmarc.empty()) {
      inherited = org_name;
      name = org_name;
    }
  }
  if (dmarc.empty()) {
    if (!found(txt).empty())
      return rep.add("DMARC", Level::fail,
                     util::cat("the TXT record at ", name, " does not start with v=DMARC1: \"", found(txt).front(), "\""),
                     publish);
    if (!in.org_domain.empty() && in.org_domain != in.domain)
      return rep.add("DMARC", Level::fail,
                     util::cat("no DMARC record at ", name, " nor at _dmarc.", in.org_domain,
                               " (the organisational domain's)"),
                     publish);
    return rep.add("DMARC", Level::fail, util::cat("no DMARC record at ", name), publish);
  }
  if (dmarc.size() > 1)
    return rep.add("DMARC", Level::fail,
                   util::cat(name, " has ", std::to_string(dmarc.size()), " DMARC records (receivers then apply none)"),
                   "keep one v=DMARC1 record");
  const std::string& record = dmarc.front();
  auto tags = parse_tags(record);
  if (!tags)
    return rep.add("DMARC", Level::fail, util::cat("malformed record \"", record, "\": ", tags.error().message), publish);
  if (tags->front().first != "v" || tags->front().second != "DMARC1")
    return rep.add("DMARC", Level::fail, util::cat("\"", record, "\": the first tag must be v=DMARC1"), publish);
  const std::string* p = tag(*tags, "p");
  if (!p)
    return rep.add("DMARC", Level::fail, util::cat("\"", record, "\" has no p= tag"),
                   "add p=none (then quarantine, then reject) after v=DMARC1");
  // Inherited: the subdomain policy sp= when given (else p=) is what applies.
  const std::string* sp = inherited.empty() ? nullptr : tag(*tags, "sp");
  const std::string which = sp ? "sp" : "p";
  const std::string policy = util::to_lower(sp ? *sp : *p);
  if (policy != "none" && policy != "quarantine" && policy != "reject")
    return rep.add("DMARC", Level::fail,
                   util::cat("\"", record, "\": ", which, "=", sp ? *sp : *p, " is not none, quarantine or reject"),
                   util::cat("set ", which, "=none, ", which, "=quarantine or ", which, "=reject"));
  const std::string from = inherited.empty()
                               ? std::string()
                               : util::cat(" at ", inherited, ", which applies to ", in.domain, " (no record of its own)");
  if (policy == "none")
    return rep.add("DMARC", Level::warn,
                   util::cat("\"", record, "\"", from, ": ", which, "=none, receivers take no action on mail that fails"),
                   "read the reports (rua=) for a few weeks, then move to p=quarantine and p=reject");
  rep.add("DMARC", Level::ok, util::cat("\"", record, "\"", from, " (", which, "=", policy, ")"));
}

// --- MTA-STS (optional: information only) ---

void check_mta_sts(Report& rep, const DnsCheckInput& in, DnsAnswers& dns) {
  const std::string name = util::cat("_mta-sts.", in.domain);
  auto txt = dns.lookup(name, ns_t_txt);
  if (is_temporary(txt)) return rep.temporary("MTA-STS", txt.error(), Level::info);
  std::vector<std::string> sts;
  for (const auto& t : found(txt))
    if (starts_with_version(t, "v=STSv1")) sts.push_back(t);
  if (sts.empty()) {
    if (!found(txt).empty())
      return rep.add("MTA-STS", Level::info,
                     util::cat("the TXT record at ", name, " does not start with v=STSv1 (ignored by senders)"),
                     "publish \"v=STSv1; id=YYYYMMDDNN\" there, or remove it");
    return rep.add("MTA-STS", Level::info, util::cat("no MTA-STS record at ", name, " (optional)"));
  }
  const std::string fix = util::cat("publish one \"v=STSv1; id=YYYYMMDDNN\" record at ", name,
                                    " (id: 1 to 32 letters and digits, changed with each policy)");
  if (sts.size() > 1)
    return rep.add("MTA-STS", Level::info, util::cat(name, " has ", std::to_string(sts.size()), " v=STSv1 records (senders ignore them)"), fix);
  auto tags = parse_tags(sts.front());
  const std::string* id = tags ? tag(*tags, "id") : nullptr;
  const bool id_ok = id && !id->empty() && id->size() <= 32 &&
                     std::all_of(id->begin(), id->end(), [](unsigned char c) { return std::isalnum(c); });
  if (!tags || tags->front().first != "v" || tags->front().second != "STSv1" || !id_ok)
    return rep.add("MTA-STS", Level::info, util::cat("malformed record \"", sts.front(), "\""), fix);
  rep.add("MTA-STS", Level::info,
          util::cat("\"", sts.front(), "\" is well-formed; the policy at https://mta-sts.", in.domain,
                    "/.well-known/mta-sts.txt is not checked"));
}

}  // namespace

void DnsAnswers::set(std::string_view name, int type, Result<outbound::DnsRecords> answer) {
  answers_.insert_or_assign({normalize_dns_name(name), type}, std::move(answer));
}

void DnsAnswers::set(std::string_view name, int type, std::vector<std::string> records) {
  set(name, type, DnsRecords{DnsRecords::Status::found, std::move(records), 300});
}

Result<outbound::DnsRecords> DnsAnswers::lookup(std::string_view name, int type) {
  std::pair<std::string, int> key{normalize_dns_name(name), type};
  if (auto it = answers_.find(key); it != answers_.end()) return it->second;
  if (!live_) return DnsRecords{DnsRecords::Status::nx_domain, {}, 0};
  auto r = live_(key.first, type);
  answers_.emplace(std::move(key), r);
  return r;
}

Dns DnsAnswers::as_dns() {
  return [this](std::string_view name, int type) { return lookup(name, type); };
}

std::string reverse_name(const util::IpAddress& ip) {
  std::string out;
  if (!ip.v6) {
    for (int i = 3; i >= 0; --i) util::append(out, std::to_string(ip.bytes[static_cast<std::size_t>(i)]), ".");
    return out + "in-addr.arpa";
  }
  static const char hex[] = "0123456789abcdef";
  for (int i = 15; i >= 0; --i) {
    const auto b = ip.bytes[static_cast<std::size_t>(i)];
    out += hex[b & 0xf];
    out += '.';
    out += hex[b >> 4];
    out += '.';
  }
  return out + "ip6.arpa";
}

Result<DkimRecordKey> parse_dkim_record(std::string_view record) {
  auto tags = parse_tags(record);
  if (!tags) return unexpected(tags.error());
  if (tags->empty()) return fail(Errc::parse, "empty record");
  // v= is optional, but when present it comes first and says DKIM1 (RFC 6376 §3.6.1).
  for (std::size_t i = 0; i < tags->size(); ++i)
    if ((*tags)[i].first == "v" && (i != 0 || (*tags)[i].second != "DKIM1"))
      return fail(Errc::parse, "v= must be the first tag and be DKIM1");
  DkimRecordKey out;
  if (const auto* k = tag(*tags, "k")) out.key_type = util::to_lower(*k);
  if (out.key_type != "rsa" && out.key_type != "ed25519")
    return fail(Errc::parse, util::cat("unknown key type k=", out.key_type));
  const auto* p = tag(*tags, "p");
  if (!p) return fail(Errc::parse, "no p= tag (the public key)");
  std::string b64;
  for (char c : *p)
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') b64 += c;
  if (b64.empty()) {
    out.revoked = true;
    return out;
  }
  auto der = util::base64_decode(b64);
  if (!der || der->empty()) return fail(Errc::parse, "p= is not base64");
  out.public_key = std::move(*der);
  return out;
}

std::vector<DnsFinding> evaluate_dns(const DnsCheckInput& in, DnsAnswers& dns) {
  Report rep(in.domain);
  std::vector<Address> configured;
  for (const auto& a : in.addresses) add_address(configured, a);
  // Our addresses: the configured ones and those of the server's name.
  const bool dns_name = in.host_name.find('.') != std::string::npos && !util::IpAddress::parse(in.host_name);
  HostAddresses host = dns_name ? resolve(dns, in.host_name) : HostAddresses{};
  std::vector<Address> ours = configured;
  for (const auto& a : host.addresses) add_address(ours, a);

  check_mx(rep, in, ours, dns);
  check_host(rep, in, configured, host, ours, dns);
  check_spf_records(rep, in, ours, dns);
  check_helo_spf(rep, in, ours, dns);
  check_dkim(rep, in, dns);
  check_dmarc_record(rep, in, dns);
  check_mta_sts(rep, in, dns);
  return rep.take();
}

}  // namespace wizmail::mailauth
