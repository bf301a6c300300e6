// DMARC over libopendmarc: the record's syntax, the policy to apply (p= or
// sp=) and identifier alignment are the library's. The record is fetched
// here, through the same Dns as SPF and DKIM, and handed over with
// opendmarc_policy_store_dmarc (never the library's own resolver).
#include <arpa/nameser.h>

#include <opendmarc/dmarc.h>

#include <cstring>
#include <mutex>

#include "mailauth/mailauth.hpp"
#include "util/strings.hpp"

namespace wizmail::mailauth {

namespace {

constexpr const char* kPslPath = "/usr/share/publicsuffix/public_suffix_list.dat";

void library_init() {
  static std::once_flag once;
  std::call_once(once, [] {
    static OPENDMARC_LIB_T lib{};
    lib.tld_type = OPENDMARC_TLD_TYPE_MOZILLA;
    std::strncpy(reinterpret_cast<char*>(lib.tld_source_file), kPslPath, sizeof lib.tld_source_file - 1);
    if (opendmarc_policy_library_init(&lib) != DMARC_PARSE_OKAY) {
      // Without the list the library aligns by exact names only.
      lib.tld_type = OPENDMARC_TLD_TYPE_NONE;
      (void)opendmarc_policy_library_init(&lib);
    }
  });
}

struct Ctx {
  DMARC_POLICY_T* p = nullptr;
  ~Ctx() {
    if (p) opendmarc_policy_connect_shutdown(p);
  }
};

u_char* uc(std::string& s) { return reinterpret_cast<u_char*>(s.data()); }

}  // namespace

std::string_view to_string(DmarcResult r) noexcept {
  switch (r) {
    case DmarcResult::none: return "none";
    case DmarcResult::pass: return "pass";
    case DmarcResult::fail: return "fail";
    case DmarcResult::temperror: return "temperror";
    case DmarcResult::permerror: return "permerror";
  }
  return "none";
}

std::string_view to_string(DmarcPolicy p) noexcept {
  switch (p) {
    case DmarcPolicy::none: return "none";
    case DmarcPolicy::quarantine: return "quarantine";
    case DmarcPolicy::reject: return "reject";
  }
  return "none";
}

DmarcOutcome evaluate_dmarc(std::string_view client_ip, std::string_view from_domain,
                            const std::optional<std::string>& record, std::string_view record_domain,
                            const SpfOutcome& spf, const std::vector<dkim::SignatureResult>& dkim,
                            const PublicSuffixList& psl) {
  library_init();
  DmarcOutcome out;
  out.from_domain = util::to_lower(from_domain);
  out.record_domain = util::to_lower(record_domain);
  if (!record) {
    out.result = DmarcResult::none;
    out.reason = "no DMARC record";
    return out;
  }
  std::string ip(client_ip);
  Ctx c;
  c.p = opendmarc_policy_connect_init(uc(ip), ip.find(':') != std::string::npos ? DMARC_POLICY_IP_TYPE_IPV6
                                                                                 : DMARC_POLICY_IP_TYPE_IPV4);
  if (!c.p) {
    out.result = DmarcResult::temperror;
    out.reason = "libopendmarc: no context";
    return out;
  }
  std::string from = out.from_domain;
  if (opendmarc_policy_store_from_domain(c.p, uc(from)) != DMARC_PARSE_OKAY) {
    out.result = DmarcResult::permerror;
    out.reason = "bad From: domain";
    return out;
  }
  std::string rec = *record;
  std::string org = out.record_domain;
  const bool at_org = out.record_domain != out.from_domain;
  if (int st = opendmarc_policy_store_dmarc(c.p, uc(rec), uc(from), at_org ? uc(org) : nullptr);
      st != DMARC_PARSE_OKAY) {
    out.result = DmarcResult::permerror;
    out.reason = util::cat("bad DMARC record: ", opendmarc_policy_status_to_str(st));
    return out;
  }
  // SPF: the MAIL FROM identity (for the null sender, the HELO one it was
  // checked as).
  int spf_result = DMARC_POLICY_SPF_OUTCOME_NONE;
  switch (spf.result) {
    case SpfResult::pass: spf_result = DMARC_POLICY_SPF_OUTCOME_PASS; break;
    case SpfResult::fail:
    case SpfResult::softfail: spf_result = DMARC_POLICY_SPF_OUTCOME_FAIL; break;
    case SpfResult::temperror: spf_result = DMARC_POLICY_SPF_OUTCOME_TMPFAIL; break;
    default: break;
  }
  if (!spf.domain.empty()) {
    std::string d = spf.domain;
    std::string human(to_string(spf.result));
    (void)opendmarc_policy_store_spf(c.p, uc(d), spf_result,
                                     spf.identity == "helo" ? DMARC_POLICY_SPF_ORIGIN_HELO
                                                            : DMARC_POLICY_SPF_ORIGIN_MAILFROM,
                                     uc(human));
  }
  bool temporary = spf.result == SpfResult::temperror;
  for (const auto& s : dkim) {
    int r = DMARC_POLICY_DKIM_OUTCOME_NONE;
    switch (s.outcome) {
      case dkim::Outcome::pass: r = DMARC_POLICY_DKIM_OUTCOME_PASS; break;
      case dkim::Outcome::fail:
      case dkim::Outcome::permerror: r = DMARC_POLICY_DKIM_OUTCOME_FAIL; break;
      case dkim::Outcome::temperror:
        r = DMARC_POLICY_DKIM_OUTCOME_TMPFAIL;
        temporary = true;
        break;
      case dkim::Outcome::neutral: continue;
    }
    if (s.domain.empty()) continue;
    std::string d = util::to_lower(s.domain), sel = s.selector;
    std::string human(dkim::to_string(s.outcome));
    (void)opendmarc_policy_store_dkim(c.p, uc(d), uc(sel), r, uc(human));
  }
  // The policy and the alignment modes are the library's parse of the
  // record; alignment itself is decided here (aligned(), the public suffix
  // list): libopendmarc 1.4.2 counts a subdomain's signature as aligned
  // under adkim=s (tests/mailauth: "relaxed vs adkim=s").
  const int verdict = opendmarc_get_policy_to_enforce(c.p);
  int adkim = 0, aspf = 0, p = 0;
  (void)opendmarc_policy_fetch_adkim(c.p, &adkim);
  (void)opendmarc_policy_fetch_aspf(c.p, &aspf);
  (void)opendmarc_policy_fetch_p(c.p, &p);
  if (at_org) {
    int sp = 0;
    if (opendmarc_policy_fetch_sp(c.p, &sp) == DMARC_PARSE_OKAY && sp != DMARC_RECORD_P_UNSPECIFIED) p = sp;
  }
  out.policy = p == DMARC_RECORD_P_REJECT       ? DmarcPolicy::reject
               : p == DMARC_RECORD_P_QUARANTINE ? DmarcPolicy::quarantine
                                                : DmarcPolicy::none;
  out.spf_aligned = spf.result == SpfResult::pass && aligned(psl, spf.domain, from, aspf == DMARC_RECORD_A_STRICT);
  for (const auto& s : dkim)
    if (s.outcome == dkim::Outcome::pass && aligned(psl, s.domain, from, adkim == DMARC_RECORD_A_STRICT))
      out.dkim_aligned = true;
  switch (verdict) {
    case DMARC_POLICY_PASS:
    case DMARC_POLICY_REJECT:
    case DMARC_POLICY_QUARANTINE:
    case DMARC_POLICY_NONE:
      out.result = out.spf_aligned || out.dkim_aligned ? DmarcResult::pass : DmarcResult::fail;
      break;
    case DMARC_POLICY_ABSENT: out.result = DmarcResult::none; break;
    default:
      out.result = DmarcResult::permerror;
      out.reason = opendmarc_policy_status_to_str(verdict);
      break;
  }
  // Both identifiers are aligned only through a result: if either could not
  // be known for a temporary reason, a failure is not a failure yet.
  if (out.result == DmarcResult::fail && temporary && !out.spf_aligned && !out.dkim_aligned) {
    out.result = DmarcResult::temperror;
    out.reason = "an SPF or DKIM look-up failed temporarily";
  }
  if (out.result == DmarcResult::fail && out.reason.empty()) out.reason = "neither SPF nor DKIM aligned";
  return out;
}

DmarcOutcome check_dmarc(const Dns& dns, std::string_view client_ip, std::string_view from_domain,
                         const SpfOutcome& spf, const std::vector<dkim::SignatureResult>& dkim,
                         const PublicSuffixList& psl) {
  const std::string from = util::to_lower(from_domain);
  // One TXT question: the first record starting "v=DMARC1" (RFC 7489 §6.6.3:
  // several → none applies).
  auto fetch = [&](const std::string& domain) -> Result<std::optional<std::string>> {
    auto r = dns(util::cat("_dmarc.", domain), ns_t_txt);
    if (!r) return unexpected(r.error());
    std::optional<std::string> found;
    int n = 0;
    for (const auto& rec : r->records) {
      auto t = util::trim(rec);
      if (t.size() >= 8 && util::iequals(t.substr(0, 8), "v=DMARC1") &&
          (t.size() == 8 || t[8] == ';' || t[8] == ' ')) {
        ++n;
        found = std::string(t);
      }
    }
    if (n > 1) return std::optional<std::string>{};
    return found;
  };
  auto tempfail = [&](const Error& e) {
    DmarcOutcome o;
    o.result = DmarcResult::temperror;
    o.from_domain = from;
    o.reason = e.message;
    return o;
  };
  auto r = fetch(from);
  if (!r) return tempfail(r.error());
  std::string at = from;
  if (!*r) {
    const std::string org = psl.organizational_domain(from);
    if (org != from) {
      r = fetch(org);
      if (!r) return tempfail(r.error());
      at = org;
    }
  }
  return evaluate_dmarc(client_ip, from, *r, at, spf, dkim, psl);
}

}  // namespace wizmail::mailauth
