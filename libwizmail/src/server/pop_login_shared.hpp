// POP-before-SMTP logins in the cluster's shared state (docs/cluster.md):
// every node records its POP3 logins there and asks it at RCPT, so a login
// on one node lets the client relay through any. Key
// `wizmail:poplogin:<4|6>:<address bytes in hex>`, value "<time> <account>",
// expiring when the login is older than its ttl. The calls may wait for
// Redis: they run where the POP3 login and RCPT's look-ups run (the
// blocking pool); an unreachable store is an error the caller answers with
// -ERR [SYS/TEMP] or 451.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "wizmail/pop_before_smtp.hpp"

namespace wizmail::state {
class SharedState;
}

namespace wizmail {

// `now`: seconds since the epoch (tests inject one; default time()).
std::shared_ptr<PopLoginTable> make_shared_pop_login_table(std::shared_ptr<state::SharedState> shared,
                                                           std::function<std::int64_t()> now = {});

}  // namespace wizmail
