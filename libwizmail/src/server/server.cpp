#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <asio/post.hpp>
#include <asio/signal_set.hpp>
#include <asio/strand.hpp>
#include <asio/write.hpp>

#include <cstdio>
#include <ctime>
#include <iostream>
#include <thread>

#include "server/pop_login_shared.hpp"
#include "state/redis_state.hpp"
#include "server/server_impl.hpp"
#include "server/pop3_connection.hpp"
#include "server/smtp_connection.hpp"
#include "server/server_relay.hpp"
#include "server/session_connection.hpp"
#include "daemon/daemon_support.hpp"
#include "ops/server_metrics.hpp"
#include "srs/secret.hpp"
#include "util/idna.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"
#include "wizmail/mailbox.hpp"

namespace wizmail {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string_view to_string(Protocol p) noexcept {
  switch (p) {
    case Protocol::smtp: return "smtp";
    case Protocol::submission: return "submission";
    case Protocol::smtps: return "smtps";
    case Protocol::pop3: return "pop3";
    case Protocol::pop3s: return "pop3s";
    case Protocol::local_submit: return "submit";
  }
  return "smtp";
}

namespace server {

Result<std::shared_ptr<const Runtime>> make_runtime(std::shared_ptr<const Config> config,
                                                    const ServerOptions& opt) {
  auto rt = std::make_shared<Runtime>();
  auto exempt = net::CidrList::parse(config->smtp.multiprocessing_exempt);
  if (!exempt) return fail(Errc::invalid_argument, "multiprocessing_exempt: " + exempt.error().message);
  rt->exempt = std::move(*exempt);
  auto greet_exempt = config->smtp.greet_wait_exempt;
  greet_exempt.insert(greet_exempt.end(), config->smtp.address_permits_relay.begin(),
                      config->smtp.address_permits_relay.end());
  auto greet = net::CidrList::parse(greet_exempt);
  if (!greet) return fail(Errc::invalid_argument, "greet_wait_exempt: " + greet.error().message);
  rt->greet_exempt = std::move(*greet);
  auto auth_exempt = config->smtp.mail_auth_exempt;
  auth_exempt.insert(auth_exempt.end(), config->smtp.address_permits_relay.begin(),
                     config->smtp.address_permits_relay.end());
  auto auth = net::CidrList::parse(auth_exempt);
  if (!auth) return fail(Errc::invalid_argument, "mail_auth_exempt: " + auth.error().message);
  rt->auth_exempt = std::move(*auth);
  auto dnsbl_sites = dnsbl::parse_sites(config->smtp.dnsbl_sites);
  if (!dnsbl_sites) return fail(Errc::invalid_argument, "dnsbl_sites: " + dnsbl_sites.error().message);
  rt->dnsbl_sites = std::move(*dnsbl_sites);
  auto dnsbl_exempt = config->smtp.dnsbl_exempt;
  dnsbl_exempt.insert(dnsbl_exempt.end(), config->smtp.address_permits_relay.begin(),
                      config->smtp.address_permits_relay.end());
  auto dx = net::CidrList::parse(dnsbl_exempt);
  if (!dx) return fail(Errc::invalid_argument, "dnsbl_exempt: " + dx.error().message);
  rt->dnsbl_exempt = std::move(*dx);
  auto proxies = net::CidrList::parse(config->server.proxy_trusted_networks);
  if (!proxies) return fail(Errc::invalid_argument, "proxy_trusted_networks: " + proxies.error().message);
  rt->proxy_trusted = std::move(*proxies);
  if (config->smtp.dmarc_check) {
    auto psl = mailauth::PublicSuffixList::load("/usr/share/publicsuffix/public_suffix_list.dat");
    rt->psl = std::make_shared<const mailauth::PublicSuffixList>(psl ? std::move(*psl)
                                                                      : mailauth::PublicSuffixList{});
  }
  if (config->tls_configured()) {
    auto tls = net::make_server_tls_context(config->server.tls_cert_file, config->server.tls_key_file);
    if (!tls) return unexpected(tls.error());
    rt->tls = std::move(*tls);
  }
  rt->local_domains = config->local_domains();
  rt->mailbox_dir = config->mailbox_dir();
  rt->hostname = opt.hostname.empty() ? config->server.domain : opt.hostname;
  rt->authserv_id = config->smtp.authserv_id.empty() ? rt->hostname : config->smtp.authserv_id;
  if (config->smtp.srs) {
    auto secrets = srs::load_secrets(srs::secret_file(config->home));  // made on first use
    if (!secrets) return fail(secrets.error().code, "srs: " + secrets.error().message);
    srs::Options so;
    so.secrets = std::move(*secrets);
    so.max_age_days = config->smtp.srs_max_age;
    auto rewriter = srs::Rewriter::make(std::move(so));
    if (!rewriter) return unexpected(rewriter.error());
    rt->srs = std::make_shared<const srs::Rewriter>(std::move(*rewriter));
    const std::string& d = config->smtp.srs_domain.empty() ? config->server.domain : config->smtp.srs_domain;
    rt->srs_domain = util::domain_to_ascii(d).value_or(util::to_lower(d));
  }
  rt->config = std::move(config);
  return std::shared_ptr<const Runtime>(std::move(rt));
}

}  // namespace server

// ---------------------------------------------------------------------------

Server::Impl::Impl(asio::io_context& io_, ServerOptions o, std::shared_ptr<const server::Runtime> r)
    : io(io_), opt(std::move(o)), rt(std::move(r)),
      logger(rt->config->log_dir(), rt->config->server.log_size_max, opt.log_to_stderr, opt.log_files, opt.log_sink),
      io_pool(opt.io_threads > 0 ? std::make_unique<server::IoPool>(opt.io_threads) : nullptr),
      listener(io_pool ? io_pool->executor(0) : io_.get_executor()),
      send_counters(rt->config->home / "var" / "sendcount"),
      pop_logins(opt.pop_logins ? opt.pop_logins : make_memory_pop_login_table()),
      services{.logger = logger,
               .counters = counters,
               .connections = connections,
               .auth_penalty = auth_penalty,
               .greet_cache = greet_cache,
               .client_connections = client_connections,
               .dnsbl_cache = dnsbl_cache,
               .free_space = free_space,
               .send_counters = send_counters,
               .options = opt,
               .pop_logins = pop_logins,
               .ended = [this](server::ConnectionRegistry::Id id) { unregister(id); }} {}

void Server::Impl::accept(asio::ip::tcp::socket s, int tag) {
  auto protocol = static_cast<Protocol>(tag);
  auto r = runtime();
  std::error_code ec;
  auto peer = s.remote_endpoint(ec);
  if (ec) return;
  counters.sessions_total.fetch_add(1, std::memory_order_relaxed);
  if (connections.stopping()) return;  // the socket closes
  const bool pop = protocol == Protocol::pop3 || protocol == Protocol::pop3s;
  auto start = [&](bool capped, net::ClientConnections::Slot slot) {
    if (pop) server::start_pop3_connection(*this, std::move(s), protocol, std::move(r), capped, std::move(slot));
    else server::start_smtp_connection(*this, std::move(s), protocol, std::move(r), capped, std::move(slot));
  };
  // A load balancer's connection (proxy_trusted_networks) is counted
  // against the limits once its PROXY header has named the client
  // (SessionConnection::take_proxy_header): the balancer's own address
  // would lump every client together.
  if (!r->proxy_trusted.empty() && r->proxy_trusted.contains(peer.address())) {
    start(false, {});
    return;
  }
  auto admitted = server::admit_client(services, *r, peer.address());
  if (!admitted.ok) {
    auto who = util::cat(net::unmap(peer.address()).to_string(), ":", std::to_string(peer.port()));
    logger.log(server::LogFile::error, {}, who, {}, util::cat("refused: ", admitted.why));
    if (protocol != Protocol::smtps && protocol != Protocol::pop3s)
      asio::write(s, asio::buffer(server::refusal_text(*r, pop, admitted)), ec);
    s.close(ec);
    return;
  }
  start(admitted.capped, std::move(admitted.slot));
}

std::pair<asio::any_io_executor, server::IoPool::Lease> Server::Impl::place_session() {
  if (io_pool) return io_pool->place();
  // Several threads may run the caller's io_context: a strand per session.
  return {asio::make_strand(io), server::IoPool::Lease{}};
}

std::optional<asio::ip::tcp::socket> Server::Impl::adopt(asio::ip::tcp::socket s,
                                                         const asio::any_io_executor& ex) {
  if (s.get_executor() == ex) return std::optional<asio::ip::tcp::socket>(std::move(s));
  asio::ip::tcp::socket out(ex);
  std::error_code ec;
  auto proto = s.local_endpoint(ec).protocol();
  if (!ec) out.assign(proto, s.release(), ec);
  if (ec) {
    logger.server("cannot start a session: " + ec.message());
    return std::nullopt;
  }
  return std::optional<asio::ip::tcp::socket>(std::move(out));
}

void Server::Impl::unregister(std::uint64_t id) {
  if (connections.remove(id)) asio::post(io, [this] { maybe_finish_stop(); });
}

void Server::Impl::maybe_finish_stop() {
  std::vector<std::function<void()>> done;
  // The queue runner calls again once it is down.
  if (!connections.finish_stop([this] { return !relay_running; }, [&] { done.swap(stop_done); }))
    return;
  {
    // Every session has ended: the session threads have nothing left but
    // completions already posted (they drain at once).
    if (io_pool && !io_pool->finish(std::chrono::seconds(2)))
      logger.server("session threads still had work after every session ended; abandoned");
    if (blocking) blocking->join();  // idle: every session has ended
    if (pipeline) pipeline->stop();
    if (agent) agent->stop();
    agent_worker = {};
    relay_worker = {};
    logger.server("stopped");
    logger.flush();
  }
  for (auto& f : done)
    if (f) f();
  if (local_sockets) local_sockets->close();
  serve_guard.reset();
  stop_guard.reset();
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) { impl_->owner = this; }

Server::~Server() {
  // It reads the relay's and the sessions' figures: it stops first.
  if (impl_->heartbeat) impl_->heartbeat->stop();
  impl_->listener.close();
  // Sessions still alive are abandoned with their threads (stop() first
  // lets them finish).
  if (impl_->io_pool) impl_->io_pool->stop_now();
  if (impl_->blocking) {
    // Work still queued there (a login of an abandoned session) is dropped.
    impl_->blocking->stop();
    impl_->blocking->join();
  }
  if (impl_->metrics) impl_->metrics->close();
  if (impl_->console) impl_->console->close();
  if (impl_->local_sockets) impl_->local_sockets->close();
  // The pipeline and the agent notify the queue runner: stop them first.
  if (impl_->pipeline) impl_->pipeline->stop();
  if (impl_->agent) impl_->agent->stop();
  impl_->relay.reset();
  // Now that nothing posts to them any more, the session threads' contexts
  // go, and with them any session still alive (its destructor unregisters
  // and logs: the rest of the Impl is still here).
  impl_->services.blocking = nullptr;
  impl_->blocking.reset();
  impl_->io_pool.reset();
  // Every session is gone: the leases they held are released now.
  impl_->services.leases = nullptr;
  impl_->leases.reset();
  impl_->serve_guard.reset();
  impl_->logger.stop();
}

Result<std::unique_ptr<Server>> Server::create(asio::io_context& io, const fs::path& home,
                                               ServerOptions options) {
  auto cfg = load_config(home);
  if (!cfg) return unexpected(cfg.error());
  return create(io, std::move(*cfg), std::move(options));
}

Result<std::unique_ptr<Server>> Server::create(asio::io_context& io,
                                               std::shared_ptr<const Config> config,
                                               ServerOptions options) {
  if (!config) return fail(Errc::invalid_argument, "no configuration");
  if (!config->node.empty()) {
    // A node of a shared home (docs/cluster.md): the home may be a network
    // file system, where neither syncfs() of the local file system nor the
    // local delivery journal (whose replay assumes one writer) makes the
    // mail durable: each file and its folder are fsynced before the 250.
    // Maildir names carry the node, so two nodes never make the same name.
    options.use_syncfs = false;
    options.commit_journal = false;
    util::set_maildir_hostname(config->node);
  }
  auto rt = server::make_runtime(std::move(config), options);
  if (!rt) return unexpected(rt.error());
  auto impl = std::make_unique<Impl>(io, std::move(options), std::move(*rt));
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

namespace {

// The heartbeat of a node of a shared home (docs/cluster.md), started once
// the listeners are bound, so the first beat names them, and before the
// queues are recovered or anything is claimed, so no other node takes this
// one for dead (by an old beat of an earlier run) while it works. Each beat
// is followed by the takeover of nodes that stopped beating.
Status start_heartbeat(Server::Impl& I, const Config& cfg) {
  const auto beat = cfg.server.cluster_heartbeat_seconds, after = cfg.server.cluster_takeover_seconds;
  if (after <= cluster::kMissedBeats * beat)
    return fail(Errc::invalid_argument,
                util::cat("cluster_takeover_seconds (", std::to_string(after), ") must be more than ",
                          std::to_string(cluster::kMissedBeats), " × cluster_heartbeat_seconds (",
                          std::to_string(beat), ")"));
  auto dir = cfg.node_dir();
  if (auto st = util::make_dirs(dir, 0755); !st) return st;
  I.takeover = std::make_unique<server::ClusterTakeover>(
      cfg.home, cfg.node, std::chrono::seconds(after), RelayQueue(cfg.queue_dir(), cfg.node),
      RelayQueue(agent::LocalAgent::spool_dir(cfg), cfg.node), [&I](const std::string& line) { I.logger.server(line); });
  cluster::Heartbeat base;
  base.node = cfg.node;
  base.pid = ::getpid();
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::snprintf(host, sizeof host, "localhost");
  base.host = host;
  for (const auto& b : I.listener.bound())
    base.listen.push_back(util::cat(to_string(static_cast<Protocol>(b.tag)), " ", b.endpoint.address().to_string(), ":",
                                    std::to_string(b.endpoint.port())));
  base.started = static_cast<std::int64_t>(std::time(nullptr));
  auto snapshot = [&I, base] {
    cluster::Heartbeat hb = base;
    hb.sessions_smtp = I.counters.sessions_smtp.load();
    hb.sessions_pop3 = I.counters.sessions_pop3.load();
    hb.queue_held = I.takeover->held();
    return hb;
  };
  I.heartbeat = std::make_unique<server::NodeHeartbeat>(
      std::move(dir), std::chrono::seconds(beat), std::move(snapshot),
      [&I](const std::string& line) { I.logger.server(line); }, I.leases ? &I.leases->store() : nullptr,
      [t = I.takeover.get()] { t->run(); });
  I.heartbeat->start();
  return {};
}

}  // namespace

Status Server::start() {
  auto& I = *impl_;
  if (I.started) return fail(Errc::invalid_argument, "server already started");
  auto rt = I.runtime();
  const auto& cfg = *rt->config;
  if (auto st = I.logger.start(); !st) return st;
  // Shared volatile state (docs/cluster.md): with redis_url, POP3 mailbox
  // leases live in Redis. Redis is not asked here: a node whose Redis is
  // down starts and answers [SYS/TEMP] for what needs it.
  if (!cfg.server.redis_url.empty()) {
    auto addr = state::parse_redis_url(cfg.server.redis_url);
    if (!addr) {
      I.logger.server(util::cat("cannot start: ", addr.error().message));
      return unexpected(addr.error());
    }
    state::RedisOptions ro;
    ro.address = std::move(*addr);
    I.shared = state::make_redis_state(std::move(ro));
    auto log_error = [&I](std::string_view text) { I.logger.log(server::LogFile::error, {}, {}, {}, text); };
    I.leases = std::make_unique<state::LeaseKeeper>(I.shared, std::chrono::seconds(cfg.server.redis_lease_seconds),
                                                    log_error);
    I.services.leases = I.leases.get();
    // The rest of the volatile state every node must see: auth penalties,
    // daily send counters, POP-before-SMTP logins (unless the embedder
    // gave its own table), and the agent's list post numbers and
    // auto-reply record (below).
    I.auth_penalty.share(I.shared, log_error);
    I.send_counters.share(I.shared);
    if (!I.opt.pop_logins) {
      I.pop_logins = make_shared_pop_login_table(I.shared);
      I.services.pop_logins = I.pop_logins;
    }
    I.logger.server(util::cat("shared state: ", I.shared->describe()));
  }
  std::vector<net::ListenSpec> specs;
  auto port = [&](int p) { return static_cast<std::uint16_t>(I.opt.ephemeral_ports ? 0 : p); };
  specs.push_back({cfg.smtp.bind_address, port(cfg.smtp.port), static_cast<int>(Protocol::smtp)});
  if (cfg.smtp.submission_port > 0)
    specs.push_back({cfg.smtp.bind_address, port(cfg.smtp.submission_port),
                     static_cast<int>(Protocol::submission)});
  if (cfg.smtp.smtps_port > 0) {
    if (!rt->tls)
      return fail(Errc::invalid_argument, "smtps_port needs tls_cert_file and tls_key_file");
    specs.push_back({cfg.smtp.bind_address, port(cfg.smtp.smtps_port), static_cast<int>(Protocol::smtps)});
  }
  if (cfg.pop.port > 0)
    specs.push_back({cfg.smtp.bind_address, port(cfg.pop.port), static_cast<int>(Protocol::pop3)});
  if (cfg.pop.pop3s_port > 0) {
    if (!rt->tls)
      return fail(Errc::invalid_argument, "pop3s_port needs tls_cert_file and tls_key_file");
    specs.push_back({cfg.smtp.bind_address, port(cfg.pop.pop3s_port), static_cast<int>(Protocol::pop3s)});
  }
  if (auto st = I.listener.open(specs); !st) {
    I.logger.server("cannot start: " + st.error().message);
    return st;
  }
  // Every failure from here on undoes what was started, in reverse order,
  // so a refused start leaves nothing running (no hooks, no relaying).
  auto abandon = [&I](const Error& e) -> Status {
    I.logger.server("cannot start: " + e.message);
    if (I.heartbeat) I.heartbeat->stop();
    if (I.local_sockets) {
      I.local_sockets->close();
      I.local_sockets.reset();
    }
    if (I.pipeline) I.pipeline->stop();
    if (I.agent) I.agent->stop();
    I.relay.reset();  // stops at once and joins
    I.relay_running = false;
    if (I.metrics) I.metrics->close();
    if (I.console) I.console->close();
    I.listener.close();
    if (I.io_pool) I.io_pool->stop_now();
    return unexpected(e);
  };
  if (auto m = ops::open_server_metrics(*this, cfg, I.opt.ephemeral_ports); !m) {
    return abandon(m.error());
  } else {
    I.metrics = std::move(*m);
  }
  {
    server::ConsoleServer::Deps deps{.config = [&I] { return I.runtime()->config; },
                                     .penalty = &I.auth_penalty,
                                     .stats = [this] { return stats(); },
                                     .live_sessions = [this] { return sessions(); },
                                     .flush_queue = [this] { return flush_queue(); },
                                     .reload = [this] { return reload(); },
                                     .log_error = [&I](std::string_view peer, std::string_view account,
                                                       std::string_view text) {
                                       I.logger.log(server::LogFile::error, {}, peer, account, text);
                                     },
                                     .started = static_cast<std::int64_t>(::time(nullptr))};
    auto c = server::ConsoleServer::open(cfg, std::move(deps), I.opt.ephemeral_ports);
    if (!c) return abandon(c.error());
    I.console = std::move(*c);
  }
  // Ports bound: from here on nothing needs root (see after_bind).
  if (I.opt.after_bind) {
    if (auto st = I.opt.after_bind(); !st) return abandon(st.error());
  }
  if (!cfg.node.empty()) {
    if (auto st = start_heartbeat(I, cfg); !st) return abandon(st.error());
  }
  // Start-up recovery: the queue, then crash leftovers in every tmp/. A
  // node of a shared home recovers only its own (RelayQueue::recover).
  RelayQueue queue(cfg.queue_dir(), cfg.node);
  auto rec = queue.recover();
  if (!rec) return abandon(rec.error());
  if (rec->tmp_removed + rec->orphans_removed + rec->reactivated + rec->corrupt > 0)
    I.logger.server("queue recovery: " + std::to_string(rec->tmp_removed) + " tmp files, " +
                    std::to_string(rec->orphans_removed) + " orphan data files removed, " +
                    std::to_string(rec->reactivated) + " reactivated, " +
                    std::to_string(rec->corrupt) + " corrupt");
  AccountStore store(rt->mailbox_dir);
  // Half-made or half-removed account folders of crashed admin commands.
  if (auto gone = store.cleanup(); !gone)
    I.logger.server("account folder cleanup failed: " + gone.error().message);
  else if (*gone > 0)
    I.logger.server("removed " + std::to_string(*gone) + " leftover account folders");
  if (auto names = store.list()) {
    for (const auto& n : *names) {
      auto dir = store.account_dir(n);
      if (!dir) continue;
      auto cleaned = Mailbox(*dir).cleanup_tmp(std::chrono::hours(36), true);
      if (cleaned && *cleaned > 0)
        I.logger.server("removed " + std::to_string(*cleaned) + " leftover files from " + n + "/tmp");
    }
  }
  // POP-before-SMTP: the logins of the last TTL survive a restart. Read
  // once here; from now on each POP3 login records itself.
  {
    const auto ttl = std::chrono::minutes(cfg.smtp.pop_befor_smtp_time_to_live);
    auto seeded = seed_pop_logins(*I.pop_logins, store, std::time(nullptr), ttl);
    if (!seeded) I.logger.server("POP-before-SMTP logins not read from the ip files: " + seeded.error().message);
  }
  I.pipeline = std::make_unique<server::CommitPipeline>(
      store, queue, I.opt.use_syncfs ? SyncMode::syncfs : SyncMode::fsync_each, I.logger, I.pstats);
  I.services.pipeline = I.pipeline.get();
  {
    std::lock_guard lk(I.cb_mu);
    I.pipeline->set_callbacks(I.callbacks);
  }
  if (I.opt.commit_journal) {
    // Replays acknowledged messages a crash left in the journal, before
    // anyone can read or retrieve mail.
    auto rep = I.pipeline->use_journal(cfg.home / "var" / "journal" / "delivery");
    if (!rep) {
      return abandon(Error{rep.error().code, "delivery journal: " + rep.error().message});
    }
    if (!rep->corrupt_kept.empty())
      I.logger.server("delivery journal unreadable, kept as " + rep->corrupt_kept.string());
    if (!rep->not_created.empty())
      I.logger.server("delivery journal not made (" + rep->not_created +
                      "): committing without it; it is made at a start with room");
    if (rep->records > 0)
      I.logger.server("delivery journal recovery: " + std::to_string(rep->records) + " records, " +
                      std::to_string(rep->present) + " copies whole, " +
                      std::to_string(rep->restored) + " restored, " +
                      std::to_string(rep->repaired) + " repaired, " +
                      std::to_string(rep->skipped) + " for removed accounts");
  }
  {
    agent::LocalAgent::Options ao;
    ao.shared = I.shared;
    if (I.heartbeat) ao.lease_valid = I.heartbeat->lease(server::lease_age(cfg.server.cluster_takeover_seconds));
    I.agent = std::make_unique<agent::LocalAgent>([&I] { return I.runtime()->config; },
                                                 [&I](const std::string& line) { I.logger.server(line); },
                                                 std::move(ao));
  }
  I.agent->set_counters(&I.hook_runs, &I.hook_failures);
  if (auto st = I.agent->start(); !st) {
    I.agent.reset();
    return abandon(Error{st.error().code, "delivery agent: " + st.error().message});
  }
  I.pipeline->set_agent(I.agent.get());
  server::install_success_notices(I);
  I.agent_worker = I.workers.add("delivery-agent", "idle");
  if (auto st = server::start_server_relay(I); !st) I.logger.server("outbound queue runner not started: " + st.error().message);
  if (I.relay) I.relay_worker = I.workers.add("queue-runner", "idle");
  I.pipeline->start();
  if (I.opt.local_sockets) {
    I.local_sockets = std::make_unique<server::LocalSockets>(*this, I);
    auto st = util::make_dirs(cfg.run_dir(), 0755);
    if (st) st = I.local_sockets->open(cfg.run_dir());
    if (!st) return abandon(st.error());
  }
  I.blocking = std::make_unique<asio::thread_pool>(2);
  I.services.blocking = I.blocking.get();
  if (I.io_pool) {
    I.io_pool->start();
    I.serve_guard.emplace(I.io.get_executor());
  }
  I.listener.start([&I](asio::ip::tcp::socket s, int tag) { I.accept(std::move(s), tag); });
  I.started = true;
  std::string where;
  for (const auto& b : I.listener.bound())
    where += std::string(where.empty() ? "" : ", ") + std::string(to_string(static_cast<Protocol>(b.tag))) +
             " on " + b.endpoint.address().to_string() + " port " + std::to_string(b.endpoint.port());
  I.logger.server("started: " + where);
  if (I.takeover)
    I.takeover->set_wake([&I] {
      if (I.relay) I.relay->notify();
      I.agent->notify();
    });
  for (const auto& w : cfg.warnings) I.logger.server("config warning: " + w.to_string());
  return {};
}

void Server::stop(std::function<void()> done) {
  auto grace = std::chrono::seconds(impl_->runtime()->config->server.time_out_of_stop);
  stop(std::chrono::duration_cast<std::chrono::milliseconds>(grace), std::move(done));
}

void Server::stop(std::chrono::milliseconds grace, std::function<void()> done) {
  auto& I = *impl_;
  auto st = I.connections.stop_all(std::chrono::steady_clock::now() + grace, [&](bool first) {
    if (first) I.stop_guard.emplace(I.io.get_executor());
    I.stop_done.push_back(std::move(done));
  });
  if (st.finished) {
    if (done) asio::post(I.io, std::move(done));
    return;
  }
  if (I.metrics) I.metrics->close();
  if (I.console) I.console->close();
  asio::post(I.io, [&I] {
    I.listener.close();
    if (I.local_sockets) I.local_sockets->close_submit();
  });
  if (st.first || st.sooner) {
    server::stop_server_relay(I, st.deadline);
    I.logger.server(std::string(st.first ? "stopping: " : "stopping sooner: ") +
                    std::to_string(st.live) + " sessions");
  }
  asio::post(I.io, [&I] { I.maybe_finish_stop(); });
}

bool Server::stopped() const noexcept {
  return impl_->connections.stopped();
}

Status Server::reload() {
  auto& I = *impl_;
  auto old = I.runtime();
  auto cfg = load_config(old->config->home, old->config->node);
  if (!cfg) {
    I.logger.server("reload failed, keeping the running configuration: " + cfg.error().message);
    return unexpected(cfg.error());
  }
  auto rt = server::make_runtime(std::move(*cfg), I.opt);
  if (!rt) {
    I.logger.server("reload failed, keeping the running configuration: " + rt.error().message);
    return unexpected(rt.error());
  }
  const auto& a = old->config->smtp;
  const auto& b = (*rt)->config->smtp;
  if (a.port != b.port || a.submission_port != b.submission_port || a.smtps_port != b.smtps_port ||
      a.bind_address != b.bind_address)
    I.logger.server("reload: listener changes (ports, bind_address) take effect after a restart");
  I.logger.set_size_max((*rt)->config->server.log_size_max);
  {
    std::lock_guard lk(I.rt_mu);
    I.rt = std::move(*rt);
  }
  if (I.relay) I.relay->set_config(I.runtime()->config);
  I.logger.server("configuration reloaded");
  return {};
}

std::shared_ptr<const Config> Server::config() const { return impl_->runtime()->config; }

ServerStats Server::stats() const {
  auto& I = *impl_;
  ServerStats s;
  s.sessions_smtp = I.counters.sessions_smtp.load();
  s.sessions_pop3 = I.counters.sessions_pop3.load();
  s.sessions_total = I.counters.sessions_total.load();
  s.refused_busy = I.counters.refused_busy.load();
  s.messages_received = I.counters.messages_received.load();
  s.messages_delivered = I.pstats.delivered.load();
  s.messages_relayed = I.pstats.relayed.load();
  s.commit_batches = I.pstats.batches.load();
  s.messages_bounced = I.messages_bounced.load();
  s.auth_failures_smtp = I.counters.auth_failures_smtp.load();
  s.smtp_relay_denied = I.counters.relay_denied.load();
  s.smtp_dnsbl_rejected = I.counters.dnsbl_rejected.load();
  s.smtp_refusals_permanent = I.counters.refusals_permanent.load();
  s.smtp_refusals_temporary = I.counters.refusals_temporary.load();
  s.auth_failures_pop3 = I.counters.auth_failures_pop3.load();
  s.hook_runs = I.hook_runs.load();
  s.hook_failures = I.hook_failures.load();
  return s;
}

std::vector<Server::Endpoint> Server::endpoints() const {
  std::vector<Endpoint> out;
  for (const auto& b : impl_->listener.bound())
    out.push_back({static_cast<Protocol>(b.tag), b.endpoint.address().to_string(), b.endpoint.port()});
  return out;
}

std::uint16_t Server::metrics_port() const { return impl_->metrics ? impl_->metrics->port() : 0; }
std::uint16_t Server::admin_port() const { return impl_->console ? impl_->console->port() : 0; }

std::uint16_t Server::port(Protocol p) const {
  for (const auto& b : impl_->listener.bound())
    if (b.tag == static_cast<int>(p)) return b.endpoint.port();
  return 0;
}

CallbackId Server::add_delivery_callback(DeliveryCallback cb) {
  auto& I = *impl_;
  std::lock_guard lk(I.cb_mu);
  auto list = std::make_shared<server::CallbackList>(*I.callbacks);
  auto id = ++I.next_cb;
  list->emplace_back(id, std::move(cb));
  I.callbacks = list;
  if (I.pipeline) I.pipeline->set_callbacks(list);
  return id;
}

void Server::remove_delivery_callback(CallbackId id) {
  auto& I = *impl_;
  std::lock_guard lk(I.cb_mu);
  auto list = std::make_shared<server::CallbackList>(*I.callbacks);
  std::erase_if(*list, [id](const auto& p) { return p.first == id; });
  I.callbacks = list;
  if (I.pipeline) I.pipeline->set_callbacks(list);
}

// ---------------------------------------------------------------------------

int run_server(const fs::path& home, unsigned threads, bool use_syncfs) {
  RunOptions o;
  o.threads = threads;
  o.use_syncfs = use_syncfs;
  return run_server(home, o);
}

int run_server(const fs::path& home, const RunOptions& run) {
  unsigned threads = run.threads;
  bool use_syncfs = run.use_syncfs;
  daemon::ReadyPipe ready(run.ready_fd);
  auto cfg = load_config(home, run.node);
  if (!cfg) {
    std::cerr << "wizmail-server: configuration errors:\n" << cfg.error().message << '\n';
    ready.error("configuration errors:\n" + cfg.error().message);
    return 2;
  }
  for (const auto& w : (*cfg)->warnings) std::cerr << "wizmail-server: warning: " << w.to_string() << '\n';
  if (threads == 0) threads = std::max(1u, std::thread::hardware_concurrency());
  // Sessions run on `threads` threads of their own (ServerOptions::io_threads);
  // this io_context, run by the main thread, has signals, the control and
  // submit sockets, metrics and stop.
  asio::io_context io(1);
  ServerOptions opt;
  opt.io_threads = threads;
  opt.log_to_stderr = true;
  opt.relay = true;
  opt.use_syncfs = use_syncfs;
  opt.local_sockets = true;
  // Root binds the ports, then becomes run_as_user before the store is
  // touched or a client accepted (docs/operations.md, Privileges).
  opt.after_bind = [&cfg] { return daemon::drop_privileges((*cfg)->server.run_as_user, **cfg); };
  auto server = Server::create(io, *cfg, opt);
  if (!server) {
    std::cerr << "wizmail-server: " << server.error().message << '\n';
    ready.error(server.error().message);
    return 2;
  }
  // Write our pid; a live server owning the pid file refuses a second start.
  auto run_dir = (*cfg)->run_dir();
  if (auto st = util::make_dirs(run_dir, 0755); !st) {
    std::cerr << "wizmail-server: " << st.error().message << '\n';
    ready.error(st.error().message);
    return 1;
  }
  auto pid_file = run_dir / "wizmail.pid";
  if (auto old = util::read_file(pid_file)) {
    auto pid = util::parse_int(util::trim(*old));
    if (pid && *pid > 0 && *pid != ::getpid() && ::kill(static_cast<pid_t>(*pid), 0) == 0) {
      std::cerr << "wizmail-server: already running (pid " << *pid << ", " << pid_file.string() << ")\n";
      ready.error("already running (pid " + std::to_string(*pid) + ")");
      return 1;
    }
  }
  // The pid file exists before the ports accept (so `wizmail start` can
  // rely on it once the server listens) and goes away if start fails.
  if (auto st = util::write_file_atomic(pid_file, std::to_string(::getpid()) + "\n", 0644); !st)
    std::cerr << "wizmail-server: " << st.error().message << '\n';
  if (auto st = (*server)->start(); !st) {
    std::cerr << "wizmail-server: " << st.error().message << '\n';
    // Gone before `wizmail start` hears of the failure and returns.
    ::unlink(pid_file.c_str());
    ready.error(st.error().message);
    return 1;
  }
  std::signal(SIGPIPE, SIG_IGN);
  asio::signal_set signals(io, SIGTERM, SIGINT, SIGHUP);
  signals.add(SIGUSR1);  // queue flush
  std::function<void()> wait_signal;
  std::atomic<bool> stopping{false};
  // A stop asked for on the control socket: like SIGTERM, or at once.
  (*server)->set_stop_handler([&](bool force) {
    asio::post(io, [&, force] {
      if (!stopping.exchange(true)) {
        if (force) (*server)->stop(0ms, [&] { signals.cancel(); });
        else (*server)->stop([&] { signals.cancel(); });
      } else if (force) {
        (*server)->stop(0ms);
      }
    });
  });
  wait_signal = [&] {
    signals.async_wait([&](std::error_code ec, int sig) {
      if (ec) return;
      if (sig == SIGHUP) {
        (void)(*server)->reload();
        wait_signal();
        return;
      }
      if (sig == SIGUSR1) {  // `wizmail queue flush` (docs/outbound.md)
        (void)(*server)->flush_queue();
        wait_signal();
        return;
      }
      if (stopping.exchange(true)) {
        // A second SIGTERM/SIGINT: stop waiting for sessions.
        (*server)->stop(0ms);
        wait_signal();
        return;
      }
      (*server)->stop([&] { signals.cancel(); });
      wait_signal();
    });
  };
  wait_signal();
  ready.ok();
  io.run();
  ::unlink(pid_file.c_str());
  return 0;
}

}  // namespace wizmail
