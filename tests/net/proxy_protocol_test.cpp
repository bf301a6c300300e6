#include "net/proxy_protocol.hpp"

#include <doctest/doctest.h>

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "util/strings.hpp"

using namespace wizmail;
using namespace wizmail::net::proxy;
using Status = ParseResult::Status;

namespace {

const std::string kSig("\r\n\r\n\0\r\nQUIT\n", 12);

std::string be16(unsigned v) { return {static_cast<char>(v >> 8), static_cast<char>(v & 0xff)}; }

// A v2 header: signature, version/command, family/transport, length, body.
std::string v2(unsigned char ver_cmd, unsigned char fam, const std::string& body) {
  return util::cat(kSig, std::string{static_cast<char>(ver_cmd), static_cast<char>(fam)},
                   be16(static_cast<unsigned>(body.size())), body);
}

std::string v4_block(std::string_view src, std::string_view dst, unsigned sport, unsigned dport) {
  std::string out;
  for (auto ip : {src, dst}) {
    auto a = util::IpAddress::parse(ip);
    REQUIRE(a);
    out.append(reinterpret_cast<const char*>(a->bytes.data()), 4);
  }
  return util::cat(out, be16(sport), be16(dport));
}

std::string v6_block(std::string_view src, std::string_view dst, unsigned sport, unsigned dport) {
  std::string out;
  for (auto ip : {src, dst}) {
    auto a = util::IpAddress::parse(ip);
    REQUIRE(a);
    REQUIRE(a->v6);
    out.append(reinterpret_cast<const char*>(a->bytes.data()), 16);
  }
  return util::cat(out, be16(sport), be16(dport));
}

std::string tlv(unsigned char type, const std::string& value) {
  return util::cat(std::string(1, static_cast<char>(type)), be16(static_cast<unsigned>(value.size())), value);
}

std::string text(const util::IpAddress& a) {
  char buf[64];
  if (!a.v6) {
    std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", a.bytes[0], a.bytes[1], a.bytes[2], a.bytes[3]);
    return buf;
  }
  std::string out;
  for (int i = 0; i < 16; i += 2) {
    std::snprintf(buf, sizeof buf, "%x", (a.bytes[i] << 8) | a.bytes[i + 1]);
    if (i) out += ':';
    out += buf;
  }
  return out;
}

// What a receiver that gets `wire` in chunks of `chunk` bytes sees: parse()
// on everything received so far after each chunk, until done or bad. Every
// prefix before the end of the header must be need_more (never done early,
// never bad for a good header).
ParseResult feed(std::string_view wire, std::size_t chunk) {
  ParseResult r;
  for (std::size_t have = 0; have < wire.size();) {
    have = std::min(wire.size(), have + chunk);
    r = parse(wire.substr(0, have));
    if (r.status != Status::need_more) return r;
  }
  return r;
}

// A good header followed by the client's first bytes: at every chunk size
// the same header comes out, of the header's own size (nothing after it
// counted in), and every proper prefix of it is need_more.
Header good(const std::string& header) {
  const std::string wire = util::cat(header, "EHLO client\r\n");
  for (std::size_t n = 0; n < header.size(); ++n) {
    auto r = parse(std::string_view(header).substr(0, n));
    INFO("prefix of ", n, " bytes");
    REQUIRE(r.status == Status::need_more);
  }
  Header first;
  for (std::size_t chunk : {1u, 2u, 3u, 4u, 5u, 7u, 8u, 13u, 16u, 17u, 64u, 107u, 512u, 4096u}) {
    auto r = feed(wire, chunk);
    INFO("chunk ", chunk, ": ", r.reason);
    REQUIRE(r.status == Status::done);
    CHECK(r.header.size == header.size());
    if (chunk == 1) first = r.header;
    CHECK(r.header.what == first.what);
    CHECK(r.header.local == first.local);
    CHECK(r.header.source.address == first.source.address);
    CHECK(r.header.source.port == first.source.port);
  }
  return first;
}

// A bad header: bad at every chunk size, and never done.
std::string refused(const std::string& wire) {
  std::string reason;
  for (std::size_t chunk : {1u, 2u, 3u, 5u, 8u, 16u, 64u, 4096u}) {
    auto r = feed(wire, chunk);
    INFO("chunk ", chunk, " of ", wire.size());
    REQUIRE(r.status == Status::bad);
    CHECK(!r.reason.empty());
    reason = r.reason;
  }
  return reason;
}

}  // namespace

