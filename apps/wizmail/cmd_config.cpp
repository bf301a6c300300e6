#include "commands.hpp"
namespace wizmail::cli {
void add_config_commands(CLI::App&, Context&) {}
}  // namespace wizmail::cli
