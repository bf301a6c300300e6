// The server's TLS context: certificate chain and key from PEM files,
// TLS 1.2 minimum. A context is immutable once made; reload builds a new one
// and connections keep the one they started with (shared_ptr).
#pragma once

#include <asio/awaitable.hpp>
#include <asio/generic/stream_protocol.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl/context.hpp>
#include <asio/ssl/stream.hpp>

#include <chrono>
#include <filesystem>
#include <memory>
#include <system_error>

#include "wizmail/error.hpp"

namespace wizmail::net {

using TlsContextPtr = std::shared_ptr<asio::ssl::context>;

// Errors name the file and OpenSSL's reason (missing file, key mismatch, ...).
Result<TlsContextPtr> make_server_tls_context(const std::filesystem::path& cert_file,
                                              const std::filesystem::path& key_file);

// A client context for tests and outbound relay (no verification unless
// `verify` is set, in which case the system trust store is used).
Result<TlsContextPtr> make_client_tls_context(bool verify);

// How long a TLS close waits for the peer's close_notify after sending ours.
// Peers answer within a round trip; one that never does (or keeps sending)
// loses nothing by the cut: our close_notify and every reply are out.
inline constexpr std::chrono::seconds tls_close_wait{5};

// The end of a TLS session (RFC 8446 §6.1): send our close_notify, then read
// until the peer's arrives (or it closes, or anything else ends the read) —
// but not after `deadline`, when the socket is closed instead. Either way
// the caller closes the TCP connection afterwards. Reading the peer's answer
// before closing also keeps the kernel from answering it with a reset that
// could destroy our last reply in the peer's buffers. Only for a session
// whose TLS state is sound (no fatal TLS error, the socket open). The
// socket's executor must run one handler at a time (a strand or a single
// thread), as it does for every connection.
asio::awaitable<std::error_code> shutdown_tls(asio::ssl::stream<asio::ip::tcp::socket&>& tls,
                                              std::chrono::steady_clock::time_point deadline);
asio::awaitable<std::error_code> shutdown_tls(
    asio::ssl::stream<asio::generic::stream_protocol::socket&>& tls,
    std::chrono::steady_clock::time_point deadline);

}  // namespace wizmail::net