TEST_CASE("v1 TCP4 names the client and the address it connected to") {
  auto h = good("PROXY TCP4 192.0.2.7 198.51.100.1 56324 25\r\n");
  CHECK(h.version == 1);
  CHECK(!h.local);
  CHECK(text(h.source.address) == "192.0.2.7");
  CHECK(h.source.port == 56324);
  CHECK(text(h.destination.address) == "198.51.100.1");
  CHECK(h.destination.port == 25);
  CHECK(h.what == "v1 TCP4");
  auto edge = good("PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n");
  CHECK(edge.source.port == 0);
  CHECK(text(edge.destination.address) == "255.255.255.255");
}

TEST_CASE("v1 TCP6, the longest line of 107 bytes, and an IPv4-mapped client") {
  auto h = good("PROXY TCP6 2001:db8::7 2001:db8::1 4000 587\r\n");
  CHECK(h.source.address.v6);
  CHECK(text(h.source.address) == "2001:db8:0:0:0:0:0:7");
  CHECK(h.destination.port == 587);
  const std::string full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  const std::string longest = util::cat("PROXY UNKNOWN ", full, " ", full, " 65535 65535\r\n");
  REQUIRE(longest.size() == kV1MaxSize);
  CHECK(good(longest).local);
  auto tcp6 = good(util::cat("PROXY TCP6 ", full, " ", full, " 65535 65535\r\n"));
  CHECK(tcp6.source.port == 65535);
  auto mapped = good("PROXY TCP6 ::ffff:c000:207 ::1 1 2\r\n");
  CHECK(!mapped.source.address.v6);
  CHECK(text(mapped.source.address) == "192.0.2.7");
}

TEST_CASE("v1 UNKNOWN: the real peer; the rest of its line is ignored") {
  auto h = good("PROXY UNKNOWN\r\n");
  CHECK(h.local);
  CHECK(h.what == "v1 UNKNOWN");
  CHECK(good("PROXY UNKNOWN anything the proxy likes 1 2 3\r\n").local);
}

TEST_CASE("v1 refused: wrong start, line ends, lengths, protocols, addresses, ports") {
  CHECK(refused("EHLO client\r\n") == "not a PROXY protocol header");
  refused("proxy TCP4 192.0.2.7 192.0.2.1 1 2\r\n");
  refused("PROXY  TCP4 192.0.2.7 192.0.2.1 1 2\r\n");
  refused("PROXYTCP4 192.0.2.7 192.0.2.1 1 2\r\n");
  refused("PROXY TCP5 192.0.2.7 192.0.2.1 1 2\r\n");
  refused("PROXY UDP4 192.0.2.7 192.0.2.1 1 2\r\n");
  refused("PROXY UNKNOWNX\r\n");
  // CR or LF alone, a NUL, a byte over 0x7e.
  refused("PROXY TCP4 192.0.2.7 192.0.2.1 1 2\n");
  refused("PROXY TCP4 192.0.2.7 192.0.2.1 1 2\rX");
  refused("PROXY TCP4 192.0.2.7\n192.0.2.1 1 2\r\n");
  refused(std::string("PROXY TCP4 192.0.2.7 192.0.2.1 1 2\0\r\n", 38));
  refused("PROXY TCP4 192.0.2.7 192.0.2.1 1 2\x80\r\n");
  refused("PROXY TCP4 192.0.2.7\t192.0.2.1 1 2\r\n");
  // No CRLF within 107 bytes; one byte more than the longest line.
  CHECK(refused(util::cat("PROXY UNKNOWN ", std::string(200, 'a'), "\r\n")) == "v1: no CRLF within 107 bytes");
  const std::string full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  refused(util::cat("PROXY UNKNOWN ", full, " ", full, " 65535 655350\r\n"));
  refused(util::cat("PROXY UNKNOWN ", full, "  ", full, " 65535 65535\r\n"));
  // Fields: missing, extra, empty.
  refused("PROXY TCP4 192.0.2.7 192.0.2.1 1\r\n");
  refused("PROXY TCP4 192.0.2.7 192.0.2.1 1 2 3\r\n");
  refused("PROXY TCP4 192.0.2.7 192.0.2.1 1 2 \r\n");
  refused("PROXY TCP4 192.0.2.7  192.0.2.1 1 2\r\n");
  refused("PROXY TCP4\r\n");
  refused("PROXY \r\n");
  // Addresses: heading zeroes, out of range, short, wrong family, names.
  refused("PROXY TCP4 192.0.2.07 192.0.2.1 1 2\r\n");
  refused("PROXY TCP4 192.0.2.256 192.0.2.1 1 2\r\n");
  refused("PROXY TCP4 192.0.2 192.0.2.1 1 2\r\n");
  refused("PROXY TCP4 192.0.2.7. 192.0.2.1 1 2\r\n");
  refused("PROXY TCP4 -1.0.2.7 192.0.2.1 1 2\r\n");
  refused("PROXY TCP4 2001:db8::7 192.0.2.1 1 2\r\n");
  refused("PROXY TCP4 192.0.2.7 2001:db8::1 1 2\r\n");
  refused("PROXY TCP6 192.0.2.7 2001:db8::1 1 2\r\n");
  refused("PROXY TCP6 2001:db8::7 192.0.2.1 1 2\r\n");
  refused("PROXY TCP6 2001:db8:::7 2001:db8::1 1 2\r\n");
  refused("PROXY TCP6 2001:db8::7::1 2001:db8::1 1 2\r\n");
  refused("PROXY TCP6 1:2:3:4:5:6:7:8:9 2001:db8::1 1 2\r\n");
  refused("PROXY TCP6 ::ffff:192.0.2.7 2001:db8::1 1 2\r\n");
  refused("PROXY TCP6 [2001:db8::7] 2001:db8::1 1 2\r\n");
  refused("PROXY TCP4 localhost 192.0.2.1 1 2\r\n");
  // Ports: heading zeroes, over 65535, signs, empty.
  refused("PROXY TCP4 192.0.2.7 192.0.2.1 025 2\r\n");
  refused("PROXY TCP4 192.0.2.7 192.0.2.1 1 00\r\n");
  refused("PROXY TCP4 192.0.2.7 192.0.2.1 65536 2\r\n");
  refused("PROXY TCP4 192.0.2.7 192.0.2.1 1 99999\r\n");
  refused("PROXY TCP4 192.0.2.7 192.0.2.1 +1 2\r\n");
  refused("PROXY TCP4 192.0.2.7 192.0.2.1 1 -2\r\n");
}

