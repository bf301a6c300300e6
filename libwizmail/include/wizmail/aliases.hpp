// Per-address aliases and a catch-all per domain: def/aliases.def, what
// Postfix users know as virtual_alias_maps. Managed with `wizmail alias
// add|del|list`, read with the other def files (a reload re-reads it), and
// resolved by the SMTP session at RCPT.
//
// The file: one alias a line, `#` and `//` comment lines, UTF-8,
//
//   KEY  TARGET[, TARGET…]        (an optional ':' may follow KEY)
//
//   KEY     local@domain   that address; domain must be a local domain
//           local          that local part in every local domain
//           @domain        catch-all of a local domain: used only when the
//                          address names no account and no other alias
//   TARGET  name           the local account `name` (name@<domain>)
//           local@domain   an address: at a local domain it is resolved
//                          again (account or alias); elsewhere it is relayed
//
// Keys compare without ASCII case, domains in their ASCII (A-label) form, so
// `Jörg@MÜNCHEN.example` and `jörg@xn--mnchen-3ya.example` are one key.
//
// Resolution of local@domain (a local domain): the exact key, else the bare
// local part, else the account of that name (postmaster always exists),
// else the domain's catch-all. An alias is applied before the account of
// the same name (as Postfix does), so mail for an account can be sent
// elsewhere; a target naming the alias's own address ("alice@d: alice, bob")
// is that account, not the alias again. Targets are resolved recursively up
// to kMaxDepth levels and kMaxTargets addresses; a cycle is refused when the
// file is loaded (file:line) and, when one only appears at run time through
// a catch-all, the RCPT gets 451 4.3.0 and the error log says why.
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "wizmail/config.hpp"
#include "wizmail/error.hpp"

namespace wizmail {

struct AliasEntry {
  std::string key;                   // normalised: "local@ascii-domain", "local", "@ascii-domain"
  std::vector<std::string> targets;  // normalised: account names and addresses (domain in ASCII form)
  int line = 0;                      // in the file it came from
};

class AliasMap {
 public:
  static constexpr int kMaxDepth = 20;
  static constexpr std::size_t kMaxTargets = 1000;

  AliasMap() = default;

  // Parse aliases.def. `local_domains` are the lower-case ASCII forms (as
  // Config::local_domains() gives them), `primary_domain` names a bare
  // account target's domain. Problems go to `diagnostics` (file:line); the
  // map holds the lines that were fine.
  static AliasMap parse(std::string_view text, const std::string& path,
                        const std::vector<std::string>& local_domains, std::string_view primary_domain,
                        std::vector<ConfigDiagnostic>& diagnostics);

  // The normalised form of a key or target as a user writes it (what the
  // file and the CLI accept); Errc::invalid_argument saying why not.
  static Result<std::string> normalise_key(std::string_view key);
  static Result<std::string> normalise_target(std::string_view target);

  bool empty() const noexcept { return entries_.empty(); }
  const std::vector<AliasEntry>& entries() const noexcept { return entries_; }
  // The entry with this normalised key, or null.
  const AliasEntry* find(std::string_view key) const;

  struct Target {
    std::string address;  // the address that led here (account targets: name@domain)
    std::string account;  // the local account; empty = a remote address
    bool local() const noexcept { return !account.empty(); }
  };
  struct Resolution {
    bool aliased = false;              // an alias or catch-all applied
    std::vector<Target> targets;       // de-duplicated, in file order
    std::vector<std::string> unknown;  // local targets naming nothing (skipped)
  };
  // What resolution asks about the world. account_exists() gets a valid
  // account name ([a-z0-9._-]) in lower case.
  struct Directory {
    std::function<bool(std::string_view ascii_domain)> is_local_domain;
    std::function<Result<bool>(std::string_view account)> account_exists;
  };
  // Resolve local@domain (`domain` a local domain in ASCII form, lower
  // case). Not aliased: the caller treats the address as before (an account
  // or 550). Errors: a lookup failure (as the Directory said), or Errc::limit
  // for a loop or more than kMaxDepth / kMaxTargets.
  Result<Resolution> resolve(std::string_view local, std::string_view domain, const Directory& dir) const;

 private:
  std::vector<AliasEntry> entries_;
  std::unordered_map<std::string, std::size_t> index_;
  std::string primary_;
};

// <home>/def/aliases.def
std::filesystem::path aliases_file(const Config& config);

// The CLI's edits of aliases.def, under its lock file, each checked by
// parsing the whole new file against `config` before it is written
// atomically (comments and other lines stay as they were):
// set_alias replaces the line of `key` or appends one; delete_alias removes
// it (Errc::not_found when there is none).
Status set_alias(const Config& config, std::string_view key, const std::vector<std::string>& targets);
Status delete_alias(const Config& config, std::string_view key);

}  // namespace wizmail
