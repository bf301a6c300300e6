// Running the server as an administrator does (docs/operations.md):
// start in the background, stop, supervise, install as a systemd service,
// and notify every user. The commands `wizmail start|stop|supervise|service|
// notify` (and the manual's wmsstr, wmsstp, wmsresur, wmssvcsetup,
// wmssvcunsetup, wmsntu) are thin wrappers around these.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "wizmail/config.hpp"
#include "wizmail/error.hpp"

namespace wizmail::daemon {

// The wizmail-server executable: `explicit_path` when given, else
// $WIZMAIL_SERVER, else next to the running program (also the build tree's
// ../wizmail-server/), else "wizmail-server" looked up in $PATH.
std::filesystem::path server_program(const std::filesystem::path& explicit_path = {});

struct StartOptions {
  std::filesystem::path program;  // see server_program()
  unsigned threads = 0;
  std::string sync;  // "", "fsync" or "syncfs": passed as --sync
  std::string node;  // "": the home's only server; else passed as --node (docs/cluster.md)
  // How long to wait for the listeners (start-up recovery may take a while).
  std::chrono::seconds timeout{60};
};

struct Started {
  pid_t pid = 0;
  bool removed_stale_pid_file = false;
};

// Daemonise wizmail-server (fork, setsid, fork, stdio to /dev/null, logs in
// var/log) and wait until it reports that every listener is up. Errors:
// Errc::already_exists when a server already runs for `home`; otherwise the
// server's own reason (port in use, bad configuration, ...).
Result<Started> start(const std::filesystem::path& home, const StartOptions& options = {});

struct Stopped {
  pid_t pid = 0;
  bool via_control = false;    // asked over control.sock (else SIGTERM)
  bool was_running = true;     // false: nothing ran
  bool removed_stale_pid_file = false;
};

// Ask the server to stop and wait until its process is gone. A normal stop
// lets sessions finish for up to time_out_of_stop; `force` closes them at
// once (mail already accepted is never lost: the commit pipeline finishes).
// `wait` bounds the whole wait (default: time_out_of_stop + 30 s).
// Not running: ok with was_running = false (a stale pid file is removed).
// Errc::temporary when the process outlives `wait`.
// `node`: that node of a shared home (its nodes/<node>/run/).
Result<Stopped> stop(const std::filesystem::path& home, bool force,
                     std::chrono::seconds wait = std::chrono::seconds(0), std::string_view node = {});

struct SuperviseOptions {
  std::chrono::seconds interval{60};  // check period
  StartOptions start;
  // Crash loop: while each started server is down again at the next check,
  // the wait doubles, up to max_backoff; a server seen up resets it.
  std::chrono::seconds max_backoff{3600};
  // Checked between waits; return false to end (signals, tests).
  std::function<bool()> keep_going;
  // Where each restart is logged (default: var/log/supervise.log; with
  // start.node, nodes/<node>/log/supervise.log).
  std::filesystem::path log_file;
};

// Run until keep_going() says no: check the server every `interval` and
// start it when it does not run. Returns the number of starts attempted.
int supervise(const std::filesystem::path& home, const SuperviseOptions& options);

// ---- systemd
struct UnitOptions {
  std::filesystem::path home;
  std::filesystem::path program;  // absolute path of wizmail-server
  std::string user;               // User=; empty: start as root (run_as_user applies)
  int time_out_of_stop = 60;
  // Besides the home, what the server writes (writable_paths()): listed in
  // ReadWritePaths=, as ProtectSystem=strict makes everything else read-only.
  std::vector<std::filesystem::path> writable;
};
// The folders outside the home that the server of `config` writes:
// mailbox_path and dustbox_path (and where they lead when they, or the
// home's own mailbox/ and dustbox/, are symbolic links elsewhere). Absolute,
// normalised, each once, none inside the home or another one.
std::vector<std::filesystem::path> writable_paths(const Config& config);
// UnitOptions for `config`'s home: time_out_of_stop and writable_paths().
UnitOptions unit_options(const Config& config);
// The unit text. Errc::invalid_argument for paths systemd cannot take.
Result<std::string> systemd_unit(const UnitOptions& options);
// When `unit_dir` (default /etc/systemd/system) holds a wizmail.service for
// the home of `options` whose ReadWritePaths= is not what systemd_unit()
// writes now (e.g. mailbox_path changed since `service install`): a
// sentence saying so and what to run. Nothing when there is no unit for
// this home or it is current.
std::optional<std::string> stale_unit(const UnitOptions& options, const std::filesystem::path& unit_dir);
// Everything `wizmail config check` reports, in its order: the home's load
// diagnostics (load_config_report), then, when it loads, check_config's and
// a stale unit (stale_unit(), as a warning about no file). The web console's
// config check is the same list.
// `node`: that node of a shared home (its node.dat applied, docs/cluster.md).
std::vector<ConfigDiagnostic> config_check(const std::filesystem::path& home, const std::filesystem::path& unit_dir,
                                           std::string_view node = {});
std::string unit_name();  // "wizmail.service"
// Write (0644, atomically) into `unit_dir` (default /etc/systemd/system);
// then `systemctl daemon-reload` and `enable` when systemd runs and
// `unit_dir` is the system directory.
struct ServiceResult {
  std::filesystem::path unit_file;
  bool systemctl_ran = false;
};
Result<ServiceResult> install_service(const UnitOptions& options, const std::filesystem::path& unit_dir);
Result<ServiceResult> uninstall_service(const std::filesystem::path& unit_dir);
bool systemd_running();

// ---- admin commands run as root
// What an admin command creates in a home must belong to the user the
// server runs as, or the server cannot use it (a root-owned 0700 account
// folder, a root-owned 0600 notice). So a command run as root on a home
// with `run_as_user` set becomes that user first, as the server does at
// start: the home and the mailbox folder must already belong to it (else
// Errc::permission_denied naming the chown to run), root-owned leftovers
// in var/, resendmail/, deadmail/ are handed over, then setgroups/setgid/
// setuid. Nothing to do when not root or run_as_user is empty.
Status become_server_user(const Config& config);

// ---- notify (wmsntu)
struct NotifyResult {
  std::vector<std::string> delivered;  // accounts
  std::vector<std::string> skipped;    // notifi, postmaster, mailing lists
  std::vector<std::pair<std::string, std::string>> failed;  // account, reason
};
// Store the notice (a subject-and-body file's content: line 1 the subject,
// the rest the body, UTF-8) in every ordinary account's mailbox, from
// notifi@<domain>, without hooks and without the server.
Result<NotifyResult> notify(const Config& config, std::string_view subject_and_body);

}  // namespace wizmail::daemon
