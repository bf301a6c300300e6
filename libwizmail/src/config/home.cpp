#include <cstdlib>

#include "wizmail/config.hpp"

namespace wizmail {

Result<std::filesystem::path> resolve_home(const std::string& cli_home) {
  if (!cli_home.empty()) return std::filesystem::absolute(cli_home);
  if (const char* env = std::getenv("WIZ98MS_HOME"); env && *env)
    return std::filesystem::absolute(env);
  return fail(Errc::invalid_argument,
              "no home directory: give --home DIR or set WIZ98MS_HOME");
}

}  // namespace wizmail
