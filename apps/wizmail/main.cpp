// wizmail: the admin CLI. Also runs under the manual's command names
// (wmsactcrt, wmsprtdef, ...), dispatching on argv[0].
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <set>
#include <string>

#include "commands.hpp"
#include "wizmail/config.hpp"
#include "wizmail/admin/daemon.hpp"

namespace wizmail::cli {

Result<std::filesystem::path> Context::home() const { return resolve_home(home_option); }

std::shared_ptr<const Config> Context::config() {
  auto h = home();
  if (!h) {
    error(h.error());
    return nullptr;
  }
  auto cfg = load_config(*h, node_option);
  if (!cfg) {
    error(cfg.error());
    return nullptr;
  }
  return *cfg;
}

void Context::error(const std::string& message, int code) {
  std::cerr << "wizmail: " << message << '\n';
  if (exit_code == 0) exit_code = code;
}

}  // namespace wizmail::cli

int main(int argc, char** argv) {
  using namespace wizmail::cli;
  std::string program = std::filesystem::path(argc > 0 ? argv[0] : "wizmail").filename();
  std::vector<std::string> args(argv + (argc > 0 ? 1 : 0), argv + argc);
  args = translate_manual_command(program, std::move(args));

  Context ctx;
  CLI::App app{"wizmail: administer a wizmail mail server home", "wizmail"};
  app.require_subcommand(1);
  app.fallthrough();
  app.add_option("--home", ctx.home_option,
                 "the server home (default: $WIZ98MS_HOME)");
  app.add_option("--node", ctx.node_option,
                 "a node of a home shared by several nodes: its node.dat, control socket, pid file "
                 "and logs under HOME/nodes/NODE/ (docs/cluster.md)")
      ->check(CLI::Validator(
          [](std::string& name) {
            auto st = wizmail::validate_node_name(name);
            return st ? std::string() : st.error().message;
          },
          "NODE"));
  app.set_version_flag("--version", "wizmail 0.1.0");

  add_setup_command(app, ctx);
  add_account_commands(app, ctx);
  add_ml_commands(app, ctx);
  add_alias_commands(app, ctx);
  add_mailbox_commands(app, ctx);
  add_config_commands(app, ctx);
  add_control_commands(app, ctx);
  add_outbound_commands(app, ctx);
  add_queue_commands(app, ctx);
  add_dkim_commands(app, ctx);
  add_check_dns_command(app, ctx);
  add_cluster_commands(app, ctx);
  add_ops_commands(app, ctx);

  // Run as root on a home whose server runs as run_as_user, a command
  // becomes that user before it runs, so that whatever it creates in the
  // home (accounts, lists, passwords, notices, queue changes ...) belongs
  // to the server's user — or it refuses, saying why. Exempt: the commands
  // that need root or only read (docs/operations.md).
  struct Refused {};
  app.parse_complete_callback([&] {
    static const std::set<std::string> keep_root = {"start",      "stop",    "reload",
                                                    "sessions",   "supervise", "service",
                                                    "config"};
    for (const auto* sub : app.get_subcommands())
      if (keep_root.contains(sub->get_name())) return;
    if (::geteuid() != 0) return;
    auto home = ctx.home();
    if (!home) return;  // the command says so, if it needs one
    auto cfg = wizmail::load_config(*home, ctx.node_option);
    if (!cfg || (*cfg)->server.run_as_user.empty()) return;
    if (auto st = wizmail::daemon::become_server_user(**cfg); !st) {
      ctx.error("refused: run as root, this command acts as the server's user (run_as_user), but " +
                st.error().message);
      throw Refused{};
    }
  });

  // CLI11 parses argv in reverse order.
  std::reverse(args.begin(), args.end());
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  } catch (const Refused&) {
    return ctx.exit_code;
  }
  return ctx.exit_code;
}
