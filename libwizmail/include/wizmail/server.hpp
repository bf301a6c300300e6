// The mail server, embeddable (SPEC §12): SMTP (and POP3 once its connection
// is registered) on standalone Asio, with logs, limits, graceful stop, reload
// and in-process delivery callbacks.
//
//   asio::io_context io;
//   auto server = wizmail::Server::create(io, home);       // loads the config
//   if (!server) { print(server.error().message); return 1; }
//   (*server)->add_delivery_callback([](const wizmail::Delivery& d) { ... });
//   if (auto st = (*server)->start(); !st) { ...port in use...; }
//   io.run();                          // any number of threads
//   ... (*server)->stop();             // from any thread; io.run() returns
//                                      // once every session has ended
//
// `wizmail::run_server()` is the whole daemon: it owns the io_context, runs a
// worker per core, handles SIGTERM/SIGINT (graceful stop), SIGHUP (reload),
// the pid file and start-up cleaning.
#pragma once

#include <asio/io_context.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "wizmail/config.hpp"
#include "wizmail/error.hpp"

namespace wizmail {

class PopLoginTable;

// local_submit: the trusted local socket var/run/submit.sock (wizmail-sendmail).
enum class Protocol { smtp, submission, smtps, pop3, pop3s, local_submit };
std::string_view to_string(Protocol p) noexcept;

// A reply an embedder's callback gives a client (RecipientDecision::reject,
// DeliveryDecision::reject). The server checks it before it is sent: a code
// outside 400–599 becomes 451 4.3.0 (and is logged as the callback's error);
// an enhanced code (RFC 3463) that is malformed or of another class than the
// code becomes X.7.1 of the code's class; the text is cut to one line of at
// most 200 printable ASCII characters (others become '?').
struct Refusal {
  int code = 550;        // 4xx: temporary, the client retries; 5xx: permanent
  std::string enhanced;  // e.g. "5.7.1"; empty = "5.7.1" or "4.7.1"
  std::string text;      // e.g. "mailbox disabled"; empty = a generic text
};

// The server's logs (SPEC §10) as records: which file the line belongs to and
// its fields, as the files show them (docs/embedding.md). There is no level:
// `error` is the facility of errors and refused or suspicious access.
enum class LogFacility { smtp, pop, error, server };
std::string_view to_string(LogFacility f) noexcept;  // "smtp", "pop", "error", "server"

struct LogRecord {
  std::chrono::system_clock::time_point time;  // when it was logged
  LogFacility facility = LogFacility::server;
  std::string session;  // session id; "" for server-wide lines
  std::string peer;     // "ip:port", "local"; "" when none
  std::string account;  // the session's account; "" when none
  // One line, no line end; control characters and bytes >= 0x7F are shown
  // as \xHH, as in the files (a client cannot forge lines).
  std::string text;
};

// Called on the server's log thread only, one record at a time in the order
// they were logged, never on an I/O or commit thread (those only queue the
// record): a slow sink delays no session, but lines past the log buffer's
// bound are dropped (then a server record says how many). Lines logged before
// start() started that thread reach the sink on the thread that logs them,
// still one at a time. Every line up to the server's "stopped" has reached
// the sink before stop()'s `done` runs; the sink must stay callable until
// the Server is destroyed. An exception from the sink is swallowed.
using LogSink = std::function<void(const LogRecord&)>;

// The embedder's user directory, asked at each RCPT (docs/embedding.md).
struct RecipientQuery {
  // The recipient as the client gave it without <>; the domain in ASCII
  // (IDNA A-labels) and lower case when it is a local domain.
  std::string address;
  std::string sender;     // MAIL FROM, "" = <>
  std::string client_ip;  // numeric; "127.0.0.1" on the local submit socket
  std::string auth_user;  // the authenticated account; "" when none
  std::string helo;
  Protocol protocol = Protocol::smtp;  // smtp, submission, smtps or local_submit
};

struct RecipientDecision {
  enum class Action {
    defer,   // the built-in rules decide: aliases, accounts, relaying
    accept,  // a local recipient: its copy goes into `account`
    reject,  // refuse the RCPT with `reply`
  };
  Action action = Action::defer;
  // accept: an existing account (of any local or other domain's address);
  // its config.def reject lists, quota and hooks apply as to its own
  // address, and the copy's Delivered-To is `address`. An account that
  // does not exist refuses the RCPT with 451 4.3.0 (logged).
  std::string account;
  Refusal reply;

