// wizmail config show [--json] | check | set KEY [VALUE] | reference
//
// Exit status: 0 = fine; 1 = the configuration has errors (load errors, or for
// `check` also errors found by check_config); 2 = bad command line (main.cpp).
// Warnings go to stderr and never change the exit status.
#include <iostream>

#include "commands.hpp"
#include "wizmail/config.hpp"
#include "wizmail/admin/control.hpp"
#include "wizmail/admin/daemon.hpp"

namespace wizmail::cli {

namespace {

void print_diagnostic(const ConfigDiagnostic& d) {
  std::cerr << "wizmail: "
            << (d.severity == ConfigDiagnostic::Severity::error ? "error: " : "warning: ")
            << d.to_string() << '\n';
}

// Load the home's configuration, printing every diagnostic. Null on errors.
std::shared_ptr<const Config> load(Context& ctx, std::size_t& errors, std::size_t& warnings) {
  auto home = ctx.home();
  if (!home) {
    ctx.error(home.error());
    return nullptr;
  }
  ConfigLoad r = load_config_report(*home, ctx.node_option);
  for (const auto& d : r.diagnostics) {
    print_diagnostic(d);
    (d.severity == ConfigDiagnostic::Severity::error ? errors : warnings)++;
  }
  if (!r.ok() && ctx.exit_code == 0) ctx.exit_code = 1;
  return r.config;
}

}  // namespace

void add_config_commands(CLI::App& app, Context& ctx) {
  auto* config = app.add_subcommand("config", "show, check or document the configuration");
  config->require_subcommand(1);

  auto* show = config->add_subcommand("show", "print every key's effective value and its file");
  show->add_flag("--json", ctx.json, "print JSON");
  show->callback([&ctx] {
    std::size_t errors = 0, warnings = 0;
    auto c = load(ctx, errors, warnings);
    if (!c) {
      if (errors) std::cerr << "wizmail: the configuration has " << errors << " error(s)\n";
      return;
    }
    std::cout << (ctx.json ? show_config_json(*c) : show_config(*c));
  });

  auto* check = config->add_subcommand(
      "check", "report errors and dangerous settings (exit 1 when there are errors)");
  static std::string unit_dir;
  check->add_option("--unit-dir", unit_dir,
                    "where `service install` wrote wizmail.service (default /etc/systemd/system)");
  check->callback([&ctx] {
    std::size_t errors = 0, warnings = 0;
    auto home = ctx.home();
    if (!home) return ctx.error(home.error());
    for (const auto& d : daemon::config_check(*home, unit_dir, ctx.node_option)) {
      print_diagnostic(d);
      (d.severity == ConfigDiagnostic::Severity::error ? errors : warnings)++;
    }
    if (errors) {
      if (ctx.exit_code == 0) ctx.exit_code = 1;
      std::cout << "configuration has " << errors << " error(s) and " << warnings
                << " warning(s)\n";
    } else if (ctx.exit_code == 0) {
      std::cout << "configuration OK (" << warnings << " warning(s))\n";
    }
  });

  auto* set = config->add_subcommand(
      "set", "set one key in its def file, checked as the server would load it; reloads a running server");
  static std::string set_key, set_value;
  set->add_option("KEY", set_key, "the key (any def file's; a synonym is accepted)")->required();
  set->add_option("VALUE", set_value, "the new value; none or \"\" removes the key's line (its default applies)");
  set->callback([&ctx] {
    auto home = ctx.home();
    if (!home) return ctx.error(home.error());
    // The same function as the web console's configuration page.
    auto edit = set_config_value(*home, set_key, set_value);
    if (!edit) return ctx.error(edit.error());
    std::cout << "wizmail: " << edit->file << ": "
              << (edit->value.empty() ? edit->key + " removed (default applies)" : edit->key + "=" + edit->value)
              << '\n';
    // A running server takes it now; ports and addresses need a restart.
    control::Request req;
    req.command = control::Command::reload;
    auto r = control::call(control::control_socket_path(*home, ctx.node_option), req);
    if (!r) {
      if (r.error().code == Errc::unavailable) return;  // no server running: it reads the files at start
      return ctx.error(std::string("written, but the running server was not reloaded: ") + r.error().message);
    }
    if (auto st = control::check_reply(*r); !st)
      return ctx.error(std::string("written, but the reload failed: ") + st.error().message);
    std::cout << "wizmail: the running server reloaded its configuration\n";
  });

  auto* reference = config->add_subcommand(
      "reference", "print the configuration reference (docs/configuration.md) in Markdown");
  reference->callback([] { std::cout << config_reference_markdown(); });
}

}  // namespace wizmail::cli
