// RFC 3461 parameter values (wizmail/dsn.hpp). Pure.
#include "util/strings.hpp"
#include "util/utf8.hpp"
#include "util/xtext.hpp"
#include "wizmail/dsn.hpp"

namespace wizmail {

namespace {

bool printable_ascii(std::string_view s) noexcept {
  for (char c : s)
    if (c < 0x20 || c > 0x7e) return false;
  return true;
}

}  // namespace

std::optional<std::uint8_t> parse_dsn_notify(std::string_view value) {
  if (util::iequals(value, "NEVER")) return dsn_notify::never;
  std::uint8_t bits = 0;
  while (true) {
    auto comma = value.find(',');
    auto word = value.substr(0, comma);
    std::uint8_t bit = util::iequals(word, "SUCCESS")   ? dsn_notify::success
                       : util::iequals(word, "FAILURE") ? dsn_notify::failure
                       : util::iequals(word, "DELAY")   ? dsn_notify::delay
                                                        : 0;
    if (bit == 0 || (bits & bit)) return std::nullopt;  // unknown, empty, NEVER in a list, repeated
    bits |= bit;
    if (comma == std::string_view::npos) return bits;
    value.remove_prefix(comma + 1);
  }
}

std::string format_dsn_notify(std::uint8_t notify) {
  if (notify & dsn_notify::never) return "NEVER";
  std::string out;
  for (auto [bit, name] : {std::pair{dsn_notify::success, "SUCCESS"}, std::pair{dsn_notify::failure, "FAILURE"},
                           std::pair{dsn_notify::delay, "DELAY"}}) {
    if (!(notify & bit)) continue;
    if (!out.empty()) out += ',';
    out += name;
  }
  return out;
}

std::optional<DsnRet> parse_dsn_ret(std::string_view value) {
  if (util::iequals(value, "FULL")) return DsnRet::full;
  if (util::iequals(value, "HDRS")) return DsnRet::hdrs;
  return std::nullopt;
}

std::string_view to_string(DsnRet ret) noexcept {
  switch (ret) {
    case DsnRet::full: return "FULL";
    case DsnRet::hdrs: return "HDRS";
    case DsnRet::unspecified: break;
  }
  return "";
}

std::optional<std::string> parse_dsn_envid(std::string_view xtext) {
  if (xtext.empty() || xtext.size() > 100) return std::nullopt;
  auto v = util::decode_xtext(xtext);
  if (!v || !printable_ascii(*v)) return std::nullopt;
  return v;
}

std::optional<std::string> parse_dsn_orcpt(std::string_view value) {
  if (value.size() > 500) return std::nullopt;
  auto semi = value.find(';');
  if (semi == 0 || semi == std::string_view::npos || semi + 1 == value.size()) return std::nullopt;
  for (char c : value.substr(0, semi))
    if (!util::is_atext(c)) return std::nullopt;
  auto addr = util::decode_xtext(value.substr(semi + 1));
  if (!addr || !printable_ascii(*addr)) return std::nullopt;
  return util::cat(value.substr(0, semi + 1), *addr);
}

std::string format_dsn_orcpt(std::string_view decoded) {
  auto semi = decoded.find(';');
  if (semi == std::string_view::npos) return util::cat("rfc822;", util::encode_xtext(decoded));
  return util::cat(decoded.substr(0, semi + 1), util::encode_xtext(decoded.substr(semi + 1)));
}

std::string dsn_address_field(std::string_view address) {
  const std::string o = dsn_orcpt_for(address);  // "type;address", never without ';'
  const std::string_view v = o;
  const auto semi = v.find(';');
  return util::cat(v.substr(0, semi + 1), " ", v.substr(semi + 1));
}

std::string dsn_orcpt_for(std::string_view address) {
  if (util::is_ascii(address)) {
    std::string out = "rfc822;";
    for (char c : address) out += (c < 0x20 || c == 0x7f) ? '?' : c;
    return out;
  }
  static constexpr char hex[] = "0123456789ABCDEF";
  auto embed = [](std::string& out, std::uint32_t cp) {
    std::string digits;
    do {
      digits.insert(digits.begin(), hex[cp & 15]);
      cp >>= 4;
    } while (cp);
    if (digits.size() < 2) digits.insert(digits.begin(), '0');
    out += util::cat("\\x{", digits, "}");
  };
  std::string out = "utf-8;";
  for (std::size_t i = 0; i < address.size();) {
    auto c = static_cast<unsigned char>(address[i]);
    std::size_t n = util::utf8_sequence_length(address.substr(i));
    if (n == 0) {  // not UTF-8: keep the field 7-bit and readable
      out += '?';
      ++i;
      continue;
    }
    if (n == 1) {
      if (c <= 0x20 || c == 0x7f) out += '?';
      else if (c == '\\' || c == '+' || c == '=') embed(out, c);
      else out += static_cast<char>(c);
      ++i;
      continue;
    }
    std::uint32_t cp = c & (n == 2 ? 0x1f : n == 3 ? 0x0f : 0x07);
    for (std::size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(address[i + k]) & 0x3f);
    embed(out, cp);
    i += n;
  }
  return out;
}

}  // namespace wizmail
