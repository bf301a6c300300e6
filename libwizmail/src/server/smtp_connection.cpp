#include "server/smtp_connection.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/post.hpp>
#include <asio/strand.hpp>

#include <arpa/nameser.h>

#include <cstdio>
#include <ctime>
#include <unordered_map>
#include <random>

#include "dkim/dkim.hpp"
#include "dnsbl/dnsbl.hpp"
#include "mailauth/mailauth.hpp"
#include "milter/chain.hpp"
#include "net/request_deadline.hpp"
#include "outbound/dns.hpp"
#include "net/stream.hpp"
#include "server/embedder_callbacks.hpp"
#include "server/server_impl.hpp"
#include "server/session_connection.hpp"
#include "server/session_start.hpp"
#include "server/staging.hpp"
#include "server/state_names.hpp"
#include "smtp/address.hpp"
#include "smtp/session.hpp"
#include "srs/srs.hpp"
#include "util/fs.hpp"
#include "util/prefetch.hpp"
#include "util/strings.hpp"
#include "wizmail/mailbox.hpp"
#include "wizmail/quarantine.hpp"

namespace wizmail::server {

namespace {

using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

// A PROXY protocol header from a peer outside proxy_trusted_networks: a
// client posing as a load balancer to choose its own address.
constexpr std::string_view kProxyRefused =
    "554 5.7.0 PROXY protocol header refused: your address is not a trusted proxy\r\n";

// The DNS of the mail checks: the resolver of `dns_servers`, each question
// bounded (2 s, one try) so that a dead server costs seconds, not minutes.
mailauth::Dns auth_dns(const Config& cfg) {
  ResolverOptions o;
  o.servers = cfg.smtp.dns_servers;
  o.timeout = std::chrono::milliseconds(2000);
  o.tries = 1;
  return [o = std::move(o)](std::string_view name, int type) { return outbound::query_records(name, type, o); };
}

// The DNS block lists' questions, all at once on one c-ares channel of
// `dns_servers`, bounded as auth_dns (2 s, one try).
dnsbl::Lookup dnsbl_lookup(const Config& cfg) {
  ResolverOptions o;
  o.servers = cfg.smtp.dns_servers;
  o.timeout = std::chrono::milliseconds(2000);
  o.tries = 1;
  return [o = std::move(o)](const std::vector<std::string>& names) {
    std::vector<dnsbl::Answer> out;
    for (auto& r : outbound::query_many(names, ns_t_a, o)) {
      dnsbl::Answer a;
      if (!r) {
        a.status = dnsbl::Answer::Status::error;
        a.error = r.error().message;
      } else {
        a.status = r->status == outbound::DnsRecords::Status::found ? dnsbl::Answer::Status::listed
                                                                   : dnsbl::Answer::Status::not_listed;
        a.records = std::move(r->records);
        a.ttl = std::chrono::seconds(r->ttl);
      }
      out.push_back(std::move(a));
    }
    return out;
  };
}

mailauth::Policy auth_policy_of(const SmtpSettings& c) {
  return {.spf_reject_fail = c.spf_reject_fail,
          .dmarc_reject = c.dmarc_reject,
          .dmarc_reject_exempt = c.dmarc_reject_exempt,
          .temperror_defer = c.mail_auth_temperror_defer};
}

// The session's policy questions, over the runtime snapshot and the store.
// `trusted`: the local submit socket's peer, which never authenticates
// (its session config allows relaying instead) and has no IP address.
class Environment final : public smtp::Environment {
 public:
  Environment(SessionServices& srv, const Runtime& rt, const net::Stream& stream, bool trusted)
      : srv_(srv), rt_(rt), store_(rt.mailbox_dir), trusted_(trusted) {
    if (stream.is_tcp()) {
      local_ = stream.local();
      remote_ = stream.remote().address();
    }
  }

  // Inbound mail authentication (docs/authentication.md): what MAIL found,
  // for the end of data. `active`: the transaction is to be checked.
  struct MailAuth {
    bool active = false;
    std::optional<mailauth::SpfOutcome> spf_mailfrom, spf_helo;
  };
  MailAuth mail_auth;

  bool wants_sender_check() override {
    const auto& c = rt_.config->smtp;
    if (trusted_ || !remote_ || !(c.spf_check || c.dkim_verify || c.dmarc_check)) return false;
    return !rt_.auth_exempt.contains(*remote_);
  }
  std::optional<std::string> check_sender(const SenderQuestion& q) override {
    const auto& c = rt_.config->smtp;
    mail_auth = MailAuth{};
    mail_auth.active = true;
    if (!c.spf_check) return std::nullopt;
    auto dns = auth_dns(*rt_.config);
    // The null sender is checked as postmaster@HELO: the HELO identity.
    mail_auth.spf_mailfrom = mailauth::check_spf(dns, q.client_ip, q.helo, q.sender, rt_.hostname, q.sender.empty());
    if (!q.sender.empty() && !q.helo.empty())
      mail_auth.spf_helo = mailauth::check_spf(dns, q.client_ip, q.helo, {}, rt_.hostname, true);
    auto d = mailauth::decide_mail(auth_policy_of(c), *mail_auth.spf_mailfrom);
    if (d.kind == mailauth::Decision::Kind::accept) return std::nullopt;
    return d.reply;
  }

