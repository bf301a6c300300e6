// wizmail exists ADDRESS          (manual: ExistMailAddress)
// wizmail check-smtp HOST[:PORT]  (manual: SMTP接続確認ツール)
//
// exists: exit 0 = the address exists (the MX accepted RCPT), 1 = it does not
// (5xx to RCPT, NXDOMAIN, null MX, not an address), 2 = unknown (no MX
// reachable, 4xx, time-out) — the same 2 as a bad command line, since either
// way the question has no answer. check-smtp: exit 0 when a server answered
// (whatever it said), 1 when none could be reached.
#include <iostream>

#include "commands.hpp"
#include "wizmail/config.hpp"
#include "wizmail/relay.hpp"

namespace wizmail::cli {

namespace {

// Resolver and port from the home when one is given (dns_servers,
// outbound_port); the system resolver and port 25 otherwise.
ProbeOptions probe_options(Context& ctx, const std::string& from, int timeout_s) {
  ProbeOptions o;
  o.timeout = std::chrono::seconds(timeout_s);
  o.mail_from = from;
  if (!ctx.home_option.empty() || std::getenv("WIZ98MS_HOME")) {
    if (auto home = ctx.home()) {
      if (auto cfg = load_config(*home)) {
        o.route = route_options(**cfg);
        o.helo_name = (*cfg)->server.domain;
      }
    }
  }
  return o;
}


}  // namespace

void add_outbound_commands(CLI::App& app, Context& ctx) {
  struct Args {
    std::string address, host, from;
    int timeout = 30;
  };
  auto args = std::make_shared<Args>();

  auto* exists = app.add_subcommand(
      "exists", "does a mail address exist? MX look-up and RCPT probe, no mail sent "
                "(exit 0 exists, 1 does not exist, 2 unknown)");
  exists->add_option("ADDRESS", args->address, "the address to check")->required();
  exists->add_option("--from", args->from, "MAIL FROM address for the probe (default: <>)");
  exists->add_option("--timeout", args->timeout, "seconds per step")->check(CLI::Range(1, 600));
  exists->add_flag("--json", ctx.json, "print JSON");
  exists->callback([&ctx, args] {
    auto rep = probe_address(args->address, probe_options(ctx, args->from, args->timeout));
    if (ctx.json) {
      std::cout << json_text(Json{{"address", args->address},
                                  {"status", std::string(to_string(rep.status))},
                                  {"host", rep.host},
                                  {"reply", rep.reply.code ? rep.reply.to_string() : std::string()},
                                  {"reason", rep.reason}})
                << '\n';
    } else {
      std::cout << args->address << ": " << to_string(rep.status) << " (" << rep.reason << ")\n";
      if (rep.reply.code) std::cout << "  RCPT: " << rep.reply.to_string() << '\n';
    }
    ctx.exit_code = rep.status == AddressStatus::exists ? 0 : rep.status == AddressStatus::does_not_exist ? 1 : 2;
  });

  auto* check = app.add_subcommand("check-smtp",
                                   "connect to an SMTP server: banner, EHLO capabilities, STARTTLS and certificate");
  check->add_option("HOST", args->host, "host[:port] (port 25 by default)")->required();
  check->add_option("--timeout", args->timeout, "seconds per step")->check(CLI::Range(1, 600));
  check->add_flag("--json", ctx.json, "print JSON");
  check->callback([&ctx, args] {
    auto rep = check_smtp(args->host, probe_options(ctx, {}, args->timeout));
    if (!rep) {
      ctx.error(rep.error());
      return;
    }
    if (ctx.json) {
      std::cout << json_text(Json{{"host", rep->host},
                                  {"port", rep->port},
                                  {"address", rep->address},
                                  {"banner", rep->banner.to_string()},
                                  {"esmtp", rep->ehlo.code != 0},
                                  {"capabilities", rep->capabilities},
                                  {"starttls", rep->starttls_offered},
                                  {"tls_ok", rep->tls_ok},
                                  {"tls_error", rep->tls_error},
                                  {"tls", rep->tls_protocol},
                                  {"cert_subject", rep->cert_subject},
                                  {"cert_issuer", rep->cert_issuer},
                                  {"cert_not_after", rep->cert_not_after},
                                  {"capabilities_after_tls", rep->capabilities_after_tls}})
                << '\n';
      return;
    }
    std::cout << "server:       " << rep->host << " [" << rep->address << "]:" << rep->port << '\n';
    std::cout << "banner:       " << rep->banner.to_string() << '\n';
    if (!rep->banner.positive()) return;
    std::cout << "protocol:     " << (rep->ehlo.code ? "ESMTP (EHLO)" : "SMTP (HELO only)") << '\n';
    for (const auto& c : rep->capabilities) std::cout << "capability:   " << c << '\n';
    if (!rep->starttls_offered) {
      std::cout << "STARTTLS:     not offered\n";
      return;
    }
    if (!rep->tls_ok) {
      std::cout << "STARTTLS:     failed: " << rep->tls_error << '\n';
      return;
    }
    std::cout << "STARTTLS:     ok, " << rep->tls_protocol << '\n';
    std::cout << "certificate:  subject " << rep->cert_subject << '\n';
    std::cout << "              issuer  " << rep->cert_issuer << '\n';
    std::cout << "              expires " << rep->cert_not_after << " (not verified)\n";
    for (const auto& c : rep->capabilities_after_tls) std::cout << "after TLS:    " << c << '\n';
  });
}

}  // namespace wizmail::cli
