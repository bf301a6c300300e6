#include "net/address.hpp"

#include "util/strings.hpp"

namespace wizmail::net {

asio::ip::address unmap(const asio::ip::address& a) noexcept {
  if (a.is_v6() && a.to_v6().is_v4_mapped())
    return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
  return a;
}

Result<Cidr> Cidr::parse(std::string_view text) {
  text = util::trim(text);
  std::string_view addr = text;
  std::string_view len;
  if (auto slash = text.find('/'); slash != std::string_view::npos) {
    addr = text.substr(0, slash);
    len = text.substr(slash + 1);
  }
  std::error_code ec;
  auto a = asio::ip::make_address(std::string(addr), ec);
  if (ec) return fail(Errc::invalid_argument, "not an IP address: '" + std::string(text) + "'");
  a = unmap(a);
  unsigned max = a.is_v4() ? 32 : 128;
  unsigned prefix = max;
  if (!len.empty() || text.find('/') != std::string_view::npos) {
    auto n = util::parse_int(len);
    if (!n || *n < 0 || static_cast<unsigned>(*n) > max)
      return fail(Errc::invalid_argument, "bad prefix length in '" + std::string(text) + "'");
    prefix = static_cast<unsigned>(*n);
  }
  return Cidr{a, prefix};
}

namespace {
template <class Bytes>
bool prefix_equal(const Bytes& a, const Bytes& b, unsigned prefix) noexcept {
  unsigned full = prefix / 8, rest = prefix % 8;
  for (unsigned i = 0; i < full; ++i)
    if (a[i] != b[i]) return false;
  if (rest == 0) return true;
  auto mask = static_cast<unsigned char>(0xFFu << (8 - rest));
  return (a[full] & mask) == (b[full] & mask);
}
}  // namespace

bool Cidr::contains(const asio::ip::address& peer) const noexcept {
  auto a = unmap(peer);
  if (a.is_v4() != network.is_v4()) return false;
  if (a.is_v4()) return prefix_equal(a.to_v4().to_bytes(), network.to_v4().to_bytes(), prefix);
  return prefix_equal(a.to_v6().to_bytes(), network.to_v6().to_bytes(), prefix);
}

Result<CidrList> CidrList::parse(const std::vector<std::string>& entries) {
  CidrList out;
  for (const auto& e : entries) {
    auto c = Cidr::parse(e);
    if (!c) return unexpected(c.error());
    out.list_.push_back(*c);
  }
  return out;
}

bool CidrList::contains(const asio::ip::address& a) const noexcept {
  for (const auto& c : list_)
    if (c.contains(a)) return true;
  return false;
}

}  // namespace wizmail::net
