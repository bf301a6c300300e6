// Pieces of the daemon start-up used by run_server (server/server.cpp).
#pragma once

#include <filesystem>

#include "wizmail/config.hpp"
#include <string>
#include <string_view>

#include "wizmail/error.hpp"

namespace wizmail::daemon {

// The write end of `wizmail start`'s pipe: one line, "ok" or
// "error: <reason>", then closed. Inactive when fd < 0.
class ReadyPipe {
 public:
  explicit ReadyPipe(int fd) : fd_(fd) {}
  ~ReadyPipe();
  ReadyPipe(const ReadyPipe&) = delete;
  ReadyPipe& operator=(const ReadyPipe&) = delete;
  void ok() { send("ok\n"); }
  void error(std::string_view reason);

 private:
  void send(std::string_view line);
  int fd_;
};

// When running as root and `user` is not empty: check that the home and the
// mailbox folder belong to the user (else Errc::permission_denied naming the
// chown to run: the server could not write mail after the drop), hand the
// server's own state that start() may have created as root — var/ (pid
// file, sockets, spool, journal, logs), resendmail/, deadmail/ — to the user
// (symbolic links are not followed), then setgroups/setgid/setuid to it and
// check that root cannot be regained. Nothing to do otherwise.
// Errc::not_found for an unknown user.
Status drop_privileges(const std::string& user, const Config& config);

}  // namespace wizmail::daemon
