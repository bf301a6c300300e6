#include "smtp/address.hpp"

#include <arpa/inet.h>

#include <cstring>

#include "util/strings.hpp"
#include "util/utf8.hpp"

namespace wizmail::smtp {

namespace {

bool is_alpha(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
bool is_let_dig(char c) noexcept { return is_alpha(c) || is_digit(c); }

bool is_high(char c) noexcept { return static_cast<unsigned char>(c) >= 0x80; }

// Domain = sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str],
// with `utf8` also a U-label (RFC 6531 §3.3: octets of UTF-8 characters;
// libidn2 validates the label later).
// Returns the length matched at the start of s (0 = none).
std::size_t match_domain(std::string_view s, bool utf8 = false) noexcept {
  auto label_start = [&](char c) { return is_let_dig(c) || (utf8 && is_high(c)); };
  std::size_t i = 0;
  std::size_t matched = 0;
  for (;;) {
    if (i >= s.size() || !label_start(s[i])) return matched;
    std::size_t start = i;
    while (i < s.size() && (label_start(s[i]) || s[i] == '-')) ++i;
    // Ldh-str must not end in '-'; back off to the last let-dig.
    while (i > start && s[i - 1] == '-') --i;
    if (i - start > 63) return 0;
    matched = i;
    if (i < s.size() && s[i] == '.' && i + 1 < s.size() && label_start(s[i + 1])) {
      ++i;
      continue;
    }
    return matched;
  }
}

}  // namespace

std::optional<IpAddress> parse_address_literal(std::string_view text) {
  if (!text.empty() && text.front() == '[') {
    if (text.size() < 3 || text.back() != ']') return std::nullopt;
    text = text.substr(1, text.size() - 2);
    if (text.size() > 5 && util::istarts_with(text, "IPv6:")) {
      auto ip = IpAddress::parse(text.substr(5));
      // [IPv6:::ffff:1.2.3.4] is a v4 address in disguise: still an address.
      return ip;
    }
    if (text.find(':') != std::string_view::npos) return std::nullopt;
    return IpAddress::parse(text);
  }
  return IpAddress::parse(text);
}

std::string Mailbox::str() const {
  std::string s;
  s.reserve(local.size() + domain.size() + 3);
  if (quoted) {
    s += '"';
    for (char c : local) {
      if (c == '"' || c == '\\') s += '\\';
      s += c;
    }
    s += '"';
  } else {
    s += local;
  }
  if (!domain.empty()) {
    s += '@';
    s += domain;
  }
  return s;
}

PathResult parse_path(std::string_view text, bool allow_null,
                      bool allow_postmaster, bool utf8) {
  PathResult r;
  if (text.empty() || text[0] != '<') return r;
  std::size_t i = 1;
  // The path ends at the first '>' outside a quoted string; only its own
  // octets matter (the parameters after it are checked by their parser).
  std::size_t n = text.size();
  {
    bool quoted = false;
    for (std::size_t k = 1; k < text.size(); ++k) {
      if (quoted && text[k] == '\\') {
        ++k;
        continue;
      }
      if (text[k] == '"') quoted = !quoted;
      if (!quoted && text[k] == '>') {
        n = k + 1;
        break;
      }
    }
  }
  bool high = false;
  for (std::size_t k = 0; k < n; ++k) high = high || is_high(text[k]);
  if (high && (!utf8 || !util::valid_utf8(text.substr(0, n)))) {
    r.error = PathError::non_ascii;
    return r;
  }
  if (allow_null && text.size() >= 2 && text[1] == '>') {
    r.path = Path{};
    r.path->null = true;
    r.consumed = 2;
    return r;
  }
  Path p;
  // Source route: "@a,@b:" — parsed for syntax, then ignored (RFC 5321 §C).
  if (i < n && text[i] == '@') {
    for (;;) {
      if (i >= n || text[i] != '@') return r;
      ++i;
      auto dl = match_domain(text.substr(i));
      if (dl == 0) return r;
      i += dl;
      if (i < n && text[i] == ',') {
        ++i;
        continue;
      }
      if (i < n && text[i] == ':') {
        ++i;
        break;
      }
      return r;
    }
    p.had_route = true;
  }
  // Local part.
  std::size_t local_start = i;
  if (i < n && text[i] == '"') {
    p.mailbox.quoted = true;
    ++i;
    for (;;) {
      if (i >= n) return r;
      char c = text[i];
      if (c == '"') {
        ++i;
        break;
      }
      if (c == '\\') {
        if (i + 1 >= n) return r;
        char q = text[i + 1];
        if (q < 32 || q > 126) return r;
        p.mailbox.local += q;
        i += 2;
        continue;
      }
      if ((c < 32 || c > 126) && !is_high(c)) return r;
      p.mailbox.local += c;
      ++i;
    }
  } else {
    // Dot-string = Atom *("." Atom); atext =/ UTF8-non-ascii (RFC 6531)
    for (;;) {
      std::size_t a = i;
      while (i < n && (util::is_atext(text[i]) || is_high(text[i]))) ++i;
      if (i == a) return r;
      if (i < n && text[i] == '.') {
        ++i;
        continue;
      }
      break;
    }
    p.mailbox.local.assign(text.substr(local_start, i - local_start));
  }
  if (i - local_start > 64) {
    r.error = PathError::too_long;
    return r;
  }
  if (i < n && text[i] == '>') {
    // "<postmaster>" without a domain (RFC 5321 §4.1.1.3).
    if (allow_postmaster && !p.had_route && !p.mailbox.quoted &&
        util::iequals(p.mailbox.local, "postmaster")) {
      p.bare_postmaster = true;
      p.mailbox.local = "postmaster";
      r.path = std::move(p);
      r.consumed = i + 1;
      return r;
    }
    return r;
  }
  if (i >= n || text[i] != '@') return r;
  ++i;
  std::size_t dom_start = i;
  if (i < n && text[i] == '[') {
    auto end = text.find(']', i);
    if (end == std::string_view::npos) return r;
    auto lit = text.substr(i, end - i + 1);
    if (!parse_address_literal(lit)) return r;
    p.mailbox.literal = true;
    i = end + 1;
  } else {
    auto dl = match_domain(text.substr(i, n - i), true);
    if (dl == 0) return r;
    i += dl;
  }
  if (i - dom_start > 255) {
    r.error = PathError::too_long;
    return r;
  }
  if (i >= n || text[i] != '>') return r;
  if (i + 1 > 256) {
    r.error = PathError::too_long;
    return r;
  }
  p.mailbox.domain = util::to_lower(text.substr(dom_start, i - dom_start));
  p.utf8 = high;
  r.path = std::move(p);
  r.consumed = i + 1;
  return r;
}

bool is_account_local_part(std::string_view local) noexcept {
  if (local.empty() || local.size() > 64 || local[0] == '.') return false;
  for (char c : local) {
    if (!(is_let_dig(c) || c == '.' || c == '_' || c == '-')) return false;
  }
  return true;
}

}  // namespace wizmail::smtp
