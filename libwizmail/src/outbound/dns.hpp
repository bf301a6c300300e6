// Private: one DNS question of any record type the mail checks need (SPF,
// DKIM keys, DMARC policies), through the same c-ares channel set-up as the
// MX look-ups (`dns_servers`). Blocking: call it from a worker thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "wizmail/relay.hpp"

namespace wizmail::outbound {

struct DnsRecords {
  enum class Status { found, no_data, nx_domain } status = Status::found;
  // A/AAAA: addresses as text; MX: "preference host"; TXT: each record's
  // character-strings joined; PTR: names. Empty unless found.
  std::vector<std::string> records;
  // found: the smallest TTL of the records; no_data / nx_domain: the
  // negative TTL (RFC 2308: min of the SOA's TTL and MINIMUM); 0: unknown.
  int ttl = 0;
};

// `type`: ns_t_a, ns_t_aaaa, ns_t_mx, ns_t_txt or ns_t_ptr (arpa/nameser.h).
// A time-out or SERVFAIL is Errc::temporary; a name that is no domain name
// Errc::invalid_argument.
Result<DnsRecords> query_records(std::string_view name, int type, const ResolverOptions& opt);

// The TTL of a negative answer (RFC 2308 §5) in the DNS message `m` (as
// received; untrusted): the smaller of the authority section's SOA TTL and
// its MINIMUM field. 0 when there is no SOA or the message is malformed.
std::uint32_t negative_ttl(const std::vector<unsigned char>& m);

// Several questions of one type at once on one channel (in parallel; the
// whole takes about as long as the slowest): one result per name, in order.
std::vector<Result<DnsRecords>> query_many(const std::vector<std::string>& names, int type,
                                           const ResolverOptions& opt);

}  // namespace wizmail::outbound
