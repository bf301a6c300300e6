// Configuration (SPEC §2): the three def files of a home, per-account
// config.def overrides and ml.def. One key table (config/table.cpp) drives
// parsing, validation, `wizmail config show`, `config check` and docs/.
//
// A Config is an immutable snapshot: the server swaps a new shared_ptr in on
// reload, and sessions keep the snapshot they started with.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "wizmail/error.hpp"

namespace wizmail {

class AliasMap;  // wizmail/aliases.hpp

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
  int delay_warning_time = 4;              // hours before a delay notice (NOTIFY=DELAY); 0 = never
  std::int64_t bounce_size_limit = 50000;  // octets of a message a RET=FULL failure notice returns
  bool send_permits_only_smtp_auth = false;
  int multiprocessing = 20;
  std::vector<std::string> multiprocessing_exempt{"127.0.0.0/8", "::1"};
  int send_max_during_a_day = -1;          // negative = unlimited
  std::vector<std::string> reject_domain;
  std::vector<std::string> reject_mailaddress;
  std::int64_t max_mail_size = 52428800;
  std::int64_t queue_minfree = 0;          // bytes; 0 = 1.5 × max_mail_size
  int max_recipients = 1000;
  bool auth_requires_tls = false;
  std::string smart_host;                  // host[:port], empty = MX routing
  std::vector<std::string> dns_servers;    // ip[:port]; empty = system resolver
  int outbound_port = 25;
  int outbound_max_connections = 20;       // outbound SMTP sessions at once
  int outbound_max_per_destination = 20;   // of them to one domain (or the smart host)
  std::string smtp_tls_security_level = "may";   // none | may | encrypt | verify
  std::string smtp_tls_ca_file = "/etc/ssl/certs/ca-certificates.crt";
  int session_timeout = 300;               // seconds
  int junk_command_limit = 100;            // NOOP/RSET/VRFY/HELP/HELO/EHLO; 0 = no limit
  int greet_wait = 1000;                   // ms before the 220 on port 25; 0 = off
  std::vector<std::string> greet_wait_exempt{"127.0.0.0/8", "::1"};
  int greet_pass_ttl = 86400;              // seconds a passed client is not delayed
  // Hostile-client limits (SMTP and POP3; docs/smtp.md, "Limits").
  int client_connection_limit = -1;        // per client network; -1 = multiprocessing/2, 0 = off
  int command_deadline = 120;              // seconds for one command line
  int data_min_rate = 500;                 // bytes/s in DATA after command_deadline; 0 = off
  int auth_penalty_delay = 1000;           // ms before an attempt of a network with failures
  int auth_penalty_max_delay = 16000;      // ms, the most that wait grows to
  int auth_concurrency_limit = 2;          // attempts in progress per network; 0 = no cap
  int auth_block_failures = 20;            // failures in an hour that block; 0 = never
  int auth_block_time = 900;               // seconds a network stays blocked
  // Sender Rewriting Scheme for forwarded mail (docs/configuration.md).
  bool srs = false;
  std::string srs_domain;                  // empty = ServerSettings::domain
  int srs_max_age = 21;                    // days
  // Authentication of inbound mail on port 25 (docs/authentication.md).
  bool spf_check = true;                   // SPF of MAIL FROM and HELO, recorded
  bool spf_reject_fail = false;            // SPF fail refused at MAIL FROM (550 5.7.23)
  bool dkim_verify = true;                 // DKIM signatures verified at end of data
  bool dmarc_check = true;                 // DMARC evaluated at end of data
  bool dmarc_reject = true;                // p=reject failures refused (550 5.7.1)
  std::vector<std::string> dmarc_reject_exempt;  // From: domains never refused
  bool mail_auth_temperror_defer = false;  // temperror where a refusal applies → 4xx
  std::string authserv_id;                 // empty = the server's host name
  std::vector<std::string> mail_auth_exempt{"127.0.0.0/8", "::1"};
  // Milters (docs/milter.md): inet:host:port or unix:/path, in order.
  std::vector<std::string> smtpd_milters;      // SMTP listeners
  std::vector<std::string> non_smtpd_milters;  // the local submit socket
  std::string milter_default_action = "tempfail";  // tempfail | accept | reject
  int milter_connect_timeout = 30;         // seconds
  int milter_command_timeout = 30;         // seconds
  int milter_content_timeout = 300;        // seconds
  // DNS block/allow lists on port 25 (docs/dnsbl.md): postscreen's
  // zone[=filter][*weight] items, asked at connect; empty = off.
  std::vector<std::string> dnsbl_sites;
  int dnsbl_threshold = 1;                 // score that refuses the client
  std::string dnsbl_action = "enforce";    // enforce (554 to RCPT) | drop (521 greeting) | ignore
  std::vector<std::string> dnsbl_exempt{"127.0.0.0/8", "::1"};  // never looked up
  // Obsolete since manual v2.10 (moved to wiz98msenv.dat `alias`): accepted
  // with a warning; a non-empty value is one more local domain.
  std::string host;
};

