// Private: one bounded HTTP(S) server on cpp-httplib (Debian's
// libcpp-httplib), shared by the metrics endpoint (metrics_port) and the web
// console (admin_port): its own accept thread and a fixed pool, read/write
// timeouts, a keep-alive limit and a maximum body, so a slow or flooding
// client holds one pool thread for a bounded time and never a session
// thread of the mail server.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <memory>
#include <string>
#include <thread>

#include "wizmail/error.hpp"

namespace httplib {
class Server;
}

namespace wizmail::ops {

struct HttpLimits {
  std::size_t threads = 4;             // requests served at once
  std::time_t io_timeout_s = 5;        // each read and write, and keep-alive idle
  std::size_t keep_alive_requests = 20;
  std::size_t max_body = 16 * 1024;    // 413 beyond
};

class HttpService {
 public:
  // Plain HTTP, or HTTPS with the PEM files when both are given.
  // Errc::invalid_argument when the certificate or key cannot be loaded.
  static Result<std::unique_ptr<HttpService>> make(const HttpLimits& limits, const std::string& cert_file = {},
                                                   const std::string& key_file = {});
  ~HttpService();  // close()
  HttpService(const HttpService&) = delete;
  HttpService& operator=(const HttpService&) = delete;

  // Routes and handlers are added here before start().
  httplib::Server& http() noexcept { return *http_; }
  bool tls() const noexcept { return tls_; }
  // Bind `address`:`port` (0: any free port) and serve on the accept thread.
  // Errc::busy when the port is in use, Errc::io otherwise; `what` names the
  // key in the message ("metrics_port").
  Status start(const std::string& address, std::uint16_t port, std::string_view what);
  std::uint16_t port() const noexcept { return port_; }
  // Stop accepting, let the requests in progress finish (each bounded by
  // the timeouts), join the threads. No handler runs once this returns.
  // Idempotent; not from a handler.
  void close();

  HttpService(std::unique_ptr<httplib::Server> http, bool tls);

 private:
  std::unique_ptr<httplib::Server> http_;
  bool tls_ = false;
  std::thread thread_;
  std::uint16_t port_ = 0;
};

}  // namespace wizmail::ops
