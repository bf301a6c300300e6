#include "server/submit_connection.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <asio/write.hpp>

#include <array>
#include <random>

#include "server/live.hpp"
#include "server/local_sockets.hpp"
#include "server/state_names.hpp"
#include "net/stream.hpp"
#include "server/embedder_callbacks.hpp"
#include "server/server_impl.hpp"
#include "server/staging.hpp"
#include "smtp/session.hpp"
#include "wizmail/mailbox.hpp"

namespace wizmail::server {

namespace {

using local = asio::local::stream_protocol;

// Policy answers for a trusted local peer: local domains and accounts as for
// TCP sessions; no AUTH (a local peer never needs it).
class TrustedEnvironment final : public smtp::Environment {
 public:
  TrustedEnvironment(Server::Impl& srv, const server::Runtime& rt)
      : srv_(srv), rt_(rt), store_(rt.mailbox_dir) {}

  bool is_local_domain(std::string_view domain) override {
    for (const auto& d : rt_.local_domains)
      if (d == domain) return true;
    return false;
  }
  Result<AccountKind> lookup_account(std::string_view account) override { return store_.lookup(account); }
  Result<AccountSettings> account_settings(std::string_view account) override {
    return rt_.config->account_settings(account);
  }
  Result<bool> quota_allows(std::string_view account, std::int64_t incoming) override {
    auto st = check_quota(account, static_cast<std::uint64_t>(std::max<std::int64_t>(incoming, 0)));
    if (st) return true;
    if (st.error().smtp_code == 452 || st.error().code == Errc::limit) return false;
    return unexpected(st.error());
  }
  Status check_quota(std::string_view account, std::uint64_t size) {
    auto s = rt_.config->account_settings(account);
    if (!s) return unexpected(s.error());
    if (s->mailbox_capacity_mail_count < 0 && s->mailbox_capacity_mail_size < 0) return {};
    auto dir = store_.account_dir(account);
    if (!dir) return unexpected(dir.error());
    return Mailbox(*dir).check_quota(s->mailbox_capacity_mail_count, s->mailbox_capacity_mail_size,
                                     size);
  }
  Result<bool> authenticate(std::string_view, std::string_view) override { return false; }
  std::optional<std::string> plain_password(std::string_view) override { return std::nullopt; }
  std::optional<std::string> pop_login_account(std::string_view, std::chrono::minutes) override {
    return std::nullopt;
  }
  Result<std::int64_t> sends_today(std::string_view account) override {
    return srv_.sends_today(store_, account);
  }
  Status record_send(std::string_view account, bool relayed) override {
    return srv_.record_send(store_, account, relayed);
  }
  RecipientAnswer check_recipient(const RecipientQuestion& q) override {
    return server::ask_recipient_callback(srv_.opt.recipient_callback, q);
  }
  std::chrono::system_clock::time_point now() override { return std::chrono::system_clock::now(); }
  std::uint64_t random() override {
    thread_local std::mt19937_64 rng{std::random_device{}()};
    return rng();
  }

