#include "srs/srs.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <string_view>

#include "util/strings.hpp"

namespace wizmail::srs {

namespace {

constexpr std::string_view kTimeChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
constexpr int kTimeSlots = 1024;  // two base32 characters
constexpr std::int64_t kDay = 86400;
constexpr std::string_view kHashChars =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "abcdefghijklmnopqrstuvwxyz"
    "0123456789-_";
constexpr char kSep = '=';  // between the fields: always '=' (libsrs2's SRSSEP)

bool separator_char(char c) noexcept { return c == '=' || c == '+' || c == '-'; }

// "SRS0" + separator (tag 0) or "SRS1" + separator (tag 1) at the start.
bool has_tag(std::string_view s, char digit) noexcept {
  return s.size() >= 5 && util::istarts_with(s, "SRS") && s[3] == digit && separator_char(s[4]);
}

// A hash character in a canonical form for comparison: case folded, and
// standard base64's '+' '/' the same as base64url's '-' '_'. 0: not one.
char hash_class(char c) noexcept {
  if (c >= 'A' && c <= 'Z') return static_cast<char>(c - 'A' + 'a');
  if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) return c;
  if (c == '+' || c == '-') return '-';
  if (c == '/' || c == '_') return '_';
  return 0;
}

Error refused(Refusal why, std::string_view address, std::string reason) {
  Error e;
  switch (why) {
    case Refusal::not_srs:
      return Error{Errc::not_found, util::cat(address, ": not an SRS address")};
    case Refusal::malformed:
      e = Error::smtp(550, "5.1.1", "Malformed SRS address", util::cat(address, ": ", reason));
      e.code = Errc::parse;
      break;
    case Refusal::expired:
      e = Error::smtp(550, "5.1.1", "SRS address expired: the message it answers is too old",
                      util::cat(address, ": ", reason));
      e.code = Errc::limit;
      break;
    case Refusal::forged:
      e = Error::smtp(550, "5.7.1", "Invalid SRS address: not made by this forwarder",
                      util::cat(address, ": ", reason));
      e.code = Errc::refused;
      break;
  }
  return e;
}

}  // namespace

bool is_srs_address(std::string_view address) noexcept { return has_tag(address, '0') || has_tag(address, '1'); }

std::optional<Result<std::string>> reverse_recipient(const Rewriter& rewriter, std::string_view srs_domain,
                                                     std::string_view address, std::int64_t now) {
  const auto at = address.rfind('@');
  if (at == std::string_view::npos || !util::iequals(address.substr(at + 1), srs_domain) ||
      !is_srs_address(address.substr(0, at)))
    return std::nullopt;
  return rewriter.reverse(address, now);
}

Refusal refusal_of(const Error& e) noexcept {
  switch (e.code) {
    case Errc::parse: return Refusal::malformed;
    case Errc::limit: return Refusal::expired;
    case Errc::refused: return Refusal::forged;
    default: return Refusal::not_srs;
  }
}

std::string timestamp(std::int64_t now) {
  const std::int64_t day = now / kDay;
  std::string out(2, ' ');
  out[1] = kTimeChars[static_cast<std::size_t>(day & 31)];
  out[0] = kTimeChars[static_cast<std::size_t>((day >> 5) & 31)];
  return out;
}

int timestamp_day(std::string_view stamp) noexcept {
  if (stamp.size() != 2) return -1;
  int then = 0;
  for (char c : stamp) {
    const char u = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
    const auto at = kTimeChars.find(u);
    if (at == std::string_view::npos) return -1;
    then = (then << 5) | static_cast<int>(at);
  }
  return then;
}

Result<Rewriter> Rewriter::make(Options o) {
  if (o.secrets.empty()) return fail(Errc::invalid_argument, "SRS: no secret");
  for (const auto& s : o.secrets)
    if (s.empty()) return fail(Errc::invalid_argument, "SRS: an empty secret");
  if (o.hash_length < 1 || o.hash_length > 20)
    return fail(Errc::invalid_argument, "SRS: hash length " + std::to_string(o.hash_length) + " is not 1-20");
  if (o.max_age_days < 1 || o.max_age_days > 1000)
    return fail(Errc::invalid_argument, "SRS: maximum age " + std::to_string(o.max_age_days) + " is not 1-1000 days");
  if (!separator_char(o.separator)) return fail(Errc::invalid_argument, "SRS: separator must be =, + or -");
  return Rewriter(std::move(o));
}

// libsrs2's srs_hash_create: HMAC-SHA1 over the lower-cased fields, one after
// the other, then the first hash_length characters of its base64url text.
std::string Rewriter::hash(const std::string& secret, std::initializer_list<std::string_view> fields) const {
  // One HMAC over the fields one after the other is libsrs2's sequence of
  // updates (OpenSSL 3 deprecates the HMAC_CTX calls, not the one-shot).
  std::string data;
  for (auto f : fields) data += util::to_lower(f);
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int md_len = 0;
  if (!HMAC(EVP_sha1(), secret.data(), static_cast<int>(secret.size()),
            reinterpret_cast<const unsigned char*>(data.data()), data.size(), md.data(), &md_len))
    return {};  // never matches a given hash (hash_ok needs hash_length characters)
  std::string out;
  // 6 bits a character from the front of the digest (20 octets: 26 characters).
  for (int i = 0; i < o_.hash_length; ++i) {
    const int bit = i * 6;
    const int byte = bit / 8, shift = bit % 8;
    unsigned v = static_cast<unsigned>(md[static_cast<std::size_t>(byte)]) << 8;
    if (byte + 1 < static_cast<int>(md_len)) v |= md[static_cast<std::size_t>(byte + 1)];
    out += kHashChars[(v >> (10 - shift)) & 63];
  }
  return out;
}

