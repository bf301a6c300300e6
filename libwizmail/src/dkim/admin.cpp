// wizmail/admin/dkim.hpp: keygen and show over the dkim area's keys.
#include <sys/stat.h>

#include <system_error>

#include "dkim/dkim.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"
#include "wizmail/admin/dkim.hpp"

namespace wizmail {

namespace fs = std::filesystem;

namespace {

Result<std::string> checked_domain(std::string_view domain) {
  std::string d = util::to_lower(domain);
  if (!d.empty() && d.back() == '.') d.pop_back();
  if (!dkim::valid_domain(d))
    return fail(Errc::invalid_argument, "not a domain name: '" + std::string(domain) +
                                            "' (letters, digits and hyphens in dot-separated labels; an "
                                            "international name in its xn-- form)");
  return d;
}

DkimKeyInfo info_of(const fs::path& home, const std::string& domain, const std::string& selector,
                    const dkim::PrivateKey& key) {
  DkimKeyInfo info;
  info.domain = domain;
  info.selector = selector;
  info.algorithm = std::string(dkim::to_string(key.algorithm));
  info.bits = key.bits;
  info.file = dkim::key_path(home, domain, selector);
  info.record_name = selector + "._domainkey." + domain;
  info.record = dkim::key_record(key);
  info.strings = dkim::split_txt(info.record);
  auto active = dkim::active_selector(home, domain);
  info.active = active && *active == selector;
  return info;
}

}  // namespace

std::string DkimKeyInfo::zone_line() const {
  std::string out = record_name + ". IN TXT";
  for (const auto& s : strings) out.append(" \"").append(s).append("\"");
  return out;
}

Result<DkimKeyInfo> dkim_keygen(const fs::path& home, std::string_view domain_in, const DkimKeygenOptions& opt) {
  auto domain = checked_domain(domain_in);
  if (!domain) return unexpected(domain.error());
  std::string selector = opt.selector.empty() ? (opt.ed25519 ? "wizmail-ed25519" : "wizmail") : opt.selector;
  if (!dkim::valid_selector(selector))
    return fail(Errc::invalid_argument, "not a selector: '" + selector +
                                            "' (letters, digits and hyphens in dot-separated labels)");
  const fs::path dir = dkim::key_dir(home) / *domain;
  const fs::path file = dkim::key_path(home, *domain, selector);
  std::error_code ec;
  if (fs::exists(file, ec) && !opt.force)
    return fail(Errc::already_exists, file.string() + " exists (--force replaces it; the published record must then change too)");
  if (auto st = util::make_dirs(dir, 0700); !st) return unexpected(st.error());
  // make_dirs leaves existing folders as they are: a key folder is the
  // owner's only, whatever made it.
  ::chmod(dkim::key_dir(home).c_str(), 0700);
  ::chmod(dir.c_str(), 0700);
  auto key = dkim::generate_key(opt.ed25519 ? dkim::Algorithm::ed25519_sha256 : dkim::Algorithm::rsa_sha256);
  if (!key) return unexpected(key.error());
  // The domain's first key, or asked for: it becomes the one in use.
  auto current = dkim::active_selector(home, *domain);
  const bool first = !current && current.error().code == Errc::not_found;
  if (auto st = util::write_file_atomic(file, key->pem, 0600); !st) return unexpected(st.error());
  if (first || opt.activate || (current && *current == selector)) {
    if (auto st = util::write_file_atomic(dir / "selector", selector + "\n", 0600); !st) return unexpected(st.error());
  }
  (void)util::fsync_dir(dir);
  return info_of(home, *domain, selector, *key);
}

Result<DkimKeyInfo> dkim_show(const fs::path& home, std::string_view domain_in, std::string_view selector_in) {
  auto domain = checked_domain(domain_in);
  if (!domain) return unexpected(domain.error());
  std::string selector(selector_in);
  if (selector.empty()) {
    auto active = dkim::active_selector(home, *domain);
    if (!active) return unexpected(active.error());
    selector = *active;
  } else if (!dkim::valid_selector(selector)) {
    return fail(Errc::invalid_argument, "not a selector: '" + selector + "'");
  }
  const fs::path file = dkim::key_path(home, *domain, selector);
  std::error_code ec;
  if (!fs::exists(file, ec)) return fail(Errc::not_found, "no key " + file.string());
  auto pem = util::read_file(file);
  if (!pem) return unexpected(pem.error());
  auto key = dkim::parse_private_key(*pem);
  if (!key) return fail(key.error().code, file.string() + ": " + key.error().message);
  return info_of(home, *domain, selector, *key);
}

}  // namespace wizmail
