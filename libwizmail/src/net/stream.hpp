// The byte stream under every protocol connection: plain TCP that may be
// upgraded to TLS in place (STARTTLS, STLS) or TLS from the first byte
// (smtps_port, pop3s_port), or a UNIX-domain socket (the local submit
// socket). One connection class serves every case: the socket is held as a
// generic stream socket, so the same code reads, writes, upgrades and
// closes TCP and UNIX sockets alike (tests use a socketpair).
//
// A protocol connection does not use the stream alone: it derives from
// server::SessionConnection (server/session_connection.hpp), which owns the
// stream with its watchdog and request deadline and reads through
// read_client(); see server/smtp_connection.cpp and pop3_connection.cpp.
// The loop is: read() (a view into the thread's buffer), feed the pure
// session, write its replies, handshake() when it asks for STARTTLS/STLS,
// and close_gracefully() at the end (TLS close_notify, bounded). All I/O
// returns error codes, never throws; a connection's coroutines run on one
// executor (a session thread or a strand), so the watchdog and the session
// never race.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/ssl/stream.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <tuple>

#include "net/proxy_protocol.hpp"
#include "net/tls.hpp"

namespace wizmail::net {

using tcp = asio::ip::tcp;
inline constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

class ReadBuffer;

class Stream {
 public:
  using socket_type = asio::generic::stream_protocol::socket;
  explicit Stream(tcp::socket socket) : socket_(std::move(socket)) {}
  explicit Stream(asio::local::stream_protocol::socket socket) : socket_(std::move(socket)) {}
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream();

  asio::awaitable<std::tuple<std::error_code, std::size_t>> read_some(asio::mutable_buffer buf);
  // What the peer sent next, without a buffer of the caller's: without TLS
  // it waits for readability, then reads into a buffer of the thread it
  // runs on (64 KiB, shared by every session of that thread), so an idle
  // session holds no read buffer at all; TLS reads into a small buffer of
  // the stream's own. The view is valid until the caller's next co_await:
  // consume it first. The peer's close: asio::error::eof.
  asio::awaitable<std::tuple<std::error_code, std::string_view>> read();
  // Writes everything or fails.
  asio::awaitable<std::error_code> write_all(std::string_view data);
  asio::awaitable<std::error_code> write_all(std::span<const asio::const_buffer> bufs);

  // Server-side TLS handshake on the current socket (after STARTTLS/STLS, or
  // at once for implicit TLS). The context is kept alive by the stream.
  asio::awaitable<std::error_code> handshake(TlsContextPtr context);

  bool is_tls() const noexcept { return tls_ != nullptr; }
  // What the handshake negotiated: "TLSv1.3", "TLS_AES_256_GCM_SHA384", the
  // cipher's secret bits; nullopt without TLS.
  struct TlsInfo {
    std::string version;
    std::string cipher;
    int bits = 0;
    int alg_bits = 0;
  };
  std::optional<TlsInfo> tls_info() const;
  // The negotiated protocol and cipher, e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384".
  std::string tls_description() const;
  // "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" (what a
  // Received: field says, as Postfix); empty without TLS.
  std::string tls_received_text() const;

  // Cancel pending reads and writes (they complete with operation_aborted).
  void cancel() noexcept;
  // Close at once (no TLS close_notify; the peer sees EOF or a reset). For
  // a stuck peer, a failed handshake, a broken connection.
  void close() noexcept;
  // The orderly end: on a TLS session whose state allows it (no fatal
  // error, the peer not gone) send close_notify and wait for the peer's
  // until `deadline` at the latest (net::shutdown_tls), then close.
  // Without TLS: close() at once.
  asio::awaitable<void> close_gracefully(std::chrono::steady_clock::time_point deadline);
  bool is_open() const noexcept { return socket_.is_open(); }
  // The peer closed or reset its side (TCP state CLOSE_WAIT or CLOSE),
  // whatever unread data or TLS records are still queued. Always false on
  // a UNIX socket (no such state to ask).
  bool peer_gone() noexcept;

  socket_type& socket() noexcept { return socket_; }
  // The client's TCP endpoints, the one source every user of the client's
  // address reads: the socket's (load_endpoints()), or those a PROXY
  // protocol header named (set_proxied()). Unspecified on a UNIX socket.
  const tcp::endpoint& remote() const noexcept { return remote_; }
  const tcp::endpoint& local() const noexcept { return local_; }
  // The socket's peer: the load balancer when proxied(), else remote().
  const tcp::endpoint& transport_remote() const noexcept { return transport_remote_; }
  bool proxied() const noexcept { return proxied_; }
  bool is_tcp() const noexcept { return is_tcp_; }
  // Fills remote()/local() from a TCP socket; false when it is not
  // connected. A connected UNIX socket: true, the endpoints stay empty.
  bool load_endpoints() noexcept;
  // The client and the address it connected to, as a PROXY protocol
  // header named them (the socket's peer is the proxy).
  void set_proxied(const tcp::endpoint& client, const tcp::endpoint& destination) noexcept;

