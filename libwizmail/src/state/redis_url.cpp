#include "state/redis_url.hpp"

#include <charconv>

#include "util/strings.hpp"

namespace wizmail::state {

namespace {

Error bad(std::string_view url, std::string_view why) {
  return Error(Errc::invalid_argument, util::cat("redis_url \"", url, "\": ", why));
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// %XX in the password (a URL's userinfo); anything else is kept as it is.
std::string percent_decode(std::string_view s, bool& ok) {
  std::string out;
  ok = true;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    unsigned v = 0;
    if (i + 2 >= s.size()) {
      ok = false;
      return {};
    }
    auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
    if (ec != std::errc{} || p != s.data() + i + 3) { ok = false; return {}; }
    out += static_cast<char>(v);
    i += 2;
  }
  return out;
}

bool parse_db(std::string_view s, int& db) {
  if (!all_digits(s) || s.size() > 5) return false;
  std::from_chars(s.data(), s.data() + s.size(), db);
  return db <= 65535;
}

bool host_ok(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  for (char c : h) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_';
    if (!ok) return false;
  }
  return true;
}

bool ipv6_ok(std::string_view h) {
  if (h.empty() || h.size() > 45) return false;
  for (char c : h) {
    bool ok = (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || (c >= '0' && c <= '9') ||
              c == ':' || c == '.';
    if (!ok) return false;
  }
  return h.find(':') != std::string_view::npos;
}

}  // namespace

std::string RedisAddress::display() const {
  std::string db_part = db ? util::cat("/", std::to_string(db)) : std::string();
  if (unix_socket()) return util::cat("unix://", socket_path, db_part);
  bool v6 = host.find(':') != std::string::npos;
  return util::cat("redis://", v6 ? "[" : "", host, v6 ? "]" : "", ":", std::to_string(port),
                   db_part);
}

Result<RedisAddress> parse_redis_url(std::string_view url) {
  RedisAddress a;
  for (char c : url)
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return unexpected(bad(url, "contains a space or a control character"));
  std::string_view rest;
  bool unix_scheme = false;
  if (url.starts_with("redis://")) {
    rest = url.substr(8);
  } else if (url.starts_with("unix://")) {
    rest = url.substr(7);
    unix_scheme = true;
  } else if (url.starts_with("rediss://")) {
    return unexpected(bad(url, "TLS (rediss://) is not supported; reach Redis over a private network or a UNIX socket"));
  } else {
    return unexpected(bad(url, "must start with redis:// or unix://"));
  }
  // userinfo: everything before the last '@' (a password may hold '@' only percent-encoded,
  // but be lenient and split at the last one).
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view info = rest.substr(0, at);
    rest = rest.substr(at + 1);
    auto colon = info.find(':');
    if (colon == std::string_view::npos) return unexpected(bad(url, "user info without ':' (use redis://:password@host)"));
    bool ok = true;
    a.user = percent_decode(info.substr(0, colon), ok);
    if (!ok) return unexpected(bad(url, "bad %-escape in the user"));
    a.password = percent_decode(info.substr(colon + 1), ok);
    if (!ok) return unexpected(bad(url, "bad %-escape in the password"));
    if (a.password.empty()) return unexpected(bad(url, "empty password"));
  }
  if (unix_scheme) {
    std::string_view path = rest;
    if (auto q = rest.find('?'); q != std::string_view::npos) {
      path = rest.substr(0, q);
      std::string_view query = rest.substr(q + 1);
      if (!query.starts_with("db=") || !parse_db(query.substr(3), a.db))
        return unexpected(bad(url, "the only query is ?db=N (0..65535)"));
    }
    if (path.empty() || path[0] != '/') return unexpected(bad(url, "unix:// needs an absolute socket path"));
    if (path.size() > 107) return unexpected(bad(url, "socket path too long"));
    a.socket_path = std::string(path);
    return a;
  }
  std::string_view hostport = rest;
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    hostport = rest.substr(0, slash);
    std::string_view db = rest.substr(slash + 1);
    if (!db.empty() && !parse_db(db, a.db)) return unexpected(bad(url, "the database must be a number 0..65535"));
  }
  std::string_view port;
  if (hostport.starts_with("[")) {
    auto close = hostport.find(']');
    if (close == std::string_view::npos) return unexpected(bad(url, "unclosed '[' of an IPv6 address"));
    std::string_view h = hostport.substr(1, close - 1);
    if (!ipv6_ok(h)) return unexpected(bad(url, "bad IPv6 address"));
    a.host = std::string(h);
    std::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return unexpected(bad(url, "junk after the IPv6 address"));
      port = after.substr(1);
      if (port.empty()) return unexpected(bad(url, "empty port"));
    }
  } else {
    auto colon = hostport.find(':');
    std::string_view h = hostport.substr(0, colon);
    if (h.empty()) return unexpected(bad(url, "no host"));
    if (!host_ok(h)) return unexpected(bad(url, "bad host name"));
    a.host = std::string(h);
    if (colon != std::string_view::npos) {
      port = hostport.substr(colon + 1);
      if (port.empty()) return unexpected(bad(url, "empty port"));
    }
  }
  if (!port.empty()) {
    unsigned v = 0;
    if (!all_digits(port) || port.size() > 5) return unexpected(bad(url, "the port must be a number 1..65535"));
    std::from_chars(port.data(), port.data() + port.size(), v);
    if (v == 0 || v > 65535) return unexpected(bad(url, "the port must be a number 1..65535"));
    a.port = static_cast<std::uint16_t>(v);
  }
  return a;
}

}  // namespace wizmail::state
