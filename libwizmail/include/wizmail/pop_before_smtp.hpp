// POP-before-SMTP (SPEC §4.3, §5): which account last logged into POP3 from
// a client address, so that SMTP may let that address relay for
// `pop_befor_smtp_time_to_live` minutes.
//
// The server records every POP3 login in a PopLoginTable the moment it
// succeeds (before the client sees +OK) and asks the table at RCPT: a login
// is visible to SMTP at once, and no lookup reads the disk or scans the
// accounts. The default table lives in the server's memory and is seeded
// once at start from the accounts' `ip` files, which every login still
// writes (the manual's format; they carry logins across restarts).
// With `redis_url` the server keeps the table in Redis, shared by every
// node (docs/cluster.md); ServerOptions::pop_logins lets an embedder give
// its own table instead.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "wizmail/error.hpp"

namespace wizmail {

class AccountStore;

class PopLoginTable {
 public:
  virtual ~PopLoginTable() = default;

  // `account` logged in from `ip` at `time` (seconds since the epoch). A
  // later login from the same address replaces an earlier one, never the
  // reverse; the entry is not needed once older than `ttl`. `ip` is an
  // IPv4 or IPv6 address in any usual text form (an IPv4-mapped IPv6
  // address is the IPv4 address); anything else is Errc::invalid_argument.
  virtual Status record(std::string_view ip, std::string_view account, std::int64_t time,
                        std::chrono::seconds ttl) = 0;
  // The account of the newest login from `ip` at or after `since`; nullopt
  // when there is none (or `ip` is no address).
  virtual Result<std::optional<std::string>> find(std::string_view ip, std::int64_t since) = 0;
};

// The in-process table: a hash map by address under one mutex. Entries past
// their ttl are dropped as new ones arrive (amortised); beyond `max_entries`
// the oldest logins go first.
std::shared_ptr<PopLoginTable> make_memory_pop_login_table(std::size_t max_entries = 1u << 20);

// Records the login of each account's `ip` file that is not older than
// `ttl` at `now` (unreadable or malformed files are skipped); returns how
// many were recorded. The server does this once in start(), before it
// accepts connections.
Result<std::size_t> seed_pop_logins(PopLoginTable& table, const AccountStore& store, std::int64_t now,
                                    std::chrono::seconds ttl);

}  // namespace wizmail
