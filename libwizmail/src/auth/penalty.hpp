// Failed logins per client network, shared by SMTP AUTH and POP3
// USER/PASS and APOP (Dovecot's auth_penalty semantics):
//
// - Every attempt from a network with recent failures waits *before* it is
//   checked, right or wrong: base × 2^(failures−1), at most a maximum
//   (delay_for()). The answer then comes at once, so its timing does not
//   tell a right password from a wrong one, and a client that hangs up
//   during the wait learns nothing (its attempt is never checked).
// - begin() admits an attempt and counts it as in progress until end():
//   at most `max_concurrent` at a time per network (busy beyond), so
//   parallel connections do not multiply a guesser's rate.
// - At `block_failures` failures within the window the network is refused
//   outright for `block_time` (blocked), without any check.
// - failed() counts a failure; succeeded() clears the network's failures
//   and block. Records expire after `window` without a failure.
//
// A network is the IPv4 address, or the /64 of an IPv6 address (one host
// usually has a whole /64). Memory is bounded: at `max_entries` expired
// records go first, then the oldest (records with attempts in progress
// stay: there are at most as many as connections). Thread-safe; no I/O;
// time is passed in, so tests need no sleeps.
//
// Shared by the nodes of a cluster (share(), with redis_url;
// docs/cluster.md): the failures and the block of a network then live in
// the SharedState — `wizmail:authfail:<network>` (a counter whose expiry
// restarts at each failure: the window) and `wizmail:authblock:<network>`
// (a key for block_time) — so a network blocked on one node is blocked on
// all. The attempts in progress stay per node (they are this node's
// connections). Time is then the shared store's (the `now` arguments are
// not used), and a call may wait for Redis: begin(), blocked(), failed()
// and succeeded() run where a session may wait (the blocking pool). An
// unreachable store makes begin() answer `unavailable` (the caller answers
// 4xx) and blocked() false (begin() then says so).
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace wizmail::state {
class SharedState;
}

namespace wizmail::auth {

// The limits an attempt is judged by (from the configuration snapshot of
// the session that asks; 0 = no such limit).
struct AuthPolicy {
  int max_concurrent = 0;                  // attempts in progress per network
  int block_failures = 0;                  // failures that block the network
  std::chrono::seconds block_time{0};      // for this long after the last one
};

// What an attempt may do now.
struct AuthAdmission {
  enum class Kind {
    check,    // wait delay_for(failures), then check; call end() afterwards
    busy,     // too many attempts of the network in progress: refuse, no end()
    blocked,  // the network is blocked: refuse and close, no end()
    unavailable,  // the shared state cannot be asked: refuse for now (4xx), no end()
  };
  Kind kind = Kind::check;
  int failures = 0;  // the network's recent failures (check only)
};

// The wait before an attempt is checked: 0 without failures, else
// base × 2^(failures−1), at most `max`.
std::chrono::milliseconds auth_delay_for(int failures, std::chrono::milliseconds base,
                                         std::chrono::milliseconds max) noexcept;

class AuthPenalty {
 public:
  using Clock = std::chrono::steady_clock;
  struct Options {
    std::chrono::seconds window{3600};
    std::size_t max_entries = 65536;
  };
  AuthPenalty() = default;
  explicit AuthPenalty(Options o) : opt_(o) {}

  // Failures and blocks in `shared` from now on (before any attempt);
  // `log` gets what could not be recorded there (error.log).
  using LogFn = std::function<void(std::string_view)>;
  void share(std::shared_ptr<state::SharedState> shared, LogFn log);

  // Admit an attempt from `ip` (see AuthAdmission).
  AuthAdmission begin(std::string_view ip, const AuthPolicy& policy,
                      Clock::time_point now = Clock::now());
  // The attempt begin() admitted is over (checked, or abandoned).
  void end(std::string_view ip);
  // Is ip's network blocked now?
  bool blocked(std::string_view ip, Clock::time_point now = Clock::now()) const;

  // One more failure from `ip`: the failures of its network within the
  // window, this one included (1 for the first). Blocks the network when
  // they reach policy.block_failures. An unparsable ip counts by its text.
  int failed(std::string_view ip, Clock::time_point now = Clock::now(),
             const AuthPolicy& policy = {});
  void succeeded(std::string_view ip);
  // Failures of ip's network within the window (0 = none).
  int recent(std::string_view ip, Clock::time_point now = Clock::now()) const;
  // Attempts of ip's network in progress (between begin() and end()).
  int in_progress(std::string_view ip) const;
  std::size_t size() const;

 private:
  struct Entry {
    int failures = 0;
    int in_progress = 0;
    Clock::time_point last{};
    Clock::time_point blocked_until{};
  };
  Entry& entry(std::string key, Clock::time_point now);
  int current_failures(const Entry& e, Clock::time_point now) const;
  void make_room(Clock::time_point now);
  int shared_failures(const std::string& key) const;
  Options opt_;
  std::shared_ptr<state::SharedState> shared_;
  LogFn log_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> map_;
};

}  // namespace wizmail::auth