// libsrs2's srs_hash_check: at least hash_length characters given (only the
// first hash_length count), equal to the hash under any secret.
bool Rewriter::hash_ok(std::string_view given, std::initializer_list<std::string_view> fields) const {
  const auto n = static_cast<std::size_t>(o_.hash_length);
  if (given.size() < n) return false;
  for (const auto& secret : o_.secrets) {
    const std::string want = hash(secret, fields);
    if (want.size() != n) continue;
    unsigned diff = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const char a = hash_class(given[i]), b = hash_class(want[i]);
      diff |= static_cast<unsigned>(a ^ b) | (a == 0) | (b == 0);
    }
    if (diff == 0) return true;
  }
  return false;
}

Result<std::string> Rewriter::forward(std::string_view sender, std::string_view srs_domain, std::int64_t now) const {
  const auto at = sender.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == sender.size())
    return fail(Errc::invalid_argument, util::cat("SRS: ", sender, ": not local@domain"));
  const std::string_view user = sender.substr(0, at), host = sender.substr(at + 1);
  if (util::iequals(host, srs_domain)) return std::string(sender);
  const std::string sep(1, o_.separator);
  const std::string& secret = o_.secrets.front();
  if (has_tag(user, '1')) {
    // SRS1=HHH=first==opaque@host: keep the first forwarder and the opaque
    // part, sign them anew for this domain (the old hash is not ours).
    const std::string_view rest = user.substr(5);
    const auto h = rest.find(kSep);
    if (rest.empty() || h == std::string_view::npos || h + 1 >= rest.size())
      return fail(Errc::invalid_argument, util::cat("SRS: ", sender, ": SRS1 address without a host"));
    const std::string_view tail = rest.substr(h + 1);
    const auto u = tail.find(kSep);
    if (u == std::string_view::npos || u + 1 >= tail.size())
      return fail(Errc::invalid_argument, util::cat("SRS: ", sender, ": SRS1 address without a user"));
    const std::string_view first = tail.substr(0, u), opaque = tail.substr(u + 1);
    return util::cat("SRS1", sep, hash(secret, {first, opaque}), "=", first, "=", opaque, "@", srs_domain);
  }
  if (has_tag(user, '0')) {
    // SRS0…@host (another forwarder's): SRS1=HHH=host=<=…>@us, the opaque
    // part with its separator, so the reverse gives back SRS0<sep>…@host.
    const std::string_view opaque = user.substr(4);
    return util::cat("SRS1", sep, hash(secret, {host, opaque}), "=", host, "=", opaque, "@", srs_domain);
  }
  const std::string stamp = timestamp(now);
  return util::cat("SRS0", sep, hash(secret, {stamp, host, user}), "=", stamp, "=", host, "=", user, "@",
                   srs_domain);
}

Result<std::string> Rewriter::reverse(std::string_view address, std::int64_t now) const {
  std::string_view user = address.substr(0, address.rfind('@'));  // the domain is the caller's business
  if (!is_srs_address(user)) return unexpected(refused(Refusal::not_srs, address, {}));
  const bool srs1 = user[3] == '1';
  std::string_view rest = user.substr(5);
  auto next = [&rest]() -> std::string_view {  // the field up to the next '=', or "" when none follows
    const auto p = rest.find(kSep);
    if (p == std::string_view::npos) {
      rest = {};
      return {};
    }
    const auto f = rest.substr(0, p);
    rest.remove_prefix(p + 1);
    return f;
  };
  if (srs1) {
    // SRS1=HHH=first==opaque → SRS0=opaque@first.
    if (rest.empty()) return unexpected(refused(Refusal::malformed, address, "no hash in the SRS1 address"));
    const std::string_view h = next();
    if (rest.empty()) return unexpected(refused(Refusal::malformed, address, "no host in the SRS1 address"));
    const std::string_view first = next();
    if (rest.empty()) return unexpected(refused(Refusal::malformed, address, "no user in the SRS1 address"));
    const std::string_view opaque = rest;
    if (!hash_ok(h, {first, opaque})) return unexpected(refused(Refusal::forged, address, "hash invalid"));
    return util::cat("SRS0", opaque, "@", first);
  }
  // SRS0=HHH=TT=host=user → user@host.
  if (rest.empty()) return unexpected(refused(Refusal::malformed, address, "no hash in the SRS0 address"));
  const std::string_view h = next();
  if (rest.empty()) return unexpected(refused(Refusal::malformed, address, "no time stamp in the SRS0 address"));
  const std::string_view stamp = next();
  if (rest.empty()) return unexpected(refused(Refusal::malformed, address, "no host in the SRS0 address"));
  const std::string_view host = next();
  if (rest.empty()) return unexpected(refused(Refusal::malformed, address, "no user in the SRS0 address"));
  const std::string_view sender_user = rest;
  const int then = timestamp_day(stamp);
  if (then < 0) return unexpected(refused(Refusal::malformed, address, "bad time stamp"));
  // libsrs2's srs_timestamp_check: today modulo 1024, moved past `then`
  // when it wrapped; a stamp from the future is therefore about 1024 days old.
  std::int64_t today = (now / kDay) % kTimeSlots;
  while (today < then) today += kTimeSlots;
  if (today > then + o_.max_age_days)
    return unexpected(refused(Refusal::expired, address,
                              util::cat("time stamp ", stamp, " is ", std::to_string(today - then),
                                        " days old (at most ", std::to_string(o_.max_age_days), ")")));
  if (!hash_ok(h, {stamp, host, sender_user})) return unexpected(refused(Refusal::forged, address, "hash invalid"));
  return util::cat(sender_user, "@", host);
}

}  // namespace wizmail::srs