 private:
  Server::Impl& srv_;
  const server::Runtime& rt_;
  AccountStore store_;
};

class SubmitConnection final : public server::Connection,
                               public smtp::MessageSink,
                               public std::enable_shared_from_this<SubmitConnection> {
 public:
  SubmitConnection(Server::Impl& srv, LocalSockets& sockets, local::socket socket,
                   std::shared_ptr<const server::Runtime> rt, uid_t uid, std::uint64_t id)
      : srv_(srv), sockets_(sockets), rt_(std::move(rt)), sock_(std::move(socket)),
        ex_(sock_.get_executor()), watchdog_(ex_), uid_(uid), id_(id) {
    note_.start(Protocol::local_submit, "local uid " + std::to_string(uid_));
    note_.update("initial", "", "");
  }
  ~SubmitConnection() override {
    srv_.sessions_smtp.fetch_sub(1, std::memory_order_relaxed);
    srv_.unregister(id_);
  }

  asio::awaitable<void> run();

  void shutdown(std::chrono::steady_clock::time_point deadline) override {
    stopping_ = true;
    watchdog_.expire_at(deadline);
    if (reading_ && session_ && idle_state()) {
      std::error_code ec;
      sock_.cancel(ec);
    }
  }
  asio::any_io_executor executor() const override { return ex_; }
  SessionInfo describe() const override { return note_.snapshot(id_); }

  Status begin(const smtp::Transaction& txn) override { return staging_.begin(*rt_, *srv_.pipeline, txn); }
  Status write(std::string_view bytes) override { return staging_.write(bytes); }
  void abort() noexcept override { staging_.abort(); }

 private:
  bool idle_state() const {
    auto s = session_->state();
    return s == smtp::State::initial || s == smtp::State::ready;
  }
  void log_line(server::LogFile f, std::string_view text) {
    srv_.logger.log(f, sid_, peer_, {}, text);
  }
  void note() {
    std::string command;
    for (const auto& e : out_.events)
      if (e.kind == smtp::LogEvent::Kind::command) command = e.text;
    if (command.empty()) command = last_command_;
    last_command_ = command;
    note_.update(state_name(session_->state()), "", command);
  }
  asio::awaitable<std::error_code> write_all(std::string_view text) {
    auto [ec, n] = co_await asio::async_write(sock_, asio::buffer(text), net::use_tuple);
    (void)n;
    co_return ec;
  }
  asio::awaitable<bool> act();
  asio::awaitable<Result<std::string>> commit();

  Server::Impl& srv_;
  LocalSockets& sockets_;
  std::shared_ptr<const server::Runtime> rt_;
  local::socket sock_;
  asio::any_io_executor ex_;
  net::Watchdog watchdog_;
  uid_t uid_;
  std::uint64_t id_;
  std::string sid_, peer_;
  std::unique_ptr<TrustedEnvironment> env_;
  std::unique_ptr<smtp::Session> session_;
  smtp::Output out_;
  server::MessageStaging staging_;
  SessionNote note_;
  std::string last_command_;
  std::array<char, 16384> buf_{};
  bool reading_ = false, stopping_ = false;
};

asio::awaitable<Result<std::string>> SubmitConnection::commit() {
  if (auto st = staging_.finish(); !st) co_return unexpected(st.error());
  const auto& txn = session_->transaction();
  for (const auto& r : txn.recipients) {
    if (!r.local()) continue;
    if (auto st = env_->check_quota(r.account, staging_.size()); !st) {
      staging_.abort();
      if (st.error().smtp_code == 452 || st.error().code == Errc::limit)
        co_return unexpected(Error::smtp(452, "4.2.2", "Error: mailbox full: " + r.address,
                                         st.error().message));
      co_return unexpected(st.error());
    }
  }
  server::CommitJob job = staging_.take(*rt_, txn, "127.0.0.1", {});
  watchdog_.suspend();
  auto self = shared_from_this();
  auto result = co_await asio::async_initiate<decltype(asio::use_awaitable), void(Result<std::string>)>(
      [&](auto handler) {
        job.done = [h = std::move(handler), ex = ex_](Result<std::string> r) mutable {
          asio::post(ex, [h = std::move(h), r = std::move(r)]() mutable { std::move(h)(std::move(r)); });
        };
        srv_.pipeline->submit(std::move(job));
      },
      asio::use_awaitable);
  watchdog_.touch();
  if (result) srv_.messages_received.fetch_add(1, std::memory_order_relaxed);
  co_return result;
}

asio::awaitable<bool> SubmitConnection::act() {
  for (;;) {
    bool delayed = out_.delay.count() > 0;
    if (delayed) {
      asio::steady_timer t(ex_);
      t.expires_after(out_.delay);
      co_await t.async_wait(net::use_tuple);
    }
    for (const auto& e : out_.events)
      log_line(e.kind == smtp::LogEvent::Kind::error ? server::LogFile::error : server::LogFile::smtp,
               e.text);
    note();
    if (!out_.replies.empty()) {
      watchdog_.touch();
      if (auto ec = co_await write_all(out_.replies); ec) co_return false;
    }
    if (out_.close || out_.start_tls) co_return false;  // no TLS on a local socket
    if (out_.commit) {
      out_.clear();
      note_.set_state("committing");
      auto r = co_await commit();
      session_->on_commit(std::move(r), out_);
      continue;
    }
    out_.clear();
    if (delayed) {
      session_->resume(out_);
      continue;
    }
    co_return true;
  }
}

asio::awaitable<void> SubmitConnection::run() {
  auto self = shared_from_this();
  peer_ = "local:uid=" + std::to_string(uid_);
  char sid[24];
  std::snprintf(sid, sizeof sid, "L%llx", static_cast<unsigned long long>(id_));
  sid_ = sid;
  const auto& cfg = *rt_->config;
  watchdog_.start(weak_from_this(), std::chrono::seconds(cfg.smtp.session_timeout), [this] {
    std::error_code ec;
    if (reading_) sock_.cancel(ec);
    else sock_.close(ec);
  });
  log_line(server::LogFile::smtp, "connect to submit socket");
  env_ = std::make_unique<TrustedEnvironment>(srv_, *rt_);
  smtp::SessionOptions so;
  so.config = sockets_.trusted_config(rt_->config);
  so.listener = smtp::Listener::smtp;
  so.hostname = rt_->hostname;
  so.session_id = sid_;
  so.client_ip = "127.0.0.1";
  so.tls_available = false;
  so.local_submit = true;
  session_ = std::make_unique<smtp::Session>(std::move(so), *env_, *this);
  session_->start(out_);
  bool open = co_await act();
  while (open) {
    if (stopping_ && idle_state()) {
      co_await write_all(session_->shutdown_reply());
      break;
    }
    watchdog_.touch();
    reading_ = true;
    auto [ec, n] = co_await sock_.async_read_some(asio::buffer(buf_), net::use_tuple);
    reading_ = false;
    if (ec) {
      if (ec == asio::error::operation_aborted && sock_.is_open()) {
        if (watchdog_.expired() && !stopping_) co_await write_all(session_->timeout_reply());
        else co_await write_all(session_->shutdown_reply());
      }
      break;
    }
    if (n == 0) break;
    session_->feed(std::string_view(buf_.data(), n), out_);
    open = co_await act();
  }
  watchdog_.stop();
  log_line(server::LogFile::smtp, "close");
  session_.reset();
  staging_.abort();
  std::error_code ec;
  sock_.close(ec);
}

}  // namespace

void start_submit_connection(Server::Impl& srv, LocalSockets& sockets, local::socket socket, uid_t uid) {
  std::shared_ptr<SubmitConnection> conn;
  {
    std::lock_guard lk(srv.conn_mu);
    if (srv.stopping) return;
    auto id = ++srv.next_conn;
    srv.sessions_smtp.fetch_add(1, std::memory_order_relaxed);
    srv.sessions_total.fetch_add(1, std::memory_order_relaxed);
    conn = std::make_shared<SubmitConnection>(srv, sockets, std::move(socket), srv.runtime(), uid, id);
    srv.conns.emplace(id, conn);
  }
  auto ex = conn->executor();
  // The handler keeps the connection alive until run() has started.
  asio::co_spawn(ex, conn->run(), [conn](std::exception_ptr) {});
}

}  // namespace wizmail::server
