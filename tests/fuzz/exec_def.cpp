// Fuzz target: the hook files exec.def / forward.def / reply.def
// (wizmail/hooks.hpp: parse_hook_def, split_command_line, hook_argv,
// hook_permits).
// Properties: a hook that parses has a program; no argument holds a NUL;
// written back as a hook file (words without '"' quoted when they hold
// blanks) it parses to the same hook; the argv is the command words then
// the params, each token argument replaced by exactly one argument whatever
// the message supplied; the permission list matches only its own
// addresses and domains.
#include <algorithm>
#include <string>

#include "fuzz.hpp"
#include "util/strings.hpp"
#include "wizmail/hooks.hpp"

using namespace wizmail;
using wizmail::fuzz::show;

namespace {

bool writable(const HookDef& d) {
  auto ok = [](const std::string& s) {
    return s.find_first_of("\"\r\n") == std::string::npos;
  };
  for (const auto& w : d.command)
    if (!ok(w)) return false;
  for (const auto& p : d.params)
    if (!ok(p) || p != std::string(util::trim(p))) return false;
  for (const auto& p : d.permission)
    if (!ok(p) || p.find(',') != std::string::npos) return false;
  return true;
}

std::string write(const HookDef& d) {
  std::string bin;
  for (const auto& w : d.command) {
    if (!bin.empty()) bin += ' ';
    bool quote = w.empty() || w.find_first_of(" \t\f\v") != std::string::npos;
    bin += quote ? "\"" + w + "\"" : w;
  }
  std::string out = "bin=" + bin + "\n";
  for (std::size_t i = 0; i < d.params.size(); ++i)
    out += "param" + std::to_string(i + 1) + "=" + d.params[i] + "\n";
  if (!d.permission.empty()) {
    out += "permission_mailaddress=";
    for (std::size_t i = 0; i < d.permission.size(); ++i) out += (i ? "," : "") + d.permission[i];
    out += "\n";
  }
  out += std::string("stdin=") + (d.stdin_message ? "1" : "0") + "\n";
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto def = parse_hook_def(text, "exec.def");
  if (!def) {
    FUZZ_CHECK(def.error().message.starts_with("exec.def:"));
    return 0;
  }
  FUZZ_CHECK(!def->command.empty());
  FUZZ_CHECK(def->params.size() <= 99);
  for (const auto& w : def->command) FUZZ_CHECK(w.find('\0') == std::string::npos);
  for (const auto& p : def->params) FUZZ_CHECK(p.find('\0') == std::string::npos);
  for (const auto& p : def->permission) {
    FUZZ_CHECK(!p.empty());
    FUZZ_CHECK(p == util::to_lower(p));
  }

  if (writable(*def)) {
    std::string written = write(*def);
    auto back = parse_hook_def(written, "exec.def");
    FUZZ_CHECK_MSG(back.has_value(), show(written) + (back ? "" : " " + back.error().message));
    FUZZ_CHECK_MSG(back->command == def->command && back->params == def->params &&
                       back->permission == def->permission &&
                       back->stdin_message == def->stdin_message,
                   show(written));
  }

  // Hostile token values stay one argument each.
  HookTokens tokens{"a b;$(rm -rf ~)@x.example", "\"quoted\" to", "", "/tmp/x y"};
  auto argv = hook_argv(*def, tokens);
  FUZZ_CHECK(argv.size() == def->command.size() + def->params.size());
  FUZZ_CHECK(argv[0] == def->command[0]);
  auto expect = [&](const std::string& word) -> const std::string& {
    if (word == "FROM_ADDRESS") return tokens.from_address;
    if (word == "TO_ADDRESS") return tokens.to_address;
    if (word == "SUBJECT") return tokens.subject;
    if (word == "MAILFILE_PATH") return tokens.mailfile_path;
    return word;
  };
  for (std::size_t i = 1; i < def->command.size(); ++i) FUZZ_CHECK(argv[i] == expect(def->command[i]));
  for (std::size_t i = 0; i < def->params.size(); ++i)
    FUZZ_CHECK(argv[def->command.size() + i] == expect(def->params[i]));

  FUZZ_CHECK(!hook_permits(*def, "") || def->permission.empty());
  for (const auto& p : def->permission) {
    std::string sender = p.find('@') != std::string::npos ? p : "someone@" + p;
    FUZZ_CHECK_MSG(hook_permits(*def, sender), show(p));
  }
  FUZZ_CHECK(hook_permits(*def, "nobody@not-listed.invalid") == def->permission.empty() ||
             std::count(def->permission.begin(), def->permission.end(), "not-listed.invalid") ||
             std::count(def->permission.begin(), def->permission.end(), "nobody@not-listed.invalid"));
  return 0;
}
