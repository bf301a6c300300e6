#include <algorithm>
#include <string>
#include <vector>

#include "commands.hpp"

namespace wizmail::cli {

namespace {

struct ManualName {
  const char* program;
  std::vector<std::string> prefix;  // wizmail subcommand words
};

// Commands whose manual form selects the subcommand with a flag
// (wmsmngact -cp, wmsmngml -a/-d) are handled in translate_manual_command.
const std::vector<ManualName>& table() {
  static const std::vector<ManualName> t = {
      {"wmssetupenv", {"setup"}},
      {"wmsactcrt", {"account", "create"}},
      {"wmscrtact", {"account", "create"}},
      {"wmscrtml", {"ml", "create"}},
      {"wmsdelact", {"account", "delete"}},
      {"wmsmngact", {"account"}},
      {"wmsmngml", {"ml"}},
      {"wmsprtdef", {"config", "show"}},
      {"wmsprtmailbox", {"mailbox", "status"}},
      {"wmsstr", {"start"}},
      {"wmsstp", {"stop"}},
      {"wmsmng", {"sessions"}},
      {"wmsresur", {"supervise"}},
      {"wmssvcsetup", {"service", "install"}},
      {"wmssvcunsetup", {"service", "uninstall"}},
      {"wmsntu", {"notify"}},
      {"wmsmonitor", {"monitor"}},
      {"wmsmnt", {"maintenance"}},
      {"mailparser", {"parse"}},
      {"ExistMailAddress", {"exists"}},
  };
  return t;
}

}  // namespace

const std::vector<std::string>& manual_command_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    for (const auto& m : table()) out.emplace_back(m.program);
    return out;
  }();
  return names;
}

std::vector<std::string> translate_manual_command(const std::string& program,
                                                  std::vector<std::string> args) {
  std::erase(args, std::string("-nowait"));
  auto it = std::find_if(table().begin(), table().end(),
                         [&](const ManualName& m) { return program == m.program; });
  if (it == table().end()) return args;

  std::vector<std::string> out = it->prefix;
  if (program == "wmsmng") {
    // wmsmng -t [N] / -ts [N]: the session table, N times (-ts, the
    // original's thread stacks, shows the same table).
    for (auto& a : args) {
      if (a == "-t" || a == "-ts") a = "-n";
    }
    if (!args.empty() && args.back() == "-n") args.pop_back();
  }
  if (program == "wmsmngact" || program == "wmsmngml") {
    // wmsmngact -cp NAME PASS; wmsmngml -a|-d LIST ADDRESS
    static const std::vector<std::pair<std::string, std::string>> flags = {
        {"-cp", "passwd"}, {"-a", "add"}, {"-d", "del"}};
    // The flag may follow options such as --home: take the first argument
    // that is one of the manual's flags, wherever it stands.
    auto a = std::find_if(args.begin(), args.end(), [&](const std::string& arg) {
      return std::any_of(flags.begin(), flags.end(),
                         [&](const auto& p) { return p.first == arg; });
    });
    if (a != args.end()) {
      auto f = std::find_if(flags.begin(), flags.end(),
                            [&](const auto& p) { return p.first == *a; });
      out.push_back(f->second);
      args.erase(a);
    }
  }
  out.insert(out.end(), args.begin(), args.end());
  return out;
}

}  // namespace wizmail::cli
