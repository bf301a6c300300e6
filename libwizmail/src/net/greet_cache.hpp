// Client addresses that passed the pregreet test (postscreen's cache,
// postscreen_greet_ttl): a client that waited for the greeting once is
// greeted at once for `ttl` afterwards, on any connection. Keyed by the
// exact address (IPv4-mapped IPv6 unmapped). Memory is bounded: at
// `max_entries` expired entries go first, then the oldest eighth.
// Thread-safe; no I/O.
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace wizmail::net {

class GreetCache {
 public:
  using Clock = std::chrono::steady_clock;
  explicit GreetCache(std::size_t max_entries = 65536) : max_(max_entries) {}

  // Did `ip` pass within `ttl` before `now`?
  bool passed(std::string_view ip, Clock::duration ttl, Clock::time_point now = Clock::now()) const;
  // `ip` waited for the greeting at `now`; `ttl` decides what has expired
  // when room is needed.
  void pass(std::string_view ip, Clock::duration ttl, Clock::time_point now = Clock::now());
  std::size_t size() const;

 private:
  void make_room(Clock::duration ttl, Clock::time_point now);
  std::size_t max_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Clock::time_point> map_;
};

}  // namespace wizmail::net