  static RecipientDecision defer() { return {}; }
  static RecipientDecision accept(std::string account) { return {Action::accept, std::move(account), {}}; }
  static RecipientDecision reject(int code, std::string enhanced, std::string text) {
    return {Action::reject, {}, {code, std::move(enhanced), std::move(text)}};
  }
};

// Runs with the session's other policy look-ups (account, config.def,
// quota) on the server's blocking pool while the session waits — or on the
// session's own I/O thread when it is alone there — so a slow answer stalls
// that session only; from several threads at once. It should still answer
// within a second or two (the client waits for its RCPT reply; a network
// round trip needs its own short timeout). Called for every RCPT that passed
// the syntax and max_recipients checks, before aliases, accounts and
// relaying. An exception refuses the RCPT with 451 4.3.0.
using RecipientCallback = std::function<RecipientDecision(const RecipientQuery&)>;

struct ServerOptions {
  bool log_to_stderr = false;  // foreground daemon: also copy logs to stderr
  // Every log line also goes to this sink (see LogSink for the thread).
  LogSink log_sink;
  // Write var/log/{smtp,pop,error,server}.log; false: only the sink (and
  // stderr) get the lines, and var/log/ is not touched.
  bool log_files = true;
  // The embedder's user directory at RCPT (see RecipientCallback); empty:
  // the built-in rules alone.
  RecipientCallback recipient_callback;
  // Bind every enabled listener to an ephemeral port instead of the
  // configured one (tests); see Server::endpoints().
  bool ephemeral_ports = false;
  // Commit pipeline: fsync each file and folder, or one syncfs() per phase.
  // A Config with a node (a shared home, docs/cluster.md) forces false, and
  // commit_journal false, in create().
  bool use_syncfs = false;
  // Commit small local-only messages through the delivery journal
  // var/journal/delivery (one flush per batch, libwizmail/src/store/delivery_journal.hpp);
  // false: always sync each file and its new/ folder before the reply.
  bool commit_journal = true;
  // Host name in the banner, EHLO and Received:; empty = `domain`.
  std::string hostname;
  // Open var/run/control.sock (admin commands, docs/control.md) and
  // var/run/submit.sock (wizmail-sendmail) in start(); the daemon does.
  bool local_sockets = false;
  // Outbound queue runner (wizmail/relay.hpp, docs/outbound.md): deliver
  // resendmail/ to remote hosts. Off by default in-process (tests must not
  // reach DNS); run_server() and embedders that relay turn it on. The
  // durations override resend_scan_interval (scan and first retry) and
  // resend_timeout for tests (0 = the configuration's).
  bool relay = false;
  // Session threads owned by the server: 0 runs every session on the
  // io_context given to create() (by however many threads run it); N > 0
  // starts N threads in start(), each with an io_context of its own, and
  // puts each TCP session on the least busy one for its whole life (the
  // acceptors run on the first). The given io_context then carries only the
  // control and submit sockets, metrics, signals and stop; run_server() does
  // this with one session thread per core.
  unsigned io_threads = 0;
  std::chrono::milliseconds relay_scan_interval{0};
  std::chrono::milliseconds relay_give_up_after{0};
  // POP-before-SMTP logins (wizmail/pop_before_smtp.hpp): null = a table in
  // this process's memory, or in Redis with `redis_url` (docs/cluster.md),
  // seeded from the `ip` files in start(); a table given here (shared by
  // several nodes) is used instead and seeded the same way.
  std::shared_ptr<PopLoginTable> pop_logins;
  // Called by start() as soon as the listening ports and the metrics
  // endpoint are bound, before anything touches the store (queue and
  // journal recovery), starts a hook or accepts a client: where a daemon
  // started as root becomes run_as_user (run_server() does), so that no
  // session, recovered message or hook ever runs as root. An error fails
  // start().
  std::function<Status()> after_bind;
};

// A live session, as `wizmail sessions` shows it (Server::sessions()).
struct SessionInfo {
  std::uint64_t id = 0;
  Protocol protocol = Protocol::smtp;
  std::string peer;     // "ip:port"; "local" for the submit socket
  std::string account;  // authenticated account, "" before
  std::string state;    // the protocol state, e.g. "ready", "data", "transaction"
  std::string command;  // the last command line (secrets masked)
  std::chrono::seconds age{0};
};

// A background worker (queue runner, hook runner): Server::register_worker().
struct WorkerInfo {
  std::string name;
  std::string state;
  std::chrono::seconds since{0};  // time in this state
};

// Keeps a worker listed in Server::workers() while it (or a copy) lives.
class WorkerHandle {
 public:
  WorkerHandle() = default;
  struct Slot;
  explicit WorkerHandle(std::shared_ptr<Slot> slot) : slot_(std::move(slot)) {}
  // What the worker does now ("idle", "sending 3 messages"); any thread.
  void set_state(std::string state);
  explicit operator bool() const noexcept { return slot_ != nullptr; }

