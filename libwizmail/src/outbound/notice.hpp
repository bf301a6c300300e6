// Private: where a delivery status notification goes (SPEC §6) — the relay's
// bounces and the delivery agent's notices (refused list posts, failed
// forwards, list members over quota) take the same way.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "wizmail/config.hpp"
#include "wizmail/queue.hpp"

namespace wizmail::outbound {

// Deliver `notice` (a whole message, e.g. build_dsn()) to `to`, with the null
// sender: a local address with an account gets it in its Maildir (final
// headers "Return-Path: <>", "Delivered-To: <to>"), a local address without
// one goes to postmaster instead, any other address is queued in `queue`
// (resendmail/) for the relay. `copy_to_postmaster` also stores a copy for
// postmaster (SPEC §6 for the relay's bounces; once when `to` is postmaster).
// `to` must not be empty: nobody is told about mail from the null sender.
// `label` starts every log line ("relay: <id>: bounce"). True when a queue
// entry was made (the caller wakes the relay).
// A local address is recognised in any spelling of a local domain (U-labels
// as their A-label form, SMTPUTF8).
struct NoticeOptions {
  // The queued notice goes with SMTPUTF8 (its message was an SMTPUTF8 one,
  // or `to` is a UTF-8 address).
  bool smtputf8 = false;
  // Postmaster's copy when it must differ from `notice` (RFC 3461: the
  // sender's notice may leave out recipients, or return the whole message;
  // postmaster gets every failure, headers only). Empty: `notice` itself.
  std::string_view postmaster_notice{};
};
bool deliver_notice(const Config& config, RelayQueue& queue, std::string_view to, std::string_view notice,
                    bool copy_to_postmaster, std::string_view label,
                    const std::function<void(const std::string&)>& log, const NoticeOptions& options = {});

}  // namespace wizmail::outbound