  // DNS block and allow lists (docs/dnsbl.md): asked once per session, by
  // prefetch_client() on the blocking pool as the client connects, or by
  // the first reader (check_client: at the first RCPT, or before the
  // greeting when dnsbl_action=drop) if that task has not started yet.
  bool wants_client_check() override {
    if (trusted_ || !remote_ || rt_.dnsbl_sites.empty()) return false;
    return !rt_.dnsbl_exempt.contains(*remote_);
  }
  void prefetch_client(std::string_view client_ip) {
    client_check_.run([&] { return look_up_client(client_ip); });
  }
  ClientVerdict check_client(std::string_view client_ip) override {
    return client_check_.get([&] { return look_up_client(client_ip); });
  }
  ClientVerdict look_up_client(std::string_view client_ip) {
    ClientVerdict out;
    auto v = dnsbl::check(client_ip, rt_.dnsbl_sites, rt_.config->smtp.dnsbl_threshold, srv_.dnsbl_cache,
                          dnsbl_lookup(*rt_.config));
    for (const auto& e : v.errors)
      out.notes.push_back(util::cat("DNS block list look-up failed (counted as not listed): ", e));
    std::string listed;
    for (const auto& l : v.listed) {
      if (!listed.empty()) listed += ' ';
      listed += l;
    }
    const auto& action = rt_.config->smtp.dnsbl_action;
    const bool ignore = action == "ignore";
    if (v.blocked && !ignore) {
      // drop: the greeting's 521 (the session never starts); enforce: each RCPT's 554
      out.refusal = dnsbl::reject_reply(client_ip, v.zone, action == "drop" ? 521 : 554);
      out.reason = util::cat("client [", client_ip, "] blocked using ", v.zone, " (score ",
                             std::to_string(v.score), ": ", listed, ")");
    } else if (v.blocked) {
      out.notes.push_back(util::cat("client [", client_ip, "] would be blocked using ", v.zone, " (score ",
                                    std::to_string(v.score), ": ", listed, "; dnsbl_action=ignore)"));
    } else if (!v.listed.empty()) {
      out.notes.push_back(util::cat("client [", client_ip, "] listed but not blocked (score ",
                                    std::to_string(v.score), " < dnsbl_threshold: ", listed, ")"));
    }
    return out;
  }

  auth::AuthAdmission auth_begin(std::string_view client_ip) override {
    return srv_.auth_penalty.begin(client_ip, auth_policy(rt_.config->smtp));
  }
  void auth_end(std::string_view client_ip) override { srv_.auth_penalty.end(client_ip); }
  bool auth_blocked(std::string_view client_ip) override { return srv_.auth_penalty.blocked(client_ip); }
  int auth_failed(std::string_view client_ip) override {
    return srv_.auth_penalty.failed(client_ip, auth::AuthPenalty::Clock::now(),
                                    auth_policy(rt_.config->smtp));
  }
  void auth_succeeded(std::string_view client_ip) override { srv_.auth_penalty.succeeded(client_ip); }

  bool is_local_domain(std::string_view domain) override {
    if (!domain.empty() && domain.front() == '[') {
      auto ip = smtp::parse_address_literal(domain);
      if (!ip) return false;
      if (local_) {
        auto mine = smtp::IpAddress::parse(net::unmap(local_->address()).to_string());
        if (mine && *mine == *ip) return true;
      }
      for (const auto& b : rt_.config->smtp.bind_address)
        if (auto a = smtp::IpAddress::parse(b); a && *a == *ip) return true;
      return false;
    }
    for (const auto& d : rt_.local_domains)
      if (d == domain) return true;
    return false;
  }

  Result<AccountKind> lookup_account(std::string_view account) override { return store_.lookup(account); }

  // The session asks for an account's settings and quota on every RCPT:
  // both are kept for kCacheTtl per session (the account's config.def is
  // parsed, and its mailbox listed, at most once a second). The commit
  // re-checks the quota without the cache (check_quota_now).
  Result<AccountSettings> account_settings(std::string_view account) override {
    auto now = std::chrono::steady_clock::now();
    auto it = settings_.find(account);
    if (it != settings_.end() && now - it->second.at < kCacheTtl) return it->second.value;
    if (settings_.size() > kCacheMax) settings_.clear();
    auto s = rt_.config->account_settings(account);
    settings_.insert_or_assign(std::string(account), Cached<Result<AccountSettings>>{now, s});
    return s;
  }

  Result<bool> quota_allows(std::string_view account, std::int64_t incoming) override {
    auto s = account_settings(account);
    if (!s) return unexpected(s.error());
    if (s->mailbox_capacity_mail_count < 0 && s->mailbox_capacity_mail_size < 0) return true;
    auto now = std::chrono::steady_clock::now();
    auto it = totals_.find(account);
    if (it == totals_.end() || now - it->second.at >= kCacheTtl) {
      auto dir = store_.account_dir(account);
      if (!dir) return unexpected(dir.error());
      auto t = Mailbox(*dir).totals();
      if (!t) return unexpected(t.error());
      if (totals_.size() > kCacheMax) totals_.clear();
      it = totals_.insert_or_assign(std::string(account), Cached<Mailbox::Totals>{now, *t}).first;
    }
    // The same rule as Mailbox::check_quota.
    const auto& t = it->second.value;
    auto in = static_cast<std::uint64_t>(std::max<std::int64_t>(incoming, 0));
    if (s->mailbox_capacity_mail_count >= 0 &&
        t.messages + 1 > static_cast<std::uint64_t>(s->mailbox_capacity_mail_count))
      return false;
    if (s->mailbox_capacity_mail_size >= 0 &&
        t.bytes + in > static_cast<std::uint64_t>(s->mailbox_capacity_mail_size))
      return false;
    return true;
  }

  // The quota against the real message size, uncached (at commit time).
  Status check_quota_now(std::string_view account, std::uint64_t size) {
    auto s = rt_.config->account_settings(account);
    if (!s) return unexpected(s.error());
    auto dir = store_.account_dir(account);
    if (!dir) return unexpected(dir.error());
    totals_.erase(std::string(account));
    return Mailbox(*dir).check_quota(s->mailbox_capacity_mail_count, s->mailbox_capacity_mail_size,
                                     size);
  }

  Result<bool> authenticate(std::string_view user, std::string_view password) override {
    if (trusted_) return false;
    auto r = store_.authenticate(user, password);
    if (!r) {
      if (r.error().code == Errc::not_found || r.error().code == Errc::invalid_argument) return false;
      return unexpected(r.error());
    }
    return *r;
  }

  std::optional<std::string> plain_password(std::string_view user) override {
    if (trusted_) return std::nullopt;
    auto r = store_.plain_password(user);
    if (!r) return std::nullopt;
    return *r;
  }