 private:
  friend class Server;
  std::shared_ptr<Slot> slot_;
};

struct ServerStats {
  std::uint64_t sessions_smtp = 0;  // open now (all SMTP listeners)
  std::uint64_t sessions_pop3 = 0;  // open now
  std::uint64_t sessions_total = 0;  // accepted since start
  std::uint64_t refused_busy = 0;    // 421 for the multiprocessing cap
  std::uint64_t messages_received = 0;   // 250 to DATA
  std::uint64_t messages_delivered = 0;  // local copies made durable
  std::uint64_t messages_relayed = 0;    // queue entries made durable
  std::uint64_t commit_batches = 0;      // group-commit rounds
  std::uint64_t messages_bounced = 0;    // delivery error notices (DSNs) generated
  std::uint64_t auth_failures_smtp = 0;  // failed SMTP AUTH attempts
  std::uint64_t auth_failures_pop3 = 0;  // failed POP3 USER/PASS and APOP logins
  std::uint64_t smtp_relay_denied = 0;   // RCPTs refused by the relay rules (554 5.7.1)
  std::uint64_t smtp_dnsbl_rejected = 0;  // RCPTs refused because dnsbl_sites list the client
  std::uint64_t smtp_refusals_permanent = 0;  // SMTP commands refused with 5xx
  std::uint64_t smtp_refusals_temporary = 0;  // SMTP commands refused with 4xx
  std::uint64_t hook_runs = 0;           // exec*.def / forward / reply hooks started
  std::uint64_t hook_failures = 0;       // hooks that failed (exit status, timeout, spawn error)
};

// In-process delivery callback (SPEC §8): called once per local recipient of
// each message, before the message is made visible in the mailbox, where
// the message is committed: a commit thread, or (io_threads > 0) the thread
// of a session alone on it, whose commit waits for it anyway. It may block
// briefly, never for long.
struct Delivery {
  std::string sender;                      // envelope sender ("" = <>)
  std::vector<std::string> recipients;     // every envelope recipient
  std::string recipient;                   // this copy's recipient address
  std::string account;                     // this copy's account
  std::filesystem::path mailbox;           // the account's folder
  std::filesystem::path message_file;      // the staged message (read-only)
  std::vector<std::pair<std::string, std::string>> headers;  // unfolded, in order
  std::string client_ip;
  std::string auth_user;
};

struct DeliveryDecision {
  enum class Action {
    accept,    // deliver as is
    rewrite,   // deliver `content` (a whole RFC 5322 message, CRLF) instead
    redirect,  // deliver into account `target` instead of this one
    discard,   // drop this copy (the client still gets 250)
    // Refuse this recipient with `reply`. The client gets one reply to DATA
    // for the whole message (RFC 5321), so (docs/embedding.md):
    // - a 4xx refusal refuses the whole message with it: no copy is kept
    //   and the client retries every recipient later;
    // - when every recipient is refused with 5xx, the message is refused
    //   with the first refusal (nothing delivered);
    // - a 5xx refusal among accepted recipients: the message is accepted
    //   (250) for the others, and the sender gets a failure notice (RFC 3464
    //   DSN, headers returned; never to <>, honouring NOTIFY) for the
    //   refused ones — as for any failure after the message was accepted.
    // A refusal per recipient before DATA is ServerOptions::recipient_callback.
    reject,
  };
  Action action = Action::accept;
  std::string content;  // rewrite
  std::string target;   // redirect: an existing account name
  Refusal reply{};    // reject

