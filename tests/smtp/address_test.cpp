#include "smtp/address.hpp"

#include <doctest/doctest.h>

using namespace wizmail::smtp;

namespace {
std::optional<Path> path(std::string_view s, bool null = true, bool pm = true) {
  auto r = parse_path(s, null, pm);
  if (r.path && r.consumed != s.size()) return std::nullopt;
  return r.path;
}
}  // namespace

TEST_CASE("parse_path: ordinary, null and postmaster paths") {
  auto p = path("<User.Name+tag@Mail.Example.ORG>");
  REQUIRE(p);
  CHECK(p->mailbox.local == "User.Name+tag");
  CHECK(p->mailbox.domain == "mail.example.org");
  CHECK(p->mailbox.str() == "User.Name+tag@mail.example.org");
  REQUIRE(path("<>"));
  CHECK(path("<>")->null);
  CHECK_FALSE(parse_path("<>", false, true).path);
  auto pm = path("<PostMaster>");
  REQUIRE(pm);
  CHECK(pm->bare_postmaster);
  CHECK_FALSE(parse_path("<postmaster>", true, false).path);
  CHECK_FALSE(path("<alice>"));
}

TEST_CASE("parse_path: quoted local parts") {
  auto p = path(R"(<"john \"q\" smith"@example.com>)");
  REQUIRE(p);
  CHECK(p->mailbox.quoted);
  CHECK(p->mailbox.local == R"(john "q" smith)");
  CHECK(p->mailbox.str() == R"("john \"q\" smith"@example.com)");
  auto q = path(R"(<"user@other"@example.com>)");
  REQUIRE(q);
  CHECK(q->mailbox.local == "user@other");
  CHECK(q->mailbox.domain == "example.com");
  CHECK_FALSE(path(R"(<"unterminated@example.com>)"));
}

TEST_CASE("parse_path: source routes are accepted and ignored") {
  auto p = path("<@a.example,@b.example:user@c.example>");
  REQUIRE(p);
  CHECK(p->had_route);
  CHECK(p->mailbox.str() == "user@c.example");
  CHECK_FALSE(path("<@a.example:>"));
  CHECK_FALSE(path("<@:user@c.example>"));
  CHECK_FALSE(path("<@a.example,user@c.example>"));
}

TEST_CASE("parse_path: address literals") {
  auto p = path("<u@[192.0.2.1]>");
  REQUIRE(p);
  CHECK(p->mailbox.literal);
  CHECK(p->mailbox.domain == "[192.0.2.1]");
  auto v6 = path("<u@[IPv6:2001:DB8::1]>");
  REQUIRE(v6);
  CHECK(v6->mailbox.domain == "[ipv6:2001:db8::1]");
  CHECK_FALSE(path("<u@[192.0.2.256]>"));
  CHECK_FALSE(path("<u@[2001:db8::1]>"));  // IPv6 needs its tag
  CHECK_FALSE(path("<u@[IPv6:nonsense]>"));
  CHECK_FALSE(path("<u@[tag:general]>"));
}

TEST_CASE("parse_path: length limits") {
  CHECK(path("<" + std::string(64, 'a') + "@example.com>"));
  auto r = parse_path("<" + std::string(65, 'a') + "@example.com>", true, true);
  CHECK_FALSE(r.path);
  CHECK(r.error == PathError::too_long);
  std::string label(63, 'b');
  CHECK(path("<a@" + label + ".example>"));
  CHECK_FALSE(path("<a@" + label + "b.example>"));
  std::string dom;
  while (dom.size() < 250) dom += label + ".";
  dom += "x";
  auto d = parse_path("<a@" + dom + ">", true, true);
  CHECK_FALSE(d.path);
  CHECK(d.error == PathError::too_long);
  // Path over 256 octets even though each part fits.
  std::string dom2 = std::string(63, 'c') + "." + std::string(63, 'c') + "." +
                     std::string(63, 'c') + "." + std::string(60, 'c');
  auto t = parse_path("<" + std::string(64, 'a') + "@" + dom2 + ">", true, true);
  CHECK_FALSE(t.path);
  CHECK(t.error == PathError::too_long);
}

TEST_CASE("parse_path: syntax errors and 8-bit") {
  for (const std::string& s : std::vector<std::string>{"", "a@b", "<a@b", "<a@b>>", "<a b@c>", "<a..b@c>", "<.a@c>",
                        "<a.@c>", "<a@-c>", "<a@c->", "<a@c..d>", "<a@.c>", "<@c>", "<a@>",
                        "<a@c.>", "<a@c_d>"}) {
    CAPTURE(s);
    CHECK_FALSE(path(s));
  }
  auto r = parse_path("<j\xc3\xbcrgen@example.com>", true, true);
  CHECK_FALSE(r.path);
  CHECK(r.error == PathError::non_ascii);
  auto params = parse_path("<a@b.c> SIZE=1", true, true);
  REQUIRE(params.path);
  CHECK(params.consumed == 7);
}

TEST_CASE("is_account_local_part: tricks are not accounts") {
  CHECK(is_account_local_part("alice"));
  CHECK(is_account_local_part("Alice.B_c-9"));
  for (const std::string& s : std::vector<std::string>{"", ".alice", "a%b", "a!b", "a@b", "a\"b", "a+b", "a b",
                        std::string(65, 'a')}) {
    CAPTURE(s);
    CHECK_FALSE(is_account_local_part(s));
  }
}

TEST_CASE("IpAddress and CIDR") {
  auto v4 = IpAddress::parse("192.0.2.1");
  REQUIRE(v4);
  CHECK_FALSE(v4->v6);
  auto mapped = IpAddress::parse("::ffff:192.0.2.1");
  REQUIRE(mapped);
  CHECK(*mapped == *v4);
  CHECK_FALSE(IpAddress::parse("192.0.2"));
  CHECK_FALSE(IpAddress::parse("192.0.2.1.5"));
  CHECK_FALSE(IpAddress::parse("01.2.3.4x"));
  CHECK_FALSE(IpAddress::parse(""));
  CHECK_FALSE(IpAddress::parse(std::string(60, '1')));
  // Found by the smtp_address fuzzer: the text after a NUL was ignored.
  using namespace std::string_view_literals;
  CHECK_FALSE(IpAddress::parse("192.0.2.1\0junk"sv));
  CHECK_FALSE(IpAddress::parse("::\0\0\0\0"sv));
  CHECK_FALSE(CidrBlock::parse("10.0.0.0\0/8"sv));
  CHECK_FALSE(parse_address_literal("[192.0.2.1\0]"sv));
  CHECK(IpAddress::parse("127.0.0.1")->loopback());
  CHECK(IpAddress::parse("127.9.9.9")->loopback());
  CHECK(IpAddress::parse("::1")->loopback());
  CHECK_FALSE(IpAddress::parse("::2")->loopback());
  CHECK_FALSE(IpAddress::parse("10.0.0.1")->loopback());

  auto net = CidrBlock::parse("10.1.0.0/16");
  REQUIRE(net);
  CHECK(net->contains(*IpAddress::parse("10.1.200.3")));
  CHECK_FALSE(net->contains(*IpAddress::parse("10.2.0.1")));
  CHECK_FALSE(net->contains(*IpAddress::parse("2001:db8::1")));
  auto odd = CidrBlock::parse("10.1.0.0/13");
  REQUIRE(odd);
  CHECK(odd->contains(*IpAddress::parse("10.7.255.255")));
  CHECK_FALSE(odd->contains(*IpAddress::parse("10.8.0.0")));
  auto all = CidrBlock::parse("0.0.0.0/0");
  REQUIRE(all);
  CHECK(all->contains(*IpAddress::parse("203.0.113.1")));
  auto v6 = CidrBlock::parse("2001:db8:1::/48");
  REQUIRE(v6);
  CHECK(v6->contains(*IpAddress::parse("2001:db8:1:ffff::1")));
  CHECK_FALSE(v6->contains(*IpAddress::parse("2001:db8:2::1")));
  auto host = CidrBlock::parse("::1");
  REQUIRE(host);
  CHECK(host->prefix == 128);
  auto mapnet = CidrBlock::parse("::ffff:10.0.0.0/104");
  REQUIRE(mapnet);
  CHECK(mapnet->contains(*IpAddress::parse("10.9.9.9")));
  for (const std::string& bad : std::vector<std::string>{"10.0.0.0/33", "10.0.0.0/", "10.0.0.0/x", "::/129", "junk/8",
                          "10.0.0.0/8/8", "::ffff:10.0.0.0/95"}) {
    CAPTURE(bad);
    CHECK_FALSE(CidrBlock::parse(bad));
  }
  std::vector<std::string> list{"junk", "192.0.2.0/24"};
  CHECK(cidr_list_contains(list, *IpAddress::parse("192.0.2.77")));
  CHECK_FALSE(cidr_list_contains(list, *IpAddress::parse("192.0.3.77")));
}

TEST_CASE("parse_address_literal") {
  CHECK(parse_address_literal("[192.0.2.1]") == IpAddress::parse("192.0.2.1"));
  CHECK(parse_address_literal("[ipv6:2001:db8::1]") == IpAddress::parse("2001:db8::1"));
  CHECK(parse_address_literal("[IPv6:2001:db8:0::1]") == IpAddress::parse("2001:db8::1"));
  CHECK(parse_address_literal("192.0.2.1") == IpAddress::parse("192.0.2.1"));
  CHECK(parse_address_literal("2001:db8::1") == IpAddress::parse("2001:db8::1"));
  CHECK_FALSE(parse_address_literal("[2001:db8::1]"));
  CHECK_FALSE(parse_address_literal("[]"));
  CHECK_FALSE(parse_address_literal("[192.0.2.1"));
  CHECK_FALSE(parse_address_literal("example.org"));
}

TEST_CASE("parse_path: UTF-8 (RFC 6531) only when asked for, and only valid UTF-8") {
  auto r = parse_path("<j\xc3\xb6rg@b\xc3\xbcro.example> SMTPUTF8", true, false, true);
  REQUIRE(r.path);
  CHECK(r.path->utf8);
  CHECK(r.path->mailbox.local == "j\xc3\xb6rg");
  CHECK(r.path->mailbox.domain == "b\xc3\xbcro.example");
  CHECK(r.consumed == std::string("<j\xc3\xb6rg@b\xc3\xbcro.example>").size());
  // A quoted UTF-8 local part, and ASCII-only case folding of the domain.
  r = parse_path("<\"\xe7\x94\xb0 \xe4\xb8\xad\"@EX\xc3\x84MPLE.org>", false, true, true);
  REQUIRE(r.path);
  CHECK(r.path->mailbox.quoted);
  CHECK(r.path->mailbox.domain == "ex\xc3\x84mple.org");
  // ASCII paths are not marked.
  r = parse_path("<a@b.c>", true, true, true);
  REQUIRE(r.path);
  CHECK_FALSE(r.path->utf8);
  // Not UTF-8: refused even when UTF-8 is allowed.
  for (const std::string& bad : {std::string("<j\xf6rg@example.com>"), std::string("<a@ex\xc3" "ample.com>"),
                                 std::string("<a@b.c\xed\xa0\x80>"), std::string("<\xc0\xafx@b.c>")}) {
    CAPTURE(bad);
    auto b = parse_path(bad, true, true, true);
    CHECK_FALSE(b.path);
    CHECK(b.error == PathError::non_ascii);
  }
  // Length limits count octets.
  std::string local;
  for (int i = 0; i < 33; ++i) local += "\xc3\xb6";  // 66 octets
  auto l = parse_path("<" + local + "@b.c>", true, true, true);
  CHECK_FALSE(l.path);
  CHECK(l.error == PathError::too_long);
}
