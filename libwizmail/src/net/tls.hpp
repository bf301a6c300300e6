// The server's TLS context: certificate chain and key from PEM files,
// TLS 1.2 minimum. A context is immutable once made; reload builds a new one
// and connections keep the one they started with (shared_ptr).
#pragma once

#include <asio/ssl/context.hpp>

#include <filesystem>
#include <memory>

#include "wizmail/error.hpp"

namespace wizmail::net {

using TlsContextPtr = std::shared_ptr<asio::ssl::context>;

// Errors name the file and OpenSSL's reason (missing file, key mismatch, ...).
Result<TlsContextPtr> make_server_tls_context(const std::filesystem::path& cert_file,
                                              const std::filesystem::path& key_file);

// A client context for tests and outbound relay (no verification unless
// `verify` is set, in which case the system trust store is used).
Result<TlsContextPtr> make_client_tls_context(bool verify);

}  // namespace wizmail::net
