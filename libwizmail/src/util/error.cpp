#include "wizmail/error.hpp"

#include <cstring>
#include <string>

namespace wizmail {

std::string_view to_string(Errc e) noexcept {
  switch (e) {
    case Errc::invalid_argument: return "invalid argument";
    case Errc::not_found: return "not found";
    case Errc::already_exists: return "already exists";
    case Errc::permission_denied: return "permission denied";
    case Errc::io: return "I/O error";
    case Errc::parse: return "parse error";
    case Errc::limit: return "limit reached";
    case Errc::busy: return "busy";
    case Errc::temporary: return "temporary failure";
    case Errc::refused: return "refused";
    case Errc::mailbox_full: return "mailbox full";
    case Errc::protocol: return "protocol error";
    case Errc::unavailable: return "unavailable";
    case Errc::internal: return "internal error";
  }
  return "error";
}

unexpected<Error> fail_errno(std::string_view what, int err) {
  Errc c = Errc::io;
  if (err == ENOENT) c = Errc::not_found;
  else if (err == EEXIST) c = Errc::already_exists;
  else if (err == EACCES || err == EPERM) c = Errc::permission_denied;
  else if (err == EDQUOT || err == ENOSPC) c = Errc::temporary;
  std::string msg(what);
  msg += ": ";
  msg += std::strerror(err);
  return unexpected<Error>(Error{c, std::move(msg)});
}

}  // namespace wizmail
