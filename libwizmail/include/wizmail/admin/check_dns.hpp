// `wizmail check-dns DOMAIN`: what DNS publishes for a mail domain compared
// with this server's configuration (docs/internet.md, "Checking it"): MX,
// the server name's A/AAAA and the PTR of its addresses, SPF, the DKIM keys
// of the home, DMARC and (for information) MTA-STS. Each finding says what
// to fix. The questions go to the resolver of `dns_servers` (smtpenv.dat).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "wizmail/config.hpp"
#include "wizmail/error.hpp"

namespace wizmail {

enum class DnsCheckLevel { ok, info, warn, fail };
std::string_view to_string(DnsCheckLevel level) noexcept;  // "OK", "INFO", "WARN", "FAIL"

struct DnsFinding {
  std::string check;    // "MX", "A/AAAA", "PTR", "SPF", "SPF (HELO)", "DKIM", "DMARC", "MTA-STS"
  DnsCheckLevel level = DnsCheckLevel::ok;
  std::string message;  // one line: what was found
  std::string fix;      // one line: what to do about it (empty when there is nothing to do)
  // The check could not be made: a DNS time-out or SERVFAIL. Such a
  // finding is a WARN (INFO for MTA-STS), never a FAIL of the record.
  bool temporary = false;
};

struct DnsCheckOptions {
  std::string domain;                  // the mail domain (user@DOMAIN)
  std::vector<std::string> addresses;  // this server's public addresses (--address), numeric
  std::string host_name;               // the server's name; empty = `domain` of wiz98msenv.dat
};

// The checks against the live DNS. "This server's addresses" are
// `options.addresses` plus the A/AAAA records of the server's name.
// Errc::invalid_argument: the domain, the host name or an address is not
// valid (nothing was asked).
Result<std::vector<DnsFinding>> check_dns(const std::filesystem::path& home, const Config& config,
                                          const DnsCheckOptions& options);

// True when a finding is a FAIL (the command's exit code 1).
bool any_failure(const std::vector<DnsFinding>& findings) noexcept;

}  // namespace wizmail