  bool storage_allows(Storage where, std::int64_t size) override {
    const auto minfree = effective_queue_minfree(rt_.config->smtp);
    const auto& mailboxes = rt_.mailbox_dir;
    const auto queue = rt_.config->queue_dir();
    switch (where) {
      case Storage::mailboxes: return srv_.free_space.allows(mailboxes, minfree, size);
      case Storage::queue: return srv_.free_space.allows(queue, minfree, size);
      case Storage::any: break;
    }
    return srv_.free_space.allows(mailboxes, minfree, size) ||
           srv_.free_space.allows(queue, minfree, size);
  }

  // An error (the cluster's shared state unreachable) is the session's
  // 451 for the RCPT that needs the answer.
  Result<std::optional<std::string>> pop_login_account(std::string_view ip, std::chrono::minutes ttl) override {
    if (trusted_) return std::optional<std::string>();
    auto since = static_cast<std::int64_t>(std::time(nullptr)) - std::chrono::seconds(ttl).count();
    return srv_.pop_logins->find(ip, since);
  }

  Result<std::int64_t> sends_today(std::string_view account) override {
    return srv_.send_counters.today_of(store_, account);
  }
  Status record_send(std::string_view account, bool relayed) override {
    return srv_.send_counters.record_for(store_, account, relayed);
  }

  RecipientAnswer check_recipient(const RecipientQuestion& q) override {
    return server::ask_recipient_callback(srv_.options.recipient_callback, q);
  }
  std::optional<Result<std::string>> srs_reverse(std::string_view address) override {
    if (!rt_.srs) return std::nullopt;
    return srs::reverse_recipient(*rt_.srs, rt_.srs_domain, address, std::time(nullptr));
  }
  // Milters (docs/milter.md): the session's chain, asked from proceed()
  // and the commit, both on the blocking pool.
  void set_milters(std::unique_ptr<milter::Chain> chain, std::string session_id) {
    milters_ = std::move(chain);
    sid_ = std::move(session_id);
  }
  milter::Chain* milters() noexcept { return milters_.get(); }
  void stop_milters() noexcept { milters_.reset(); }
  bool filtering() override { return milters_ != nullptr; }
  // The client's name for the milters' connect event (Postfix's
  // forward-confirmed reverse DNS): looked up from connect on (prefetch_name,
  // on the blocking pool), read before the milters' first event.
  void prefetch_name(std::string_view client_ip) {
    client_name_.run([&] { return mailauth::client_name(auth_dns(*rt_.config), client_ip); });
  }
  void name_client() {
    if (named_ || !milters_ || !remote_) return;
    named_ = true;
    auto ip = net::unmap(*remote_).to_string();
    const auto& n = client_name_.get([&] { return mailauth::client_name(auth_dns(*rt_.config), ip); });
    milters_->client_named(n.name, n.ptr);
  }
  std::optional<std::string> filter_helo(std::string_view name) override {
    name_client();
    return answer(milters_->helo(name));
  }
  std::optional<std::string> filter_mail(std::string_view sender, std::string_view args,
                                         std::string_view auth_user) override {
    name_client();
    ++transactions_;
    return answer(milters_->mail(sender, util::split_list(args, ' '), auth_user,
                                 util::cat(sid_, ".", std::to_string(transactions_))));
  }
  std::optional<std::string> filter_rcpt(std::string_view recipient, std::string_view args) override {
    name_client();
    return answer(milters_->rcpt(recipient, util::split_list(args, ' ')));
  }
  std::optional<std::string> filter_data() override {
    name_client();
    return answer(milters_->data());
  }
  std::optional<std::string> filter_unknown(std::string_view line) override {
    name_client();
    return answer(milters_->unknown(line));
  }

  std::chrono::system_clock::time_point now() override { return std::chrono::system_clock::now(); }
  std::uint64_t random() override {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    return rng();
  }

