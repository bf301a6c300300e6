#include "outbound/dns.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

using wizmail::outbound::negative_ttl;

namespace {

using Bytes = std::vector<unsigned char>;

void u16(Bytes& b, unsigned v) {
  b.push_back(static_cast<unsigned char>(v >> 8));
  b.push_back(static_cast<unsigned char>(v));
}
void u32(Bytes& b, std::uint32_t v) {
  u16(b, v >> 16);
  u16(b, v & 0xffff);
}
void name(Bytes& b, const std::string& dotted) {
  std::size_t from = 0;
  while (from < dotted.size()) {
    auto dot = dotted.find('.', from);
    if (dot == std::string::npos) dot = dotted.size();
    b.push_back(static_cast<unsigned char>(dot - from));
    b.insert(b.end(), dotted.begin() + static_cast<long>(from), dotted.begin() + static_cast<long>(dot));
    from = dot + 1;
  }
  b.push_back(0);
}

// An NXDOMAIN answer to "2.0.0.127.bl.test A" with `answers` A records and
// an SOA (TTL soa_ttl, MINIMUM minimum) in the authority section; the SOA's
// owner name compressed (a pointer to the question's zone) when `compress`.
Bytes message(std::uint32_t soa_ttl, std::uint32_t minimum, bool with_soa = true, int answers = 0,
              bool compress = true) {
  Bytes b;
  u16(b, 0x1234);
  u16(b, 0x8183);  // response, NXDOMAIN
  u16(b, 1);
  u16(b, static_cast<unsigned>(answers));
  u16(b, with_soa ? 1 : 0);
  u16(b, 0);
  name(b, "2.0.0.127.bl.test");
  u16(b, 1);
  u16(b, 1);
  for (int i = 0; i < answers; ++i) {
    b.push_back(0xc0);
    b.push_back(12);
    u16(b, 1);
    u16(b, 1);
    u32(b, 999);
    u16(b, 4);
    for (unsigned char c : {127, 0, 0, 2}) b.push_back(c);
  }
  if (with_soa) {
    if (compress) {
      b.push_back(0xc0);
      b.push_back(12 + 10);  // "bl.test" inside the question's name
    } else {
      name(b, "bl.test");
    }
    u16(b, 6);
    u16(b, 1);
    u32(b, soa_ttl);
    Bytes rdata;
    name(rdata, "ns.bl.test");
    name(rdata, "hostmaster.bl.test");
    for (std::uint32_t v : {2026120601u, 3600u, 600u, 86400u, minimum}) u32(rdata, v);
    u16(b, static_cast<unsigned>(rdata.size()));
    b.insert(b.end(), rdata.begin(), rdata.end());
  }
  return b;
}

}  // namespace

TEST_CASE("negative_ttl: the smaller of the SOA's TTL and MINIMUM") {
  CHECK(negative_ttl(message(3600, 300)) == 300);
  CHECK(negative_ttl(message(120, 900)) == 120);
  CHECK(negative_ttl(message(3600, 300, true, 0, false)) == 300);
  CHECK(negative_ttl(message(3600, 300, true, 2)) == 300);  // past the answer records
  CHECK(negative_ttl(message(3600, 300, false)) == 0);      // no SOA
}

TEST_CASE("negative_ttl: malformed and truncated messages give 0, never read past the end") {
  CHECK(negative_ttl({}) == 0);
  CHECK(negative_ttl(Bytes(11, 0)) == 0);
  const Bytes good = message(3600, 300);
  for (std::size_t n = 0; n < good.size(); ++n) {
    CAPTURE(n);
    Bytes cut(good.begin(), good.begin() + static_cast<long>(n));
    CHECK(negative_ttl(cut) == 0);
  }
  // Counts that promise more than there is.
  Bytes many = good;
  many[6] = 0xff;
  many[8] = 0xff;
  CHECK(negative_ttl(many) == 0);
  // A label running past the end, an RDLENGTH too short for the SOA fields.
  Bytes label = good;
  label[12] = 0x3f;
  CHECK(negative_ttl(label) == 0);
  Bytes shortrd = good;
  // header, question (name, type, class), SOA owner (pointer), type, class, TTL, RDLENGTH
  const std::size_t rdata = 12 + 19 + 4 + 2 + 2 + 2 + 4 + 2;
  REQUIRE(good.size() - rdata == 52);                              // ns.bl.test, hostmaster.bl.test, 5 numbers
  shortrd[rdata - 1] = 30;                                         // too short for the 5 numbers
  CHECK(negative_ttl(shortrd) == 0);
  // Every byte flipped in turn: no crash, the answer 0 or a TTL from the message.
  for (std::size_t i = 0; i < good.size(); ++i) {
    Bytes m = good;
    m[i] ^= 0xff;
    (void)negative_ttl(m);
  }
}
