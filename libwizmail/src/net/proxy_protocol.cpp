#include "net/proxy_protocol.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "util/strings.hpp"

namespace wizmail::net::proxy {

namespace {

using Status = ParseResult::Status;

constexpr std::string_view kV1Prefix = "PROXY ";
constexpr std::array<unsigned char, 12> kV2Signature = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                        0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

ParseResult bad(std::string reason) {
  ParseResult r;
  r.status = Status::bad;
  r.reason = std::move(reason);
  return r;
}

ParseResult need_more() { return {}; }

ParseResult done(Header h) {
  ParseResult r;
  r.status = Status::done;
  r.header = std::move(h);
  return r;
}

// Whether data (shorter or not) agrees with the v2 signature so far.
bool v2_prefix(std::string_view data) noexcept {
  const std::size_t n = std::min(data.size(), kV2Signature.size());
  for (std::size_t i = 0; i < n; ++i)
    if (static_cast<unsigned char>(data[i]) != kV2Signature[i]) return false;
  return true;
}

bool v1_prefix(std::string_view data) noexcept {
  const std::size_t n = std::min(data.size(), kV1Prefix.size());
  return data.substr(0, n) == kV1Prefix.substr(0, n);
}

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
bool is_hex(char c) noexcept { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

// A decimal number 0..max without heading zeroes (the specification
// forbids them: they could be read as octal).
std::optional<unsigned> decimal(std::string_view s, unsigned max) {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  unsigned v = 0;
  for (char c : s) {
    if (!is_digit(c)) return std::nullopt;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v > max) return std::nullopt;
  return v;
}

// "a.b.c.d": exactly four numbers 0..255 without heading zeroes.
std::optional<util::IpAddress> ipv4_text(std::string_view s) {
  util::IpAddress ip;
  for (int i = 0; i < 4; ++i) {
    const auto dot = i < 3 ? s.find('.') : std::string_view::npos;
    if (i < 3 && dot == std::string_view::npos) return std::nullopt;
    auto n = decimal(s.substr(0, dot), 255);
    if (!n) return std::nullopt;
    ip.bytes[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(*n);
    s = dot == std::string_view::npos ? std::string_view() : s.substr(dot + 1);
  }
  return ip;
}

// Hexadecimal groups and colons (one "::" at most: inet_pton checks the
// rest); embedded dotted IPv4 is not the canonical form the specification
// asks for. An IPv4-mapped address (::ffff:c000:207) is stored as IPv4, as
// util::IpAddress does everywhere.
std::optional<util::IpAddress> ipv6_text(std::string_view s) {
  if (s.empty() || s.size() > 39 || s.find(':') == std::string_view::npos) return std::nullopt;
  for (char c : s)
    if (!is_hex(c) && c != ':') return std::nullopt;
  return util::IpAddress::parse(s);
}

std::vector<std::string_view> split_spaces(std::string_view line) {
  std::vector<std::string_view> out;
  for (;;) {
    const auto sp = line.find(' ');
    out.push_back(line.substr(0, sp));
    if (sp == std::string_view::npos) return out;
    line.remove_prefix(sp + 1);
  }
}

ParseResult parse_v1(std::string_view data) {
  // Up to the CRLF; CR or LF alone, or any byte that is not printable
  // US-ASCII, is refused where it stands.
  const std::size_t limit = std::min(data.size(), kV1MaxSize);
  std::size_t end = std::string_view::npos;
  for (std::size_t i = 0; i < limit; ++i) {
    const char c = data[i];
    if (c == '\r') {
      if (i + 1 >= kV1MaxSize) return bad("v1: no CRLF within 107 bytes");
      if (i + 1 == data.size()) return need_more();
      if (data[i + 1] != '\n') return bad("v1: CR without LF");
      end = i;
      break;
    }
    if (c == '\n') return bad("v1: LF without CR");
    if (c < 0x20 || c > 0x7e) return bad("v1: a byte that is not printable US-ASCII");
  }
  if (end == std::string_view::npos) {
    if (data.size() >= kV1MaxSize) return bad("v1: no CRLF within 107 bytes");
    // Refuse a wrong protocol name as soon as it is there.
    const std::string_view rest = data.substr(kV1Prefix.size());
    for (std::string_view name : {"TCP4 ", "TCP6 ", "UNKNOWN"})
      if (name.substr(0, std::min(rest.size(), name.size())) == rest.substr(0, std::min(rest.size(), name.size())))
        return need_more();
    return bad("v1: unknown protocol (not TCP4, TCP6 or UNKNOWN)");
  }
  const std::string_view line = data.substr(0, end);
  Header h;
  h.version = 1;
  h.size = end + 2;
  const std::string_view after = line.substr(kV1Prefix.size());
  if (after == "UNKNOWN" || after.starts_with("UNKNOWN ")) {
    // The rest of the line, if any, is to be ignored (the specification).
    h.local = true;
    h.what = "v1 UNKNOWN";
    return done(std::move(h));
  }
  const auto f = split_spaces(after);
  if (f.size() != 5) return bad("v1: expected protocol, two addresses and two ports separated by single spaces");
  const bool v4 = f[0] == "TCP4";
  if (!v4 && f[0] != "TCP6") return bad("v1: unknown protocol (not TCP4, TCP6 or UNKNOWN)");
  auto src = v4 ? ipv4_text(f[1]) : ipv6_text(f[1]);
  auto dst = v4 ? ipv4_text(f[2]) : ipv6_text(f[2]);
  if (!src) return bad(util::cat("v1: bad ", f[0], " source address"));
  if (!dst) return bad(util::cat("v1: bad ", f[0], " destination address"));
  auto sport = decimal(f[3], 65535);
  auto dport = decimal(f[4], 65535);
  if (!sport) return bad("v1: bad source port");
  if (!dport) return bad("v1: bad destination port");
  h.source = {*src, static_cast<std::uint16_t>(*sport)};
  h.destination = {*dst, static_cast<std::uint16_t>(*dport)};
  h.what = util::cat("v1 ", f[0]);
  return done(std::move(h));
}

std::uint16_t be16(const unsigned char* p) noexcept { return static_cast<std::uint16_t>((p[0] << 8) | p[1]); }

ParseResult parse_v2(std::string_view data) {
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  // Each fixed byte is judged as soon as it is there.
  if (data.size() > 12) {
    if ((p[12] >> 4) != 2) return bad("v2: version is not 2");
    if ((p[12] & 0x0F) > 1) return bad("v2: command is neither LOCAL nor PROXY");
  }
  if (data.size() > 13) {
    if ((p[13] >> 4) > 3) return bad("v2: unknown address family");
    if ((p[13] & 0x0F) > 2) return bad("v2: unknown transport protocol");
  }
  if (data.size() < kV2FixedSize) return need_more();
  const bool local = (p[12] & 0x0F) == 0;
  const unsigned family = p[13] >> 4, transport = p[13] & 0x0F;
  const std::size_t len = be16(p + 14);
  if (len > kV2MaxAddressSize)
    return bad(util::cat("v2: header of ", std::to_string(kV2FixedSize + len), " bytes, more than ",
                         std::to_string(kMaxHeaderSize), " accepted"));
  // The specification: refuse a header that announces too few bytes for
  // its own addresses, whatever the command.
  const std::size_t need = family == 1 ? 12 : family == 2 ? 36 : family == 3 ? 216 : 0;
  if (!local && transport != 0 && len < need) return bad("v2: address block shorter than its family needs");
  if (data.size() < kV2FixedSize + len) return need_more();
  Header h;
  h.version = 2;
  h.size = kV2FixedSize + len;
  if (local) {
    // The proxy's own connection (a health check): the family and any
    // addresses are ignored.
    h.local = true;
    h.what = "v2 LOCAL";
    return done(std::move(h));
  }
  if (transport == 2 && family != 0) return bad("v2: a datagram (UDP) connection on a stream listener");
  if (family == 0 || transport == 0 || family == 3) {
    // UNSPEC, or AF_UNIX: no IP client to name; the real peer stands.
    h.local = true;
    h.what = family == 3 ? "v2 PROXY UNIX" : "v2 PROXY UNSPEC";
    return done(std::move(h));
  }
  const unsigned char* a = p + kV2FixedSize;
  if (family == 1) {
    h.source.address.v6 = false;
    std::memcpy(h.source.address.bytes.data(), a, 4);
    std::memcpy(h.destination.address.bytes.data(), a + 4, 4);
    h.source.port = be16(a + 8);
    h.destination.port = be16(a + 10);
    h.what = "v2 PROXY TCP4";
  } else {
    // Through util's parser, so an IPv4-mapped address is stored as IPv4
    // as everywhere else.
    auto to_ip = [](const unsigned char* b) {
      util::IpAddress ip;
      static constexpr unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
      if (std::memcmp(b, mapped, 12) == 0) {
        std::memcpy(ip.bytes.data(), b + 12, 4);
      } else {
        ip.v6 = true;
        std::memcpy(ip.bytes.data(), b, 16);
      }
      return ip;
    };
    h.source.address = to_ip(a);
    h.destination.address = to_ip(a + 16);
    h.source.port = be16(a + 32);
    h.destination.port = be16(a + 34);
    h.what = "v2 PROXY TCP6";
  }
  // TLVs (if any) follow the addresses up to 16 + len: skipped.
  return done(std::move(h));
}

}  // namespace

ParseResult parse(std::string_view data) {
  if (data.empty()) return need_more();
  if (v2_prefix(data)) {
    if (data.size() < kV2Signature.size()) return need_more();
    return parse_v2(data);
  }
  if (v1_prefix(data)) {
    if (data.size() <= kV1Prefix.size()) return need_more();
    return parse_v1(data);
  }
  return bad("not a PROXY protocol header");
}

bool looks_like_header(std::string_view first_bytes) noexcept {
  if (first_bytes.starts_with(kV1Prefix)) return true;
  return first_bytes.size() >= 5 && v2_prefix(first_bytes);
}

}  // namespace wizmail::net::proxy