// The free space MAIL and RCPT require (queue_minfree, its 0 resolved).
inline std::int64_t effective_queue_minfree(const SmtpSettings& s) noexcept {
  return s.queue_minfree > 0 ? s.queue_minfree : s.max_mail_size + s.max_mail_size / 2;
}

// client_connection_limit with its -1 resolved (0 = no limit).
inline int effective_client_connection_limit(const SmtpSettings& s) noexcept {
  if (s.client_connection_limit >= 0) return s.client_connection_limit;
  return s.multiprocessing > 1 ? s.multiprocessing / 2 : 1;
}

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
  // Load balancers whose SMTP and POP3 connections start with a PROXY
  // protocol header naming the client (docs/proxy-protocol.md); empty = off.
  std::vector<std::string> proxy_trusted_networks;
  // Shared volatile state of a cluster (docs/cluster.md); empty = in-process.
  std::string redis_url;
  int redis_lease_seconds = 60;            // a dead node's leases expire after this
  int cluster_heartbeat_seconds = 5;       // a node's heartbeat period (docs/cluster.md)
  int cluster_takeover_seconds = 60;       // a dead node's claims are taken over after this
  int admin_port = 0;                      // web console; 0 = off
  std::vector<std::string> admin_bind_address{"127.0.0.1"};  // one address
  bool admin_tls = true;                   // HTTPS when the certificate is set
  std::vector<std::string> admin_accounts; // who administers in the console
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
  std::vector<ConfigDiagnostic> warnings;  // unknown keys in config.def
};

// ml.def of a mailing-list account.
struct MailingListSettings {
  std::int64_t count = 0;
  std::string admin_mail_address;          // empty = postmaster@<domain>
  std::string return_path;                 // empty = admin_mail_address
  std::string name;                        // empty = the account name
};

// Outbound TLS security levels (Postfix's smtp_tls_security_level).
enum class TlsLevel { none, may, encrypt, verify };
std::string_view to_string(TlsLevel level) noexcept;
// "none", "may", "encrypt", "verify" (any case); nullopt otherwise.
std::optional<TlsLevel> parse_tls_level(std::string_view word) noexcept;

// def/tls_policy.def: one "destination level" a line, `#` comments and
// blank lines ignored. A destination is a domain (that domain only) or
// ".domain" (every subdomain of it, not the domain itself), as Postfix's
// smtp_tls_policy_maps; with smart_host the smart host's name is looked up.
class TlsPolicyTable {
 public:
  struct Rule {
    std::string domain;       // lower-case, A-label form, without the leading dot
    bool subdomains = false;  // written ".domain"
    TlsLevel level = TlsLevel::may;
    int line = 0;
  };
  // Parse the file's text (pure). A line with a missing or extra field, an
  // unknown level, a bad domain or a destination given twice is an error
  // diagnostic naming `path` and the line; such lines are left out.
  static TlsPolicyTable parse(std::string_view text, const std::string& path,
                              std::vector<ConfigDiagnostic>& diagnostics);
  // The level for `domain`: its own entry, else the ".parent" entry of its
  // nearest parent domain; nullopt when none applies.
  std::optional<TlsLevel> find(std::string_view domain) const;
  const std::vector<Rule>& rules() const noexcept { return rules_; }
  bool empty() const noexcept { return rules_.empty(); }

 private:
  std::vector<Rule> rules_;
};