 private:
  SessionServices& srv_;
  const Runtime& rt_;
  AccountStore store_;
  bool trusted_;
  std::optional<tcp::endpoint> local_;  // a TCP session's own address
  std::optional<asio::ip::address> remote_;  // a TCP session's client
  util::Prefetch<ClientVerdict> client_check_;
  util::Prefetch<mailauth::ClientName> client_name_;
  bool named_ = false;
  std::unique_ptr<milter::Chain> milters_;
  std::string sid_;
  std::uint64_t transactions_ = 0;
  static std::optional<std::string> answer(const milter::Verdict& v) {
    if (v.kind == milter::Verdict::Kind::reply) return v.reply;
    return std::nullopt;  // go on; a discard drops the message at its end
  }
  template <class T>
  struct Cached {
    std::chrono::steady_clock::time_point at;
    T value;
  };
  static constexpr auto kCacheTtl = std::chrono::seconds(1);
  static constexpr std::size_t kCacheMax = 256;
  struct Hash : std::hash<std::string_view> {
    using is_transparent = void;
  };
  std::unordered_map<std::string, Cached<Result<AccountSettings>>, Hash, std::equal_to<>> settings_;
  std::unordered_map<std::string, Cached<Mailbox::Totals>, Hash, std::equal_to<>> totals_;
};

// One class for every SMTP listener: port 25, submission, smtps (TCP) and
// the local submit socket (UNIX; Protocol::local_submit: a trusted peer —
// relaying allowed through its own session config, no AUTH, no TLS, no
// pregreet or request deadlines — identified by its uid).
class SmtpConnection final : public SessionConnection,
                             public smtp::MessageSink,
                             public std::enable_shared_from_this<SmtpConnection> {
 public:
  struct Local {
    uid_t uid = 0;                                  // the peer's (SO_PEERCRED)
    std::shared_ptr<const Config> session_config;  // LocalSockets::trusted_config
  };
  template <class Socket>
  SmtpConnection(SessionServices& srv, asio::any_io_executor ex, Socket socket, Protocol proto,
                 std::shared_ptr<const Runtime> rt, bool capped, ConnectionRegistry::Id id,
                 net::ClientConnections::Slot slot, Local local = {})
      : SessionConnection(srv, std::move(ex), std::move(socket), proto, std::move(rt), capped, id,
                          std::move(slot)),
        local_(std::move(local)) {}

  asio::awaitable<void> run();
  // The live-session count of this session's thread (IoPool::Lease), if
  // it has one of its own.
  void set_thread_sessions(const std::atomic<int>* n) noexcept { thread_sessions_ = n; }

  // MessageSink
  Status begin(const smtp::Transaction& txn) override {
    return staging_.begin(*rt_, *srv_.pipeline, txn, !(env_ && env_->filtering()));
  }
  Status write(std::string_view bytes) override { return staging_.write(bytes); }
  void abort() noexcept override { staging_.abort(); }

 private:
  bool trusted() const noexcept { return proto_ == Protocol::local_submit; }
  // A stop interrupts a read only between transactions.
  bool interruptible() const override { return session_ && idle_state(); }
  bool idle_state() const {
    auto s = session_->state();
    return s == smtp::State::initial || s == smtp::State::ready;
  }
  void log_line(LogFile f, std::string_view text) {
    srv_.logger.log(f, sid_, peer_, session_ ? session_->account() : std::string_view{}, text);
  }
  void log_events() {
    for (const auto& e : out_.events) {
      count(e);
      if (e.kind == smtp::LogEvent::Kind::fact) continue;
      log_line(e.kind == smtp::LogEvent::Kind::error ? LogFile::error : LogFile::smtp, e.text);
      if (e.kind == smtp::LogEvent::Kind::command) last_command_ = e.text;
    }
    if (session_) note_.update(state_name(session_->state()), session_->account(), last_command_);
  }
  // The session's typed events, counted (metrics, ServerStats).
  void count(const smtp::LogEvent& e) {
    using What = smtp::LogEvent::What;
    auto& c = srv_.counters;
    switch (e.what) {
      case What::auth_failure: c.auth_failures_smtp.fetch_add(1, std::memory_order_relaxed); break;
      case What::relay_denied: c.relay_denied.fetch_add(1, std::memory_order_relaxed); break;
      case What::dnsbl_rejected: c.dnsbl_rejected.fetch_add(1, std::memory_order_relaxed); break;
      case What::accepted: c.messages_received.fetch_add(1, std::memory_order_relaxed); break;
      case What::refusal:
        (e.text.starts_with('5') ? c.refusals_permanent : c.refusals_temporary)
            .fetch_add(1, std::memory_order_relaxed);
        break;
      case What::other: break;
    }
  }
  asio::awaitable<bool> act();
  asio::awaitable<void> proceed();
  asio::awaitable<bool> pregreet();
  void start_client_check();
  asio::awaitable<bool> client_dropped();
  bool more_pending() {
    std::error_code ec;
    return !stream_.is_tls() && stream_.socket().available(ec) > 0 && !ec;
  }
  void track_request(std::size_t data_bytes);
  asio::awaitable<Result<std::string>> commit();
  Status authenticate_message();
  // Run `fn` where waiting is fine: on the blocking pool, or here when this
  // session is alone on its thread (as proceed()).
  template <class Fn>
  asio::awaitable<void> blocking(Fn fn);
  void start_milters();
  // The TLS macros for the milters, once the handshake is done.
  void tell_milters_tls() {
    auto t = stream_.tls_info();
    if (t && env_ && env_->milters()) env_->milters()->tls_started(t->version, t->cipher, t->bits);
  }
  // The end of the message through the milters: nullopt to commit `txn`
  // (changed as they asked) and the staged message (rewritten when they
  // changed it); else what the commit answers (their refusal, or a
  // message they discarded or quarantined).
  std::optional<Result<std::string>> filter_message(milter::Chain& chain, smtp::Transaction& txn);
  asio::awaitable<void> say(std::string_view text) {
    log_line(LogFile::smtp, text);
    watchdog_.touch();
    co_await stream_.write_all(text);
  }

  Local local_;
  const std::atomic<int>* thread_sessions_ = nullptr;
  std::unique_ptr<Environment> env_;
  std::unique_ptr<smtp::Session> session_;
  smtp::Output out_;
  MessageStaging staging_;
  std::string last_command_;
  // The session is over: look-ups started at connect and not begun yet
  // are skipped (a flood of connections that hang up at once must not
  // queue DNS work on the two blocking threads).
  std::atomic<bool> ended_{false};
};

template <class Fn>
asio::awaitable<void> SmtpConnection::blocking(Fn fn) {
  if (!srv_.blocking || (thread_sessions_ && thread_sessions_->load(std::memory_order_relaxed) == 1)) {
    fn();
    co_return;
  }
  co_await asio::co_spawn(
      srv_.blocking->get_executor(),
      [&fn]() -> asio::awaitable<void> {
        fn();
        co_return;
      },
      asio::use_awaitable);
}

void SmtpConnection::start_milters() {
  const auto& cfg = rt_->config->smtp;
  const auto& specs = trusted() ? cfg.non_smtpd_milters : cfg.smtpd_milters;
  if (specs.empty()) return;
  std::vector<milter::Address> list;
  for (const auto& spec : specs) {
    auto a = milter::parse_address(spec);
    if (!a) {
      // Never silently unfiltered: a milter that cannot be parsed fails
      // like one that cannot be reached (milter_default_action).
      log_line(LogFile::error, a.error().message);
      milter::Address broken;
      broken.spec = spec;
      list.push_back(std::move(broken));
      continue;
    }
    list.push_back(std::move(*a));
  }
  milter::Timeouts t;
  t.connect = std::chrono::seconds(cfg.milter_connect_timeout);
  t.command = std::chrono::seconds(cfg.milter_command_timeout);
  t.content = std::chrono::seconds(cfg.milter_content_timeout);
  auto action = milter::parse_default_action(cfg.milter_default_action).value_or(milter::DefaultAction::tempfail);
  milter::SessionInfo info;
  info.hostname = rt_->hostname;
  info.client_addr = peer_ip_;
  if (stream_.is_tcp() && !trusted()) info.client_port = stream_.remote().port();
  info.local = trusted();
  auto chain = std::make_unique<milter::Chain>(std::move(list), t, action, std::move(info),
                                               [this](const std::string& line) { log_line(LogFile::error, line); });
  env_->set_milters(std::move(chain), sid_);
  tell_milters_tls();  // smtps: the handshake came first
  if (!trusted() && srv_.blocking)
    asio::post(srv_.blocking->get_executor(),
               [self = shared_from_this(), this] {
                 if (!ended_.load(std::memory_order_relaxed)) env_->prefetch_name(peer_ip_);
               });
}

std::optional<Result<std::string>> SmtpConnection::filter_message(milter::Chain& chain, smtp::Transaction& txn) {
  auto text = staging_.contents();
  if (!text) return Result<std::string>(unexpected(text.error()));
  milter::Message m = milter::Message::parse(*text);
  text->clear();
  m.sender = txn.reverse_path;
  for (const auto& r : txn.recipients) {
    std::string a(r.delivered_to());
    if (std::none_of(m.recipients.begin(), m.recipients.end(), [&](const std::string& x) { return util::iequals(x, a); }))
      m.recipients.push_back(std::move(a));
  }
  milter::Verdict v = chain.end_of_message(m);
  if (v.kind == milter::Verdict::Kind::reply) {
    staging_.abort();
    // "550 5.7.1 text" (a multi-line reply: its code from the last line).
    std::string_view line = v.reply;
    if (auto nl = line.rfind('\n'); nl != std::string_view::npos) line.remove_prefix(nl + 1);
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    std::string_view rest = line.size() > 4 ? line.substr(4) : std::string_view();
    std::string enhanced = line[0] == '4' ? "4.7.1" : "5.7.1";
    if (rest.size() >= 5 && rest[0] == line[0] && rest[1] == '.') {
      auto sp = rest.find(' ');
      enhanced.assign(rest.substr(0, sp));
      rest = sp == std::string_view::npos ? std::string_view() : rest.substr(sp + 1);
    }
    Error e = Error::smtp(code, std::move(enhanced), std::string(rest), util::cat("milter: ", v.reply));
    if (line.size() != v.reply.size()) e.reply = v.reply;  // multi-line: told whole, as Postfix does
    return Result<std::string>(unexpected(std::move(e)));
  }
  const std::string dropped = util::cat(sid_, ".discarded");
  if (v.kind == milter::Verdict::Kind::discard) {
    staging_.abort();
    log_line(LogFile::smtp, "milter: message discarded");
    return Result<std::string>(dropped);
  }
  // Envelope changes: the sender, then the recipients (those the client
  // gave keep what the session found for them; added ones are resolved
  // here: a local domain needs an existing account).
  if (m.sender_changed) txn.reverse_path = m.sender;
  if (m.recipients_changed) {
    std::vector<smtp::Recipient> out;
    for (const auto& a : m.recipients) {
      bool known = false;
      for (const auto& r : txn.recipients)
        if (util::iequals(r.delivered_to(), a)) {
          out.push_back(r);
          known = true;
        }
      if (known) continue;
      smtp::Recipient r;
      r.address = a;
      auto at = a.rfind('@');
      std::string domain = at == std::string::npos ? std::string() : util::to_lower(std::string_view(a).substr(at + 1));
      if (at != std::string::npos) r.address = util::cat(std::string_view(a).substr(0, at + 1), domain);
      if (domain.empty() || env_->is_local_domain(domain)) {
        std::string account = util::to_lower(std::string_view(a).substr(0, at));
        auto kind = env_->lookup_account(account);
        if (!kind || *kind == AccountKind::none) {
          log_line(LogFile::error, util::cat("milter added recipient <", a, ">: no such account, not delivered"));
          continue;
        }
        r.account = std::move(account);
        r.mailing_list = *kind == AccountKind::mailing_list;
      }
      out.push_back(std::move(r));
    }
    txn.recipients = std::move(out);
    if (txn.recipients.empty()) {
      staging_.abort();
      log_line(LogFile::smtp, "milter: every recipient removed, message dropped");
      return Result<std::string>(dropped);
    }
  }
  if (m.headers_changed || m.body_changed) {
    if (auto st = staging_.replace(m.serialize()); !st) return Result<std::string>(unexpected(st.error()));
  }
  if (m.quarantine) {
    // The hold queue (wizmail/quarantine.hpp): kept durably with its
    // envelope, not delivered until `wizmail queue release` (docs/milter.md).
    std::vector<std::string> rcpts;
    for (const auto& r : txn.recipients) rcpts.push_back(r.address);
    auto id = quarantine_message(rt_->config->queue_dir() / "quarantine", *m.quarantine, txn.reverse_path, rcpts,
                                 m.serialize());
    if (!id) return Result<std::string>(unexpected(id.error()));
    staging_.abort();
    log_line(LogFile::smtp, util::cat("milter: quarantined (", *m.quarantine, "): ", *id));
    return Result<std::string>(util::cat(sid_, ".quarantined"));
  }
  return std::nullopt;
}

asio::awaitable<Result<std::string>> SmtpConnection::commit() {
  if (auto st = staging_.finish(); !st) co_return unexpected(st.error());
  smtp::Transaction txn = session_->transaction();
  // SPF/DKIM/DMARC (docs/authentication.md): what MAIL found for an
  // unauthenticated port-25 client, then DKIM and DMARC off the I/O thread.
  if (env_->mail_auth.active && session_->account().empty() && !trusted()) {
    Status st;
    co_await blocking([&] { st = authenticate_message(); });
    env_->mail_auth = {};
    if (!st) {
      staging_.abort();
      co_return unexpected(st.error());
    }
  }
  if (auto* chain = env_->milters()) {
    note_.set_state("milters");
    watchdog_.suspend();
    std::optional<Result<std::string>> done;
    co_await blocking([&] { done = filter_message(*chain, txn); });
    watchdog_.touch();
    if (done) co_return std::move(*done);
  }
  // The RCPT check knew only the declared SIZE (0 when absent): check every
  // local recipient's quota against the real size. One recipient over quota
  // refuses the whole message (452 4.2.2, nothing delivered to anyone); the
  // client may retry the others alone.
  for (const auto& r : txn.recipients) {
    if (!r.local()) continue;
    if (auto st = env_->check_quota_now(r.account, staging_.size()); !st) {
      staging_.abort();
      if (st.error().code == Errc::mailbox_full)
        co_return unexpected(Error::smtp(452, "4.2.2", "Error: mailbox full: " + r.address,
                                         st.error().message));
      co_return unexpected(st.error());
    }
  }
  CommitJob job = staging_.take(*rt_, txn, peer_ip_, std::string(session_->account()), trusted(),
                                [this](const std::string& line) { log_line(LogFile::error, line); });
  if (!job.remote.recipients.empty() && job.remote.sender != txn.reverse_path)
    log_line(LogFile::smtp, "srs: queued with sender <" + job.remote.sender + ">");
  note_.set_state("committing");
  watchdog_.suspend();
  auto self = shared_from_this();
  auto result = co_await asio::async_initiate<decltype(asio::use_awaitable),
                                              void(Result<std::string>)>(
      [&](auto handler) {
        job.done = [h = std::move(handler), ex = ex_](Result<std::string> r) mutable {
          asio::post(ex, [h = std::move(h), r = std::move(r)]() mutable { std::move(h)(std::move(r)); });
        };
        // Alone on its session thread, nobody waits while this one
        // flushes: commit here rather than hand over to a commit thread and
        // back (docs/architecture.md, Threads).
        if (thread_sessions_ && thread_sessions_->load(std::memory_order_relaxed) == 1 &&
            srv_.pipeline->commit_here(job))
          return;
        srv_.pipeline->submit(std::move(job));
      },
      asio::use_awaitable);
  watchdog_.touch();
  co_return result;
}

// The message's SPF (from MAIL), DKIM and DMARC results: refused (an Error
// with its SMTP reply) when the policy says so, else the staged message gets
// our Authentication-Results: field on top and loses every one claiming our
// authserv-id (RFC 8601 §5). Runs where waiting is fine (blocking()).
Status SmtpConnection::authenticate_message() {
  const auto& c = rt_->config->smtp;
  auto msg = staging_.read_message();
  if (!msg) return unexpected(msg.error());
  const auto blank = msg->find("\r\n\r\n");
  const std::size_t header_len = blank == std::string::npos ? msg->size() : blank + 2;
  const std::string_view headers = std::string_view(*msg).substr(0, header_len);
  mailauth::Results r;
  r.spf_mailfrom = env_->mail_auth.spf_mailfrom;
  r.spf_helo = env_->mail_auth.spf_helo;
  auto dns = auth_dns(*rt_->config);
  if (c.dkim_verify) {
    auto v = dkim::Verifier::create(mailauth::dkim_keys(dns));
    auto res = v ? v->verify(*msg) : Result<std::vector<dkim::SignatureResult>>(unexpected(v.error()));
    if (res) {
      r.dkim = std::move(*res);
      r.dkim_checked = true;
    } else {
      log_line(LogFile::error, "dkim: cannot verify: " + res.error().message);
    }
  }
  if (c.dmarc_check && rt_->psl) {
    auto from = mailauth::from_domain(headers);
    if (!from) {
      mailauth::DmarcOutcome m;
      m.result = mailauth::DmarcResult::permerror;
      m.reason = "no single From: address";
      r.dmarc = m;
    } else {
      r.dmarc = mailauth::check_dmarc(dns, peer_ip_, *from, r.spf_mailfrom.value_or(mailauth::SpfOutcome{}),
                                      r.dkim, *rt_->psl);
    }
  }
  const auto& txn = session_->transaction();
  std::string ar = mailauth::format_authentication_results(rt_->authserv_id, r, txn.reverse_path);
  {
    std::string line;  // the field on one line, for smtp.log
    for (char ch : std::string_view(ar).substr(0, ar.size() - 2))
      if (ch != '\r' && ch != '\n') line += ch == '\t' ? ' ' : ch;
    log_line(LogFile::smtp, line);
  }
  if (r.dmarc) {
    auto d = mailauth::decide_data(auth_policy_of(c), *r.dmarc);
    if (d.kind != mailauth::Decision::Kind::accept) {
      log_line(LogFile::error, d.reason);
      const int code = d.reply.size() >= 3 ? std::atoi(d.reply.substr(0, 3).c_str()) : 451;
      const auto sp1 = d.reply.find(' ');
      const auto sp2 = d.reply.find(' ', sp1 + 1);
      return unexpected(Error::smtp(code, d.reply.substr(sp1 + 1, sp2 - sp1 - 1), d.reply.substr(sp2 + 1), d.reason));
    }
  }
  return staging_.replace_header_section(*msg, header_len,
                                         util::cat(ar, mailauth::remove_own_results(headers, rt_->authserv_id)));
}

// Output::lookup (check, then proceed): the session's policy lookups (the
// account's directory, config.def and mailbox, the embedder's directory,
// the password check) run on the blocking pool, so that a slow disk or
// directory stalls this session only. Alone on its thread, nobody else
// would wait: they run here, without the trip (as commit_here does).
asio::awaitable<void> SmtpConnection::proceed() {
  if (!srv_.blocking ||
      (thread_sessions_ && thread_sessions_->load(std::memory_order_relaxed) == 1)) {
    session_->proceed(out_);
    co_return;
  }
  // The session and out_ are touched by nobody else until this returns.
  co_await asio::co_spawn(
      srv_.blocking->get_executor(),
      [this]() -> asio::awaitable<void> {
        session_->proceed(out_);
        co_return;
      },
      asio::use_awaitable);
}

asio::awaitable<bool> SmtpConnection::act() {
  for (;;) {
    if (out_.lookup) co_await proceed();
    log_events();
    if (!out_.replies.empty()) {
      watchdog_.touch();
      if (auto ec = co_await stream_.write_all(out_.replies); ec) co_return false;
    }
    if (out_.close) co_return false;
    if (out_.start_tls) {
      out_.clear();
      if (!rt_->tls) co_return false;
      watchdog_.touch();
      if (auto ec = co_await stream_.handshake(rt_->tls); ec) {
        log_line(LogFile::error, "TLS handshake failed: " + ec.message());
        co_return false;
      }
      log_line(LogFile::smtp, "TLS started: " + stream_.tls_description());
      tell_milters_tls();
      session_->on_tls_started(out_, stream_.tls_received_text());
      continue;
    }
    if (out_.commit) {
      out_.clear();
      auto r = co_await commit();
      session_->on_commit(std::move(r), out_);
      continue;
    }
    auto delay = out_.delay;
    out_.clear();
    if (delay.count() > 0) {
      // The auth penalty: the attempt waits before it is checked (the
      // server waits, not the client: no timer of the client's runs).
      watchdog_.suspend();
      asio::steady_timer t(ex_);
      t.expires_after(delay);
      co_await t.async_wait(net::use_tuple);
      watchdog_.touch();
      if (stream_.peer_gone()) {
        // A guesser that hangs up before the answer learns nothing: its
        // attempt is never checked (the session's end releases it).
        log_line(LogFile::smtp, "client left while its login attempt waited: not checked");
        co_return false;
      }
      session_->resume(out_);
      continue;
    }
    co_return true;
  }
}

// Postscreen's pregreet test (docs/smtp.md): on port 25 a client outside
// greet_wait_exempt that has not passed within greet_pass_ttl is greeted
// only after greet_wait; what it sends meanwhile goes to the session, which
// refuses it (554) before any greeting. False: the connection is over.
asio::awaitable<bool> SmtpConnection::pregreet() {
  using namespace asio::experimental::awaitable_operators;
  const auto& cfg = rt_->config->smtp;
  if (proto_ != Protocol::smtp || cfg.greet_wait <= 0) co_return true;
  if (rt_->greet_exempt.contains(stream_.remote().address())) co_return true;
  const auto ttl = std::chrono::seconds(cfg.greet_pass_ttl);
  if (srv_.greet_cache.passed(peer_ip_, ttl)) co_return true;
  asio::steady_timer quiet(ex_);
  quiet.expires_after(std::chrono::milliseconds(cfg.greet_wait));
  for (;;) {
    reading_ = true;  // a stop cancels the wait
    auto first = co_await (stream_.socket().async_wait(asio::socket_base::wait_read, net::use_tuple) ||
                           quiet.async_wait(net::use_tuple));
    reading_ = false;
    if (first.index() == 1) {  // silent until the end of the wait
      srv_.greet_cache.pass(peer_ip_, ttl);
      co_return true;
    }
    if (auto [ec] = std::get<0>(first); ec) {
      if (stopping_ && stream_.is_open()) co_await say(session_->shutdown_reply());
      co_return false;
    }
    // Readiness without input (the PROXY header was taken from the socket
    // behind the reactor's back): still silent, wait on.
    if (stream_.input_pending()) break;
  }
  auto [ec, data] = co_await stream_.read();
  if (ec || data.empty()) co_return false;  // hung up before the greeting
  if (untrusted_proxy_header(data)) {
    co_await say(kProxyRefused);
    co_return false;
  }
  session_->feed(data, out_);
  co_return co_await act();
}

// DNS block lists (docs/dnsbl.md): the look-ups start as the client
// connects, on the blocking pool, so that their answers are usually in by
// the time they are read (the first RCPT; the greeting with drop) and a
// slow list costs the client nothing it would not wait for anyway. The task
// holds the connection; a reader that comes first does the look-ups itself.
void SmtpConnection::start_client_check() {
  if (proto_ != Protocol::smtp || !srv_.blocking || !env_->wants_client_check()) return;
  asio::post(srv_.blocking->get_executor(),
             [self = shared_from_this(), this] {
               if (!ended_.load(std::memory_order_relaxed)) env_->prefetch_client(peer_ip_);
             });
}

// dnsbl_action=drop (postscreen's drop): the greeting waits for the lists;
// a client they block gets 521 and the connection ends. True: dropped.
asio::awaitable<bool> SmtpConnection::client_dropped() {
  if (proto_ != Protocol::smtp || rt_->config->smtp.dnsbl_action != "drop" || !env_->wants_client_check())
    co_return false;
  smtp::Environment::ClientVerdict v;
  co_await blocking([&] { v = env_->check_client(peer_ip_); });
  if (v.refusal.empty()) co_return false;  // notes: logged by the session at RCPT
  srv_.counters.dnsbl_rejected.fetch_add(1, std::memory_order_relaxed);
  log_line(LogFile::error, util::cat(v.reason, ": dropped at connect (dnsbl_action=drop)"));
  co_await say(util::cat(v.refusal, "\r\n"));
  co_return true;
}

// The command deadline and the DATA rate (net::RequestDeadline), from the
// session's state after it took `data_bytes` bytes of message data.
void SmtpConnection::track_request(std::size_t data_bytes) {
  using Phase = net::RequestDeadline::Phase;
  Phase phase = session_->state() == smtp::State::data ? Phase::data
                : session_->mid_command()               ? Phase::command
                                                        : Phase::idle;
  request_.update(phase, data_bytes, std::chrono::steady_clock::now());
  watchdog_.set_request_deadline(request_.deadline());
}

asio::awaitable<void> SmtpConnection::run() {
  auto self = shared_from_this();
  if (trusted()) {
    if (!stream_.load_endpoints()) co_return;
    // The submit socket's peer has no address; its Received line and the
    // logs name it as the loopback host, and `sessions` by its uid.
    peer_ip_ = "127.0.0.1";
    peer_ = "local:uid=" + std::to_string(local_.uid);
    sid_ = local_session_id(id_);
    note_.start(proto_, "local uid " + std::to_string(local_.uid));
    note_.update("initial", "", "");
  } else if (!identify_tcp_peer("")) {
    co_return;
  }
  const auto& cfg = *rt_->config;
  start_watchdog(self, std::chrono::seconds(cfg.smtp.session_timeout));
  // Through a load balancer: the client is who its PROXY header names, for
  // everything from here on (docs/proxy-protocol.md).
  if (!trusted() && !co_await take_proxy_header(false)) co_return;
  log_line(LogFile::smtp, trusted() ? std::string("connect to submit socket")
                                    : std::string("connect to ") + std::string(to_string(proto_)));
  if (proto_ == Protocol::smtps) {
    if (!rt_->tls) co_return;
    if (co_await untrusted_proxy_header_before_tls()) co_return;
    if (auto ec = co_await stream_.handshake(rt_->tls); ec) {
      log_line(LogFile::error, "TLS handshake failed: " + ec.message());
      stream_.close();
      co_return;
    }
  }
  env_ = std::make_unique<Environment>(srv_, *rt_, stream_, trusted());
  smtp::SessionOptions so;
  so.config = trusted() && local_.session_config ? local_.session_config : rt_->config;
  so.listener = proto_ == Protocol::submission ? smtp::Listener::submission
                : proto_ == Protocol::smtps    ? smtp::Listener::smtps
                                               : smtp::Listener::smtp;
  so.hostname = rt_->hostname;
  so.session_id = sid_;
  so.client_ip = peer_ip_;
  so.tls_available = !trusted() && rt_->tls != nullptr;
  so.tls_active = stream_.is_tls();
  so.tls_cipher = stream_.tls_received_text();
  so.local_submit = trusted();
  so.auth_fail_delay = std::chrono::milliseconds(cfg.smtp.auth_penalty_delay);
  so.auth_max_delay = std::chrono::milliseconds(cfg.smtp.auth_penalty_max_delay);
  so.defer_lookups = true;
  request_ = net::RequestDeadline({std::chrono::seconds(cfg.smtp.command_deadline),
                                   cfg.smtp.data_min_rate});
  start_milters();
  session_ = std::make_unique<smtp::Session>(std::move(so), *env_, *this);
  start_client_check();
  bool open = co_await pregreet();
  if (open && co_await client_dropped()) open = false;
  if (open) {
    session_->start(out_);
    open = co_await act();
  }
  while (open) {
    if (stopping_ && idle_state()) {
      co_await say(session_->shutdown_reply());
      break;
    }
    auto in = co_await read_client();
    using End = Read::End;
    if (in.end == End::closed) {
      if (in.ec && in.ec != asio::error::eof && in.ec != asio::error::operation_aborted)
        log_line(LogFile::smtp, "read: " + in.ec.message());
      break;
    }
    if (in.end == End::request_deadline)
      log_line(LogFile::error, session_->state() == smtp::State::data
                                   ? "DATA too slow (data_min_rate), disconnected"
                                   : "command not complete within command_deadline, disconnected");
    if (in.end == End::request_deadline || in.end == End::silence) {
      co_await say(session_->timeout_reply());
      break;
    }
    if (in.end == End::stop) {
      co_await say(session_->shutdown_reply());
      break;
    }
    const std::string_view data = in.data;
    if (!trusted() && untrusted_proxy_header(data)) {
      co_await say(kProxyRefused);
      break;
    }
    const std::size_t data_bytes = session_->state() == smtp::State::data ? data.size() : 0;
    session_->feed(data, out_, more_pending());
    open = co_await act();
    if (open && !trusted()) track_request(data_bytes);
  }
  ended_.store(true, std::memory_order_relaxed);
  watchdog_.stop();
  log_line(LogFile::smtp, "close");
  session_.reset();  // aborts an unfinished message
  staging_.abort();
  if (env_) env_->stop_milters();  // abort and quit: no answer awaited
  co_await stream_.close_gracefully(
      watchdog_.bound(std::chrono::steady_clock::now() + net::tls_close_wait));
}

}  // namespace

void start_smtp_connection(Server::Impl& srv, tcp::socket socket, Protocol protocol,
                           std::shared_ptr<const Runtime> runtime, bool capped,
                           net::ClientConnections::Slot slot) {
  start_tcp_session(srv, std::move(socket), capped,
                    [&](auto ex, tcp::socket s, ConnectionRegistry::Id id, const IoPool::Lease& place) {
                      auto conn = std::make_shared<SmtpConnection>(srv.services, ex, std::move(s), protocol,
                                                                   std::move(runtime), capped, id, std::move(slot));
                      conn->set_thread_sessions(place.counter());
                      return conn;
                    });
}

void start_local_submit_connection(Server::Impl& srv, asio::local::stream_protocol::socket socket,
                                   uid_t uid, std::shared_ptr<const Config> session_config) {
  // A local session stays on the executor the submit socket accepted it on
  // (the server's io_context, on a strand of its own).
  auto ex = asio::make_strand(socket.get_executor());
  asio::local::stream_protocol::socket s(ex);
  std::error_code ec;
  s.assign(asio::local::stream_protocol(), socket.release(), ec);
  if (ec) {
    srv.logger.server("cannot start a submit session: " + ec.message());
    return;
  }
  srv.counters.sessions_total.fetch_add(1, std::memory_order_relaxed);
  auto conn = srv.connections.add([&](ConnectionRegistry::Id id) {
    return std::make_shared<SmtpConnection>(
        srv.services, ex, std::move(s), Protocol::local_submit, srv.runtime(), false, id,
        net::ClientConnections::Slot{}, SmtpConnection::Local{uid, std::move(session_config)});
  });
  asio::co_spawn(ex, conn->run(), [conn](std::exception_ptr) {});
}

}  // namespace wizmail::server
