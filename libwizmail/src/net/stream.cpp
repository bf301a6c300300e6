#include "net/stream.hpp"

#include <asio/experimental/awaitable_operators.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <openssl/ssl.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "util/strings.hpp"

// g++ 12 reports a false -Wmismatched-new-delete for some coroutine frames
// (here read_proxy_header's; Asio's awaitable_frame_base defines both its
// operator new and delete, so they always match): silence it for this
// file only, as outbound/smtp_client.cpp does.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace wizmail::net {

Stream::~Stream() = default;

namespace {

// A generic endpoint of an IP socket as a TCP endpoint (same sockaddr).
bool to_tcp(const asio::generic::stream_protocol::endpoint& g, tcp::endpoint& out) noexcept {
  const int family = g.data()->sa_family;
  if (family != AF_INET && family != AF_INET6) return false;
  if (g.size() > out.capacity()) return false;
  std::memcpy(out.data(), g.data(), g.size());
  out.resize(g.size());
  return true;
}

}  // namespace

bool Stream::load_endpoints() noexcept {
  std::error_code ec;
  auto remote = socket_.remote_endpoint(ec);
  if (ec) return false;
  auto local = socket_.local_endpoint(ec);
  if (ec) return false;
  is_tcp_ = to_tcp(remote, remote_) && to_tcp(local, local_);
  transport_remote_ = remote_;
  proxied_ = false;
  return true;
}

void Stream::set_proxied(const tcp::endpoint& client, const tcp::endpoint& destination) noexcept {
  remote_ = client;
  local_ = destination;
  proxied_ = true;
}

namespace {

// The bytes at the head of the socket's receive queue without taking them
// (MSG_PEEK), or taken (flags 0); never waits. -1 with errno.
ssize_t receive(int fd, char* buf, std::size_t n, int flags) noexcept {
  return ::recv(fd, buf, n, flags | MSG_DONTWAIT);
}

}  // namespace

asio::awaitable<Stream::ProxyRead> Stream::read_proxy_header(std::chrono::steady_clock::time_point deadline) {
  using namespace asio::experimental::awaitable_operators;
  ProxyRead out;
  std::array<char, proxy::kMaxHeaderSize> buf;
  std::size_t have = 0;  // taken from the socket: all header
  asio::steady_timer timer(socket_.get_executor());
  timer.expires_at(deadline);
  const int fd = socket_.native_handle();
  for (;;) {
    // Peeking looks at the queue from its head, which is byte `have`.
    const ssize_t n = receive(fd, buf.data() + have, buf.size() - have, MSG_PEEK);
    if (n == 0) {
      out.ec = asio::error::eof;
      co_return out;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      out.ec = std::error_code(errno, std::system_category());
      co_return out;
    }
    if (n > 0) {
      const std::size_t seen = have + static_cast<std::size_t>(n);
      out.result = proxy::parse(std::string_view(buf.data(), seen));
      if (out.result.status == proxy::ParseResult::Status::bad) co_return out;
      // Take the header's bytes (all that was seen when it is not complete
      // yet: every one of them is header); they are queued, so recv has them.
      std::size_t take = out.result.status == proxy::ParseResult::Status::done ? out.result.header.size - have
                                                                                 : static_cast<std::size_t>(n);
      while (take > 0) {
        const ssize_t got = receive(fd, buf.data() + have, take, 0);
        if (got <= 0) {
          out.ec = got == 0 ? std::error_code(asio::error::eof) : std::error_code(errno, std::system_category());
          out.result = {};
          co_return out;
        }
        have += static_cast<std::size_t>(got);
        take -= static_cast<std::size_t>(got);
      }
      if (out.result.status == proxy::ParseResult::Status::done) co_return out;
      continue;  // need_more: what came next is not here yet
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      out.ec = asio::error::timed_out;
      co_return out;
    }
    auto first = co_await (socket_.async_wait(asio::socket_base::wait_read, use_tuple) ||
                           timer.async_wait(use_tuple));
    if (first.index() == 1) {
      out.ec = asio::error::timed_out;
      co_return out;
    }
    if (auto [ec] = std::get<0>(first); ec) {
      out.ec = ec;
      co_return out;
    }
  }
}

