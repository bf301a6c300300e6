#include "server/state_names.hpp"

#include "pop3/session.hpp"
#include "smtp/session.hpp"

namespace wizmail::server {

std::string_view state_name(smtp::State s) noexcept {
  switch (s) {
    case smtp::State::initial: return "initial";
    case smtp::State::ready: return "ready";
    case smtp::State::mail: return "mail";
    case smtp::State::rcpt: return "rcpt";
    case smtp::State::data: return "data";
    case smtp::State::awaiting_commit: return "committing";
    case smtp::State::auth: return "auth";
    case smtp::State::tls_pending: return "starttls";
    case smtp::State::closed: return "closed";
  }
  return "unknown";
}

std::string_view state_name(pop3::State s) noexcept {
  switch (s) {
    case pop3::State::authorization: return "authorization";
    case pop3::State::transaction: return "transaction";
    case pop3::State::update: return "update";
    case pop3::State::closed: return "closed";
  }
  return "unknown";
}

}  // namespace wizmail::server
