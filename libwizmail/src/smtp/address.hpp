// RFC 5321 paths (§4.1.2) and the IP helpers the relay rules need. Pure
// functions, no I/O.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "util/ip.hpp"

namespace wizmail::smtp {

// IpAddress, CidrBlock, cidr_list_contains: util/ip.hpp (shared with the
// server's CIDR lists and the configuration check).
using util::cidr_list_contains;
using util::CidrBlock;
using util::IpAddress;

// A domain part that is an address literal: "[192.0.2.1]" or
// "[IPv6:2001:db8::1]" (case-insensitive tag). Also accepts the bare forms
// "192.0.2.1" and "2001:db8::1" (how reject_domain lists them).
std::optional<IpAddress> parse_address_literal(std::string_view text);

struct Mailbox {
  std::string local;        // local part; for a quoted string the content
                            // with quoted-pairs resolved
  bool quoted = false;      // the local part was a Quoted-string
  std::string domain;       // lower-cased; literals keep their brackets
  bool literal = false;     // the domain is an address literal

  // local@domain as it should appear in logs and queue files (a quoted local
  // part is re-quoted).
  std::string str() const;
};

struct Path {
  bool null = false;        // "<>"
  bool bare_postmaster = false;  // "<postmaster>" (RCPT only)
  bool had_route = false;   // a source route was given (and ignored)
  bool utf8 = false;        // holds UTF-8 (needs SMTPUTF8, RFC 6531)
  Mailbox mailbox;
};

enum class PathError {
  syntax,        // not a path
  too_long,      // local part > 64, domain > 255, path > 256
  non_ascii,     // 8-bit when `utf8` is false, or not valid UTF-8
};

struct PathResult {
  std::optional<Path> path;
  PathError error = PathError::syntax;
  std::size_t consumed = 0;  // bytes of `text` up to and including '>'
};

// Parse a path at the start of `text` ("<...>" then optional parameters).
// allow_null: "<>" accepted (MAIL); allow_postmaster: "<postmaster>" (RCPT).
// utf8: UTF-8 is allowed in local parts and domains (RFC 6531 §3.3; the
// caller checks the SMTPUTF8 parameter and the domain's IDNA validity);
// otherwise any octet over 0x7f is PathError::non_ascii.
PathResult parse_path(std::string_view text, bool allow_null,
                      bool allow_postmaster, bool utf8 = false);

// Local parts that may name an account: [a-z0-9._-] (any case), 1–64,
// not starting with '.'. Everything else (%, !, @, quotes, …) is not an
// account on this server (relay-test tricks, SPEC §4.3).
bool is_account_local_part(std::string_view local) noexcept;

}  // namespace wizmail::smtp
