// Private: what the server makes of the answers of an embedder's callbacks
// (ServerOptions::recipient_callback, DeliveryDecision::reject): a refusal is
// checked before a client sees it, and an exception is an answer too.
#pragma once

#include <string>
#include <string_view>

#include "smtp/session.hpp"
#include "wizmail/server.hpp"

namespace wizmail::server {

// A refusal safe to send: a 4xx/5xx code, an enhanced code of its class,
// one line of printable ASCII. `problem` says what had to be mended ("" when
// nothing): a code out of range becomes 451 4.3.0 (the callback erred; the
// client retries rather than losing mail).
struct CheckedRefusal {
  int code = 451;
  std::string enhanced;
  std::string text;
  std::string problem;

  std::string line() const;  // "550 5.7.1 text"
  bool temporary() const noexcept { return code < 500; }
};
CheckedRefusal check_refusal(const Refusal& r, std::string_view default_text);

// Ask `cb` (which may be empty: defer) about one RCPT.
smtp::Environment::RecipientAnswer ask_recipient_callback(const RecipientCallback& cb,
                                                          const smtp::Environment::RecipientQuestion& q);

}  // namespace wizmail::server
