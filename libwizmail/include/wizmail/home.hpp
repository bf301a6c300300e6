// Making a home (SPEC §1): the data directory a server runs on — the
// layout, the three def files with safe values, the initial accounts.
// `wizmail setup` is this call; an embedder calls it to prepare the home it
// then hands to Server::create().
//
//   wizmail::HomeOptions o;
//   o.domain = "example.org";
//   o.smtp_port = 2525;
//   auto made = wizmail::make_home("/srv/mail", o);
//   if (!made) { print(made.error().message); return 1; }
//   for (const auto& a : made->accounts)
//     if (a.created && !a.password.empty()) remember(a.name, a.password);
//
// It never clobbers: over an existing home it only adds what is missing —
// folders, def files, initial accounts — and keeps every existing file as it
// is (options for a kept def file are reported in `options_not_applied`, not
// written). Everything is checked before anything is changed: bad options,
// a home that is a file, or existing def files with errors (the mailbox folder
// could not be known) fail with nothing touched.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "wizmail/error.hpp"

namespace wizmail {

struct HomeOptions {
  int smtp_port = 0;                      // def/smtpenv.dat port; 0 = the default (25)
  int pop_port = 0;                       // def/popenv.dat port; 0 = the default (110)
  std::vector<std::string> bind_address;  // IP addresses to listen on; empty = all
  std::string domain;                     // the primary mail domain; empty = localhost
  // Password of each initial account made now; empty = a random one per
  // account (16 characters, returned in HomeReport::accounts, shown only
  // then). One line, no "{CRYPT}" prefix, at most 1024 octets.
  std::string password;
};

struct HomeReport {
  std::filesystem::path home;  // absolute
  // Def file names ("smtpenv.dat" …) written now, and kept as they were.
  std::vector<std::string> def_written, def_kept;
  // Kept def files for which options were given (they were not applied:
  // the file is the administrator's).
  std::vector<std::string> options_not_applied;
  // def/srs.secret (the SRS key, mode 0600) was made now; an existing one is kept.
  bool srs_secret_written = false;
  struct Account {
    std::string name;
    bool created = false;   // false: it existed and was kept
    std::string password;   // the random password of a created account; "" otherwise
  };
  std::vector<Account> accounts;  // administrator, forward, notifi, postmaster
  std::vector<std::string> warnings;  // e.g. the sample forward.def could not be written
};

// Make (or complete) the home at `home`. Errors: Errc::invalid_argument for a
// bad option ("bind_address: …", "domain: …", "password: …": the option's
// name first) or a home that is not a directory; Errc::parse for existing def
// files with errors; Errc::io when a folder or file cannot be made (what was
// made before stays: calling again completes it).
Result<HomeReport> make_home(const std::filesystem::path& home, const HomeOptions& options = {});

}  // namespace wizmail
