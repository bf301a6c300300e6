// The one table of configuration keys (SPEC §2). Parsing, validation,
// `wizmail config show`, `config check`, the files `wizmail setup` writes and
// docs/configuration.md are all derived from it, so they cannot drift apart.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "wizmail/config.hpp"

namespace wizmail::config {

enum class DefFile { smtpenv, popenv, wiz98msenv };

// "smtpenv.dat", "popenv.dat", "wiz98msenv.dat".
std::string_view file_name(DefFile f) noexcept;
// The inverse; accepts "def/<name>" too. False when unknown.
bool file_from_name(std::string_view name, DefFile& out) noexcept;
inline constexpr DefFile all_files[] = {DefFile::smtpenv, DefFile::popenv, DefFile::wiz98msenv};

enum class Type {
  integer,       // whole number (int or int64 field), [min, max]
  bytes,         // int64 byte count, [min, max]; K/M/G suffixes (1024-based) accepted
  boolean,       // 0/1 or TRUE/FALSE (any case)
  text,          // free UTF-8 text on one line
  hostname,      // a domain name or an IP literal
  path,          // an absolute file-system path
  user,          // a Unix user name
  text_list,     // comma list of free text
  domain_list,   // comma list of domain names or IP literals
  address_list,  // comma list of mail addresses (local@domain)
  ip_list,       // comma list of IPv4/IPv6 addresses
  cidr_list,     // comma list of IPs or CIDR blocks
  host_port,     // host[:port], [v6]:port
  ip_port_list,  // comma list of ip[:port], [v6]:port
  choice,        // one word of Key::choices (any case; stored lower-case)
};

std::string_view type_name(Type t) noexcept;

// A parsed value: integers and byte counts are int64, lists are vectors.
using Value = std::variant<std::int64_t, bool, std::string, std::vector<std::string>>;

struct Accessor {
  void (*set)(Config&, const Value&) = nullptr;
  Value (*get)(const Config&) = nullptr;
};

struct Key {
  std::string_view name{};
  DefFile file = DefFile::smtpenv;
  Type type = Type::text;
  std::string_view default_value{};  // as written in a def file; "" = empty/none
  std::int64_t min = 0;            // integer and bytes only
  std::int64_t max = 0;
  std::string_view doc{};            // one line for the reference and the setup comment
  std::string_view example{};        // a valid value other than the default
  std::vector<std::string_view> synonyms{};
  std::vector<std::string_view> choices{};  // Type::choice only: the allowed words
  bool account_override = false;   // may appear in mailbox/<account>/config.def
  bool obsolete = false;           // accepted with a warning, never written by setup
  bool bool_words = false;         // written TRUE/FALSE rather than 1/0
  std::string_view setup_value{};    // what `wizmail setup` writes when not the default
  // Lists: items are also separated by blanks (besides commas).
  bool split_blanks = false;
  // Lists: each item checked by this (the reason it is wrong, "" when
  // right) instead of by its type.
  std::string (*check_item)(std::string_view item) = nullptr;
  Accessor field;
  void (*set_account)(AccountSettings&, const Value&) = nullptr;
};

const std::vector<Key>& keys();

// The key called `name` (or one of its synonyms; case-insensitive) in `file`.
const Key* find_key(DefFile file, std::string_view name) noexcept;
// The key called `name` in any file (config.def is file-less).
const Key* find_key_any(std::string_view name) noexcept;
// The key's name, then its synonyms: every name a def line may use for it.
std::vector<std::string_view> names_of(const Key& k);

// Parse a trimmed, non-empty value for `key`. The error message says what
// was expected (without file/line: the caller adds them).
Result<Value> parse_value(const Key& key, std::string_view text);
// The value as a def file spells it.
std::string format_value(const Key& key, const Value& v);
// The key's default as a Value.
Value default_of(const Key& key);
// Human text for the allowed values, e.g. "1–65535", "0 or 1", "absolute path".
std::string allowed_text(const Key& key);

// Validators shared with check_config.
bool valid_ip(std::string_view s) noexcept;
// "a.b.c.d/n" or "v6/n" or a plain IP (util::CidrBlock::parse).
bool valid_cidr(std::string_view s) noexcept;
bool valid_hostname(std::string_view s) noexcept;

}  // namespace wizmail::config
