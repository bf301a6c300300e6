// A POP3-only server for tests: the real Server::Impl, Runtime, Logger and
// server::start_pop3_connection on ephemeral loopback ports, run on its own
// thread. Used by the in-process loopback tests and by pop3_test_server (the
// process the real-client scripts drive).
#pragma once

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>

#include "net/listener.hpp"
#include "server/pop3_connection.hpp"
#include "server/server_impl.hpp"
#include "wizmail/config.hpp"

namespace pop3test {

namespace fs = std::filesystem;
using namespace wizmail;

// A self-signed P-256 certificate for "localhost"; false on failure.
inline bool make_self_signed(const fs::path& cert, const fs::path& key) {
  EVP_PKEY* pk = EVP_EC_gen("P-256");
  if (!pk) return false;
  X509* x = X509_new();
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, pk);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(x, name);
  bool ok = X509_sign(x, pk, EVP_sha256()) > 0;
  if (ok) {
    FILE* f = std::fopen(cert.c_str(), "w");
    ok = f && PEM_write_X509(f, x);
    if (f) std::fclose(f);
    f = std::fopen(key.c_str(), "w");
    ok = ok && f && PEM_write_PrivateKey(f, pk, nullptr, nullptr, 0, nullptr, nullptr);
    if (f) std::fclose(f);
  }
  X509_free(x);
  EVP_PKEY_free(pk);
  return ok;
}

class Server {
 public:
  // Serve POP3 for the home's configuration on 127.0.0.1, ephemeral ports:
  // plain always, implicit TLS too when the configuration has certificates.
  static Result<std::unique_ptr<Server>> start(const fs::path& home) {
    auto cfg = load_config(home);
    if (!cfg) return unexpected(cfg.error());
    std::unique_ptr<Server> s(new Server());
    ServerOptions opt;
    auto rt = server::make_runtime(*cfg, opt);
    if (!rt) return unexpected(rt.error());
    s->impl_ = std::make_unique<wizmail::Server::Impl>(s->io_, opt, *rt);
    if (auto st = s->impl_->logger.start(); !st) return unexpected(st.error());
    std::vector<net::ListenSpec> specs{{{"127.0.0.1"}, 0, static_cast<int>(Protocol::pop3)}};
    if ((*rt)->tls) specs.push_back({{"127.0.0.1"}, 0, static_cast<int>(Protocol::pop3s)});
    if (auto st = s->impl_->listener.open(specs); !st) return unexpected(st.error());
    for (const auto& b : s->impl_->listener.bound())
      (b.tag == static_cast<int>(Protocol::pop3) ? s->port_ : s->pop3s_port_) = b.endpoint.port();
    auto* impl = s->impl_.get();
    impl->listener.start([impl](asio::ip::tcp::socket sock, int tag) {
      server::start_pop3_connection(*impl, std::move(sock), static_cast<Protocol>(tag),
                                  impl->runtime(), false);
    });
    s->thread_ = std::thread([io = &s->io_] { io->run(); });
    return s;
  }

  ~Server() { stop(); }

  std::uint16_t port() const { return port_; }
  std::uint16_t pop3s_port() const { return pop3s_port_; }
  wizmail::Server::Impl& impl() { return *impl_; }
  std::size_t sessions() const { return impl_->counters.sessions_pop3.load(); }

  // Close the listeners, end every session, wait for the thread.
  void stop() {
    if (!thread_.joinable()) return;
    auto* impl = impl_.get();
    asio::post(io_, [impl] {
      impl->listener.close();
      impl->connections.stop_all(std::chrono::steady_clock::now());
    });
    work_.reset();
    thread_.join();
    impl_->logger.flush();
  }

 private:
  Server() : work_(asio::make_work_guard(io_)) {}
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::unique_ptr<wizmail::Server::Impl> impl_;
  std::thread thread_;
  std::uint16_t port_ = 0, pop3s_port_ = 0;
};

}  // namespace pop3test
