// Private: the state a Server shares with its connections.
#pragma once

#include <asio/io_context.hpp>
#include <asio/thread_pool.hpp>
#include <asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <asio/executor_work_guard.hpp>

#include <map>
#include <optional>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "net/address.hpp"
#include "auth/penalty.hpp"
#include "net/greet_cache.hpp"
#include "net/client_connections.hpp"
#include "net/listener.hpp"
#include "net/tls.hpp"
#include "ops/metrics.hpp"
#include "agent/local_agent.hpp"
#include "server/commit_pipeline.hpp"
#include "server/connection_registry.hpp"
#include "server/free_space.hpp"
#include "server/io_pool.hpp"
#include "server/log.hpp"
#include "server/live.hpp"
#include "server/local_sockets.hpp"
#include "wizmail/account_store.hpp"
#include "wizmail/outbound.hpp"
#include "wizmail/pop_before_smtp.hpp"
#include "wizmail/relay.hpp"
#include "wizmail/server.hpp"

namespace wizmail::server {

// Everything derived from one Config snapshot; swapped whole on reload.
struct Runtime {
  std::shared_ptr<const Config> config;
  net::CidrList exempt;
  net::CidrList greet_exempt;  // greet_wait_exempt and address_permits_relay
  net::TlsContextPtr tls;  // null when TLS is not configured
  std::vector<std::string> local_domains;
  std::filesystem::path mailbox_dir;
  std::string hostname;
};

// The auth penalty's limits from the configuration (smtpenv, shared by POP3).
inline auth::AuthPolicy auth_policy(const SmtpSettings& s) {
  return {.max_concurrent = s.auth_concurrency_limit,
          .block_failures = s.auth_block_failures,
          .block_time = std::chrono::seconds(s.auth_block_time)};
}

Result<std::shared_ptr<const Runtime>> make_runtime(std::shared_ptr<const Config> config,
                                                    const ServerOptions& opt);

// send_max_during_a_day: messages relayed per account per (local) day,
// persisted in var/sendcount/<account> ("YYYY-MM-DD count"). Callers pass
// existing accounts only (the SMTP Environment checks); the map holds the
// current day's entries only.
class SendCounters {
 public:
  explicit SendCounters(std::filesystem::path dir) : dir_(std::move(dir)) {}
  std::int64_t today(std::string_view account);
  void record(std::string_view account);

 private:
  struct Entry {
    std::string day;
    std::int64_t count = 0;
  };
  Entry& load(const std::string& account, const std::string& day);
  std::filesystem::path dir_;
  std::mutex mu_;
  std::string day_;  // the day map_ holds; entries of earlier days are dropped
  std::unordered_map<std::string, Entry> map_;
};

}  // namespace wizmail::server

namespace wizmail {

struct Server::Impl {
  Impl(asio::io_context& io, ServerOptions opt, std::shared_ptr<const server::Runtime> rt);

  asio::io_context& io;
  ServerOptions opt;

  mutable std::mutex rt_mu;
  std::shared_ptr<const server::Runtime> rt;
  std::shared_ptr<const server::Runtime> runtime() const {
    std::lock_guard lk(rt_mu);
    return rt;
  }

  server::Logger logger;
  server::PipelineStats pstats;
  std::unique_ptr<server::CommitPipeline> pipeline;
  // Lists, exec/forward/reply hooks (src/agent/); stopped after the pipeline.
  std::unique_ptr<agent::LocalAgent> agent;
  // Session threads (opt.io_threads > 0); the listener accepts on its first
  // context. ~Server stops its threads first and destroys it last (after
  // the commit pipeline), so no session outlives the rest of the Impl.
  std::unique_ptr<server::IoPool> io_pool;
  // Session work that may wait for the disk — a POP3 login (lock, new/ →
  // cur/) and QUIT's update — runs here, not on a session thread, so the
  // other sessions of that thread do not wait with it. From start().
  std::unique_ptr<asio::thread_pool> blocking;
  net::Listener listener;
  server::SendCounters send_counters;
  // POP3 logins for POP-before-SMTP (opt.pop_logins, else in memory).
  std::shared_ptr<PopLoginTable> pop_logins;
  // Free space of the mailbox and queue file systems (queue_minfree).
  server::FreeSpace free_space;
  // Failed SMTP AUTH and POP3 logins per client network (both protocols).
  auth::AuthPenalty auth_penalty;
  // Clients that waited for the greeting on port 25 (greet_pass_ttl).
  net::GreetCache greet_cache;
  // SMTP and POP3 connections per client network (client_connection_limit).
  net::ClientConnections client_connections;

