// The pure pieces: the From: domain, removing forged
// Authentication-Results, formatting ours, the policy decisions, and the
// DKIM KeySource over Dns.
#include <arpa/nameser.h>

#include "mailauth/mailauth.hpp"
#include "util/strings.hpp"

namespace wizmail::mailauth {

namespace {

bool wsp(char c) { return c == ' ' || c == '\t'; }

// The fields of a header section: [start, end) of each, continuation
// lines included, line ends included.
struct Field {
  std::size_t start, end;
};
std::vector<Field> fields(std::string_view h) {
  std::vector<Field> out;
  std::size_t pos = 0;
  while (pos < h.size()) {
    auto nl = h.find('\n', pos);
    std::size_t next = nl == std::string_view::npos ? h.size() : nl + 1;
    std::string_view line = h.substr(pos, next - pos);
    if (line == "\r\n" || line == "\n") break;  // the end of the header section
    if (!out.empty() && wsp(line.front())) out.back().end = next;
    else out.push_back({pos, next});
    pos = next;
  }
  return out;
}

// Unfolded value of a field (after the colon), CR/LF removed.
std::string unfolded_value(std::string_view field) {
  auto colon = field.find(':');
  std::string v;
  if (colon == std::string_view::npos) return v;
  for (char c : field.substr(colon + 1))
    if (c != '\r' && c != '\n') v += c;
  return v;
}

std::string_view field_name(std::string_view field) {
  auto colon = field.find(':');
  if (colon == std::string_view::npos) return {};
  return util::trim(field.substr(0, colon));
}

// Skip CFWS (RFC 5322 §3.2.2): white space and nested comments.
std::size_t skip_cfws(std::string_view s, std::size_t i) {
  for (;;) {
    while (i < s.size() && (wsp(s[i]) || s[i] == '\r' || s[i] == '\n')) ++i;
    if (i >= s.size() || s[i] != '(') return i;
    int depth = 0;
    for (; i < s.size(); ++i) {
      if (s[i] == '\\') {
        ++i;
        continue;
      }
      if (s[i] == '(') ++depth;
      else if (s[i] == ')' && --depth == 0) {
        ++i;
        break;
      }
    }
  }
}

// A value safe as a method property value: a dot-atom-ish token, or quoted.
std::string pvalue(std::string_view v) {
  bool plain = !v.empty();
  for (char c : v)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || std::string_view(".-_+@=!#$%&'*/?^`{|}~").find(c) !=
                                                             std::string_view::npos))
      plain = false;
  if (plain) return std::string(v);
  std::string q = "\"";
  for (char c : v) {
    if (c == '\r' || c == '\n') continue;
    if (c == '"' || c == '\\') q += '\\';
    q += c;
  }
  q += '"';
  return q;
}

// A comment's text: printable, parentheses and backslashes dropped, short.
std::string comment(std::string_view text) {
  std::string c;
  for (char ch : text) {
    if (c.size() >= 120) break;
    auto u = static_cast<unsigned char>(ch);
    if (u < 0x20 || u == 0x7f || ch == '(' || ch == ')' || ch == '\\') continue;
    c += ch;
  }
  return c;
}

}  // namespace

std::string authserv_id_of(std::string_view value) {
  auto i = skip_cfws(value, 0);
  std::size_t j = i;
  while (j < value.size() && value[j] != ';' && !wsp(value[j]) && value[j] != '(' && value[j] != '\r' &&
         value[j] != '\n')
    ++j;
  return std::string(value.substr(i, j - i));
}

std::string remove_own_results(std::string_view h, std::string_view authserv_id) {
  std::string out;
  std::size_t copied = 0;
  for (const auto& f : fields(h)) {
    std::string_view field = h.substr(f.start, f.end - f.start);
    if (util::iequals(field_name(field), "Authentication-Results") &&
        util::iequals(authserv_id_of(unfolded_value(field)), authserv_id)) {
      out.append(h.substr(copied, f.start - copied));
      copied = f.end;
    }
  }
  out.append(h.substr(copied));
  return out;
}

std::optional<std::string> from_domain(std::string_view h) {
  std::optional<std::string> value;
  for (const auto& f : fields(h)) {
    std::string_view field = h.substr(f.start, f.end - f.start);
    if (!util::iequals(field_name(field), "From")) continue;
    if (value) return std::nullopt;  // several From: fields
    value = unfolded_value(field);
  }
  if (!value) return std::nullopt;
  // Drop comments and quoted strings, then find the one address.
  std::string s;
  const std::string& v = *value;
  for (std::size_t i = 0; i < v.size();) {
    if (v[i] == '(') {
      i = skip_cfws(v, i);
      s += ' ';
      continue;
    }
    if (v[i] == '"') {
      ++i;
      while (i < v.size() && v[i] != '"') i += v[i] == '\\' ? 2 : 1;
      ++i;
      s += ' ';
      continue;
    }
    s += v[i++];
  }
  if (s.find(',') != std::string::npos) return std::nullopt;  // several addresses
  std::string_view addr = s;
  if (auto lt = addr.find('<'); lt != std::string_view::npos) {
    auto gt = addr.find('>', lt);
    if (gt == std::string_view::npos) return std::nullopt;
    addr = addr.substr(lt + 1, gt - lt - 1);
  }
  addr = util::trim(addr);
  auto at = addr.rfind('@');
  if (at == std::string_view::npos || at + 1 >= addr.size()) return std::nullopt;
  std::string_view dom = util::trim(addr.substr(at + 1));
  if (dom.empty() || dom.find_first_of(" \t<>@[]") != std::string_view::npos) return std::nullopt;
  std::string d = util::to_lower(dom);
  while (!d.empty() && d.back() == '.') d.pop_back();
  if (d.empty()) return std::nullopt;
  return d;
}

