// send_max_during_a_day: messages relayed per account per (local) day.
//
// In-process (the default): persisted in var/sendcount/<account>
// ("YYYY-MM-DD count"), the current day's entries cached in memory.
// Shared by the nodes of a cluster (share(), with redis_url;
// docs/cluster.md): one counter per account and day in the SharedState,
// `wizmail:sendcount:<YYYY-MM-DD>:<account>`, expiring 48 hours after the
// day's first message; no file is written then. Those calls may wait for
// Redis: the SMTP session makes them in proceed() (the blocking pool), and
// an unreachable store is an error (RCPT: 451 4.3.0; after the commit:
// logged, the message stays accepted).
//
// Callers pass existing accounts only (the SMTP Environment checks).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "wizmail/error.hpp"

namespace wizmail {
class AccountStore;
}
namespace wizmail::state {
class SharedState;
}

namespace wizmail::server {

class SendCounters {
 public:
  // `day`: today's local date as YYYY-MM-DD (tests inject one).
  using DayFn = std::function<std::string()>;
  explicit SendCounters(std::filesystem::path dir, DayFn day = {});
  // Counts in `shared` from now on (before any session).
  void share(std::shared_ptr<state::SharedState> shared);

  Result<std::int64_t> today(std::string_view account);
  Status record(std::string_view account);
  // For the SMTP environments: today's relayed messages of an account (0
  // for a name that is no account), and one message it sent (counted in
  // its mailbox's `sent`; `relayed` also counts toward the daily limit).
  Result<std::int64_t> today_of(const AccountStore& store, std::string_view account);
  Status record_for(const AccountStore& store, std::string_view account, bool relayed);

 private:
  struct Entry {
    std::string day;
    std::int64_t count = 0;
  };
  Entry& load(const std::string& account, const std::string& day);
  std::string key(std::string_view day, std::string_view account) const;
  std::filesystem::path dir_;
  DayFn day_fn_;
  std::shared_ptr<state::SharedState> shared_;
  std::mutex mu_;
  std::string day_;  // the day map_ holds; entries of earlier days are dropped
  std::unordered_map<std::string, Entry> map_;
};

}  // namespace wizmail::server
