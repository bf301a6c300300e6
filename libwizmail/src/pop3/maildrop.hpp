// What a POP3 session needs from storage, as small interfaces so that the
// session stays a pure state machine: a fake in tests, the Maildir in the
// server (pop3/maildir_drop.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/penalty.hpp"
#include "wizmail/error.hpp"

namespace wizmail::pop3 {

struct MessageInfo {
  std::string uid;       // the Maildir base name, stable forever; UIDL sends uidl_of(uid)
  std::uint64_t size;    // octets RETR sends before dot-stuffing (RFC 1939 §11)
};

// One message opened for streaming. read() returns 0 at the end.
class MessageReader {
 public:
  virtual ~MessageReader() = default;
  virtual Result<std::size_t> read(char* buf, std::size_t len) = 0;
  // The file descriptor when the message is a plain file (for sendfile-style
  // fast paths); -1 otherwise.
  virtual int fd() const noexcept { return -1; }
};

// The messages of one locked mailbox for the length of one session. The lock
// is released when the Maildrop is destroyed; destroying it without
// commit() deletes nothing (a dropped connection, RFC 1939 §6).
class Maildrop {
 public:
  virtual ~Maildrop() = default;
  virtual const std::vector<MessageInfo>& messages() const noexcept = 0;
  virtual Result<std::unique_ptr<MessageReader>> open(std::size_t index) = 0;
  // UPDATE state: remove (or move to the dustbox) the messages at `indexes`
  // (0-based). Returns how many could not be removed as an error.
  virtual Status commit(const std::vector<std::size_t>& indexes) = 0;
  // The holder is alive: refresh the lock so other hosts do not break it.
  virtual void keep_alive() {}
  // What could not be done at login without failing it (a full disk: the
  // lock file left empty, the `ip` file not written, new/ not moved to
  // cur/), for error.log.
  virtual std::vector<std::string> login_notes() const { return {}; }
  // QUIT: let go of what locks the mailbox across nodes before the client
  // is answered (the session calls it where it may block). The local lock
  // goes with the Maildrop.
  virtual void release() {}
};

// Accounts: verifying credentials and opening the maildrop.
class Backend {
 public:
  virtual ~Backend() = default;
  // true: the password is right; false: wrong password or no such account.
  virtual Result<bool> verify_password(std::string_view account,
                                       std::string_view password) = 0;
  // The clear-text secret for APOP; nullopt when the account does not exist
  // or stores only a hash (APOP is then refused).
  virtual Result<std::optional<std::string>> apop_secret(std::string_view account) = 0;
  // The penalty shared by every session from the client's network
  // (auth/penalty.hpp, Dovecot's auth_penalty), as for SMTP AUTH
  // (smtp::Environment::auth_begin): login_begin() admits a PASS or APOP
  // whose credentials are complete — the network's recent failures (the
  // session waits by them, or by its own when more, before checking, right
  // or wrong), busy or blocked; an admitted attempt ends with login_end()
  // once checked or abandoned. login_blocked(): refuse USER/PASS/APOP at
  // once. login_failed() counts a failure (it may block the network) and
  // returns the network's recent failures; login_succeeded() clears them.
  // The defaults keep no shared state.
  virtual auth::AuthAdmission login_begin(std::string_view peer_ip) {
    (void)peer_ip;
    return {};
  }
  virtual void login_end(std::string_view peer_ip) { (void)peer_ip; }
  virtual bool login_blocked(std::string_view peer_ip) {
    (void)peer_ip;
    return false;
  }
  virtual int login_failed(std::string_view peer_ip) {
    (void)peer_ip;
    return 0;
  }
  virtual void login_succeeded(std::string_view peer_ip) { (void)peer_ip; }
  // Lock and open the mailbox after a successful login; also the place that
  // records the login for POP-before-SMTP and moves new/ to cur/.
  // Errc::busy when another session holds the lock.
  virtual Result<std::unique_ptr<Maildrop>> open_maildrop(std::string_view account,
                                                          std::string_view peer_ip) = 0;
};

}  // namespace wizmail::pop3
