// wizmail dkim keygen DOMAIN [--selector S] [--ed25519] [--force] [--activate]
// wizmail dkim show DOMAIN [--selector S]
//
// Both print the TXT record to publish; keys live in HOME/def/dkim/
// (docs/dkim.md). --json prints the key's facts instead.
#include <iostream>

#include "commands.hpp"
#include "wizmail/admin/dkim.hpp"

namespace wizmail::cli {

namespace {

void print(Context& ctx, const DkimKeyInfo& k) {
  if (ctx.json) {
    std::cout << json_text(Json{{"domain", k.domain},
                                {"selector", k.selector},
                                {"algorithm", k.algorithm},
                                {"bits", k.bits},
                                {"file", k.file.string()},
                                {"active", k.active},
                                {"name", k.record_name},
                                {"record", k.record},
                                {"strings", k.strings}})
              << '\n';
    return;
  }
  std::cout << k.zone_line() << '\n';
  std::cerr << "wizmail: " << k.algorithm << " key " << k.file.string()
            << (k.active ? " (in use: outgoing mail from " + k.domain + " is signed with it)"
                         : " (not in use: `wizmail dkim keygen --activate` or the selector file switches to it)")
            << '\n';
}

}  // namespace

void add_dkim_commands(CLI::App& app, Context& ctx) {
  struct Args {
    std::string domain;
    DkimKeygenOptions keygen;
    std::string selector;
  };
  auto args = std::make_shared<Args>();
  auto* dkim = app.add_subcommand("dkim", "DKIM keys: make one, show the TXT record to publish");
  dkim->require_subcommand(1);

  auto* keygen = dkim->add_subcommand(
      "keygen", "generate a DKIM key for DOMAIN (RSA 2048, or Ed25519), write it mode 0600 "
                "and print the TXT record to publish");
  keygen->add_option("DOMAIN", args->domain, "the signing domain (d=)")->required();
  keygen->add_option("--selector", args->keygen.selector,
                     "the selector (s=); default wizmail, or wizmail-ed25519 with --ed25519");
  keygen->add_flag("--ed25519", args->keygen.ed25519, "an Ed25519 key (RFC 8463) instead of RSA 2048");
  keygen->add_flag("--force", args->keygen.force, "replace an existing key of that selector");
  keygen->add_flag("--activate", args->keygen.activate,
                   "sign with the new key at once even if the domain signs with another selector");
  keygen->add_flag("--json", ctx.json, "print JSON");
  keygen->callback([&ctx, args] {
    auto home = ctx.home();
    if (!home) return ctx.error(home.error());
    auto k = dkim_keygen(*home, args->domain, args->keygen);
    if (!k) return ctx.error(k.error(), k.error().code == Errc::invalid_argument ? 2 : 1);
    print(ctx, *k);
    if (k->active) std::cerr << "wizmail: publish the record, then `wizmail reload` (a running server loads keys at start and reload)\n";
  });

  auto* show = dkim->add_subcommand("show", "print the TXT record of DOMAIN's key (the one in use by default)");
  show->add_option("DOMAIN", args->domain, "the signing domain")->required();
  show->add_option("--selector", args->selector, "another selector of the domain");
  show->add_flag("--json", ctx.json, "print JSON");
  show->callback([&ctx, args] {
    auto home = ctx.home();
    if (!home) return ctx.error(home.error());
    auto k = dkim_show(*home, args->domain, args->selector);
    if (!k) return ctx.error(k.error(), k.error().code == Errc::invalid_argument ? 2 : 1);
    print(ctx, *k);
  });
}

}  // namespace wizmail::cli
