// Auto-reply safety (RFC 3834) for reply.def, and the loop guard for
// forward.def. reply.def runs only when auto_reply_check() allows it and the
// sender has not had a reply from this account within the memory's interval.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "wizmail/error.hpp"

namespace wizmail {

using HeaderList = std::vector<std::pair<std::string, std::string>>;  // unfolded, in order

struct AutoReplyCheck {
  bool allowed = false;
  std::string reason;  // why not (for the log); empty when allowed
};

// RFC 3834 §2: no reply to the null sender, MAILER-DAEMON, owner-*, *-request,
// *-bounces, or the account's own address; none to mail with an
// `Auto-Submitted` other than "no", `Precedence: bulk|list|junk`, a `List-Id`
// or `List-Unsubscribe`, or 25 or more `Received` fields (a loop).
AutoReplyCheck auto_reply_check(std::string_view envelope_sender, const HeaderList& headers,
                                std::string_view own_address);

// Forwarding loop guard: true when the message already passed through
// `address` (a `Delivered-To` field naming it) or carries 25 or more
// `Delivered-To`/`Received` hops.
bool forward_loop(const HeaderList& headers, std::string_view address);

// Who got an auto-reply and when: "<unix seconds> <address>" lines in one
// small file per account (written atomically; the newest 1000 kept).
class ReplyMemory {
 public:
  explicit ReplyMemory(std::filesystem::path file) : file_(std::move(file)) {}
  // Whether `address` got a reply after now - interval. A missing or
  // unreadable file means no.
  bool recently(std::string_view address, std::int64_t now, std::chrono::seconds interval) const;
  Status record(std::string_view address, std::int64_t now) const;

 private:
  std::filesystem::path file_;
};

}  // namespace wizmail
