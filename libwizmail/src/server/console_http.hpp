// Private: the web console's HTTP server (admin_port; docs/console.md) —
// cpp-httplib's server on its own bounded thread pool, the JSON API over the
// library's AccountStore, sessions and CSRF from console_model.hpp, logins
// through the shared auth penalty. (/metrics is metrics_port's, not served
// here: nothing but the login page and static files answers without a session.)
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "auth/penalty.hpp"
#include "wizmail/server.hpp"
#include "wizmail/config.hpp"
#include "wizmail/error.hpp"

namespace wizmail::server {

class ConsoleServer {
 public:
  struct Deps {
    // The configuration in force (reload swaps it): mailbox folder, auth
    // penalty limits and admin_accounts are read from it per request.
    std::function<std::shared_ptr<const Config>()> config;
    auth::AuthPenalty* penalty = nullptr;   // the one SMTP and POP3 use
    // The running server (dashboard, queue flush, reload after a config
    // edit): Server's own stats(), sessions(), flush_queue(), reload().
    std::function<ServerStats()> stats;
    std::function<std::vector<SessionInfo>()> live_sessions;
    std::function<Status()> flush_queue;
    std::function<Status()> reload;
    // error.log, where SMTP AUTH and POP3 failures go: console logins.
    std::function<void(std::string_view peer, std::string_view account, std::string_view text)> log_error;
    std::int64_t started = 0;  // unix seconds
  };
  // Listen on admin_bind_address:admin_port (an ephemeral port when
  // `ephemeral`); HTTPS when admin_tls and the certificate are set. Null
  // when admin_port is 0.
  static Result<std::unique_ptr<ConsoleServer>> open(const Config& cfg, Deps deps, bool ephemeral);
  ~ConsoleServer();
  std::uint16_t port() const noexcept;
  bool tls() const noexcept;
  // Stop accepting, finish the requests in progress, join the threads.
  void close();

  struct Impl;
  explicit ConsoleServer(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace wizmail::server
