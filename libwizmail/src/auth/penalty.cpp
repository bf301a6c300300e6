#include "auth/penalty.hpp"

#include <asio/ip/address.hpp>

#include <algorithm>
#include <vector>

#include "net/address.hpp"
#include "state/shared_state.hpp"
#include "util/strings.hpp"

namespace wizmail::auth {

namespace {
std::string fail_key(std::string_view network) { return util::cat("wizmail:authfail:", network); }
std::string block_key(std::string_view network) { return util::cat("wizmail:authblock:", network); }
}  // namespace

void AuthPenalty::share(std::shared_ptr<state::SharedState> shared, LogFn log) {
  shared_ = std::move(shared);
  log_ = std::move(log);
}

int AuthPenalty::shared_failures(const std::string& key) const {
  auto n = shared_->counter(fail_key(key));
  if (!n) {
    if (log_) log_(util::cat("auth penalty: ", n.error().message));
    return 0;
  }
  return static_cast<int>(std::min<std::int64_t>(*n, 1'000'000));
}

std::chrono::milliseconds auth_delay_for(int failures, std::chrono::milliseconds base,
                                         std::chrono::milliseconds max) noexcept {
  if (failures <= 0 || base.count() <= 0) return std::chrono::milliseconds{0};
  auto d = base;
  for (int i = 1; i < failures && d < max; ++i) d *= 2;
  return std::min(d, max);
}

AuthPenalty::Entry& AuthPenalty::entry(std::string key, Clock::time_point now) {
  auto it = map_.find(key);
  if (it == map_.end()) {
    make_room(now);
    it = map_.emplace(std::move(key), Entry{}).first;
  }
  return it->second;
}

int AuthPenalty::current_failures(const Entry& e, Clock::time_point now) const {
  return e.failures > 0 && now - e.last <= opt_.window ? e.failures : 0;
}

AuthAdmission AuthPenalty::begin(std::string_view ip, const AuthPolicy& policy,
                                 Clock::time_point now) {
  auto key = net::client_network(ip);
  if (shared_) {
    // Asked before the lock: Redis may take its time.
    auto unavailable = [this](const Error& e) {
      if (log_) log_(util::cat("auth penalty: ", e.message));
      return AuthAdmission{AuthAdmission::Kind::unavailable, 0};
    };
    auto blocked = shared_->get(block_key(key));
    if (!blocked) return unavailable(blocked.error());
    if (blocked->has_value()) return {AuthAdmission::Kind::blocked, 0};
    auto failures = shared_->counter(fail_key(key));
    if (!failures) return unavailable(failures.error());
    std::lock_guard lk(mu_);
    auto& e = entry(std::move(key), now);
    if (policy.max_concurrent > 0 && e.in_progress >= policy.max_concurrent)
      return {AuthAdmission::Kind::busy, 0};
    ++e.in_progress;
    return {AuthAdmission::Kind::check, static_cast<int>(std::min<std::int64_t>(*failures, 1'000'000))};
  }
  std::lock_guard lk(mu_);
  auto& e = entry(std::move(key), now);
  if (e.blocked_until > now) return {AuthAdmission::Kind::blocked, 0};
  if (policy.max_concurrent > 0 && e.in_progress >= policy.max_concurrent)
    return {AuthAdmission::Kind::busy, 0};
  ++e.in_progress;
  return {AuthAdmission::Kind::check, current_failures(e, now)};
}

void AuthPenalty::end(std::string_view ip) {
  auto key = net::client_network(ip);
  std::lock_guard lk(mu_);
  auto it = map_.find(key);
  if (it == map_.end()) return;
  auto& e = it->second;
  if (e.in_progress > 0) --e.in_progress;
  if (e.in_progress == 0 && e.failures == 0 && e.blocked_until == Clock::time_point{})
    map_.erase(it);
}

bool AuthPenalty::blocked(std::string_view ip, Clock::time_point now) const {
  auto key = net::client_network(ip);
  if (shared_) {
    auto b = shared_->get(block_key(key));
    if (!b) {
      if (log_) log_(util::cat("auth penalty: ", b.error().message));
      return false;  // begin() answers unavailable
    }
    return b->has_value();
  }
  std::lock_guard lk(mu_);
  auto it = map_.find(key);
  return it != map_.end() && it->second.blocked_until > now;
}

int AuthPenalty::failed(std::string_view ip, Clock::time_point now, const AuthPolicy& policy) {
  auto key = net::client_network(ip);
  if (shared_) {
    auto n = shared_->increment(fail_key(key), opt_.window, true);
    if (!n) {
      if (log_) log_(util::cat("auth penalty: failure from ", ip, " not counted: ", n.error().message));
      return 0;
    }
    if (policy.block_failures > 0 && *n >= policy.block_failures && policy.block_time.count() > 0)
      if (auto st = shared_->put(block_key(key), "1", policy.block_time); !st && log_)
        log_(util::cat("auth penalty: block of ", key, " not recorded: ", st.error().message));
    return static_cast<int>(std::min<std::int64_t>(*n, 1'000'000));
  }
  std::lock_guard lk(mu_);
  auto& e = entry(std::move(key), now);
  e.failures = current_failures(e, now);
  if (e.failures < 1'000'000) ++e.failures;
  e.last = now;
  if (policy.block_failures > 0 && e.failures >= policy.block_failures)
    e.blocked_until = now + policy.block_time;
  return e.failures;
}

void AuthPenalty::succeeded(std::string_view ip) {
  auto key = net::client_network(ip);
  if (shared_) {
    // A success clears the network everywhere. Erasing the block too is
    // today's rule: a client that passes was admitted, so not blocked then.
    auto a = shared_->erase(fail_key(key));
    auto b = a ? shared_->erase(block_key(key)) : a;
    if (!b && log_) log_(util::cat("auth penalty: success of ", ip, " not recorded: ", b.error().message));
    return;
  }
  std::lock_guard lk(mu_);
  auto it = map_.find(key);
  if (it == map_.end()) return;
  if (it->second.in_progress == 0) {
    map_.erase(it);
    return;
  }
  it->second.failures = 0;
  it->second.blocked_until = {};
}

int AuthPenalty::recent(std::string_view ip, Clock::time_point now) const {
  auto key = net::client_network(ip);
  if (shared_) return shared_failures(key);
  std::lock_guard lk(mu_);
  auto it = map_.find(key);
  return it == map_.end() ? 0 : current_failures(it->second, now);
}

int AuthPenalty::in_progress(std::string_view ip) const {
  auto key = net::client_network(ip);
  std::lock_guard lk(mu_);
  auto it = map_.find(key);
  return it == map_.end() ? 0 : it->second.in_progress;
}

std::size_t AuthPenalty::size() const {
  std::lock_guard lk(mu_);
  return map_.size();
}

void AuthPenalty::make_room(Clock::time_point now) {
  if (map_.size() < std::max<std::size_t>(opt_.max_entries, 1)) return;
  auto idle = [&](const Entry& e) { return e.in_progress == 0 && e.blocked_until <= now; };
  std::erase_if(map_, [&](const auto& p) {
    return idle(p.second) && now - p.second.last > opt_.window;
  });
  if (map_.size() < opt_.max_entries) return;
  // All recent: the oldest eighth goes (amortised: one scan per many
  // inserts). Attempts in progress stay (bounded by the connections).
  std::vector<Clock::time_point> times;
  times.reserve(map_.size());
  for (const auto& [k, e] : map_)
    if (e.in_progress == 0) times.push_back(e.last);
  if (times.empty()) return;
  auto nth = times.begin() + static_cast<long>(times.size() / 8);
  std::nth_element(times.begin(), nth, times.end());
  auto cut = *nth;
  std::erase_if(map_, [&](const auto& p) { return p.second.in_progress == 0 && p.second.last <= cut; });
}

}  // namespace wizmail::auth
