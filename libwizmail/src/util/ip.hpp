// IP addresses and CIDR blocks as plain bytes: no I/O and no Asio, so the
// pure SMTP session, the configuration check and the server's CIDR lists
// (net/address.hpp) all parse and match the same way.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wizmail::util {

// An IPv4 or IPv6 address as 16 bytes; IPv4 and IPv4-mapped IPv6
// (::ffff:a.b.c.d) are both stored as v4 so they compare equal.
struct IpAddress {
  bool v6 = false;
  std::array<std::uint8_t, 16> bytes{};  // v4 uses the first 4

  // "192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1". No brackets, no port.
  static std::optional<IpAddress> parse(std::string_view text);
  bool loopback() const noexcept;
  friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

// "IP" or "IP/prefix" (surrounding blanks ignored). An IPv4-mapped network
// written in IPv6 form (::ffff:192.0.2.0/120) is the IPv4 block /24.
struct CidrBlock {
  IpAddress network;
  unsigned prefix = 0;

  static std::optional<CidrBlock> parse(std::string_view text);
  bool contains(const IpAddress& a) const noexcept;
};

// True when `ip` lies in any entry; unparsable entries never match (config
// validation reports them).
bool cidr_list_contains(const std::vector<std::string>& entries,
                        const IpAddress& ip);

}  // namespace wizmail::util
