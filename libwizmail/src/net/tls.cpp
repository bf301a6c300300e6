#include "net/tls.hpp"

#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <string>

namespace wizmail::net {

namespace {
std::string openssl_reason(const std::error_code& ec) {
  std::string s = ec.message();
  if (unsigned long e = ::ERR_get_error(); e != 0) {
    char buf[256];
    ::ERR_error_string_n(e, buf, sizeof buf);
    s = buf;
  }
  ::ERR_clear_error();
  return s;
}
}  // namespace

Result<TlsContextPtr> make_server_tls_context(const std::filesystem::path& cert_file,
                                              const std::filesystem::path& key_file) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  std::error_code ec;
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                       asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                       asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use,
                   ec);
  if (ec) return fail(Errc::internal, "TLS options: " + openssl_reason(ec));
  SSL_CTX* native = ctx->native_handle();
  if (::SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1)
    return fail(Errc::internal, "TLS: cannot require TLS 1.2");
  // Sessions are short; a small cache keeps memory per idle session low.
  ::SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS);
  ctx->use_certificate_chain_file(cert_file.string(), ec);
  if (ec)
    return fail(Errc::invalid_argument,
                "tls_cert_file " + cert_file.string() + ": " + openssl_reason(ec));
  ctx->use_private_key_file(key_file.string(), asio::ssl::context::pem, ec);
  if (ec)
    return fail(Errc::invalid_argument,
                "tls_key_file " + key_file.string() + ": " + openssl_reason(ec));
  if (::SSL_CTX_check_private_key(native) != 1) {
    ::ERR_clear_error();
    return fail(Errc::invalid_argument, "tls_key_file " + key_file.string() +
                                            " does not match tls_cert_file " +
                                            cert_file.string());
  }
  return ctx;
}

Result<TlsContextPtr> make_client_tls_context(bool verify) {
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  if (::SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION) != 1)
    return fail(Errc::internal, "TLS: cannot require TLS 1.2");
  std::error_code ec;
  if (verify) {
    ctx->set_default_verify_paths(ec);
    if (ec) return fail(Errc::internal, "TLS trust store: " + openssl_reason(ec));
    ctx->set_verify_mode(asio::ssl::verify_peer, ec);
  } else {
    ctx->set_verify_mode(asio::ssl::verify_none, ec);
  }
  if (ec) return fail(Errc::internal, "TLS verify mode: " + openssl_reason(ec));
  return ctx;
}

namespace {

template <class Socket>
asio::awaitable<std::error_code> shutdown_tls_on(asio::ssl::stream<Socket&>& tls,
                                                 std::chrono::steady_clock::time_point deadline) {
  auto& socket = tls.next_layer();
  asio::steady_timer timer(socket.get_executor());
  timer.expires_at(deadline);
  // The timer's handler may run after this coroutine went on (it was queued
  // just as the shutdown completed): it touches the socket only while the
  // shutdown still waits, i.e. while the socket surely exists.
  auto waiting = std::make_shared<bool>(true);
  timer.async_wait([&socket, waiting](std::error_code ec) {
    if (ec || !*waiting) return;
    std::error_code ignored;
    socket.close(ignored);  // the shutdown completes with an error
  });
  auto [ec] = co_await tls.async_shutdown(asio::experimental::as_tuple(asio::use_awaitable));
  *waiting = false;
  timer.cancel();
  ::ERR_clear_error();
  co_return ec;
}

}  // namespace

asio::awaitable<std::error_code> shutdown_tls(asio::ssl::stream<asio::ip::tcp::socket&>& tls,
                                              std::chrono::steady_clock::time_point deadline) {
  return shutdown_tls_on(tls, deadline);
}

asio::awaitable<std::error_code> shutdown_tls(
    asio::ssl::stream<asio::generic::stream_protocol::socket&>& tls,
    std::chrono::steady_clock::time_point deadline) {
  return shutdown_tls_on(tls, deadline);
}

}  // namespace wizmail::net
