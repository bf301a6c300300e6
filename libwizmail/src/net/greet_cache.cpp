#include "net/greet_cache.hpp"

#include <asio/ip/address.hpp>

#include <algorithm>
#include <vector>

#include "net/address.hpp"

namespace wizmail::net {

namespace {
std::string key_of(std::string_view ip) {
  std::error_code ec;
  auto a = asio::ip::make_address(std::string(ip), ec);
  if (ec) return std::string(ip);
  return unmap(a).to_string();
}
}  // namespace

bool GreetCache::passed(std::string_view ip, Clock::duration ttl, Clock::time_point now) const {
  auto key = key_of(ip);
  std::lock_guard lk(mu_);
  auto it = map_.find(key);
  return it != map_.end() && now - it->second < ttl;
}

void GreetCache::pass(std::string_view ip, Clock::duration ttl, Clock::time_point now) {
  auto key = key_of(ip);
  std::lock_guard lk(mu_);
  auto it = map_.find(key);
  if (it != map_.end()) {
    it->second = now;
    return;
  }
  make_room(ttl, now);
  map_.emplace(std::move(key), now);
}

std::size_t GreetCache::size() const {
  std::lock_guard lk(mu_);
  return map_.size();
}

void GreetCache::make_room(Clock::duration ttl, Clock::time_point now) {
  const std::size_t max = std::max<std::size_t>(max_, 1);
  if (map_.size() < max) return;
  std::erase_if(map_, [&](const auto& p) { return now - p.second >= ttl; });
  if (map_.size() < max) return;
  // All recent: the oldest eighth goes (one scan per many inserts).
  std::vector<Clock::time_point> times;
  times.reserve(map_.size());
  for (const auto& [k, t] : map_) times.push_back(t);
  auto nth = times.begin() + static_cast<long>(times.size() / 8);
  std::nth_element(times.begin(), nth, times.end());
  auto cut = *nth;
  std::erase_if(map_, [&](const auto& p) { return p.second <= cut; });
}

}  // namespace wizmail::net
