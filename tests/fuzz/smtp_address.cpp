// Fuzz target: RFC 5321 paths and the IP helpers the relay rules use
// (smtp/address.hpp, util/ip.hpp).
//
// Input: byte 0 bit 0 = allow the null path "<>", bit 1 = allow
// "<postmaster>"; the rest is the text after "MAIL FROM:" / "RCPT TO:".
// Properties: a path ends at its '>' and respects the RFC's lengths, its
// domain is lower case; Mailbox::str() parses back to the same mailbox; an
// account name is always a plain local part; an IP literal or CIDR block
// that parses prints (inet_ntop) to an address that parses to the same
// bytes, and a block contains its own network.
#include <arpa/inet.h>

#include "fuzz.hpp"
#include "smtp/address.hpp"

using namespace wizmail;
using namespace wizmail::smtp;
using wizmail::fuzz::show;

namespace {

void check_ip(const util::IpAddress& ip, std::string_view text) {
  FUZZ_CHECK_MSG(text.find('\0') == std::string_view::npos, show(text));
  char buf[INET6_ADDRSTRLEN];
  FUZZ_CHECK(inet_ntop(ip.v6 ? AF_INET6 : AF_INET, ip.bytes.data(), buf, sizeof buf));
  auto back = util::IpAddress::parse(buf);
  FUZZ_CHECK_MSG(back && *back == ip, buf);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  std::uint8_t flags = in.byte();
  const bool allow_null = flags & 1, allow_postmaster = flags & 2;
  std::string_view text = in.rest();

  auto r = parse_path(text, allow_null, allow_postmaster);
  if (r.path) {
    const auto& p = *r.path;
    FUZZ_CHECK(r.consumed >= 2 && r.consumed <= text.size());
    FUZZ_CHECK(text[0] == '<' && text[r.consumed - 1] == '>');
    FUZZ_CHECK(r.consumed <= 256);
    if (p.null) {
      FUZZ_CHECK(allow_null && r.consumed == 2);
    } else if (p.bare_postmaster) {
      FUZZ_CHECK(allow_postmaster && p.mailbox.local == "postmaster" && p.mailbox.domain.empty());
    } else {
      const auto& m = p.mailbox;
      FUZZ_CHECK(!m.domain.empty() && m.domain.size() <= 255);
      FUZZ_CHECK(m.local.size() <= 64);
      for (char c : m.domain) FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
      FUZZ_CHECK(m.literal == (m.domain.front() == '['));
      if (m.literal) FUZZ_CHECK(parse_address_literal(m.domain).has_value());
      // The printed form (logs, queue files, Received:) is a path again.
      std::string printed = "<";
      printed.append(m.str()).append(">");  // not "<" + string&&: GCC 12 -O3 -Wrestrict
      auto back = parse_path(printed, false, false);
      FUZZ_CHECK_MSG(back.path, show(printed));
      FUZZ_CHECK(back.consumed == printed.size());
      FUZZ_CHECK(back.path->mailbox.local == m.local && back.path->mailbox.quoted == m.quoted &&
                 back.path->mailbox.domain == m.domain && back.path->mailbox.literal == m.literal);
      FUZZ_CHECK(back.path->mailbox.str() == m.str());
      if (is_account_local_part(m.local)) {
        FUZZ_CHECK(m.local.find_first_of("@\"\\%!/ ") == std::string::npos);
        FUZZ_CHECK(m.local.front() != '.');
      }
    }
  } else {
    FUZZ_CHECK(r.consumed == 0);
  }

  // The same text as an address literal, an address and a CIDR block (the
  // forms reject_domain and address_permits_relay list).
  if (auto ip = parse_address_literal(text)) check_ip(*ip, text);
  if (auto ip = util::IpAddress::parse(text)) check_ip(*ip, text);
  if (auto block = util::CidrBlock::parse(text)) {
    FUZZ_CHECK(block->prefix <= (block->network.v6 ? 128u : 32u));
    FUZZ_CHECK(block->contains(block->network));
    FUZZ_CHECK(text.find('\0') == std::string_view::npos);
  }
  return 0;
}
