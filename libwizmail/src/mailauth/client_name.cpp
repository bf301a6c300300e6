// The client's name: PTR, then the forward confirmation (mailauth.hpp).
#include <arpa/nameser.h>


#include "mailauth/dns_check.hpp"
#include "mailauth/mailauth.hpp"
#include "util/ip.hpp"
#include "util/strings.hpp"

namespace wizmail::mailauth {

ClientName client_name(const Dns& dns, std::string_view ip_text) {
  ClientName out;
  auto ip = util::IpAddress::parse(ip_text);
  if (!ip) return out;
  auto ptr = dns(reverse_name(*ip), ns_t_ptr);
  if (!ptr || ptr->status != outbound::DnsRecords::Status::found) return out;
  constexpr std::size_t max_names = 10;
  std::size_t checked = 0;
  for (const auto& raw : ptr->records) {
    auto name = normalize_dns_name(raw);
    if (name.empty()) continue;
    if (out.ptr.empty()) out.ptr = name;
    if (++checked > max_names) break;
    auto fwd = dns(name, ip->v6 ? ns_t_aaaa : ns_t_a);
    if (!fwd || fwd->status != outbound::DnsRecords::Status::found) continue;
    for (const auto& a : fwd->records)
      if (auto back = util::IpAddress::parse(a); back && *back == *ip) {
        out.name = name;
        return out;
      }
  }
  return out;
}

}  // namespace wizmail::mailauth
