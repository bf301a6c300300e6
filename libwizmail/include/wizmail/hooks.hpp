// Application cooperation (SPEC §8, manual アプリケーション連携機能 1 and 2):
// the hook files of an account — exec.def, exec2.def … exec99.def (up to the
// first missing one), then forward.def, then reply.def — and what they start.
//
// A hook file is `key=value` lines ("#" and "//" comments, blank lines
// ignored, CRLF accepted):
//   bin=PROGRAM [ARG…]        '"' quotes a program path or argument with spaces
//   param1=VALUE … param99=VALUE   appended after bin's words; stops at the
//                                   first missing number
//   permission_mailaddress=a@x.example,y.example   only mail from these
//                                   addresses or domains runs the hook
//   stdin=1                    also give the message on standard input
// Argument values FROM_ADDRESS, TO_ADDRESS, SUBJECT (decoded to UTF-8) and
// MAILFILE_PATH are replaced by the message's values — an argument that is
// exactly one of these words, so a value is always one whole argument.
// Programs are started from this argv vector (posix_spawnp), never through a
// shell: shell metacharacters are plain bytes.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "wizmail/error.hpp"

namespace wizmail {

struct HookDef {
  std::vector<std::string> command;  // bin split into program and arguments
  std::vector<std::string> params;   // param1, param2, … in order
  std::vector<std::string> permission;  // addresses or domains (lower case); empty = anyone
  bool stdin_message = false;
  // active_from= / active_until= (YYYY-MM-DD, both days included, the
  // server's local date; empty = no bound): outside them the hook does not
  // run (the web console's vacation reply, docs/console.md).
  std::string active_from, active_until;
};

// Parse a hook file's text. Errors (Errc::parse, "file:line: key: message"):
// no or empty bin, an unknown or duplicate key, a line without '=', a NUL
// byte, an unterminated quote, stdin other than 0/1, param0 or param100+,
// active_from/active_until not a date YYYY-MM-DD.
Result<HookDef> parse_hook_def(std::string_view text, const std::string& file_name);

// Split a `bin` value into words: runs of spaces/tabs separate words, '"'
// quotes (a quoted part may hold spaces; "" inside quotes is not special).
Result<std::vector<std::string>> split_command_line(std::string_view bin);

// Whether mail from `sender` may run the hook: always when `permission` is
// empty; else `sender` equals one of the addresses, or its domain equals one
// of the domains (case-insensitive). The null sender never matches a list.
bool hook_permits(const HookDef& def, std::string_view sender);

// Whether `today` ("YYYY-MM-DD") lies within active_from … active_until.
bool hook_active_on(const HookDef& def, std::string_view today);

struct HookTokens {
  std::string from_address;
  std::string to_address;
  std::string subject;  // decoded UTF-8
  std::string mailfile_path;
};

// The argv: command words then params, each argument that is exactly a token
// replaced by its value (one argument, whatever it holds).
std::vector<std::string> hook_argv(const HookDef& def, const HookTokens& tokens);

// The hook files of an account folder, in the order they run: exec.def,
// exec2.def … up to the first missing one (exec99.def last), then
// forward.def and reply.def when present.
enum class HookKind { exec, forward, reply };
struct HookFile {
  HookKind kind = HookKind::exec;
  std::filesystem::path path;
};
std::vector<HookFile> hook_files(const std::filesystem::path& account_dir);

std::string_view to_string(HookKind k) noexcept;

}  // namespace wizmail
