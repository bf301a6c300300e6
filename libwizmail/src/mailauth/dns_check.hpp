// The checker behind `wizmail check-dns` (wizmail/admin/check_dns.hpp): a
// pure function of the DNS answers and the configuration.
//
// The answers are a DnsAnswers: fixed ones (tests: every name not given
// does not exist), or, for the command, a live look-up function whose
// answers are gathered as the checker asks, each question once. SPF is
// libspf2's evaluation (check_spf) over the same answers.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dkim/dkim.hpp"
#include "mailauth/mailauth.hpp"
#include "util/ip.hpp"
#include "wizmail/admin/check_dns.hpp"

namespace wizmail::mailauth {

class DnsAnswers {
 public:
  DnsAnswers() = default;  // fixed answers only
  explicit DnsAnswers(Dns live) : live_(std::move(live)) {}

  // A fixed answer (name without the final dot, any case).
  void set(std::string_view name, int type, Result<outbound::DnsRecords> answer);
  void set(std::string_view name, int type, std::vector<std::string> records);  // found

  // The answer: a fixed or already gathered one; else the live function's
  // (kept); else NXDOMAIN.
  Result<outbound::DnsRecords> lookup(std::string_view name, int type);
  Dns as_dns();

  // Every answer, by (lower-case name, type).
  const std::map<std::pair<std::string, int>, Result<outbound::DnsRecords>>& answers() const noexcept {
    return answers_;
  }

 private:
  Dns live_;
  std::map<std::pair<std::string, int>, Result<outbound::DnsRecords>> answers_;
};

// A DKIM key of the domain in the home.
struct DkimKeyFile {
  std::string selector;
  std::string file;
  bool active = false;                 // the one the relay signs with
  Result<dkim::PrivateKey> key = fail(Errc::not_found, "not read");
};

struct DnsCheckInput {
  std::string domain;                  // lower case, no final dot
  std::string host_name;               // the server's name
  std::vector<std::string> addresses;  // configured (--address), numeric
  std::vector<DkimKeyFile> dkim_keys;  // every key of the domain in the home
  std::string dkim_problem;            // e.g. several keys and no selector file
  // The organisational domain (public suffix list; RFC 7489 §6.6.3): its
  // DMARC record applies when `domain` has none. Empty or `domain`: none.
  std::string org_domain;
};

std::vector<DnsFinding> evaluate_dns(const DnsCheckInput& input, DnsAnswers& dns);

// A name as DNS answers compare: lower case, no blanks, no final dot.
std::string normalize_dns_name(std::string_view name);

// "4.3.2.1.in-addr.arpa", "…ip6.arpa".
std::string reverse_name(const util::IpAddress& ip);

// A DKIM key record's public key bytes (p= decoded) and key type, or why
// the record is malformed. p= empty: a revoked key (`revoked`).
struct DkimRecordKey {
  std::string key_type = "rsa";  // k=
  std::string public_key;        // decoded p=
  bool revoked = false;
};
Result<DkimRecordKey> parse_dkim_record(std::string_view record);

}  // namespace wizmail::mailauth
