#include "wizmail/pop_before_smtp.hpp"

#include <algorithm>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "util/ip.hpp"
#include "wizmail/account_store.hpp"

namespace wizmail {

namespace {

// The address as a map key: v6 flag and 16 bytes (IPv4 and IPv4-mapped
// IPv6 give the same key).
std::optional<std::string> key_of(std::string_view ip) {
  auto a = util::IpAddress::parse(ip);
  if (!a) return std::nullopt;
  std::string k(1, a->v6 ? '6' : '4');
  k.append(reinterpret_cast<const char*>(a->bytes.data()), a->v6 ? 16 : 4);
  return k;
}

class MemoryPopLoginTable final : public PopLoginTable {
 public:
  explicit MemoryPopLoginTable(std::size_t max_entries)
      : max_(std::max<std::size_t>(max_entries, 1)), sweep_at_(std::min<std::size_t>(max_, 1024)) {}

  Status record(std::string_view ip, std::string_view account, std::int64_t time,
                std::chrono::seconds ttl) override {
    auto key = key_of(ip);
    if (!key) return fail(Errc::invalid_argument, "not an IP address: " + std::string(ip.substr(0, 64)));
    const std::int64_t expires = time + ttl.count();
    std::lock_guard lk(mu_);
    auto it = map_.find(*key);
    if (it != map_.end()) {
      if (it->second.time <= time) it->second = {std::string(account), time, expires};
      return {};
    }
    if (map_.size() >= sweep_at_) sweep(time);
    map_.emplace(std::move(*key), Login{std::string(account), time, expires});
    return {};
  }

  Result<std::optional<std::string>> find(std::string_view ip, std::int64_t since) override {
    auto key = key_of(ip);
    if (!key) return std::optional<std::string>{};
    std::lock_guard lk(mu_);
    auto it = map_.find(*key);
    if (it == map_.end() || it->second.time < since) return std::optional<std::string>{};
    return std::optional<std::string>(it->second.account);
  }

 private:
  struct Login {
    std::string account;
    std::int64_t time = 0;
    std::int64_t expires = 0;
  };

  // Drop the expired entries, then (still full) the oldest half; the next
  // sweep waits until the map has doubled, so recording stays O(1)
  // amortised.
  void sweep(std::int64_t now) {
    std::erase_if(map_, [now](const auto& kv) { return kv.second.expires < now; });
    if (map_.size() >= max_) {
      std::vector<std::int64_t> times;
      times.reserve(map_.size());
      for (const auto& kv : map_) times.push_back(kv.second.time);
      auto mid = times.begin() + static_cast<std::ptrdiff_t>(times.size() / 2);
      std::nth_element(times.begin(), mid, times.end());
      const std::int64_t cut = *mid;
      std::erase_if(map_, [cut](const auto& kv) { return kv.second.time < cut; });
      // Equal times above the cut may keep it full: make room anyway.
      while (map_.size() >= max_) map_.erase(map_.begin());
    }
    sweep_at_ = std::min(max_, std::max<std::size_t>(1024, map_.size() * 2));
  }

  const std::size_t max_;
  std::size_t sweep_at_;
  std::mutex mu_;
  std::unordered_map<std::string, Login> map_;
};

}  // namespace

std::shared_ptr<PopLoginTable> make_memory_pop_login_table(std::size_t max_entries) {
  return std::make_shared<MemoryPopLoginTable>(max_entries);
}

Result<std::size_t> seed_pop_logins(PopLoginTable& table, const AccountStore& store, std::int64_t now,
                                    std::chrono::seconds ttl) {
  auto names = store.list();
  if (!names) return unexpected(names.error());
  std::size_t n = 0;
  for (const auto& name : *names) {
    auto login = store.read_pop_login(name);
    if (!login || login->time < now - ttl.count()) continue;
    if (auto st = table.record(login->ip, name, login->time, ttl); !st) return unexpected(st.error());
    ++n;
  }
  return n;
}

}  // namespace wizmail
