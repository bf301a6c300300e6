// Configuration (SPEC §2): the three def files of a home, per-account
// config.def overrides and ml.def. One key table (config/table.cpp) drives
// parsing, validation, `wizmail config show`, `config check` and docs/.
//
// A Config is an immutable snapshot: the server swaps a new shared_ptr in on
// reload, and sessions keep the snapshot they started with.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "wizmail/error.hpp"

namespace wizmail {

// Settings that def/smtpenv.dat holds.
struct SmtpSettings {
  int port = 25;
  int submission_port = 0;                 // 0 = off
  int smtps_port = 0;                      // 0 = off
  std::vector<std::string> bind_address;   // empty = all addresses
  std::vector<std::string> subhost;
  bool relay = false;
  bool pop_before_smtp = false;
  int pop_befor_smtp_time_to_live = 30;    // minutes (manual's spelling)
  bool use_dustbox = false;
  std::vector<std::string> address_permits_relay;  // IPs and CIDRs
  int resend_timeout = 1440;               // minutes
  int resend_scan_interval = 300;          // seconds
  bool send_permits_only_smtp_auth = false;
  int multiprocessing = 20;
  std::vector<std::string> multiprocessing_exempt{"127.0.0.0/8", "::1"};
  int send_max_during_a_day = -1;          // negative = unlimited
  std::vector<std::string> reject_domain;
  std::vector<std::string> reject_mailaddress;
  std::int64_t max_mail_size = 52428800;
  int max_recipients = 1000;
  bool auth_requires_tls = false;
  std::string smart_host;                  // host[:port], empty = MX routing
  std::vector<std::string> dns_servers;    // ip[:port]; empty = system resolver
  int outbound_port = 25;
  int session_timeout = 300;               // seconds
};

// Settings that def/popenv.dat holds.
struct PopSettings {
  std::string host = "localhost";
  int port = 110;
  int pop3s_port = 0;                      // 0 = off
  int uidl_interval = 0;                   // milliseconds
  bool dustbox = false;
};

// Settings that def/wiz98msenv.dat holds.
struct ServerSettings {
  std::string domain = "localhost";
  std::vector<std::string> alias;
  std::int64_t log_size_max = 5242880;
  int mailing_list_from_kind = 0;          // 0, 1, 2
  int mailing_list_to_kind = 0;            // 0, 1
  int mailing_list_mail_header_x_element = 0;  // 0 strip, 1 keep
  int mailing_list_public_level = 1;       // -1, 0, 1
  int mailing_list_subject_header = 1;     // 0, 1, 2
  std::vector<std::string> mailing_list_filter_string;
  std::int64_t mailbox_capacity_mail_count = -1;  // negative = unlimited
  std::int64_t mailbox_capacity_mail_size = -1;   // bytes; negative = unlimited
  bool application_cooperation_wait_for_apl_end = false;
  int application_cooperation_timeout = 60;       // seconds
  std::string mailbox_path;                // empty = <home>/mailbox
  std::string dustbox_path;                // empty = <home>/dustbox
  int time_out_of_stop = 60;               // seconds
  std::string tls_cert_file;
  std::string tls_key_file;
  int dustbox_keep_days = 7;
  std::string run_as_user;                 // empty = do not change user
  int metrics_port = 0;                    // 0 = off
};

// The per-account view: server settings with that account's config.def
// overrides applied (SPEC §2 lists which keys may be overridden).
struct AccountSettings {
  int mailing_list_from_kind = 0;
  int mailing_list_to_kind = 0;
  int mailing_list_mail_header_x_element = 0;
  int mailing_list_public_level = 1;
  int mailing_list_subject_header = 1;
  std::vector<std::string> mailing_list_filter_string;
  int send_max_during_a_day = -1;
  std::vector<std::string> reject_domain;
  std::vector<std::string> reject_mailaddress;
  bool use_dustbox = false;
  std::int64_t mailbox_capacity_mail_count = -1;
  std::int64_t mailbox_capacity_mail_size = -1;
  bool application_cooperation_wait_for_apl_end = false;
};

// ml.def of a mailing-list account.
struct MailingListSettings {
  std::int64_t count = 0;
  std::string admin_mail_address;          // empty = postmaster@<domain>
  std::string return_path;                 // empty = admin_mail_address
  std::string name;                        // empty = the account name
};

// A problem found while loading: errors make the load fail, warnings do not.
struct ConfigDiagnostic {
  enum class Severity { warning, error } severity = Severity::error;
  std::string file;   // path as given
  int line = 0;       // 1-based; 0 when not about one line
  std::string key;    // empty when not about one key
  std::string message;

  // "file:line: key: message" (the form printed on stderr).
  std::string to_string() const;
};

struct Config {
  std::filesystem::path home;
  SmtpSettings smtp;
  PopSettings pop;
  ServerSettings server;
  std::vector<ConfigDiagnostic> warnings;  // unknown keys, deprecated spellings

  // <home>/mailbox unless mailbox_path says otherwise; likewise dustbox.
  std::filesystem::path mailbox_dir() const;
  std::filesystem::path dustbox_dir() const;
  std::filesystem::path queue_dir() const { return home / "resendmail"; }
  std::filesystem::path dead_dir() const { return home / "deadmail"; }
  std::filesystem::path log_dir() const { return home / "var" / "log"; }
  std::filesystem::path run_dir() const { return home / "var" / "run"; }

  // All local mail domains, lower-cased: domain ∪ alias ∪ subhost.
  std::vector<std::string> local_domains() const;
  bool tls_configured() const {
    return !server.tls_cert_file.empty() && !server.tls_key_file.empty();
  }

  // Settings for one account: defaults from here, overridden by
  // <mailbox>/<account>/config.def when present. Errors name file and line.
  Result<AccountSettings> account_settings(std::string_view account) const;
};

// Resolve the home: `cli_home` when non-empty, else $WIZ98MS_HOME, else an
// error telling the user to give one of them.
Result<std::filesystem::path> resolve_home(const std::string& cli_home);

// Load and validate the three def files of `home`. A missing file means all
// its keys take their defaults; an unreadable file, a bad value, a value out of
// range or a duplicate key is an error naming file, line and key.
// On failure the error message holds every error, one per line.
Result<std::shared_ptr<const Config>> load_config(const std::filesystem::path& home);

// Load a mailing list's ml.def.
Result<MailingListSettings> load_ml_def(const std::filesystem::path& file);
// Write ml.def atomically.
Status save_ml_def(const std::filesystem::path& file, const MailingListSettings& ml);
// Increment `count` in ml.def atomically (under a lock file, crash-safe) and
// return the new value.
Result<std::int64_t> increment_ml_count(const std::filesystem::path& file);

// Dangerous combinations and other advice (`wizmail config check`).
std::vector<ConfigDiagnostic> check_config(const Config& config);

// `wizmail config show`: every key, its effective value and its file.
std::string show_config(const Config& config);
std::string show_config_json(const Config& config);

// The contents `wizmail setup` writes: every key, a comment, safe values,
// with the given ports (0 = the key's default).
std::string default_def_file(std::string_view file_name, int smtp_port = 0, int pop_port = 0);

// The configuration reference (docs/configuration.md) generated from the table.
std::string config_reference_markdown();

}  // namespace wizmail
