#include "net/address.hpp"

#include <algorithm>

namespace wizmail::net {

asio::ip::address unmap(const asio::ip::address& a) noexcept {
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
  return a;
}

util::IpAddress to_ip(const asio::ip::address& peer) noexcept {
  util::IpAddress ip;
  auto a = unmap(peer);
  if (a.is_v4()) {
    auto b = a.to_v4().to_bytes();
    std::copy(b.begin(), b.end(), ip.bytes.begin());
  } else {
    ip.v6 = true;
    ip.bytes = a.to_v6().to_bytes();
  }
  return ip;
}

Result<CidrList> CidrList::parse(const std::vector<std::string>& entries) {
  CidrList out;
  for (const auto& e : entries) {
    auto c = util::CidrBlock::parse(e);
    if (!c) return fail(Errc::invalid_argument, "not an IP address or CIDR block: '" + e + "'");
    out.list_.push_back(*c);
  }
  return out;
}

bool CidrList::contains(const asio::ip::address& a) const noexcept {
  const auto ip = to_ip(a);
  for (const auto& c : list_)
    if (c.contains(ip)) return true;
  return false;
}

std::string client_network(std::string_view ip) {
  std::error_code ec;
  auto a = asio::ip::make_address(std::string(ip), ec);
  if (ec) return std::string(ip);
  a = unmap(a);
  if (a.is_v4()) return a.to_string();
  auto bytes = a.to_v6().to_bytes();
  std::fill(bytes.begin() + 8, bytes.end(), 0);
  return asio::ip::address_v6(bytes).to_string() + "/64";
}

}  // namespace wizmail::net