struct Config {
  std::filesystem::path home;
  // This node's name when several nodes share the home (`--node`,
  // docs/cluster.md); empty = the home's only server, as always.
  std::string node;
  SmtpSettings smtp;
  PopSettings pop;
  ServerSettings server;
  std::vector<ConfigDiagnostic> warnings;  // unknown keys, deprecated spellings
  // def/aliases.def (wizmail/aliases.hpp); null when there is none.
  std::shared_ptr<const AliasMap> aliases;
  // def/tls_policy.def; empty when there is none.
  TlsPolicyTable tls_policy;
  // The outbound TLS level for a destination (a recipient domain, or the
  // smart host's name): tls_policy's entry, else smtp_tls_security_level.
  TlsLevel tls_level_for(std::string_view destination) const;

  // <home>/mailbox unless mailbox_path says otherwise; likewise dustbox.
  std::filesystem::path mailbox_dir() const;
  std::filesystem::path dustbox_dir() const;
  std::filesystem::path queue_dir() const { return home / "resendmail"; }
  std::filesystem::path dead_dir() const { return home / "deadmail"; }
  // <home>/var/log and <home>/var/run; with a node, <home>/nodes/<node>/log
  // and <home>/nodes/<node>/run (two nodes never share a log or pid file).
  std::filesystem::path log_dir() const;
  std::filesystem::path run_dir() const;
  // <home>/nodes/<node>; empty without a node.
  std::filesystem::path node_dir() const;

  // All local mail domains, lower-cased, without duplicates:
  // domain ∪ alias ∪ subhost ∪ the obsolete smtpenv `host`.
  std::vector<std::string> local_domains() const;
  bool tls_configured() const {
    return !server.tls_cert_file.empty() && !server.tls_key_file.empty();
  }

  // Settings for one account: defaults from here, overridden by
  // <mailbox>/<account>/config.def when present. Errors name file and line;
  // a key that config.def may not override is an error. An account name that
  // is empty, holds '/' or NUL, or starts with '.' is refused (invalid_argument)
  // before any path is built. Unknown keys land in AccountSettings::warnings.
  Result<AccountSettings> account_settings(std::string_view account) const;

  // The same from text (pure; `path` only names the file in diagnostics).
  Result<AccountSettings> account_settings_from_text(std::string_view text,
                                                     const std::string& path) const;
};

// Resolve the home: `cli_home` when non-empty, else $WIZ98MS_HOME, else an
// error telling the user to give one of them.
Result<std::filesystem::path> resolve_home(const std::string& cli_home);

// A node's name (`--node`): 1 to 63 letters, digits, '-' and '_'.
// Errc::invalid_argument saying what is wrong otherwise.
Status validate_node_name(std::string_view node);
// <home>/nodes/<node>: the node's node.dat, heartbeat, log/ and run/.
std::filesystem::path node_dir(const std::filesystem::path& home, std::string_view node);
// <home>/var/run, or <home>/nodes/<node>/run with a node (control.sock,
// submit.sock, wizmail.pid); likewise <home>/var/log or <home>/nodes/<node>/log.
std::filesystem::path run_dir(const std::filesystem::path& home, std::string_view node = {});
std::filesystem::path log_dir(const std::filesystem::path& home, std::string_view node = {});

// Load and validate the three def files of `home` (and def/aliases.def and
// def/tls_policy.def when there are). A missing file means all its keys take their defaults; an unreadable file, a bad value, a value out of
// range or a duplicate key is an error naming file, line and key.
// On failure the error message holds every error, one per line.
// A home that does not exist (or is not a directory) is an error.
Result<std::shared_ptr<const Config>> load_config(const std::filesystem::path& home);
// The same for node `node` of a shared home (docs/cluster.md): the name is
// validated, then <home>/nodes/<node>/node.dat (optional) is laid over the
// def files: any key of the three files may be set there once and wins; an
// unknown key, a duplicate or a bad value is an error naming node.dat and
// its line. An empty `node` is load_config(home).
Result<std::shared_ptr<const Config>> load_config(const std::filesystem::path& home, std::string_view node);

