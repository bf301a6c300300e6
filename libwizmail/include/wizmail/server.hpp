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

enum class Protocol { smtp, submission, smtps, pop3, pop3s };
std::string_view to_string(Protocol p) noexcept;

struct ServerOptions {
  bool log_to_stderr = false;  // foreground daemon: also copy logs to stderr
  // Bind every enabled listener to an ephemeral port instead of the
  // configured one (tests); see Server::endpoints().
  bool ephemeral_ports = false;
  // Commit pipeline: fsync each file and folder, or one syncfs() per phase.
  bool use_syncfs = false;
  // Host name in the banner, EHLO and Received:; empty = `domain`.
  std::string hostname;
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
};

// In-process delivery callback (SPEC §8): called once per local recipient of
// each message, before the message is made visible in the mailbox, on the
// commit thread (not an I/O thread; it may block briefly, never for long).
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
  };
  Action action = Action::accept;
  std::string content;  // rewrite
  std::string target;   // redirect: an existing account name

  static DeliveryDecision accept() { return {}; }
  static DeliveryDecision discard() { return {Action::discard, {}, {}}; }
  static DeliveryDecision rewrite(std::string c) { return {Action::rewrite, std::move(c), {}}; }
  static DeliveryDecision redirect(std::string account) {
    return {Action::redirect, {}, std::move(account)};
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

  CallbackId add_delivery_callback(DeliveryCallback cb);
  void remove_delivery_callback(CallbackId id);

  struct Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The daemon (wizmail-server): run in the foreground until SIGTERM/SIGINT.
// Writes var/run/wizmail.pid, logs to stderr too, SIGHUP reloads. Returns the
// process exit code (0 after a graceful stop; non-zero when the configuration
// is bad or a port cannot be bound — the reasons are printed on stderr).
// `threads` = 0: one worker per core.
int run_server(const std::filesystem::path& home, unsigned threads = 0, bool use_syncfs = false);

}  // namespace wizmail
