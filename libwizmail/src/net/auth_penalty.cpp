#include "net/auth_penalty.hpp"

#include <asio/ip/address.hpp>

#include <algorithm>
#include <vector>

#include "net/address.hpp"

namespace wizmail::net {

std::string AuthPenalty::network(std::string_view ip) {
  std::error_code ec;
  auto a = asio::ip::make_address(std::string(ip), ec);
  if (ec) return std::string(ip);
  a = unmap(a);
  if (a.is_v4()) return a.to_string();
  auto bytes = a.to_v6().to_bytes();
  std::fill(bytes.begin() + 8, bytes.end(), 0);
  return asio::ip::address_v6(bytes).to_string() + "/64";
}

int AuthPenalty::failed(std::string_view ip, Clock::time_point now) {
  auto key = network(ip);
  std::lock_guard lk(mu_);
  auto it = map_.find(key);
  if (it == map_.end()) {
    make_room(now);
    it = map_.emplace(std::move(key), Entry{}).first;
  }
  auto& e = it->second;
  if (e.failures > 0 && now - e.last > opt_.window) e.failures = 0;
  if (e.failures < 1'000'000) ++e.failures;
  e.last = now;
  return e.failures;
}

void AuthPenalty::succeeded(std::string_view ip) {
  auto key = network(ip);
  std::lock_guard lk(mu_);
  map_.erase(key);
}

int AuthPenalty::recent(std::string_view ip, Clock::time_point now) const {
  auto key = network(ip);
  std::lock_guard lk(mu_);
  auto it = map_.find(key);
  if (it == map_.end() || now - it->second.last > opt_.window) return 0;
  return it->second.failures;
}

std::size_t AuthPenalty::size() const {
  std::lock_guard lk(mu_);
  return map_.size();
}

void AuthPenalty::make_room(Clock::time_point now) {
  if (map_.size() < std::max<std::size_t>(opt_.max_entries, 1)) return;
  std::erase_if(map_, [&](const auto& p) { return now - p.second.last > opt_.window; });
  if (map_.size() < opt_.max_entries) return;
  // All recent: the oldest eighth goes (amortised: one scan per many inserts).
  std::vector<Clock::time_point> times;
  times.reserve(map_.size());
  for (const auto& [k, e] : map_) times.push_back(e.last);
  auto nth = times.begin() + static_cast<long>(times.size() / 8);
  std::nth_element(times.begin(), nth, times.end());
  auto cut = *nth;
  std::erase_if(map_, [&](const auto& p) { return p.second.last <= cut; });
}

}  // namespace wizmail::net
