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
#include "dnsbl/dnsbl.hpp"
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
#include "server/session_services.hpp"
#include "server/log.hpp"
#include "server/live.hpp"
#include "server/local_sockets.hpp"
#include "server/console_http.hpp"
#include "server/cluster_takeover.hpp"
#include "server/node_heartbeat.hpp"
#include "state/lease_keeper.hpp"
#include "wizmail/account_store.hpp"
#include "wizmail/relay.hpp"
#include "wizmail/pop_before_smtp.hpp"
#include "wizmail/queue.hpp"
#include "wizmail/server.hpp"

namespace wizmail::server {

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
  // Leases in the cluster's shared state (redis_url; docs/cluster.md): the
  // POP3 mailbox leases across nodes. Null without redis_url. From start().
  std::unique_ptr<state::LeaseKeeper> leases;
  // The cluster's shared state itself (the leases' store; the penalty, the
  // send counters, the POP-before-SMTP table and the agent use it too).
  std::shared_ptr<state::SharedState> shared;
  // POP3 logins for POP-before-SMTP (opt.pop_logins, else in memory).
  std::shared_ptr<PopLoginTable> pop_logins;
  // Free space of the mailbox and queue file systems (queue_minfree).
  server::FreeSpace free_space;
  // Failed SMTP AUTH and POP3 logins per client network (both protocols).
  auth::AuthPenalty auth_penalty;
  // Clients that waited for the greeting on port 25 (greet_pass_ttl).
  net::GreetCache greet_cache;
  // DNS block list answers per (client address, zone), for their TTL.
  dnsbl::Cache dnsbl_cache;
  // SMTP and POP3 connections per client network (client_connection_limit).
  net::ClientConnections client_connections;

  // What the sessions count (ServerStats, the metrics endpoint).
  server::SessionCounters counters;
  // Counters of the outbound relay (bounces) and the hook runner.
  std::atomic<std::uint64_t> messages_bounced{0}, hook_runs{0}, hook_failures{0};

  // Every live SMTP and POP3 session, and the stop's state.
  server::ConnectionRegistry connections;
  // What the connections get of the server (not this Impl); pipeline and
  // blocking are set by start().
  server::SessionServices services;
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
  // A node of a shared home (Config::node): the takeover of dead nodes'
  // claims, run by its heartbeat (declared first: it outlives the
  // heartbeat's thread), from start() until ~Server (docs/cluster.md).
  // Null without a node.
  std::unique_ptr<server::ClusterTakeover> takeover;
  std::unique_ptr<server::NodeHeartbeat> heartbeat;

  // The Prometheus endpoint (metrics_port > 0; src/ops/); declared last so
  // it is closed first when the Impl goes.
  std::unique_ptr<ops::MetricsServer> metrics;
  // The web console (admin_port > 0; console_http.hpp), on its own threads.
  std::unique_ptr<server::ConsoleServer> console;


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