TEST_CASE("v1 refused at the first wrong byte, not after a timeout") {
  // A client that is not a proxy: its first byte decides.
  CHECK(parse("E").status == Status::bad);
  CHECK(parse("PROXX").status == Status::bad);
  CHECK(parse("PROXY X").status == Status::bad);
  CHECK(parse("PROXY TCP4").status == Status::need_more);
  CHECK(parse("PROXY TCP4 192.0.2.7\n").status == Status::bad);
  CHECK(parse("PROXY TCP").status == Status::need_more);
  CHECK(parse("").status == Status::need_more);
}

TEST_CASE("v2 PROXY over IPv4 and IPv6, with TLVs skipped") {
  auto h = good(v2(0x21, 0x11, v4_block("192.0.2.7", "198.51.100.1", 56324, 465)));
  CHECK(h.version == 2);
  CHECK(!h.local);
  CHECK(text(h.source.address) == "192.0.2.7");
  CHECK(h.source.port == 56324);
  CHECK(text(h.destination.address) == "198.51.100.1");
  CHECK(h.destination.port == 465);
  CHECK(h.what == "v2 PROXY TCP4");
  auto six = good(v2(0x21, 0x21, v6_block("2001:db8::7", "2001:db8::1", 1, 995)));
  CHECK(six.source.address.v6);
  CHECK(text(six.source.address) == "2001:db8:0:0:0:0:0:7");
  CHECK(six.destination.port == 995);
  // ALPN, authority, unique id, a NOOP: all inside the length, skipped.
  const std::string tlvs = util::cat(tlv(0x01, "smtp"), tlv(0x02, "mail.example.org"), tlv(0x05, std::string(64, 'u')),
                                     tlv(0x04, std::string(10, '\0')));
  auto with = good(v2(0x21, 0x11, util::cat(v4_block("192.0.2.7", "198.51.100.1", 2, 25), tlvs)));
  CHECK(text(with.source.address) == "192.0.2.7");
  CHECK(with.size == 16 + 12 + tlvs.size());
  // The largest accepted header.
  auto big = v2(0x21, 0x11, util::cat(v4_block("192.0.2.9", "198.51.100.1", 2, 25), std::string(kV2MaxAddressSize - 12, 'x')));
  CHECK(good(big).size == kMaxHeaderSize);
  // IPv4-mapped IPv6 source: stored as IPv4, as the server's peers are.
  std::string mapped = v6_block("::1", "::1", 3, 25);
  const unsigned char m[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 7};
  mapped.replace(0, 16, reinterpret_cast<const char*>(m), 16);
  auto hm = good(v2(0x21, 0x21, mapped));
  CHECK(!hm.source.address.v6);
  CHECK(text(hm.source.address) == "192.0.2.7");
}