  std::atomic<std::uint64_t> sessions_smtp{0}, sessions_pop3{0}, sessions_total{0},
      refused_busy{0}, messages_received{0};
  std::atomic<int> capped{0};  // sessions counted against `multiprocessing`
  // Counters for ServerStats and the metrics endpoint: the outbound relay
  // adds bounces, the hook runner hook runs/failures, the SMTP and POP3
  // connections auth failures.
  std::atomic<std::uint64_t> messages_bounced{0}, auth_failures_smtp{0}, auth_failures_pop3{0},
      hook_runs{0}, hook_failures{0};

  // Every live SMTP and POP3 session, and the stop's state.
  server::ConnectionRegistry connections;
  bool started = false;
  // Keeps io.run() going until every session has wound down (set and
  // reset under the registry's lock, by stop_all and finish_stop).
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> stop_guard;
  // With session threads the given io_context may have nothing of its own
  // to wait for: this keeps its run() going from start() until the stop
  // has finished, as without them.
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> serve_guard;
  std::vector<std::function<void()>> stop_done;  // under the registry's lock

  std::mutex cb_mu;
  CallbackId next_cb = 0;
  std::shared_ptr<const server::CallbackList> callbacks = std::make_shared<server::CallbackList>();

  // Control and submit sockets (opt.local_sockets), background workers,
  // and who carries out a control-socket stop (server/local_sockets.cpp).
  Server* owner = nullptr;
  std::unique_ptr<server::LocalSockets> local_sockets;
  server::WorkerRegistry workers;
  // The server's own workers, listed while they run (state refreshed by
  // Server::workers() from their live figures).
  WorkerHandle relay_worker, agent_worker;
  std::mutex stop_handler_mu;
  std::function<void(bool force)> stop_handler;

  // The outbound queue runner (src/outbound/), on its own thread; a stop
  // finishes only once it has wound down (relay_running false).
  std::unique_ptr<Relay> relay;
  std::atomic<bool> relay_running{false};

  // The Prometheus endpoint (metrics_port > 0; src/ops/); declared last so
  // it is closed first when the Impl goes.
  std::unique_ptr<ops::MetricsServer> metrics;

  // For the SMTP environments (TCP sessions and the submit socket): today's
  // relayed messages of an account (0 for a name that is no account), and
  // one message it sent (smtp::Environment::record_send).
  Result<std::int64_t> sends_today(const AccountStore& store, std::string_view account);
  Status record_send(const AccountStore& store, std::string_view account, bool relayed);

  void accept(asio::ip::tcp::socket s, int tag);
  // The executor a new TCP session runs on for its whole life, and its
  // place in the pool (counted while the session's coroutine lives).
  std::pair<asio::any_io_executor, server::IoPool::Lease> place_session();
  // The accepted socket on `ex`: as it is when it already lives there (a
  // session on the accepting thread), else re-registered with ex's reactor.
  // nullopt (logged) when that fails; the socket is then closed.
  std::optional<asio::ip::tcp::socket> adopt(asio::ip::tcp::socket s, const asio::any_io_executor& ex);
  void unregister(std::uint64_t id);
  void maybe_finish_stop();
};

}  // namespace wizmail
