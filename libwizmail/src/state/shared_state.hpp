// Volatile state that several wizmail nodes may share (issue 17, item 3;
// docs/cluster.md): one interface, two implementations — in this process
// (the default: a single node needs nothing else) and Redis (`redis_url`).
// Every operation is atomic in both: in-process under one mutex, in Redis
// as one command or one Lua script.
//
// The Redis implementation does blocking I/O with short timeouts: call it
// only where a session may wait (the server's blocking pool, e.g. a POP3
// login) or from LeaseKeeper's own thread, never on an I/O thread.
// An unreachable store is Errc::unavailable (temporary): the caller answers
// 4xx / -ERR [SYS/TEMP], never passes silently.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "wizmail/error.hpp"

namespace wizmail::state {

using Millis = std::chrono::milliseconds;

class SharedState {
 public:
  virtual ~SharedState() = default;

  // Leases: `name` held by `owner` until `ttl` passes without a renew.
  // true: taken (or already ours: re-taking refreshes it); false: another
  // owner holds it.
  virtual Result<bool> acquire(std::string_view name, std::string_view owner, Millis ttl) = 0;
  // true: still ours, its ttl restarted; false: expired or someone else's.
  virtual Result<bool> renew(std::string_view name, std::string_view owner, Millis ttl) = 0;
  // true: it was ours and is gone; false: not ours (left alone).
  virtual Result<bool> release(std::string_view name, std::string_view owner) = 0;

  // Counters: add 1 and return the new value. A new counter expires after
  // `ttl`; with `refresh` every increment restarts the expiry (a penalty's
  // block time), without it the first one alone sets it (a daily count).
  virtual Result<std::int64_t> increment(std::string_view name, Millis ttl, bool refresh) = 0;
  // The current value; 0 when absent or expired.
  virtual Result<std::int64_t> counter(std::string_view name) = 0;
  // A sequence that never expires (mailing-list post numbers): the new
  // value is max(current, floor) + 1, so a store that lost the key (a
  // Redis restart without persistence) continues from the durable record
  // the caller passes as `floor`, never below it.
  virtual Result<std::int64_t> increment_from(std::string_view name, std::int64_t floor) = 0;

  // Keys with a ttl (POP-before-SMTP: address → account).
  virtual Status put(std::string_view name, std::string_view value, Millis ttl) = 0;
  virtual Result<std::optional<std::string>> get(std::string_view name) = 0;
  // Removes a key or counter (no owner check: not for leases).
  virtual Status erase(std::string_view name) = 0;

  // What it is, for logs ("in-process", "redis://10.0.0.5:6379/0").
  virtual std::string describe() const = 0;
};

// The in-process store. `now` is its clock (tests inject one); expired
// entries are dropped when touched and swept as new ones arrive.
using SteadyNow = std::function<std::chrono::steady_clock::time_point()>;
std::shared_ptr<SharedState> make_memory_state(SteadyNow now = {});

}  // namespace wizmail::state
