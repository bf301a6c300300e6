// wizmail check-dns DOMAIN [--address IP]... [--host-name NAME] [--json]
//
// What DNS publishes for DOMAIN compared with the home's configuration:
// MX, A/AAAA and PTR of the server's name, SPF, DKIM, DMARC, MTA-STS
// (docs/internet.md). Exit 0 when nothing FAILs, 1 when something does,
// 2 on a bad command line or a home that cannot be loaded.
#include <iostream>

#include "commands.hpp"
#include "wizmail/admin/check_dns.hpp"

namespace wizmail::cli {

void add_check_dns_command(CLI::App& app, Context& ctx) {
  auto opt = std::make_shared<DnsCheckOptions>();
  auto* cmd = app.add_subcommand(
      "check-dns",
      "check the DNS records of a mail domain against this server: MX, A/AAAA and PTR of the server's name, "
      "SPF, DKIM keys of the home, DMARC, MTA-STS; each finding OK/INFO/WARN/FAIL with a fix "
      "(exit 0 nothing FAILs, 1 something FAILs, 2 usage or configuration error)");
  cmd->add_option("DOMAIN", opt->domain, "the mail domain (the part after @)")->required();
  cmd->add_option("--address", opt->addresses,
                  "a public address of this server (repeatable); the A/AAAA records of the server's name "
                  "count too")
      ->allow_extra_args(false);
  cmd->add_option("--host-name", opt->host_name,
                  "the server's public name (default: domain= of def/wiz98msenv.dat)");
  cmd->add_flag("--json", ctx.json, "print JSON");
  cmd->callback([&ctx, opt] {
    auto home = ctx.home();
    if (!home) return ctx.error(home.error(), 2);
    auto cfg = load_config(*home);
    if (!cfg) return ctx.error(cfg.error(), 2);
    auto findings = check_dns(*home, **cfg, *opt);
    if (!findings) return ctx.error(findings.error(), 2);
    if (ctx.json) {
      auto out = Json::array();
      for (const auto& f : *findings) {
        out.push_back({{"check", f.check},
                       {"level", std::string(to_string(f.level))},
                       {"message", f.message},
                       {"fix", f.fix},
                       {"temporary", f.temporary}});
      }
      std::cout << json_text(out) << '\n';
    } else {
      std::size_t count[4] = {};
      for (const auto& f : *findings) {
        ++count[static_cast<int>(f.level)];
        std::string level(to_string(f.level));
        level.resize(5, ' ');
        std::string check = f.check;
        if (check.size() < 11) check.resize(11, ' ');
        std::cout << level << check << ' ' << f.message << '\n';
        if (!f.fix.empty()) std::cout << "     fix: " << f.fix << '\n';
      }
      std::cout << opt->domain << ": " << count[0] << " OK, " << count[2] << " WARN, " << count[3] << " FAIL, "
                << count[1] << " INFO\n";
    }
    ctx.exit_code = any_failure(*findings) ? 1 : 0;
  });
}

}  // namespace wizmail::cli
