// What a connection may use of its server. The server hands every SMTP and
// POP3 connection a SessionServices, never its Impl: the logs, the commit
// pipeline, the blocking pool, the shared limits (auth penalty, greeting
// cache, DNS block list cache, free space, daily send counts), the POP-before-SMTP logins, the
// session counters and the embedder's recipient callback. Everything named
// here outlives every connection (the server stops them first).
#pragma once

#include <asio/thread_pool.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "auth/penalty.hpp"
#include "dnsbl/dnsbl.hpp"
#include "mailauth/mailauth.hpp"
#include "net/address.hpp"
#include "net/client_connections.hpp"
#include "net/greet_cache.hpp"
#include "net/tls.hpp"
#include "server/connection_registry.hpp"
#include "server/free_space.hpp"
#include "server/log.hpp"
#include "server/send_counters.hpp"
#include "srs/srs.hpp"
#include "state/lease_keeper.hpp"
#include "wizmail/account_store.hpp"
#include "wizmail/config.hpp"
#include "wizmail/pop_before_smtp.hpp"
#include "wizmail/server.hpp"

namespace wizmail::server {

class CommitPipeline;

// Everything derived from one Config snapshot; swapped whole on reload.
struct Runtime {
  std::shared_ptr<const Config> config;
  net::CidrList exempt;
  net::CidrList greet_exempt;  // greet_wait_exempt and address_permits_relay
  net::TlsContextPtr tls;  // null when TLS is not configured
  std::vector<std::string> local_domains;
  std::filesystem::path mailbox_dir;
  std::string hostname;
  // SRS (smtpenv srs=1): the rewriter over def/srs.secret and the domain of
  // its addresses (srs_domain, else domain; lower-case ASCII). Null when off.
  std::shared_ptr<const srs::Rewriter> srs;
  std::string srs_domain;
  // Inbound mail authentication (docs/authentication.md): the clients not
  // checked (mail_auth_exempt and address_permits_relay), our authserv-id,
  // and the public suffix list (Debian's publicsuffix; empty when absent:
  // every name is then its own organisational domain).
  net::CidrList auth_exempt;
  std::string authserv_id;
  std::shared_ptr<const mailauth::PublicSuffixList> psl;
  // DNS block and allow lists (docs/dnsbl.md): the parsed dnsbl_sites
  // (empty: off) and the clients never looked up (dnsbl_exempt and
  // address_permits_relay).
  std::vector<dnsbl::Site> dnsbl_sites;
  net::CidrList dnsbl_exempt;
  // proxy_trusted_networks (docs/proxy-protocol.md): the load balancers
  // whose connections start with a PROXY protocol header. Empty: off.
  net::CidrList proxy_trusted;
};

// The auth penalty's limits from the configuration (smtpenv, shared by POP3).
inline auth::AuthPolicy auth_policy(const SmtpSettings& s) {
  return {.max_concurrent = s.auth_concurrency_limit,
          .block_failures = s.auth_block_failures,
          .block_time = std::chrono::seconds(s.auth_block_time)};
}

Result<std::shared_ptr<const Runtime>> make_runtime(std::shared_ptr<const Config> config,
                                                    const ServerOptions& opt);

// What the sessions count, for ServerStats and the metrics endpoint.
struct SessionCounters {
  std::atomic<std::uint64_t> sessions_smtp{0}, sessions_pop3{0}, sessions_total{0}, refused_busy{0},
      messages_received{0}, auth_failures_smtp{0}, auth_failures_pop3{0}, relay_denied{0}, dnsbl_rejected{0},
      refusals_permanent{0}, refusals_temporary{0};
  std::atomic<int> capped{0};  // sessions counted against `multiprocessing`
};

struct SessionServices {
  Logger& logger;
  SessionCounters& counters;
  ConnectionRegistry& connections;
  // Failed SMTP AUTH and POP3 logins per client network (both protocols).
  auth::AuthPenalty& auth_penalty;
  // Clients that waited for the greeting on port 25 (greet_pass_ttl).
  net::GreetCache& greet_cache;
  // SMTP and POP3 connections per client network (client_connection_limit):
  // a connection through a proxy is counted once its header named the client.
  net::ClientConnections& client_connections;
  // DNS block list answers per (client address, zone), for their TTL.
  dnsbl::Cache& dnsbl_cache;
  // Free space of the mailbox and queue file systems (queue_minfree).
  FreeSpace& free_space;
  // send_max_during_a_day.
  SendCounters& send_counters;
  const ServerOptions& options;
  // POP3 logins for POP-before-SMTP.
  std::shared_ptr<PopLoginTable> pop_logins;
  // From Server::start, before any connection.
  CommitPipeline* pipeline = nullptr;
  // POP3 mailbox leases across the nodes (redis_url); null: this node's
  // mailbox lock alone. From Server::start.
  state::LeaseKeeper* leases = nullptr;
  // Session work that may wait for the disk (a POP3 login and QUIT's
  // update); null: it runs on the session's thread.
  asio::thread_pool* blocking = nullptr;
  // Called by a connection's destructor, after it left the registry's
  // count (the server finishes a stop when the last one is gone).
  std::function<void(ConnectionRegistry::Id)> ended;
};

}  // namespace wizmail::server
