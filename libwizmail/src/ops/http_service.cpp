#include "ops/http_service.hpp"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "util/strings.hpp"

namespace wizmail::ops {

HttpService::HttpService(std::unique_ptr<httplib::Server> http, bool tls) : http_(std::move(http)), tls_(tls) {}

HttpService::~HttpService() { close(); }

Result<std::unique_ptr<HttpService>> HttpService::make(const HttpLimits& limits, const std::string& cert_file,
                                                       const std::string& key_file) {
  std::unique_ptr<httplib::Server> http;
  bool tls = !cert_file.empty() && !key_file.empty();
  if (tls) {
    http = std::make_unique<httplib::SSLServer>(cert_file.c_str(), key_file.c_str());
  } else {
    http = std::make_unique<httplib::Server>();
  }
  if (!http->is_valid()) return fail(Errc::invalid_argument, "cannot load the TLS certificate or key");
  // httplib's default also sets SO_REUSEPORT, which would let a second
  // server bind the same port and share its connections: only SO_REUSEADDR
  // (a restart is not held up by TIME_WAIT), close-on-exec.
  http->set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  auto threads = limits.threads;
  http->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http->set_read_timeout(limits.io_timeout_s, 0);
  http->set_write_timeout(limits.io_timeout_s, 0);
  http->set_idle_interval(0, 0);
  http->set_keep_alive_max_count(limits.keep_alive_requests);
  http->set_keep_alive_timeout(limits.io_timeout_s);
  http->set_payload_max_length(limits.max_body);
  return std::make_unique<HttpService>(std::move(http), tls);
}

namespace {
// Is `address`:`port` taken? httplib reports only failure; ask the kernel
// the same question to tell "in use" (a configuration clash the operator
// fixes) from other errors.
bool in_use(const std::string& address, std::uint16_t port) {
  if (port == 0) return false;
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (::inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof *v4;
  } else if (::inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof *v6;
  } else {
    return false;
  }
  int fd = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  bool busy = ::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 && errno == EADDRINUSE;
  ::close(fd);
  return busy;
}
}  // namespace

Status HttpService::start(const std::string& address, std::uint16_t port, std::string_view what) {
  auto& h = *http_;
  int bound = port == 0 ? h.bind_to_any_port(address) : (h.bind_to_port(address, port) ? port : -1);
  if (bound <= 0) {
    return fail(in_use(address, port) ? Errc::busy : Errc::io,
                util::cat("cannot listen on ", address, ":", std::to_string(port), " (", what, ")"));
  }
  port_ = static_cast<std::uint16_t>(bound);
  auto* raw = http_.get();
  thread_ = std::thread([raw] { raw->listen_after_bind(); });
  return {};
}

void HttpService::close() {
  if (!http_) return;
  http_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace wizmail::ops
