// The admin CLI's subcommands. Each area registers its own in cmd_<area>.cpp;
// the commands only parse arguments and call libwizmail.
#pragma once

#include <CLI/CLI.hpp>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "wizmail/config.hpp"
#include "wizmail/error.hpp"

namespace wizmail::cli {

// What every command shares: the --home option, --json, and the outcome.
struct Context {
  std::string home_option;   // --home
  std::string node_option;   // --node: that node of a shared home (docs/cluster.md)
  bool json = false;         // --json where a command supports it
  int exit_code = 0;

  // --home, else $WIZ98MS_HOME, else an error (printed by the caller).
  Result<std::filesystem::path> home() const;
  // The home's loaded configuration (with --node, that node's: node.dat
  // over the def files), or null after printing why (error()).
  std::shared_ptr<const Config> config();
  // Print "wizmail: <message>" on stderr and remember exit code `code`.
  void error(const std::string& message, int code = 1);
  void error(const Error& e, int code = 1) { error(e.message, code); }
};

// What --json prints (nlohmann's serializer): one line, or indented by two
// spaces when `pretty`; a byte of a string that is not UTF-8 becomes U+FFFD.
// Members keep the order they were added in.
using Json = nlohmann::ordered_json;
inline std::string json_text(const Json& j, bool pretty = false) {
  return j.dump(pretty ? 2 : -1, ' ', false, Json::error_handler_t::replace);
}

// Registration functions, one per area. Each adds subcommands to `app`
// and sets their callbacks; callbacks report failure through ctx.error().
void add_setup_command(CLI::App& app, Context& ctx);
void add_account_commands(CLI::App& app, Context& ctx);
void add_ml_commands(CLI::App& app, Context& ctx);
void add_alias_commands(CLI::App& app, Context& ctx);  // alias add|del|list
void add_mailbox_commands(CLI::App& app, Context& ctx);
void add_config_commands(CLI::App& app, Context& ctx);
void add_ops_commands(CLI::App& app, Context& ctx);  // monitor, maintenance, parse
void add_control_commands(CLI::App& app, Context& ctx);  // start, stop, sessions, ...
void add_outbound_commands(CLI::App& app, Context& ctx);  // exists, check-smtp
void add_queue_commands(CLI::App& app, Context& ctx);     // queue list|flush|delete
void add_dkim_commands(CLI::App& app, Context& ctx);      // dkim keygen|show
void add_check_dns_command(CLI::App& app, Context& ctx);  // check-dns DOMAIN
void add_cluster_commands(CLI::App& app, Context& ctx);   // cluster status

// The manual's command names (wmsactcrt, wmsprtdef, ...) map onto wizmail
// subcommands. Returns the argument vector to parse (without argv[0]) for
// `program` (argv[0]'s base name) and the given arguments; `-nowait` is
// dropped wherever it appears. Unknown program names run as `wizmail`.
std::vector<std::string> translate_manual_command(const std::string& program,
                                                  std::vector<std::string> args);

// The manual's names, for installing links.
const std::vector<std::string>& manual_command_names();

}  // namespace wizmail::cli
