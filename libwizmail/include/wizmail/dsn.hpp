// What a sender asked for with the SMTP DSN extension (RFC 3461): RET and
// ENVID of a message, NOTIFY and ORCPT of each recipient. The SMTP session
// parses them, the commit and the retry queue (wizmail/queue.hpp) carry
// them, the outbound client passes them on to a peer that offers DSN, and
// every notice wizmail sends (wizmail/relay.hpp, build_dsn) honours them:
//
//   failure notice   unless NOTIFY was given without FAILURE (NEVER too)
//   success notice   only with NOTIFY=SUCCESS: "delivered" (local delivery,
//                    a mailing list), "expanded" (an alias with several
//                    targets), "relayed" (a peer without DSN took it)
//   delay notice     only with NOTIFY=DELAY, once, after delay_warning_time
//   RET=FULL         a failure notice returns the whole message (up to
//                    bounce_size_limit octets, else the headers); RET=HDRS
//                    or no RET: the headers. Success and delay notices
//                    always return the headers only (RFC 3461 §4.3).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace wizmail {

enum class DsnRet : std::uint8_t { unspecified, full, hdrs };

// NOTIFY as a bit set; 0 = the parameter was not given.
namespace dsn_notify {
inline constexpr std::uint8_t never = 1;
inline constexpr std::uint8_t success = 2;
inline constexpr std::uint8_t failure = 4;
inline constexpr std::uint8_t delay = 8;
}  // namespace dsn_notify

// One recipient's request.
struct DsnRequest {
  std::uint8_t notify = 0;
  // The ORCPT as "addr-type;address" with the xtext decoded (printable
  // US-ASCII only); empty when none was given.
  std::string orcpt{};

  bool empty() const noexcept { return notify == 0 && orcpt.empty(); }
  friend bool operator==(const DsnRequest&, const DsnRequest&) = default;
};

constexpr bool wants_failure_notice(std::uint8_t notify) noexcept {
  return notify == 0 || (notify & dsn_notify::failure) != 0;
}
constexpr bool wants_success_notice(std::uint8_t notify) noexcept {
  return (notify & dsn_notify::success) != 0;
}
constexpr bool wants_delay_notice(std::uint8_t notify) noexcept {
  return (notify & dsn_notify::delay) != 0;
}

// "NEVER", or a comma list of SUCCESS, FAILURE and DELAY (any case, each at
// most once; NEVER alone). nullopt when malformed.
std::optional<std::uint8_t> parse_dsn_notify(std::string_view value);
// The parameter value ("SUCCESS,FAILURE"); "" for 0.
std::string format_dsn_notify(std::uint8_t notify);

// "FULL" or "HDRS" (any case); nullopt otherwise.
std::optional<DsnRet> parse_dsn_ret(std::string_view value);
// "FULL", "HDRS", or "" when unspecified.
std::string_view to_string(DsnRet ret) noexcept;

// ENVID=xtext: at most 100 characters, decoding to printable US-ASCII
// (RFC 3461 §4.4). The decoded identifier, or nullopt.
std::optional<std::string> parse_dsn_envid(std::string_view xtext);

// ORCPT=addr-type;xtext (RFC 3461 §4.2): at most 500 characters, an atom
// as the type, an address decoding to printable US-ASCII. The decoded
// "addr-type;address", or nullopt.
std::optional<std::string> parse_dsn_orcpt(std::string_view value);
// The parameter value for a decoded "addr-type;address" (xtext-encoded).
std::string format_dsn_orcpt(std::string_view decoded);

// The decoded ORCPT that names `address`: "rfc822;address" when it is
// ASCII, else "utf-8;" and the RFC 6533 utf-8-addr-xtext form (every
// non-ASCII character, '\', '+' and '=' as "\x{HEX}"), which is 7-bit.
std::string dsn_orcpt_for(std::string_view address);

// An address as a delivery-status field value: "rfc822; address" when it is
// ASCII, else "utf-8; " and the RFC 6533 utf-8-addr-xtext form (every
// non-ASCII character, '\', '+' and '=' as "\x{HEX}"), so the field stays
// 7-bit.
std::string dsn_address_field(std::string_view address);

}  // namespace wizmail
