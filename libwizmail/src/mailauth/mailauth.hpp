// Authentication of inbound mail (RFC 7208 SPF, RFC 6376 DKIM, RFC 7489
// DMARC) and its report, one RFC 8601 Authentication-Results: field.
//
// The protocols are Debian's libraries: libspf2 evaluates SPF records,
// libopendkim (the dkim area) verifies signatures, libopendmarc parses DMARC
// records and applies their policy and identifier alignment. Every DNS
// question they ask goes through one `Dns` function — the server's is the
// c-ares resolver of `dns_servers` (outbound/dns.hpp), tests give fixed
// answers — so the checks honour the configured servers and a time-out is
// seen as what it is: a temporary error, never a failure.
//
// Pure apart from that function: no sockets, no files (the public suffix
// list is read by PublicSuffixList::load).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "dkim/dkim.hpp"
#include "outbound/dns.hpp"
#include "wizmail/error.hpp"

namespace wizmail::mailauth {

// One DNS question: `type` is ns_t_a, ns_t_aaaa, ns_t_mx, ns_t_txt or
// ns_t_ptr. Errc::temporary: time-out or SERVFAIL.
using Dns = std::function<Result<outbound::DnsRecords>(std::string_view name, int type)>;

// --- The client's name (Postfix's forward-confirmed reverse DNS) ---
// `ptr`: the first PTR name of `ip` (unverified; "" when none or DNS
// failed); `name`: the first PTR name whose A/AAAA records include `ip`
// ("" = unknown). At most 10 PTR names are checked. Names lower case,
// without the final dot. For the milters' {client_name}/{client_ptr}.
struct ClientName {
  std::string name;
  std::string ptr;
};
ClientName client_name(const Dns& dns, std::string_view ip);

// --- SPF (RFC 7208) over libspf2 ---
enum class SpfResult { none, neutral, pass, fail, softfail, temperror, permerror };
std::string_view to_string(SpfResult r) noexcept;

struct SpfOutcome {
  SpfResult result = SpfResult::none;
  std::string domain;  // the identity's domain (MAIL FROM's, or the HELO name)
  std::string identity;  // "mailfrom" or "helo"
  std::string reason;    // libspf2's words
};

// The check of one identity: `sender` the MAIL FROM address (empty: the
// null sender, checked as postmaster@helo, RFC 7208 §2.4), `helo` the
// HELO/EHLO name, `client_ip` numeric. `helo_only`: check the HELO identity.
SpfOutcome check_spf(const Dns& dns, std::string_view client_ip, std::string_view helo,
                     std::string_view sender, std::string_view receiver, bool helo_only = false);

// --- DKIM key records through Dns ---
// "<selector>._domainkey.<domain>" → its TXT record (the first that starts
// with v=DKIM1 or holds p=, else the first).
dkim::KeySource dkim_keys(Dns dns);

// --- Organisational domains (RFC 7489 §3.2) ---
class PublicSuffixList {
 public:
  // The Mozilla format (// comments, *. wildcards, ! exceptions).
  static PublicSuffixList parse(std::string_view text);
  static Result<PublicSuffixList> load(const std::string& path);
  // The registered domain: the public suffix plus one label; `name` itself
  // when it is a public suffix or has one label. Lower case, no final dot.
  std::string organizational_domain(std::string_view name) const;
  std::size_t size() const noexcept { return rules_.size(); }

 private:
  std::unordered_set<std::string> rules_;       // "com", "co.uk"
  std::unordered_set<std::string> wildcards_;   // "*.ck" stored as "ck"
  std::unordered_set<std::string> exceptions_;  // "!www.ck" stored as "www.ck"
};

// Relaxed alignment: same organisational domain; strict: equal names.
bool aligned(const PublicSuffixList& psl, std::string_view a, std::string_view b, bool strict);

// --- DMARC (RFC 7489) over libopendmarc ---
enum class DmarcResult { none, pass, fail, temperror, permerror };
std::string_view to_string(DmarcResult r) noexcept;
enum class DmarcPolicy { none, quarantine, reject };  // the one to apply (p= or sp=)
std::string_view to_string(DmarcPolicy p) noexcept;

struct DmarcOutcome {
  DmarcResult result = DmarcResult::none;
  DmarcPolicy policy = DmarcPolicy::none;  // what the domain asks for a failure
  std::string from_domain;                  // header.from
  std::string record_domain;                // whose _dmarc record applied
  bool spf_aligned = false;
  bool dkim_aligned = false;
  std::string reason;
};

// The DMARC verdict for a message whose From: domain is `from_domain`,
// given the DMARC `record` (nullopt: none published) found at
// `record_domain` (the From: domain or its organisational domain), and the
// SPF (MAIL FROM) and DKIM results. Pure: no DNS.
DmarcOutcome evaluate_dmarc(std::string_view client_ip, std::string_view from_domain,
                            const std::optional<std::string>& record, std::string_view record_domain,
                            const SpfOutcome& spf, const std::vector<dkim::SignatureResult>& dkim,
                            const PublicSuffixList& psl);

// The record look-up (_dmarc.<from>, then _dmarc.<organisational domain>),
// then evaluate_dmarc(). A temporary DNS error: temperror.
DmarcOutcome check_dmarc(const Dns& dns, std::string_view client_ip, std::string_view from_domain,
                         const SpfOutcome& spf, const std::vector<dkim::SignatureResult>& dkim,
                         const PublicSuffixList& psl);

// --- the message's header section ---
// The domain of the single address in the single From: field; nullopt when
// there is none, several, or it cannot be parsed (DMARC permerror).
std::optional<std::string> from_domain(std::string_view header_section);

// The header section without every Authentication-Results: field whose
// authserv-id is `authserv_id` (case-insensitive; comments skipped), RFC
// 8601 §5. Other fields, their order and line ends are kept.
std::string remove_own_results(std::string_view header_section, std::string_view authserv_id);

// The authserv-id of one Authentication-Results field value; empty if none.
std::string authserv_id_of(std::string_view field_value);

// --- the report ---
struct Results {
  std::optional<SpfOutcome> spf_mailfrom;
  std::optional<SpfOutcome> spf_helo;
  bool dkim_checked = false;
  std::vector<dkim::SignatureResult> dkim;
  std::optional<DmarcOutcome> dmarc;
};

// "Authentication-Results: <id>;\r\n\tspf=pass ... \r\n" (RFC 8601), folded,
// CRLF-terminated. Nothing checked: "<id>; none".
std::string format_authentication_results(std::string_view authserv_id, const Results& r,
                                          std::string_view sender);

// --- policy ---
struct Policy {
  bool spf_reject_fail = false;          // SPF fail at MAIL FROM → 550 5.7.23
  bool dmarc_reject = true;              // p=reject failures → 550 5.7.1
  std::vector<std::string> dmarc_reject_exempt;  // From: domains never refused
  bool temperror_defer = false;          // temperror where a policy applies → 451 4.7.5
};

struct Decision {
  enum class Kind { accept, reject, defer } kind = Kind::accept;
  std::string reply;   // the whole reply line without CRLF (reject/defer)
  std::string reason;  // for the log
};

// At MAIL FROM: SPF fail may refuse; temperror never refuses (at most 451
// when temperror_defer is set and fail would have been refused).
Decision decide_mail(const Policy& p, const SpfOutcome& spf);
// At end of data: DMARC.
Decision decide_data(const Policy& p, const DmarcOutcome& dmarc);

}  // namespace wizmail::mailauth
