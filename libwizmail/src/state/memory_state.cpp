// The in-process SharedState: one hash map under one mutex. Each entry is a
// string value (a lease's owner, a key's value, a counter's digits) and its
// deadline on the steady clock.
#include <algorithm>
#include <charconv>
#include <limits>
#include <mutex>
#include <unordered_map>

#include "state/shared_state.hpp"

namespace wizmail::state {

namespace {

using TimePoint = std::chrono::steady_clock::time_point;

class MemoryState final : public SharedState {
 public:
  explicit MemoryState(SteadyNow now) : now_(std::move(now)) {
    if (!now_) now_ = [] { return std::chrono::steady_clock::now(); };
  }

  Result<bool> acquire(std::string_view name, std::string_view owner, Millis ttl) override {
    std::lock_guard lk(mu_);
    auto t = now_();
    auto* e = live(name, t);
    if (e && e->value != owner) return false;
    sweep(t);
    auto& slot = map_[std::string(name)];
    slot.value = std::string(owner);
    slot.deadline = t + ttl;
    return true;
  }

  Result<bool> renew(std::string_view name, std::string_view owner, Millis ttl) override {
    std::lock_guard lk(mu_);
    auto t = now_();
    auto* e = live(name, t);
    if (!e || e->value != owner) return false;
    e->deadline = t + ttl;
    return true;
  }

  Result<bool> release(std::string_view name, std::string_view owner) override {
    std::lock_guard lk(mu_);
    auto t = now_();
    auto* e = live(name, t);
    if (!e || e->value != owner) return false;
    map_.erase(std::string(name));
    return true;
  }

  Result<std::int64_t> increment(std::string_view name, Millis ttl, bool refresh) override {
    std::lock_guard lk(mu_);
    auto t = now_();
    auto* e = live(name, t);
    if (!e) {
      sweep(t);
      map_[std::string(name)] = Entry{"1", t + ttl};
      return 1;
    }
    auto n = number(e->value);
    if (!n) return unexpected(n.error());
    std::int64_t v = *n + 1;
    e->value = std::to_string(v);
    if (refresh) e->deadline = t + ttl;
    return v;
  }

  Result<std::int64_t> increment_from(std::string_view name, std::int64_t floor) override {
    std::lock_guard lk(mu_);
    auto t = now_();
    auto* e = live(name, t);
    std::int64_t v = 0;
    if (e) {
      auto n = number(e->value);
      if (!n) return unexpected(n.error());
      v = *n;
    }
    v = std::max(v, floor);
    if (v == std::numeric_limits<std::int64_t>::max())
      return unexpected(Error(Errc::limit, "the sequence cannot grow any further"));
    ++v;
    if (!e) {
      sweep(t);
      e = &map_[std::string(name)];
    }
    *e = Entry{std::to_string(v), TimePoint::max()};
    return v;
  }

  Result<std::int64_t> counter(std::string_view name) override {
    std::lock_guard lk(mu_);
    auto* e = live(name, now_());
    if (!e) return std::int64_t{0};
    return number(e->value);
  }

  Status put(std::string_view name, std::string_view value, Millis ttl) override {
    std::lock_guard lk(mu_);
    auto t = now_();
    sweep(t);
    map_[std::string(name)] = Entry{std::string(value), t + ttl};
    return {};
  }

  Result<std::optional<std::string>> get(std::string_view name) override {
    std::lock_guard lk(mu_);
    auto* e = live(name, now_());
    if (!e) return std::optional<std::string>{};
    return std::optional<std::string>(e->value);
  }

  Status erase(std::string_view name) override {
    std::lock_guard lk(mu_);
    map_.erase(std::string(name));
    return {};
  }

  std::string describe() const override { return "in-process"; }

 private:
  struct Entry {
    std::string value;
    TimePoint deadline;
  };

  // A counter's value; a key that is no counter is an error, as INCR on it
  // is in Redis.
  static Result<std::int64_t> number(const std::string& s) {
    std::int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p != s.data() + s.size())
      return unexpected(Error(Errc::invalid_argument, "not a counter"));
    return v;
  }

  // The entry if present and not expired (an expired one is dropped).
  Entry* live(std::string_view name, TimePoint t) {
    auto it = map_.find(std::string(name));
    if (it == map_.end()) return nullptr;
    if (it->second.deadline <= t) {
      map_.erase(it);
      return nullptr;
    }
    return &it->second;
  }

  // Amortised clean-up: a full pass whenever the map has doubled since the
  // last one, so the expired entries never outnumber the live ones for long.
  void sweep(TimePoint t) {
    if (map_.size() < next_sweep_) return;
    std::erase_if(map_, [t](const auto& kv) { return kv.second.deadline <= t; });
    next_sweep_ = std::max<std::size_t>(1024, map_.size() * 2);
  }

  SteadyNow now_;
  std::mutex mu_;
  std::unordered_map<std::string, Entry> map_;
  std::size_t next_sweep_ = 1024;
};

}  // namespace

std::shared_ptr<SharedState> make_memory_state(SteadyNow now) {
  return std::make_shared<MemoryState>(std::move(now));
}

}  // namespace wizmail::state
