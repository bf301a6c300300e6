// Outbound TLS policy (wizmail/config.hpp): the levels, def/tls_policy.def
// and the look-up of a destination's level.
#include <algorithm>

#include "config/table.hpp"
#include "util/idna.hpp"
#include "util/strings.hpp"
#include "wizmail/config.hpp"

namespace wizmail {

std::string_view to_string(TlsLevel level) noexcept {
  switch (level) {
    case TlsLevel::none: return "none";
    case TlsLevel::may: return "may";
    case TlsLevel::encrypt: return "encrypt";
    case TlsLevel::verify: return "verify";
  }
  return "may";
}

std::optional<TlsLevel> parse_tls_level(std::string_view word) noexcept {
  for (auto l : {TlsLevel::none, TlsLevel::may, TlsLevel::encrypt, TlsLevel::verify})
    if (util::iequals(word, to_string(l))) return l;
  return std::nullopt;
}

namespace {

// Lower-case A-label form without a trailing dot; empty when not a domain
// name (or an IP literal in brackets, which a smart host may be).
std::string destination_key(std::string_view d) {
  if (!d.empty() && d.back() == '.') d.remove_suffix(1);
  if (d.empty()) return {};
  auto a = util::domain_to_ascii(d);
  if (!a) return {};
  return *a;
}

bool valid_destination(const std::string& d) {
  if (d.size() > 2 && d.front() == '[' && d.back() == ']') return config::valid_ip(d.substr(1, d.size() - 2));
  return config::valid_hostname(d);
}

}  // namespace

TlsPolicyTable TlsPolicyTable::parse(std::string_view text, const std::string& path,
                                     std::vector<ConfigDiagnostic>& diagnostics) {
  TlsPolicyTable t;
  int line_no = 0;
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // a UTF-8 byte order mark
  auto error = [&](std::string msg) {
    diagnostics.push_back({ConfigDiagnostic::Severity::error, path, line_no, {}, std::move(msg)});
  };
  while (!text.empty()) {
    ++line_no;
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    line = util::trim(line);
    if (line.empty()) continue;
    std::vector<std::string_view> fields;
    std::size_t i = 0;
    while (i < line.size()) {
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
      auto start = i;
      while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
      if (i > start) fields.push_back(line.substr(start, i - start));
    }
    if (fields.size() != 2) {
      error(util::cat("expected 'destination level', got ", std::to_string(fields.size()), " field",
                      fields.size() == 1 ? "" : "s"));
      continue;
    }
    auto level = parse_tls_level(fields[1]);
    if (!level) {
      error(util::cat("'", fields[1], "' is not a TLS level (none, may, encrypt or verify)"));
      continue;
    }
    Rule r;
    r.level = *level;
    r.line = line_no;
    std::string_view dest = fields[0];
    if (dest.starts_with('.')) {
      r.subdomains = true;
      dest.remove_prefix(1);
    }
    r.domain = destination_key(dest);
    if (r.domain.empty() || !valid_destination(r.domain) || (r.subdomains && r.domain.front() == '[')) {
      error(util::cat("'", fields[0], "' is not a domain name (or .domain for its subdomains)"));
      continue;
    }
    auto dup = std::find_if(t.rules_.begin(), t.rules_.end(), [&](const Rule& o) {
      return o.domain == r.domain && o.subdomains == r.subdomains;
    });
    if (dup != t.rules_.end()) {
      error(util::cat("'", fields[0], "' is already given on line ", std::to_string(dup->line)));
      continue;
    }
    t.rules_.push_back(std::move(r));
  }
  return t;
}

std::optional<TlsLevel> TlsPolicyTable::find(std::string_view domain) const {
  std::string d = destination_key(domain);
  if (d.empty()) return std::nullopt;
  auto match = [&](std::string_view name, bool sub) -> const Rule* {
    for (const auto& r : rules_)
      if (r.subdomains == sub && r.domain == name) return &r;
    return nullptr;
  };
  if (const Rule* r = match(d, false)) return r->level;
  if (d.front() == '[') return std::nullopt;
  // The nearest parent first: a.b.example.com → .b.example.com, .example.com, .com
  std::string_view rest = d;
  for (auto dot = rest.find('.'); dot != std::string_view::npos; dot = rest.find('.')) {
    rest = rest.substr(dot + 1);
    if (const Rule* r = match(rest, true)) return r->level;
  }
  return std::nullopt;
}

TlsLevel Config::tls_level_for(std::string_view destination) const {
  if (auto l = tls_policy.find(destination)) return *l;
  return parse_tls_level(smtp.smtp_tls_security_level).value_or(TlsLevel::may);
}

}  // namespace wizmail
