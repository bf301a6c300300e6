// Failed logins per client network, shared by SMTP AUTH and POP3 (like
// Dovecot's auth_penalty): each failure from a network doubles the delay
// before that failure is answered, on whatever connection it comes. A
// client that opens a new connection after each refusal starts where it
// left off, not at one second. A success from the network clears its
// record; records expire after `window` without a failure.
//
// A network is the IPv4 address, or the /64 of an IPv6 address (one host
// usually has a whole /64). Memory is bounded: at `max_entries` expired
// records go first, then the oldest. Thread-safe; no I/O.
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace wizmail::net {

class AuthPenalty {
 public:
  using Clock = std::chrono::steady_clock;
  struct Options {
    std::chrono::seconds window{3600};
    std::size_t max_entries = 65536;
  };
  AuthPenalty() = default;
  explicit AuthPenalty(Options o) : opt_(o) {}

  // One more failure from `ip`: the failures of its network within the
  // window, this one included (1 for the first). An unparsable ip counts
  // by its text.
  int failed(std::string_view ip, Clock::time_point now = Clock::now());
  void succeeded(std::string_view ip);
  // Failures of ip's network within the window (0 = none).
  int recent(std::string_view ip, Clock::time_point now = Clock::now()) const;
  std::size_t size() const;

  // The key of ip's network: "192.0.2.7", "2001:db8:1:2::/64".
  static std::string network(std::string_view ip);

 private:
  struct Entry {
    int failures = 0;
    Clock::time_point last{};
  };
  void make_room(Clock::time_point now);
  Options opt_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> map_;
};

}  // namespace wizmail::net