TEST_CASE("v2 LOCAL and the families without an IP client: the real peer") {
  auto local = good(v2(0x20, 0x00, ""));
  CHECK(local.local);
  CHECK(local.what == "v2 LOCAL");
  // LOCAL skips what the length announces, addresses or not.
  CHECK(good(v2(0x20, 0x11, v4_block("192.0.2.7", "198.51.100.1", 1, 2))).local);
  CHECK(good(v2(0x20, 0x00, std::string(40, 'z'))).size == 56);
  auto unspec = good(v2(0x21, 0x00, ""));
  CHECK(unspec.local);
  CHECK(unspec.what == "v2 PROXY UNSPEC");
  CHECK(good(v2(0x21, 0x10, std::string(12, '\1'))).local);  // INET, transport UNSPEC
  auto unix_ = good(v2(0x21, 0x31, std::string(216, '\0')));
  CHECK(unix_.local);
  CHECK(unix_.what == "v2 PROXY UNIX");
}

TEST_CASE("v2 refused: signature, version, command, family, transport, lengths") {
  const std::string body = v4_block("192.0.2.7", "198.51.100.1", 1, 25);
  // The signature wrong at each of its bytes.
  for (std::size_t i = 0; i < 12; ++i) {
    std::string w = v2(0x21, 0x11, body);
    w[i] = static_cast<char>(w[i] ^ 0x40);
    INFO("signature byte ", i);
    refused(w);
  }
  CHECK(refused(v2(0x11, 0x11, body)) == "v2: version is not 2");
  refused(v2(0x31, 0x11, body));
  refused(v2(0x01, 0x11, body));
  CHECK(refused(v2(0x22, 0x11, body)) == "v2: command is neither LOCAL nor PROXY");
  refused(v2(0x2F, 0x11, body));
  CHECK(refused(v2(0x21, 0x41, body)) == "v2: unknown address family");
  refused(v2(0x21, 0xF1, body));
  CHECK(refused(v2(0x21, 0x13, body)) == "v2: unknown transport protocol");
  refused(v2(0x20, 0x13, ""));  // invalid even for LOCAL
  // UDP on a stream listener.
  refused(v2(0x21, 0x12, body));
  refused(v2(0x21, 0x22, v6_block("2001:db8::7", "2001:db8::1", 1, 2)));
  // An address block shorter than its family: judged from the length
  // field, before the block arrives.
  refused(v2(0x21, 0x11, body.substr(0, 11)));
  refused(v2(0x21, 0x21, body));
  refused(v2(0x21, 0x31, std::string(215, '\0')));
  std::string early = v2(0x21, 0x21, body).substr(0, 16);
  CHECK(parse(early).status == Status::bad);
  // Too long: the length field alone decides, with 16 bytes in hand.
  const unsigned max = static_cast<unsigned>(kV2MaxAddressSize);
  CHECK(parse(util::cat(kSig, "\x21\x11", be16(max + 1))).status == Status::bad);
  CHECK(parse(util::cat(kSig, "\x21\x11", be16(65535))).status == Status::bad);
  CHECK(parse(util::cat(kSig, "\x21\x11", be16(max))).status == Status::need_more);
}

TEST_CASE("truncated headers are need_more at every byte, never done") {
  // A proxy that stops in the middle: the caller's deadline refuses it.
  for (const std::string& w : {std::string("PROXY TCP4 192.0.2.7 198.51.100.1 56324 25\r\n"),
                               v2(0x21, 0x11, util::cat(v4_block("192.0.2.7", "198.51.100.1", 1, 25), tlv(1, "smtp"))),
                               v2(0x21, 0x21, v6_block("2001:db8::7", "2001:db8::1", 1, 2)), v2(0x20, 0, "")}) {
    for (std::size_t n = 0; n < w.size(); ++n) CHECK(parse(std::string_view(w).substr(0, n)).status == Status::need_more);
    CHECK(parse(w).status == Status::done);
  }
}

TEST_CASE("looks_like_header: what an untrusted client is refused for") {
  CHECK(looks_like_header("PROXY TCP4 192.0.2.7 192.0.2.1 1 2\r\n"));
  CHECK(looks_like_header("PROXY UNKNOWN\r\n"));
  CHECK(looks_like_header(v2(0x21, 0x11, v4_block("192.0.2.7", "198.51.100.1", 1, 25))));
  CHECK(looks_like_header(kSig.substr(0, 5)));
  CHECK(!looks_like_header(kSig.substr(0, 4)));  // two empty lines: an odd client, not a proxy
  CHECK(!looks_like_header("PROXY"));
  CHECK(!looks_like_header("proxy tcp4"));
  CHECK(!looks_like_header("EHLO client\r\n"));
  CHECK(!looks_like_header("USER alice\r\n"));
  CHECK(!looks_like_header(""));
}