// The same, keeping every diagnostic apart (for `wizmail config check` and
// reload logging): `config` is null when any diagnostic is an error;
// `diagnostics` holds the errors and the warnings in file/line order.
struct ConfigLoad {
  std::shared_ptr<const Config> config;
  std::vector<ConfigDiagnostic> diagnostics;
  bool ok() const { return config != nullptr; }
};
ConfigLoad load_config_report(const std::filesystem::path& home, std::string_view node = {});

// Parse the three def files from text (pure: no file access). `texts` maps a
// file name ("smtpenv.dat", ...) to its contents; a missing name = missing
// file; "aliases.def" is def/aliases.def (checked against the local domains
// the other files give), "tls_policy.def" def/tls_policy.def. Used by load_config_report and by tests.
// With a `node`, a "node.dat" text is that node's overrides (see
// load_config(home, node)); without one it is ignored.
ConfigLoad parse_config_texts(const std::filesystem::path& home,
                              const std::vector<std::pair<std::string, std::string>>& texts,
                              std::string_view node = {});

// "smtpenv.dat", "popenv.dat", "wiz98msenv.dat" (they live in <home>/def/).
const std::vector<std::string>& def_file_names();

// Set one key of the home's def files (`wizmail config set`, the web
// console's configuration page). `key` is any file's key or a synonym;
// `value` "" removes the key's line, so its default applies again. The
// edited file with every other file is parsed first by the loader's own
// parser: a value that would not load is refused (Errc::invalid_argument,
// the loader's "file:line: key: message") and nothing is written. Every
// other line of the file (comments, order, line ends) is kept; the file is
// replaced atomically and durably. A running server applies it at its next
// reload. Edits in one process are serialised; two processes editing at
// once: the last write wins.
struct ConfigEdit {
  std::string key;   // the key's name (a synonym given becomes the name)
  std::string file;  // "smtpenv.dat", ...
  std::string value;
};
Result<ConfigEdit> set_config_value(const std::filesystem::path& home, std::string_view key, std::string_view value);

// Load a mailing list's ml.def (keys count, admin_mail_address, return_path,
// name; unknown or duplicate keys and a bad count are errors).
Result<MailingListSettings> load_ml_def(const std::filesystem::path& file);
// Write ml.def atomically.
Status save_ml_def(const std::filesystem::path& file, const MailingListSettings& ml);
// Increment `count` in ml.def atomically (under a lock file, crash-safe) and
// return the new value.
Result<std::int64_t> increment_ml_count(const std::filesystem::path& file);
// The same, with the new value from `next(current)` (under the lock; a
// value below the current one leaves the file as it is and is returned as
// given): a cluster takes the number from its shared state, seeded by the
// file (docs/cluster.md).
Result<std::int64_t> increment_ml_count(const std::filesystem::path& file,
                                        const std::function<Result<std::int64_t>(std::int64_t)>& next);

// Dangerous combinations and other advice (`wizmail config check`). Errors are
// combinations that cannot work or make an open relay reachable from outside
// (e.g. colliding ports, a TLS port without a certificate, relay=1 on a
// non-loopback address); warnings are risky but legal. It reads the TLS files
// (existence/readability) and nothing else.
std::vector<ConfigDiagnostic> check_config(const Config& config);

// `wizmail config show`: every key, its effective value and its file.
std::string show_config(const Config& config);
std::string show_config_json(const Config& config);

// The contents `wizmail setup` writes: every key, a comment, safe values,
// with the given ports (0 = the key's default).
// `file_name` is "smtpenv.dat", "popenv.dat" or "wiz98msenv.dat" ("def/" prefix
// allowed); an unknown name gives an empty string.
std::string default_def_file(std::string_view file_name, int smtp_port = 0, int pop_port = 0);

// The same with more choices for `wizmail setup`.
struct DefFileOptions {
  int smtp_port = 0;                       // 0 = the key's default
  int pop_port = 0;                        // 0 = the key's default
  std::vector<std::string> bind_address;   // written to smtpenv.dat bind_address; empty = all
  std::string domain;                      // written to wiz98msenv.dat domain; empty = default
};
std::string default_def_file(std::string_view file_name, const DefFileOptions& options);

// The configuration reference (docs/configuration.md) generated from the table.
std::string config_reference_markdown();

}  // namespace wizmail
