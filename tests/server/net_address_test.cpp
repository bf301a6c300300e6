#include "net/address.hpp"

#include <doctest/doctest.h>

using namespace wizmail;

namespace {
asio::ip::address ip(const char* s) { return asio::ip::make_address(s); }
}  // namespace

TEST_CASE("CidrList (multiprocessing_exempt, address_permits_relay) matches as the SMTP session does") {
  auto l = net::CidrList::parse({"192.0.2.0/24", " 10.1.2.3 ", "2001:db8::/32", "::ffff:198.51.100.0/120"});
  REQUIRE(l);
  CHECK(l->contains(ip("192.0.2.77")));
  CHECK(l->contains(ip("::ffff:192.0.2.77")));  // a dual-stack listener's IPv4 peer
  CHECK_FALSE(l->contains(ip("192.0.3.1")));
  CHECK(l->contains(ip("10.1.2.3")));
  CHECK_FALSE(l->contains(ip("10.1.2.4")));
  CHECK(l->contains(ip("2001:db8:ffff::1")));
  CHECK_FALSE(l->contains(ip("2001:db9::1")));
  CHECK(l->contains(ip("198.51.100.9")));  // the mapped form of 198.51.100.0/24
  CHECK_FALSE(l->contains(ip("198.51.101.9")));
  // The same decisions through the session's byte form.
  CHECK(util::cidr_list_contains({"::ffff:198.51.100.0/120"}, net::to_ip(ip("198.51.100.9"))));
  for (const char* bad : {"10.0.0.0/33", "::1/129", "1.2.3.4/x", "1.2.3", "10.0.0.0/", "example.com", "::ffff:1.2.3.0/95"}) {
    auto r = net::CidrList::parse({bad});
    CHECK_MESSAGE(!r, bad);
    if (!r) CHECK(r.error().message.find(bad) != std::string::npos);
  }
  CHECK(net::CidrList::parse({})->empty());
}