  static DeliveryDecision accept() { return {}; }
  static DeliveryDecision discard() { return {Action::discard, {}, {}, {}}; }
  static DeliveryDecision rewrite(std::string c) { return {Action::rewrite, std::move(c), {}, {}}; }
  static DeliveryDecision redirect(std::string account) {
    return {Action::redirect, {}, std::move(account), {}};
  }
  static DeliveryDecision reject(int code, std::string enhanced, std::string text) {
    return {Action::reject, {}, {}, {code, std::move(enhanced), std::move(text)}};
  }
};

using DeliveryCallback = std::function<DeliveryDecision(const Delivery&)>;
using CallbackId = std::uint64_t;

class Server {
 public:
  // Load the home's configuration (errors: every config error, one a line).
  static Result<std::unique_ptr<Server>> create(asio::io_context& io,
                                                const std::filesystem::path& home,
                                                ServerOptions options = {});
  // Use a ready snapshot (tests, embedders that build their own Config).
  static Result<std::unique_ptr<Server>> create(asio::io_context& io,
                                                std::shared_ptr<const Config> config,
                                                ServerOptions options = {});
  // Destroy a started Server only after stop()'s `done` ran (sessions hold
  // references to it until then) or after the io_context stopped running.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Open logs, recover the queue and clean tmp/ leftovers, bind every
  // listener (all or nothing: e.g. Errc::busy for a port in use), accept.
  Status start();

  // Graceful stop, from any thread: stop accepting; idle sessions get 421 and
  // are closed; sessions inside a transaction may finish it, up to `grace`
  // (default: time_out_of_stop), then are closed. `done` runs (on the
  // io_context) once every session has ended. Idempotent.
  void stop(std::function<void()> done = {});
  void stop(std::chrono::milliseconds grace, std::function<void()> done = {});
  bool stopped() const noexcept;

  // Reload the def files. A bad configuration keeps the running snapshot and
  // returns (and logs) why. New sessions use the new snapshot; listeners are
  // not re-bound (a port change needs a restart, and is logged as such).
  Status reload();

  std::shared_ptr<const Config> config() const;
  ServerStats stats() const;

  struct Endpoint {
    Protocol protocol;
    std::string address;
    std::uint16_t port;
  };
  // What start() bound (the real port when ephemeral_ports).
  std::vector<Endpoint> endpoints() const;
  // Port of the first listener of `p`, 0 when there is none.
  std::uint16_t port(Protocol p) const;
  // Port of the Prometheus endpoint (metrics_port), 0 when it is off.
  std::uint16_t metrics_port() const;
  // Port of the web console (admin_port), 0 when it is off.
  std::uint16_t admin_port() const;

  CallbackId add_delivery_callback(DeliveryCallback cb);
  void remove_delivery_callback(CallbackId id);

  // Live sessions (any thread; each a snapshot taken without blocking it).
  std::vector<SessionInfo> sessions() const;
  std::vector<WorkerInfo> workers() const;
  WorkerHandle register_worker(std::string name, std::string state = "idle");
  // Who carries out a stop asked for on the control socket (run_server
  // installs its own); by default stop() with time_out_of_stop, or 0 when
  // forced.
  void set_stop_handler(std::function<void(bool force)> handler);
  // Retry every entry of the outbound queue now (`wizmail queue flush`,
  // SIGUSR1 to the daemon). Errc::unavailable when no runner runs.
  Status flush_queue();

  struct Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The daemon (wizmail-server): run in the foreground until SIGTERM/SIGINT.
// Writes var/run/wizmail.pid, logs to stderr too, SIGHUP reloads. Returns the
// process exit code (0 after a graceful stop; non-zero when the configuration
// is bad or a port cannot be bound — the reasons are printed on stderr).
// `threads` = 0: one session thread per core (ServerOptions::io_threads).
int run_server(const std::filesystem::path& home, unsigned threads = 0, bool use_syncfs = false);

struct RunOptions {
  unsigned threads = 0;     // session threads; 0: one per core
  bool use_syncfs = false;
  // `wizmail start`: once listening (and after dropping to run_as_user),
  // write "ok\n" to this descriptor, or "error: <reason>\n" when start-up
  // fails, then close it. -1: none.
  int ready_fd = -1;
  // A node of a shared home (docs/cluster.md): load_config(home, node),
  // the node's log/ and run/ under nodes/<node>/, its heartbeat, and each
  // file and folder fsynced (no syncfs, no delivery journal). Empty: the
  // home's only server.
  std::string node;
};
// The same daemon; also opens var/run/control.sock and var/run/submit.sock
// (nodes/<node>/run/ with RunOptions::node)
// (docs/control.md) and, started as root with run_as_user set, drops to
// that user once the ports are bound.
int run_server(const std::filesystem::path& home, const RunOptions& options);

}  // namespace wizmail
