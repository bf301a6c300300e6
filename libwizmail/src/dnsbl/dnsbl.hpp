// DNS block and allow lists at the client's address (docs/dnsbl.md), with
// Postfix postscreen's weighted model: each site `zone[=filter]*weight` that
// lists the client adds its weight to the client's score; a score at or over
// the threshold is refused. A negative weight makes an allow list.
//
// Pure: no sockets. The DNS questions go through a function (`Lookup`) the
// server makes over the c-ares resolver (outbound/dns.hpp); the cache keeps
// each (address, zone) answer for its TTL on a clock the caller gives.
// Includes only util/ and public headers.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <functional>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "wizmail/error.hpp"

namespace wizmail::dnsbl {

// One octet of a filter: any of the values whose bit is set.
using OctetSet = std::array<bool, 256>;

// One entry of dnsbl_sites.
struct Site {
  std::string zone;                            // lower case, no final dot
  std::optional<std::array<OctetSet, 4>> filter;  // none: any A record lists
  int weight = 1;
  std::string text;                            // as written, for the logs

  // Does this answer (the A records of the question, dotted quads) list
  // the client? Without a filter any record does.
  bool matches(const std::vector<std::string>& records) const;
};

inline constexpr int kMaxWeight = 10000;

// One site, postscreen syntax: zone[=filter][*weight]. The filter is an
// IPv4 pattern of four octets, each a number (0–255), a range [a..b] or a
// list [a;b;c] (ranges allowed in a list). The weight is a whole number,
// not 0, -kMaxWeight..kMaxWeight (default 1).
Result<Site> parse_site(std::string_view text);
// Every item of the dnsbl_sites key (split on commas and white space).
Result<std::vector<Site>> parse_sites(const std::vector<std::string>& items);
// The key's value split into items (commas and white space).
std::vector<std::string> split_sites(std::string_view value);

// The name to ask under `zone` for client `ip`: the IPv4 octets reversed
// (2.0.0.127.zone), IPv6 as 32 nibbles reversed. nullopt: not an address.
// An IPv4-mapped IPv6 address is asked as IPv4.
std::optional<std::string> query_name(std::string_view ip, std::string_view zone);

// What DNS said about one (address, zone).
struct Answer {
  enum class Status { listed, not_listed, error } status = Status::not_listed;
  std::vector<std::string> records;  // listed: the A records
  std::chrono::seconds ttl{0};       // from DNS (0: unknown)
  std::string error;                 // error: why (time-out, SERVFAIL...)
};

// The DNS questions of one client, all at once (in parallel): one Answer
// per name, in order.
using Lookup = std::function<std::vector<Answer>(const std::vector<std::string>& names)>;

// (address, zone) → Answer, each for its TTL clamped to [min_ttl, max_ttl]
// (an unknown TTL counts as min_ttl). Errors are never kept per address;
// instead a zone whose question failed (time-out, SERVFAIL, refused) is
// not asked again for `failure_backoff` (every client counts as not listed
// by it meanwhile): a dead resolver costs one wait per zone per back-off,
// not one per connection. At most `max_entries` entries: the least
// recently used goes first. Thread-safe.
class Cache {
 public:
  using Clock = std::chrono::steady_clock;
  struct Limits {
    std::size_t max_entries = 100000;
    std::chrono::seconds min_ttl{60};
    std::chrono::seconds max_ttl{3600};
    std::chrono::seconds failure_backoff{10};
  };
  Cache() : Cache(Limits{}) {}
  explicit Cache(Limits limits) : limits_(limits) {}

  std::optional<Answer> get(std::string_view ip, std::string_view zone, Clock::time_point now);
  void put(std::string_view ip, std::string_view zone, const Answer& a, Clock::time_point now);
  std::size_t size() const;
  // The zone's last failure while it is within failure_backoff (why, and
  // since when); nullopt: ask it. zone_answered() ends a back-off.
  struct Failure {
    std::string error;
    Clock::time_point since;
  };
  std::optional<Failure> zone_down(std::string_view zone, Clock::time_point now) const;
  void zone_failed(std::string_view zone, std::string error, Clock::time_point now);
  void zone_answered(std::string_view zone);

 private:
  struct Entry {
    std::string key;
    Answer answer;
    Clock::time_point expires;
  };
  Limits limits_;
  mutable std::mutex mu_;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> map_;
  std::unordered_map<std::string, Failure> down_;  // zone → its last failure
};

struct Verdict {
  int score = 0;
  bool blocked = false;          // score >= threshold
  std::string zone;              // blocked: the listing site of the highest weight
  std::vector<std::string> listed;   // "zone*weight" of every listing site
  std::vector<std::string> errors;   // the questions that failed (not listed)
  std::size_t queries = 0;       // questions asked (not from the cache)
};

// Scores `ip` against `sites`: answers from the cache, the rest asked at
// once through `lookup` and kept in the cache (errors are not; a failed
// zone backs off, see Cache). A site whose question failed or whose zone
// is backing off counts as not listing (Verdict::errors says so).
Verdict check(std::string_view ip, const std::vector<Site>& sites, int threshold, Cache& cache,
              const Lookup& lookup, Cache::Clock::time_point now = Cache::Clock::now());

// Score the answers (one per site, in order) without any DNS: for tests
// and for check().
Verdict score(const std::vector<Site>& sites, const std::vector<Answer>& answers, int threshold);

// "554 5.7.1 Service unavailable; client [IP] blocked using ZONE" (the
// refusal of each RCPT); `code` 521 for the greeting that drops the client
// (dnsbl_action=drop, RFC 7504).
std::string reject_reply(std::string_view ip, std::string_view zone, int code = 554);

}  // namespace wizmail::dnsbl
