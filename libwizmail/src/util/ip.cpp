#include "util/ip.hpp"

#include <arpa/inet.h>

#include <cstring>

#include "util/strings.hpp"

namespace wizmail::util {

namespace {
bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
}  // namespace

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  // inet_pton reads a C string: a NUL would end the text early.
  if (text.empty() || text.size() > 45 || text.find('\0') != std::string_view::npos)
    return std::nullopt;
  char buf[64];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  IpAddress ip;
  if (text.find(':') == std::string_view::npos) {
    // inet_pton(AF_INET) accepts only the strict dotted quad.
    if (inet_pton(AF_INET, buf, ip.bytes.data()) != 1) return std::nullopt;
    return ip;
  }
  std::uint8_t b[16];
  if (inet_pton(AF_INET6, buf, b) != 1) return std::nullopt;
  static constexpr std::uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(b, mapped, 12) == 0) {
    std::memcpy(ip.bytes.data(), b + 12, 4);
    return ip;
  }
  ip.v6 = true;
  std::memcpy(ip.bytes.data(), b, 16);
  return ip;
}

bool IpAddress::loopback() const noexcept {
  if (!v6) return bytes[0] == 127;
  for (int i = 0; i < 15; ++i)
    if (bytes[i] != 0) return false;
  return bytes[15] == 1;
}

std::optional<CidrBlock> CidrBlock::parse(std::string_view text) {
  text = trim(text);
  CidrBlock c;
  auto slash = text.find('/');
  auto ip = IpAddress::parse(text.substr(0, slash));
  if (!ip) return std::nullopt;
  c.network = *ip;
  const unsigned max = ip->v6 ? 128 : 32;
  if (slash == std::string_view::npos) {
    c.prefix = max;
    return c;
  }
  auto digits = text.substr(slash + 1);
  if (digits.empty() || digits.size() > 3) return std::nullopt;
  unsigned p = 0;
  for (char ch : digits) {
    if (!is_digit(ch)) return std::nullopt;
    p = p * 10 + static_cast<unsigned>(ch - '0');
  }
  // An IPv4-mapped network written in IPv6 form: its prefix counts the 96
  // mapping bits.
  if (!ip->v6 && text.substr(0, slash).find(':') != std::string_view::npos) {
    if (p < 96) return std::nullopt;
    p -= 96;
  }
  if (p > max) return std::nullopt;
  c.prefix = p;
  return c;
}

bool CidrBlock::contains(const IpAddress& a) const noexcept {
  if (a.v6 != network.v6) return false;
  unsigned full = prefix / 8;
  if (std::memcmp(a.bytes.data(), network.bytes.data(), full) != 0) return false;
  unsigned rest = prefix % 8;
  if (rest == 0) return true;
  std::uint8_t mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (a.bytes[full] & mask) == (network.bytes[full] & mask);
}

bool cidr_list_contains(const std::vector<std::string>& entries,
                        const IpAddress& ip) {
  for (const auto& e : entries) {
    auto c = CidrBlock::parse(e);
    if (c && c->contains(ip)) return true;
  }
  return false;
}

}  // namespace wizmail::util