std::string format_authentication_results(std::string_view authserv_id, const Results& r,
                                          std::string_view sender) {
  std::vector<std::string> items;
  auto spf_item = [&](const SpfOutcome& o, bool helo) {
    std::string s = util::cat("spf=", to_string(o.result));
    if (auto c = comment(o.reason); !c.empty()) s.append(util::cat(" (", c, ")"));
    if (helo) s.append(util::cat(" smtp.helo=", pvalue(o.domain)));
    else s.append(util::cat(" smtp.mailfrom=", pvalue(sender.empty() ? std::string_view(o.domain) : sender)));
    items.push_back(std::move(s));
  };
  if (r.spf_mailfrom) spf_item(*r.spf_mailfrom, r.spf_mailfrom->identity == "helo");
  if (r.spf_helo) spf_item(*r.spf_helo, true);
  if (r.dkim_checked) {
    if (r.dkim.empty()) items.push_back("dkim=none");
    for (const auto& d : r.dkim) {
      std::string s = util::cat("dkim=", dkim::to_string(d.outcome));
      if (auto c = comment(d.reason); !c.empty()) s.append(util::cat(" (", c, ")"));
      if (!d.domain.empty()) s.append(util::cat(" header.d=", pvalue(d.domain)));
      if (!d.selector.empty()) s.append(util::cat(" header.s=", pvalue(d.selector)));
      items.push_back(std::move(s));
    }
  }
  if (r.dmarc) {
    const auto& m = *r.dmarc;
    std::string s = util::cat("dmarc=", to_string(m.result));
    if (m.result == DmarcResult::pass || m.result == DmarcResult::fail)
      s.append(util::cat(" (p=", to_string(m.policy), ")"));
    else if (auto c = comment(m.reason); !c.empty())
      s.append(util::cat(" (", c, ")"));
    if (!m.from_domain.empty()) s.append(util::cat(" header.from=", pvalue(m.from_domain)));
    items.push_back(std::move(s));
  }
  std::string out = util::cat("Authentication-Results: ", authserv_id, ";");
  if (items.empty()) return out.append(" none\r\n");
  for (std::size_t i = 0; i < items.size(); ++i)
    out.append(util::cat("\r\n\t", items[i], i + 1 < items.size() ? ";" : ""));
  return out.append("\r\n");
}

Decision decide_mail(const Policy& p, const SpfOutcome& spf) {
  Decision d;
  if (!p.spf_reject_fail) return d;
  if (spf.result == SpfResult::fail) {
    d.kind = Decision::Kind::reject;
    d.reply = util::cat("550 5.7.23 Error: SPF check failed for ", spf.domain, ": sender not permitted");
    d.reason = util::cat("SPF fail for ", spf.domain, " refused (spf_reject_fail)");
  } else if (spf.result == SpfResult::temperror && p.temperror_defer) {
    d.kind = Decision::Kind::defer;
    d.reply = util::cat("451 4.7.24 Error: SPF check of ", spf.domain, " failed temporarily, try again later");
    d.reason = util::cat("SPF temperror for ", spf.domain, " deferred (mail_auth_temperror_defer)");
  }
  return d;
}

namespace {
bool exempt(const std::vector<std::string>& list, std::string_view domain) {
  for (const auto& e : list) {
    std::string x = util::to_lower(e);
    if (domain == x) return true;
    if (domain.size() > x.size() && domain.ends_with(x) && domain[domain.size() - x.size() - 1] == '.') return true;
  }
  return false;
}
}  // namespace

Decision decide_data(const Policy& p, const DmarcOutcome& m) {
  Decision d;
  if (!p.dmarc_reject || exempt(p.dmarc_reject_exempt, m.from_domain)) return d;
  if (m.result == DmarcResult::fail && m.policy == DmarcPolicy::reject) {
    d.kind = Decision::Kind::reject;
    d.reply = util::cat("550 5.7.1 Error: message rejected per the DMARC policy of ", m.from_domain);
    d.reason = util::cat("DMARC p=reject failure for ", m.from_domain, " refused: ", m.reason);
  } else if (m.result == DmarcResult::temperror && p.temperror_defer) {
    d.kind = Decision::Kind::defer;
    d.reply = util::cat("451 4.7.5 Error: DMARC check of ", m.from_domain, " failed temporarily, try again later");
    d.reason = util::cat("DMARC temperror for ", m.from_domain, " deferred: ", m.reason);
  }
  return d;
}

dkim::KeySource dkim_keys(Dns dns) {
  return [dns = std::move(dns)](std::string_view name) {
    auto r = dns(name, ns_t_txt);
    if (!r) {
      if (r.error().code == Errc::temporary) return dkim::KeyAnswer{dkim::KeyAnswer::Status::temporary, {}};
      return dkim::KeyAnswer{dkim::KeyAnswer::Status::not_found, {}};
    }
    if (r->status != outbound::DnsRecords::Status::found || r->records.empty())
      return dkim::KeyAnswer{dkim::KeyAnswer::Status::not_found, {}};
    for (const auto& rec : r->records)
      if (util::istarts_with(util::trim(rec), "v=DKIM1") || rec.find("p=") != std::string::npos)
        return dkim::KeyAnswer{dkim::KeyAnswer::Status::found, rec};
    return dkim::KeyAnswer{dkim::KeyAnswer::Status::found, r->records.front()};
  };
}

}  // namespace wizmail::mailauth