  // Reads the PROXY protocol header (net/proxy_protocol.hpp) the
  // connection starts with, taking from the socket exactly its bytes and
  // not one more: what the client sent after it (pipelined commands, a TLS
  // ClientHello) stays in the socket for read() and handshake(). It peeks
  // at what has arrived, and consumes it only when it is all header. Done
  // or bad as the parser says; `ec`: the peer closed (eof) or the
  // connection broke, asio::error::timed_out at `deadline`, or
  // operation_aborted when cancel() stopped it. Before TLS only.
  struct ProxyRead {
    std::error_code ec;
    proxy::ParseResult result;
  };
  asio::awaitable<ProxyRead> read_proxy_header(std::chrono::steady_clock::time_point deadline);
  // Whether a read now would not block: bytes queued, the peer's close, or
  // an error (a peek, nothing taken). A readiness wait (socket().async_wait)
  // may wake without any of them — after read_proxy_header took bytes
  // behind the reactor's back, for one — so who waits for readiness asks
  // this before it reads. Without TLS only.
  bool input_pending() noexcept;
  // The first bytes the peer sent (up to 16), left in the socket: waits
  // for them (cancel() stops the wait). Before TLS only.
  asio::awaitable<std::tuple<std::error_code, std::string_view>> peek_start();

 private:
  socket_type socket_;
  // Notes the TLS errors after which no close_notify may be sent.
  void note(const std::error_code& ec) noexcept;

  std::unique_ptr<asio::ssl::stream<socket_type&>> tls_;
  std::unique_ptr<ReadBuffer> tls_in_;  // read()'s buffer under TLS
  TlsContextPtr tls_context_;
  bool tls_sound_ = false;  // handshake done, no fatal error or EOF since
  bool is_tcp_ = false;
  bool proxied_ = false;
  tcp::endpoint remote_, local_, transport_remote_;
  char peeked_[16];
};

// Input buffer of a connection: starts small, grows (doubling) only when a
// line or chunk needs it, up to `max`; shrink() gives memory back between
// commands so an idle session costs a few hundred bytes.
class ReadBuffer {
 public:
  explicit ReadBuffer(std::size_t initial = 1024, std::size_t max = 1 << 20)
      : initial_(initial), max_(max) {}

  // Room to read into; grows when less than a quarter of the buffer is free.
  // Returns an empty buffer when full at `max` (the caller must consume).
  asio::mutable_buffer prepare();
  void commit(std::size_t n) noexcept { end_ += n; }
  std::string_view data() const noexcept { return {buf_.get() + begin_, end_ - begin_}; }
  void consume(std::size_t n) noexcept;
  void clear() noexcept { begin_ = end_ = 0; }
  bool empty() const noexcept { return begin_ == end_; }
  std::size_t capacity() const noexcept { return cap_; }
  // Free the storage when empty (idle session), or give back growth beyond
  // the initial size when what is left fits.
  void shrink();

 private:
  std::unique_ptr<char[]> buf_;
  std::size_t cap_ = 0, begin_ = 0, end_ = 0;
  std::size_t initial_, max_;
};

// Per-connection deadline. touch() moves it (cheap: no timer cancel); when
// the deadline passes, `on_expire` runs on the connection's strand. The
// callback typically cancels the stream so the session loop can reply
// 421 / -ERR and close.
class Watchdog {
 public:
  explicit Watchdog(const asio::any_io_executor& ex) : timer_(ex) {}

  // `owner` keeps the connection alive while the timer waits; on_expire runs
  // only while the owner still exists.
  template <class Owner>
  void start(std::weak_ptr<Owner> owner, std::chrono::steady_clock::duration timeout,
             std::function<void()> on_expire) {
    timeout_ = timeout;
    on_expire_ = std::move(on_expire);
    owner_ = std::weak_ptr<void>(owner);
    touch();
    arm();
  }
  void touch() noexcept { deadline_ = std::min(std::chrono::steady_clock::now() + timeout_, hard_); }
  // Suspend while the server (not the client) is working, e.g. during commit.
  // The request deadline is the client's and is cleared too.
  void suspend() noexcept {
    deadline_ = hard_;
    request_ = std::chrono::steady_clock::time_point::max();
  }
  // A second deadline besides the silence timer (command_deadline,
  // data_min_rate): fire at `when` whatever touch() does; nullopt clears
  // it. Call on the connection's strand.
  void set_request_deadline(std::optional<std::chrono::steady_clock::time_point> when) noexcept;
  // The expiry came from the request deadline, not from silence or a stop.
  bool request_expired() const noexcept { return request_expired_; }
  // Fire at `when` at the latest, whatever touch() does later (graceful
  // stop deadline).
  void expire_at(std::chrono::steady_clock::time_point when) noexcept;
  void stop() noexcept;
  bool expired() const noexcept { return expired_; }
  // `when`, or the expire_at() deadline when that comes first (a stopping
  // server's: the TLS close must not outlast it).
  std::chrono::steady_clock::time_point bound(std::chrono::steady_clock::time_point when) const noexcept {
    return std::min(when, hard_);
  }

 private:
  void arm();
  asio::steady_timer timer_;
  std::chrono::steady_clock::duration timeout_{};
  std::chrono::steady_clock::time_point deadline_{};
  std::chrono::steady_clock::time_point hard_ = std::chrono::steady_clock::time_point::max();
  std::chrono::steady_clock::time_point request_ = std::chrono::steady_clock::time_point::max();
  std::function<void()> on_expire_;
  std::weak_ptr<void> owner_;
  bool expired_ = false;
  bool request_expired_ = false;
  bool stopped_ = false;
};

}  // namespace wizmail::net
