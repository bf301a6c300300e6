// Errors are values. An Error carries a machine-readable kind, the internal
// reason (for logs and CLI stderr) and, when it reaches an SMTP or POP3 client,
// the reply code, the enhanced status code and the text the client sees.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include "wizmail/expected.hpp"

namespace wizmail {

enum class Errc {
  invalid_argument,  // bad input from a user, a file or a peer
  not_found,
  already_exists,
  permission_denied,
  io,                // the operating system said no
  parse,             // a file or message could not be parsed
  limit,             // a configured limit was reached (quota, size, count)
  busy,              // locked by somebody else; try later
  temporary,         // try again later (SMTP 4xx)
  refused,           // refused for good (SMTP 5xx): do not retry
  mailbox_full,      // the mailbox is over its quota (SMTP 452 4.2.2)
  protocol,          // a peer broke the protocol
  unavailable,       // a service (server, peer) is not reachable
  internal,
};

std::string_view to_string(Errc e) noexcept;

struct Error {
  Errc code = Errc::internal;
  std::string message;    // internal reason, for logs and stderr
  int smtp_code = 0;      // e.g. 452; 0 when the error never reaches SMTP
  std::string enhanced;   // e.g. "4.2.2"
  std::string client_text;  // what an SMTP client is told; message when empty
  // A whole SMTP reply to tell as it is (a milter's multi-line reply: lines
  // joined by CRLF, no final CRLF); smtp_code and enhanced are its last line's.
  std::string reply;

  Error() = default;
  Error(Errc c, std::string msg) : code(c), message(std::move(msg)) {}

  static Error smtp(int code, std::string enhanced, std::string client_text,
                    std::string reason = {}) {
    Error e{code >= 500 ? Errc::refused : Errc::temporary,
            reason.empty() ? client_text : std::move(reason)};
    e.smtp_code = code;
    e.enhanced = std::move(enhanced);
    e.client_text = std::move(client_text);
    return e;
  }

  // The recipient's mailbox is over its quota: 452 4.2.2 to an SMTP client
  // (the client may retry later); `reason` says by how much, for the logs.
  static Error mailbox_full(std::string reason) {
    Error e = smtp(452, "4.2.2", "Mailbox full", std::move(reason));
    e.code = Errc::mailbox_full;
    return e;
  }

  bool temporary() const noexcept {
    return smtp_code ? (smtp_code >= 400 && smtp_code < 500)
                     : (code == Errc::temporary || code == Errc::busy ||
                        code == Errc::io || code == Errc::unavailable ||
                        code == Errc::mailbox_full);
  }
  bool permanent() const noexcept { return !temporary(); }
};

template <class T>
using Result = expected<T, Error>;

using Status = Result<void>;

inline unexpected<Error> fail(Errc c, std::string msg) {
  return unexpected<Error>(Error{c, std::move(msg)});
}

// An Errc::io error naming what failed and errno's text.
unexpected<Error> fail_errno(std::string_view what, int err);

}  // namespace wizmail