bool Stream::input_pending() noexcept {
  char c;
  const ssize_t n = receive(socket_.native_handle(), &c, 1, MSG_PEEK);
  return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

asio::awaitable<std::tuple<std::error_code, std::string_view>> Stream::peek_start() {
  for (;;) {
    const ssize_t n = receive(socket_.native_handle(), peeked_, sizeof peeked_, MSG_PEEK);
    if (n > 0) co_return std::tuple{std::error_code{}, std::string_view(peeked_, static_cast<std::size_t>(n))};
    if (n == 0) co_return std::tuple{std::error_code(asio::error::eof), std::string_view{}};
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
      co_return std::tuple{std::error_code(errno, std::system_category()), std::string_view{}};
    auto [ec] = co_await socket_.async_wait(asio::socket_base::wait_read, use_tuple);
    if (ec) co_return std::tuple{ec, std::string_view{}};
  }
}

bool Stream::peer_gone() noexcept {
  if (!socket_.is_open()) return true;
  if (!is_tcp_) return false;
  tcp_info info{};
  socklen_t len = sizeof info;
  if (::getsockopt(socket_.native_handle(), IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return false;
  // CLOSE_WAIT: the peer's FIN arrived; CLOSE: reset. Data it sent before
  // does not hide either (unlike a peek at the bytes, or TLS records).
  return info.tcpi_state == TCP_CLOSE_WAIT || info.tcpi_state == TCP_CLOSE;
}

void Stream::note(const std::error_code& ec) noexcept {
  // A cancelled read or write leaves the TLS state usable (the watchdog's
  // cancel, then 421 / -ERR and the close). The peer's close_notify (eof)
  // still wants ours. Anything else — a TLS alert or protocol error, the
  // TCP connection ending without close_notify (stream_truncated), a
  // reset — ends TLS for good (OpenSSL: no SSL_shutdown after a fatal error).
  if (!ec || ec == asio::error::operation_aborted || ec == asio::error::eof) return;
  tls_sound_ = false;
}

asio::awaitable<std::tuple<std::error_code, std::size_t>> Stream::read_some(
    asio::mutable_buffer buf) {
  if (tls_) {
    auto [ec, n] = co_await tls_->async_read_some(buf, use_tuple);
    note(ec);
    co_return std::tuple{ec, n};
  }
  co_return co_await socket_.async_read_some(buf, use_tuple);
}

namespace {

constexpr std::size_t kThreadBuffer = 65536;
// Not inlined, so that each call really re-reads the thread pointer.
[[gnu::noinline]] char* thread_read_buffer() {
  thread_local std::unique_ptr<char[]> buf(new char[kThreadBuffer]);
  return buf.get();
}

}  // namespace

asio::awaitable<std::tuple<std::error_code, std::string_view>> Stream::read() {
  if (tls_) {
    if (!tls_in_) tls_in_ = std::make_unique<ReadBuffer>(4096, 4096);
    tls_in_->clear();
    auto [ec, n] = co_await read_some(tls_in_->prepare());
    tls_in_->commit(n);
    co_return std::tuple{ec, tls_in_->data()};
  }
  if (!socket_.non_blocking()) {
    std::error_code ec;
    socket_.non_blocking(true, ec);
    if (ec) co_return std::tuple{ec, std::string_view{}};
  }
  for (;;) {
    // Looked up after every resumption: the coroutine may resume on another
    // thread, and a thread_local's address must not be cached across co_await.
    char* buf = thread_read_buffer();
    std::error_code ec;
    std::size_t n = socket_.read_some(asio::buffer(buf, kThreadBuffer), ec);
    if (!ec) co_return std::tuple{ec, std::string_view(buf, n)};
    if (ec != asio::error::would_block && ec != asio::error::try_again)
      co_return std::tuple{ec, std::string_view{}};
    auto [wec] = co_await socket_.async_wait(asio::socket_base::wait_read, use_tuple);
    if (wec) co_return std::tuple{wec, std::string_view{}};
  }
}

asio::awaitable<std::error_code> Stream::write_all(std::string_view data) {
  const asio::const_buffer buf = asio::buffer(data.data(), data.size());
  co_return co_await write_all(std::span<const asio::const_buffer>(&buf, 1));
}

asio::awaitable<std::error_code> Stream::write_all(std::span<const asio::const_buffer> bufs) {
  if (tls_) {
    auto [ec, n] = co_await asio::async_write(*tls_, bufs, use_tuple);
    note(ec);
    co_return ec;
  }
  auto [ec, n] = co_await asio::async_write(socket_, bufs, use_tuple);
  co_return ec;
}

asio::awaitable<std::error_code> Stream::handshake(TlsContextPtr context) {
  if (tls_) co_return asio::error::already_connected;
  tls_context_ = std::move(context);
  tls_ = std::make_unique<asio::ssl::stream<socket_type&>>(socket_, *tls_context_);
  auto [ec] = co_await tls_->async_handshake(asio::ssl::stream_base::server, use_tuple);
  tls_sound_ = !ec;
  co_return ec;
}

asio::awaitable<void> Stream::close_gracefully(std::chrono::steady_clock::time_point deadline) {
  if (tls_ && tls_sound_ && socket_.is_open()) {
    tls_sound_ = false;
    co_await shutdown_tls(*tls_, deadline);
  }
  close();
}

std::optional<Stream::TlsInfo> Stream::tls_info() const {
  if (!tls_) return std::nullopt;
  SSL* ssl = const_cast<asio::ssl::stream<socket_type&>&>(*tls_).native_handle();
  TlsInfo out;
  out.version = ::SSL_get_version(ssl);
  const char* cipher = ::SSL_get_cipher_name(ssl);
  out.cipher = cipher ? cipher : "";
  out.bits = ::SSL_get_cipher_bits(ssl, &out.alg_bits);
  return out;
}

std::string Stream::tls_description() const {
  auto t = tls_info();
  if (!t) return {};
  return t->cipher.empty() ? t->version : util::cat(t->version, " ", t->cipher);
}

std::string Stream::tls_received_text() const {
  auto t = tls_info();
  if (!t) return {};
  return util::cat(t->version, " with cipher ", t->cipher.empty() ? std::string_view("?") : std::string_view(t->cipher),
                   " (", std::to_string(t->bits), "/", std::to_string(t->alg_bits), " bits)");
}

void Stream::cancel() noexcept {
  std::error_code ec;
  socket_.cancel(ec);
}

void Stream::close() noexcept {
  std::error_code ec;
  socket_.shutdown(socket_type::shutdown_both, ec);
  socket_.close(ec);
}

asio::mutable_buffer ReadBuffer::prepare() {
  if (!buf_) {
    cap_ = initial_;
    buf_ = std::make_unique<char[]>(cap_);
    begin_ = end_ = 0;
  }
  if (begin_ == end_) begin_ = end_ = 0;
  std::size_t free_tail = cap_ - end_;
  if (free_tail * 4 < cap_ || free_tail == 0) {
    std::size_t used = end_ - begin_;
    if (begin_ > 0 && (cap_ - used) * 4 >= cap_) {
      std::memmove(buf_.get(), buf_.get() + begin_, used);
    } else if (cap_ < max_) {
      std::size_t ncap = std::min(max_, cap_ * 2);
      auto nbuf = std::make_unique<char[]>(ncap);
      std::memcpy(nbuf.get(), buf_.get() + begin_, used);
      buf_ = std::move(nbuf);
      cap_ = ncap;
    } else if (begin_ > 0) {
      std::memmove(buf_.get(), buf_.get() + begin_, used);
    }
    begin_ = 0;
    end_ = used;
  }
  return asio::buffer(buf_.get() + end_, cap_ - end_);
}

void ReadBuffer::consume(std::size_t n) noexcept {
  begin_ += std::min(n, end_ - begin_);
  if (begin_ == end_) begin_ = end_ = 0;
}

void ReadBuffer::shrink() {
  if (begin_ == end_) {
    buf_.reset();
    cap_ = begin_ = end_ = 0;
    return;
  }
  std::size_t used = end_ - begin_;
  if (cap_ > initial_ && used <= initial_ / 2) {
    auto nbuf = std::make_unique<char[]>(initial_);
    std::memcpy(nbuf.get(), buf_.get() + begin_, used);
    buf_ = std::move(nbuf);
    cap_ = initial_;
    begin_ = 0;
    end_ = used;
  }
}

void Watchdog::expire_at(std::chrono::steady_clock::time_point when) noexcept {
  hard_ = when;
  deadline_ = std::min(deadline_, when);
  if (timer_.expiry() > when) timer_.cancel();  // the handler re-arms at the new deadline
}

void Watchdog::set_request_deadline(std::optional<std::chrono::steady_clock::time_point> when) noexcept {
  request_ = when.value_or(std::chrono::steady_clock::time_point::max());
  if (owner_.expired() || stopped_) return;
  if (timer_.expiry() > request_) timer_.cancel();  // re-armed at the sooner time
}

void Watchdog::stop() noexcept {
  stopped_ = true;
  timer_.cancel();
}

void Watchdog::arm() {
  auto now = std::chrono::steady_clock::now();
  auto when = deadline_ == std::chrono::steady_clock::time_point::max() ? now + timeout_
                                                                         : deadline_;
  when = std::min(when, request_);
  if (when < now) when = now;
  timer_.expires_at(when);
  timer_.async_wait([this, owner = owner_](std::error_code ec) {
    auto self = owner.lock();
    if (!self || stopped_) return;
    if (ec && ec != asio::error::operation_aborted) return;
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline_ || now >= request_) {
      request_expired_ = now >= request_ && now < deadline_;
      expired_ = true;
      if (on_expire_) on_expire_();
      return;
    }
    arm();
  });
}

}  // namespace wizmail::net
