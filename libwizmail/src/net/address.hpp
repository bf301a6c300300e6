// IP addresses and CIDR lists (multiprocessing_exempt, address_permits_relay).
#pragma once

#include <asio/ip/address.hpp>

#include <string>
#include <string_view>
#include <vector>

#include "util/ip.hpp"
#include "wizmail/error.hpp"

namespace wizmail::net {

// The same address as util::IpAddress (IPv4-mapped IPv6 becomes IPv4).
util::IpAddress to_ip(const asio::ip::address& a) noexcept;

// A list of CIDR blocks (util::CidrBlock: "IP" or "IP/prefix"). IPv4-mapped
// IPv6 peers (::ffff:a.b.c.d) match IPv4 entries, so a dual-stack listener
// applies IPv4 rules unchanged. parse() fails on the first bad entry,
// naming it.
class CidrList {
 public:
  static Result<CidrList> parse(const std::vector<std::string>& entries);
  bool contains(const asio::ip::address& a) const noexcept;
  bool empty() const noexcept { return list_.empty(); }

 private:
  std::vector<util::CidrBlock> list_;
};

// ::ffff:a.b.c.d → a.b.c.d; anything else unchanged.
asio::ip::address unmap(const asio::ip::address& a) noexcept;

// The client network an address belongs to, for per-network limits
// (connections, failed logins): the IPv4 address, or the /64 of an IPv6
// address ("2001:db8:1:2::/64": one host usually has a whole /64). Text that
// is no address is returned as it is.
std::string client_network(std::string_view ip);

}  // namespace wizmail::net
