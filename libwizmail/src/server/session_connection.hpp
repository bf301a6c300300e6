// What every protocol connection (SMTP, POP3) shares, written once: its
// stream, watchdog and request deadline; its registration, its place under
// `multiprocessing` and client_connection_limit and the session counters
// (taken at construction, given back at destruction); who the peer is; what
// `sessions` shows; and how a stop reaches it. The protocol connection adds
// its session and its read/act loop.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "net/client_connections.hpp"
#include "net/request_deadline.hpp"
#include "net/stream.hpp"
#include "server/connection_registry.hpp"
#include "server/live.hpp"
#include "server/session_services.hpp"

namespace wizmail::server {

// Whether a new TCP client may have a session: client_connection_limit
// (per client network) first, then `multiprocessing`; clients in
// multiprocessing_exempt are not counted. `client`: the client's address
// (the socket's peer, or what a PROXY header named). ok: `slot` and
// `capped` (counted against multiprocessing) are handed to the connection,
// which gives them back when it ends; else `why` for error.log and nothing
// is counted but the refusal (refused_busy).
struct Admission {
  bool ok = true;
  bool capped = false;
  net::ClientConnections::Slot slot;
  bool per_client = false;  // refused by client_connection_limit, else by multiprocessing
  std::string why;
};
Admission admit_client(SessionServices& srv, const Runtime& rt, const asio::ip::address& client);
// The refusal's reply: 421 4.7.0 (SMTP) or -ERR [SYS/TEMP] (POP3).
std::string refusal_text(const Runtime& rt, bool pop, const Admission& a);

class SessionConnection : public Connection {
 public:
  SessionConnection(const SessionConnection&) = delete;
  SessionConnection& operator=(const SessionConnection&) = delete;

  asio::any_io_executor executor() const override { return ex_; }
  SessionInfo describe() const override { return note_.snapshot(id_); }
  // A stop: wind down (the protocol says goodbye when idle), hard close at
  // `deadline` (the watchdog). A read in progress is cancelled when the
  // session may be interrupted there (interruptible()).
  void shutdown(std::chrono::steady_clock::time_point deadline) override;

 protected:
  template <class Socket>
  SessionConnection(SessionServices& srv, asio::any_io_executor ex, Socket socket, Protocol proto,
                    std::shared_ptr<const Runtime> rt, bool capped, ConnectionRegistry::Id id,
                    net::ClientConnections::Slot slot)
      : srv_(srv), ex_(std::move(ex)), rt_(std::move(rt)), stream_(std::move(socket)), watchdog_(ex_),
        proto_(proto), capped_(capped), id_(id), slot_(std::move(slot)) {
    count().fetch_add(1, std::memory_order_relaxed);
  }
  ~SessionConnection() override;

  // Whether a stop may cancel the read in progress now (e.g. between
  // transactions); by default always.
  virtual bool interruptible() const { return true; }

  // Reads the TCP peer's address into peer_ip_ / peer_, makes the session
  // id (session_id(sid_prefix, id)), starts the `sessions` note and sets
  // TCP_NODELAY. False when the socket is no longer connected.
  bool identify_tcp_peer(std::string_view sid_prefix);
  // A peer in proxy_trusted_networks must start with a PROXY protocol
  // header (docs/proxy-protocol.md): read it (within kProxyHeaderTime),
  // make the client it names the connection's client (stream_, peer_ip_,
  // peer_, the `sessions` note), then count it against
  // client_connection_limit and `multiprocessing`. False: the connection is
  // refused (logged in error.log; closed; a limit's refusal answered on a
  // plain port). Any other peer: true at once.
  asio::awaitable<bool> take_proxy_header(bool pop);
  // A peer outside proxy_trusted_networks (when it is set) whose first
  // bytes are a PROXY header: logged in error.log; true when the caller is
  // to refuse it. Only the connection's first bytes count.
  bool untrusted_proxy_header(std::string_view first_bytes);
  // The same on an implicit-TLS port (smtps, pop3s), before the
  // handshake: the first bytes are peeked at (left for the handshake); a
  // PROXY header there is logged and the connection closed (no plain-text
  // reply on a TLS port). True when refused.
  asio::awaitable<bool> untrusted_proxy_header_before_tls();
  static constexpr std::chrono::seconds kProxyHeaderTime{5};
  // The next bytes from the client (net::Stream::read, so the view is
  // valid until the next co_await) and why there are none: the client
  // closed or the connection broke (`ec` says how; eof for a close), a stop
  // cancelled the read, the client was silent for too long, or a request
  // did not complete in time (command_deadline, data_min_rate).
  struct Read {
    enum class End { data, closed, stop, silence, request_deadline };
    End end = End::data;
    std::string_view data;
    std::error_code ec;
  };
  asio::awaitable<Read> read_client();

  // Starts the watchdog: silence for `timeout` (or the request deadline, or
  // a stop's deadline) cancels a read in progress, else closes the stream.
  template <class Self>
  void start_watchdog(const std::shared_ptr<Self>& self, std::chrono::steady_clock::duration timeout) {
    watchdog_.start(std::weak_ptr<Self>(self), timeout, [this] {
      if (reading_) stream_.cancel();
      else stream_.close();
    });
  }

  SessionServices& srv_;
  asio::any_io_executor ex_;
  std::shared_ptr<const Runtime> rt_;
  net::Stream stream_;
  net::Watchdog watchdog_;
  net::RequestDeadline request_;
  Protocol proto_;
  bool capped_;
  ConnectionRegistry::Id id_;
  net::ClientConnections::Slot slot_;  // client_connection_limit
  // The client, from stream_.remote() (the PROXY header's when proxied):
  // its address as text, and address:port for the logs.
  std::string sid_, peer_, peer_ip_;
  bool proxy_expected_ = false;  // the peer is in proxy_trusted_networks
  bool first_bytes_seen_ = false;
  SessionNote note_;  // for Server::sessions()
  bool reading_ = false, stopping_ = false;

 private:
  std::atomic<std::uint64_t>& count() const noexcept {
    return proto_ == Protocol::pop3 || proto_ == Protocol::pop3s ? srv_.counters.sessions_pop3
                                                                  : srv_.counters.sessions_smtp;
  }
};

}  // namespace wizmail::server
