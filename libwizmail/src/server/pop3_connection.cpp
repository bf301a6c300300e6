#include "server/pop3_connection.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>
#include <cstdio>

#include "net/address.hpp"
#include "net/request_deadline.hpp"
#include "net/stream.hpp"
#include "mime/dot_stuffer.hpp"
#include "pop3/session.hpp"
#include "pop3/store_backend.hpp"
#include "server/server_impl.hpp"
#include "server/session_connection.hpp"
#include "server/session_start.hpp"
#include "server/state_names.hpp"
#include "util/strings.hpp"

namespace wizmail::server {

namespace {

using tcp = asio::ip::tcp;
using namespace std::chrono_literals;
using pop3::Action;
using pop3::LogEvent;
using pop3::Output;
using pop3::Session;
using pop3::SessionOptions;
using pop3::StoreBackend;
using pop3::store_backend_options;

constexpr std::size_t flush_at = 64 * 1024;     // write when this much is queued
constexpr std::size_t file_chunk = 32 * 1024;   // read() size while streaming
constexpr auto lock_refresh_every = 60s;

class Pop3Connection final : public SessionConnection,
                             public std::enable_shared_from_this<Pop3Connection> {
 public:
  Pop3Connection(SessionServices& srv, asio::any_io_executor ex, tcp::socket socket, Protocol proto,
                 std::shared_ptr<const Runtime> rt, bool capped, ConnectionRegistry::Id id,
                 net::ClientConnections::Slot slot)
      : SessionConnection(srv, std::move(ex), std::move(socket), proto, std::move(rt), capped, id,
                          std::move(slot)) {}

  ~Pop3Connection() override {
    session_.reset();  // releases the mailbox lock before the slot is freed
  }

  asio::awaitable<void> run();

 private:
  void log(LogFile f, std::string_view text) {
    srv_.logger.log(f, sid_, peer_, session_ ? std::string_view(session_->account())
                                             : std::string_view{},
                    text);
  }
  void log_events() {
    for (const auto& e : out_.logs) {
      log(e.channel == LogEvent::Channel::error ? LogFile::error : LogFile::pop, e.text);
      if (e.channel == LogEvent::Channel::pop) last_command_ = e.text;
      if (e.what == LogEvent::What::auth_failure)
        srv_.counters.auth_failures_pop3.fetch_add(1, std::memory_order_relaxed);
    }
    out_.logs.clear();
    if (session_)
      note_.update(server::state_name(session_->state()), session_->account(), last_command_);
  }
  void maybe_refresh_lock() {
    auto now = std::chrono::steady_clock::now();
    if (now - refreshed_ >= lock_refresh_every) {
      refreshed_ = now;
      session_->keep_alive();
    }
  }
  // session_->feed(data) (resume() when data is empty): on the server's
  // blocking pool when it may wait for the disk (Session::may_block), else
  // here.
  asio::awaitable<void> feed(std::string_view data);
  asio::awaitable<bool> flush();
  asio::awaitable<bool> stream_message(Action& a);
  asio::awaitable<bool> act();
  asio::awaitable<void> say_and_end(std::string_view text) {
    wbuf_ = text;
    co_await flush();
  }

  std::unique_ptr<StoreBackend> backend_;
  std::unique_ptr<Session> session_;
  Output out_;
  std::string wbuf_;  // queued output; freed after each batch
  std::chrono::steady_clock::time_point refreshed_ = std::chrono::steady_clock::now();
  std::string last_command_;
};

asio::awaitable<void> Pop3Connection::feed(std::string_view data) {
  auto step = [this](std::string_view d) {
    if (d.empty()) session_->resume(out_);
    else session_->feed(d, out_);
  };
  if (!srv_.blocking || !session_->may_block(data)) {
    step(data);
    co_return;
  }
  // `data` lives in this thread's read buffer, which another session of
  // this thread may reuse meanwhile: the worker gets a copy. The session
  // and out_ are touched by nobody else until this returns.
  std::string copy(data);
  co_await asio::co_spawn(
      srv_.blocking->get_executor(),
      [&]() -> asio::awaitable<void> {
        step(copy);
        co_return;
      },
      asio::use_awaitable);
}

asio::awaitable<bool> Pop3Connection::flush() {
  if (wbuf_.empty()) co_return true;
  watchdog_.touch();
  auto ec = co_await stream_.write_all(wbuf_);
  wbuf_.clear();
  co_return !ec;
}

// RETR/TOP: read the file in fixed chunks, dot-stuff into the output queue,
// write whenever enough is queued. Memory stays bounded whatever the size.
asio::awaitable<bool> Pop3Connection::stream_message(Action& a) {
  mime::DotStuffer stuffer(a.body_lines);
  std::unique_ptr<char[]> buf(new char[file_chunk]);
  for (;;) {
    auto n = a.reader->read(buf.get(), file_chunk);
    if (!n) {
      // The +OK is already out: end the response so the client stays in
      // sync, and say in the log why the message is short.
      out_.logs.push_back({LogEvent::Channel::error, "RETR read failed: " + n.error().message});
      log_events();
      break;
    }
    if (*n == 0) break;
    if (!stuffer.feed(std::string_view(buf.get(), *n), wbuf_)) break;
    if (wbuf_.size() >= flush_at) {
      if (!co_await flush()) co_return false;
      maybe_refresh_lock();
    }
  }
  stuffer.finish(wbuf_);
  a.reader.reset();
  co_return true;
}

asio::awaitable<bool> Pop3Connection::act() {
  log_events();
  bool open = true;
  for (auto& a : out_.actions) {
    switch (a.kind) {
      case Action::Kind::send:
        if (wbuf_.empty()) wbuf_.swap(a.text);
        else wbuf_ += a.text;
        if (wbuf_.size() >= flush_at && !co_await flush()) open = false;
        break;
      case Action::Kind::stream:
        if (!co_await stream_message(a)) open = false;
        break;
      case Action::Kind::delay: {
        if (!co_await flush()) {
          open = false;
          break;
        }
        asio::steady_timer t(ex_);
        t.expires_after(a.delay);
        co_await t.async_wait(net::use_tuple);
        watchdog_.touch();
        if (stream_.peer_gone()) {
          // A guesser that hangs up before the answer learns nothing: a
          // login attempt waiting here is never checked (connection_lost).
          log(LogFile::pop, "client left during a wait: nothing more done");
          open = false;
        }
        break;
      }
      case Action::Kind::start_tls:
        if (!co_await flush() || !rt_->tls) {
          open = false;
          break;
        }
        watchdog_.touch();
        if (auto ec = co_await stream_.handshake(rt_->tls); ec) {
          log(LogFile::error, "TLS handshake failed: " + ec.message());
          open = false;
          break;
        }
        log(LogFile::pop, "TLS started: " + stream_.tls_description());
        session_->tls_started();
        break;
      case Action::Kind::close:
        co_await flush();
        open = false;
        break;
    }
    if (!open) break;
  }
  out_.actions.clear();
  log_events();
  if (open) open = co_await flush();
  std::string().swap(wbuf_);  // an idle session keeps no output buffer
  co_return open;
}

asio::awaitable<void> Pop3Connection::run() {
  auto self = shared_from_this();
  if (!identify_tcp_peer("p")) co_return;
  const auto& cfg = *rt_->config;
  // RFC 1939 §3: the autologout timer is at least ten minutes.
  const auto timeout = std::chrono::seconds(std::max(cfg.smtp.session_timeout, 600));
  start_watchdog(self, timeout);
  // Through a load balancer: the client is who its PROXY header names, for
  // everything from here on (docs/proxy-protocol.md).
  if (!co_await take_proxy_header(true)) co_return;
  const auto peer_addr = net::unmap(stream_.remote().address());
  log(LogFile::pop, std::string("connect to ") + std::string(to_string(proto_)));
  if (proto_ == Protocol::pop3s) {
    if (!rt_->tls) co_return;
    if (co_await untrusted_proxy_header_before_tls()) co_return;
    if (auto ec = co_await stream_.handshake(rt_->tls); ec) {
      log(LogFile::error, "TLS handshake failed: " + ec.message());
      stream_.close();
      co_return;
    }
  }
  auto bo = store_backend_options(rt_->config);
  bo.penalty = &srv_.auth_penalty;
  bo.penalty_policy = server::auth_policy(cfg.smtp);
  bo.pop_logins = srv_.pop_logins;
  bo.pop_login_ttl = std::chrono::minutes(cfg.smtp.pop_befor_smtp_time_to_live);
  bo.journal = srv_.pipeline ? srv_.pipeline->journal() : nullptr;
  bo.leases = srv_.leases;
  if (srv_.leases) bo.lease_owner = util::cat(srv_.leases->node(), ":", sid_);
  backend_ = std::make_unique<StoreBackend>(std::move(bo));
  SessionOptions so;
  so.host = cfg.pop.host;
  so.peer_ip = peer_ip_;
  so.peer_loopback = peer_addr.is_loopback();
  so.tls_available = rt_->tls != nullptr;
  so.tls_active = stream_.is_tls();
  so.auth_requires_tls = cfg.smtp.auth_requires_tls;
  so.uidl_interval_ms = cfg.pop.uidl_interval;
  so.failure_delay = std::chrono::milliseconds(cfg.smtp.auth_penalty_delay);
  so.max_failure_delay = std::chrono::milliseconds(cfg.smtp.auth_penalty_max_delay);
  request_ = net::RequestDeadline({std::chrono::seconds(cfg.smtp.command_deadline), 0});
  so.local_domains = rt_->local_domains;
  session_ = std::make_unique<Session>(std::move(so), *backend_);
  session_->greeting(out_);
  bool open = co_await act();
  while (open) {
    if (stopping_) {
      co_await say_and_end("-ERR [SYS/TEMP] server shutting down\r\n");
      break;
    }
    auto in = co_await read_client();
    using End = Read::End;
    if (in.end == End::request_deadline) {
      log(LogFile::error, "command not complete within command_deadline, disconnected");
      co_await say_and_end("-ERR [SYS/TEMP] command not complete in time, closing\r\n");
    } else if (in.end == End::silence) {
      co_await say_and_end("-ERR autologout: idle for too long\r\n");
    } else if (in.end == End::stop) {
      co_await say_and_end("-ERR [SYS/TEMP] server shutting down\r\n");
    }
    if (in.end != End::data) break;
    if (untrusted_proxy_header(in.data)) {
      // A client posing as a load balancer to choose its own address.
      co_await say_and_end("-ERR PROXY protocol header refused: your address is not a trusted proxy\r\n");
      break;
    }
    maybe_refresh_lock();
    co_await feed(in.data);
    open = co_await act();
    while (open && session_->has_backlog()) {
      co_await feed({});
      open = co_await act();
    }
    if (open) {
      // The command deadline: a line begun must end within command_deadline.
      using Phase = net::RequestDeadline::Phase;
      request_.update(session_->mid_command() ? Phase::command : Phase::idle, 0,
                      std::chrono::steady_clock::now());
      watchdog_.set_request_deadline(request_.deadline());
    }
  }
  watchdog_.stop();
  if (session_ && !session_->closed()) log(LogFile::pop, "connection lost: nothing deleted");
  log(LogFile::pop, "close");
  if (session_) session_->connection_lost();
  co_await stream_.close_gracefully(
      watchdog_.bound(std::chrono::steady_clock::now() + net::tls_close_wait));
}

}  // namespace

void start_pop3_connection(Server::Impl& srv, tcp::socket socket, Protocol protocol,
                           std::shared_ptr<const server::Runtime> runtime, bool capped,
                           net::ClientConnections::Slot slot) {
  start_tcp_session(srv, std::move(socket), capped, [&](auto ex, tcp::socket s, ConnectionRegistry::Id id, auto&) {
    return std::make_shared<Pop3Connection>(srv.services, ex, std::move(s), protocol, std::move(runtime), capped, id,
                                            std::move(slot));
  });
}

}  // namespace wizmail::server
