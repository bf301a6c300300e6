// wizmail/admin/check_dns.hpp: the home's DKIM keys and the live DNS
// (query_records through the resolver of `dns_servers`) handed to the pure
// checker, evaluate_dns (dns_check.hpp).
#include <algorithm>
#include <system_error>

#include "mailauth/dns_check.hpp"
#include "mailauth/mailauth.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"
#include "wizmail/admin/check_dns.hpp"
#include "wizmail/relay.hpp"

namespace wizmail {

namespace fs = std::filesystem;

namespace {

std::string name_of(std::string_view in) {
  std::string n = util::to_lower(util::trim(in));
  if (!n.empty() && n.back() == '.') n.pop_back();
  return n;
}

// Every <selector>.key of the domain, the one in use marked.
void read_dkim_keys(const fs::path& home, mailauth::DnsCheckInput& in) {
  const fs::path dir = dkim::key_dir(home) / in.domain;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return;
  auto active = dkim::active_selector(home, in.domain);
  if (!active && active.error().code != Errc::not_found) in.dkim_problem = active.error().message;
  std::vector<std::string> selectors;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const auto name = e.path().filename().string();
    if (name.size() > 4 && name.ends_with(".key")) selectors.push_back(name.substr(0, name.size() - 4));
  }
  std::sort(selectors.begin(), selectors.end());
  for (const auto& s : selectors) {
    mailauth::DkimKeyFile k;
    k.selector = s;
    k.file = dkim::key_path(home, in.domain, s).string();
    k.active = active && *active == s;
    auto pem = util::read_file(k.file);
    if (!pem) k.key = unexpected(pem.error());
    else k.key = dkim::parse_private_key(*pem);
    in.dkim_keys.push_back(std::move(k));
  }
}

}  // namespace

std::string_view to_string(DnsCheckLevel level) noexcept {
  switch (level) {
    case DnsCheckLevel::ok: return "OK";
    case DnsCheckLevel::info: return "INFO";
    case DnsCheckLevel::warn: return "WARN";
    case DnsCheckLevel::fail: return "FAIL";
  }
  return "FAIL";
}

bool any_failure(const std::vector<DnsFinding>& findings) noexcept {
  return std::any_of(findings.begin(), findings.end(),
                     [](const DnsFinding& f) { return f.level == DnsCheckLevel::fail; });
}

Result<std::vector<DnsFinding>> check_dns(const fs::path& home, const Config& config, const DnsCheckOptions& options) {
  mailauth::DnsCheckInput in;
  in.domain = name_of(options.domain);
  if (!dkim::valid_domain(in.domain))
    return fail(Errc::invalid_argument, util::cat("not a domain name: '", options.domain,
                                                  "' (dot-separated labels of letters, digits and hyphens)"));
  in.host_name = name_of(options.host_name.empty() ? config.server.domain : options.host_name);
  if (!options.host_name.empty() && !dkim::valid_domain(in.host_name))
    return fail(Errc::invalid_argument, util::cat("not a host name: '", options.host_name, "'"));
  for (const auto& a : options.addresses) {
    if (!util::IpAddress::parse(util::trim(a)))
      return fail(Errc::invalid_argument, util::cat("not an IP address: '", a, "'"));
    in.addresses.emplace_back(util::trim(a));
  }
  read_dkim_keys(home, in);
  if (auto psl = mailauth::PublicSuffixList::load("/usr/share/publicsuffix/public_suffix_list.dat"))
    in.org_domain = psl->organizational_domain(in.domain);
  const ResolverOptions resolver = route_options(config).resolver;
  mailauth::DnsAnswers dns([resolver](std::string_view name, int type) {
    return outbound::query_records(name, type, resolver);
  });
  return mailauth::evaluate_dns(in, dns);
}

}  // namespace wizmail
