#include "commands.hpp"
namespace wizmail::cli {
void add_setup_command(CLI::App&, Context&) {}
void add_account_commands(CLI::App&, Context&) {}
void add_ml_commands(CLI::App&, Context&) {}
void add_mailbox_commands(CLI::App&, Context&) {}
}  // namespace wizmail::cli
