// Accounts (SPEC §3): one folder per account under the mailbox folder.
//
// An AccountStore is a thin, stateless view over a mailbox directory path; it
// caches nothing, so several processes (server, admin CLI, an embedding
// program) can use the same folder at once. Every method validates the
// account name first (validate_name), so no input can reach a path outside
// the mailbox folder. Names are lower case; names given by users are folded
// to lower case before validation (user lookups are case-insensitive).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "wizmail/error.hpp"

namespace wizmail {

// How set_password stores a password.
enum class PasswordScheme {
  plain,  // the password alone on one line (the manual's format)
  crypt,  // "{CRYPT}" + a SHA-512 crypt(3) hash ($6$); APOP/CRAM-MD5 refused
};

// The last POP3 login of an account (the `ip` file: "seconds,IP").
// What an account name stands for (AccountStore::lookup).
enum class AccountKind {
  none,          // no such account
  mailbox,       // an account
  mailing_list,  // an account with ml.def (SPEC §7)
};

struct PopLogin {
  std::int64_t time = 0;  // seconds since the epoch
  std::string ip;         // canonical form: "127.0.0.1", "2001:db8::1"
};

class AccountStore {
 public:
  explicit AccountStore(std::filesystem::path mailbox_dir);

  const std::filesystem::path& mailbox_dir() const noexcept { return dir_; }

  // SPEC §3: [a-z0-9._-], 1–64 characters, not starting with '.'.
  // Exact check: upper case is refused here (see normalize_name).
  static Status validate_name(std::string_view name);
  // Fold ASCII upper case to lower case, then validate_name.
  static Result<std::string> normalize_name(std::string_view name);
  // A mail address as accepted in ml_member.csv and as a list's admin:
  // local@domain, printable ASCII atoms, at most 254 octets.
  static Status validate_address(std::string_view address);
  // Accounts that can never be removed: notifi and postmaster.
  static bool is_protected(std::string_view name) noexcept;

  // <mailbox_dir>/<normalized name>; an error for an invalid name. Does not
  // check that the account exists.
  Result<std::filesystem::path> account_dir(std::string_view name) const;
  // Whether `name` is an account, and of which kind. AccountKind::none when
  // nothing of that name is in the mailbox folder (or the name is invalid).
  // An error (Errc::io) when the store cannot tell — the folder or ml.def
  // cannot be examined (EACCES, EIO, ENOMEM, a loop of symbolic links), or
  // something that is not a folder has the account's name: a fault to
  // answer as temporary (SMTP 451 4.3.0), never as "no such user".
  Result<AccountKind> lookup(std::string_view name) const;

  // Create the account folder with new/ cur/ tmp/ and the password file
  // (mode 0600). All or nothing: the folder is built under a hidden name and
  // renamed into place, so nobody sees a half-made account.
  // Errc::already_exists when the account exists.
  Status create(std::string_view name, std::string_view password,
                PasswordScheme scheme = PasswordScheme::plain);
  // Remove the account and its mail. notifi and postmaster are refused.
  // The folder is first renamed aside (atomic: the account is gone at once),
  // then deleted.
  Status remove(std::string_view name);
  // Account names, sorted. Folders whose names are not valid account names
  // (leftovers, hand-made folders) are skipped, and so are files and
  // dangling links; a link that cannot be examined (a loop, EACCES) is
  // listed, so that one bad entry neither hides itself nor fails the list:
  // lookup() of that name reports the fault.
  Result<std::vector<std::string>> list() const;

  // Remove what a crash left in the mailbox folder: the hidden
  // ".creating-<name>.<sec>.M<usec>P<pid>Q<seq>" folder of an interrupted
  // create() and the ".deleted-<name>.<...>" folder of an interrupted
  // remove(). One is removed when the process named in it no longer exists
  // on this host, or when the time in its name (else its mtime) is older than
  // `max_age`; so a create()/remove() running right now in another process
  // (the admin CLI) is never disturbed. Other hidden entries are left alone.
  // Returns how many leftovers were removed; the first failure stops it.
  // The server calls it once at start, before it accepts connections.
  Result<std::size_t> cleanup(std::chrono::seconds max_age = std::chrono::hours(1));

  // Replace the password (written atomically, mode 0600). Passwords are
  // 1–1024 octets without CR, LF or NUL.
  Status set_password(std::string_view name, std::string_view password,
                      PasswordScheme scheme = PasswordScheme::plain);
  // true when `password` is right, false when it is wrong (compared in
  // constant time). Errc::not_found when the account does not exist; like
  // every method that needs an existing account, an error of another kind
  // (Errc::io) when the store cannot tell whether it exists (see lookup).
  Result<bool> authenticate(std::string_view name, std::string_view password) const;
  // The stored plain password, for APOP and CRAM-MD5. Errc::permission_denied
  // for an account whose password is stored hashed.
  Result<std::string> plain_password(std::string_view name) const;

  // Mailing lists (SPEC §7): an account with ml.def and ml_member.csv.
  // `admin` may be empty (the list then uses postmaster@<domain>).
  Status create_mailing_list(std::string_view name, std::string_view password,
                             std::string_view admin = {});
  // Members are compared case-insensitively; the file is rewritten
  // atomically under a lock. Errc::already_exists / Errc::not_found.
  Status add_member(std::string_view list, std::string_view address);
  Status remove_member(std::string_view list, std::string_view address);
  // One address per line (the first comma-separated field); blank lines and
  // lines starting with '#' are skipped.
  Result<std::vector<std::string>> members(std::string_view list) const;

  // The `ip` file, written at each POP3 login (POP-before-SMTP). IPv4 is
  // written with three digits per octet (127.000.000.001), as the manual says.
  // `ip` must be an IPv4 or IPv6 address; an IPv4-mapped IPv6 address is
  // written as IPv4.
  Status write_pop_login(std::string_view name, std::string_view ip, std::int64_t time);
  // Errc::not_found when the account never logged in.
  Result<PopLogin> read_pop_login(std::string_view name) const;

 private:
  std::filesystem::path dir_;
};

}  // namespace wizmail
