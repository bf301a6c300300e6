#include "wizmail/pop_before_smtp.hpp"

#include <algorithm>
#include <ctime>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "server/pop_login_shared.hpp"
#include "state/shared_state.hpp"
#include "util/ip.hpp"
#include "util/strings.hpp"
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

// The address as a key's text: "4:" or "6:" and its bytes in hex (one
// spelling per address, IPv4-mapped IPv6 as IPv4).
std::optional<std::string> text_key_of(std::string_view ip) {
  auto k = key_of(ip);
  if (!k) return std::nullopt;
  static constexpr char hex[] = "0123456789abcdef";
  std::string out = util::cat("wizmail:poplogin:", std::string_view(k->data(), 1), ":");
  for (std::size_t i = 1; i < k->size(); ++i) {
    auto b = static_cast<unsigned char>((*k)[i]);
    out += hex[b >> 4];
    out += hex[b & 15];
  }
  return out;
}

// In the cluster's shared state: one key per address, "<time> <account>",
// expiring when the login is older than its ttl. A later login replaces an
// earlier one, never the reverse: read, compare, write — two logins from
// one address on two nodes within the same instant may leave either (both
// are real logins within the ttl).
class SharedPopLoginTable final : public PopLoginTable {
 public:
  SharedPopLoginTable(std::shared_ptr<state::SharedState> shared, std::function<std::int64_t()> now)
      : shared_(std::move(shared)), now_(std::move(now)) {
    if (!now_) now_ = [] { return static_cast<std::int64_t>(std::time(nullptr)); };
  }

  Status record(std::string_view ip, std::string_view account, std::int64_t time,
                std::chrono::seconds ttl) override {
    auto key = text_key_of(ip);
    if (!key) return fail(Errc::invalid_argument, "not an IP address: " + std::string(ip.substr(0, 64)));
    const std::int64_t left = time + ttl.count() - now_();
    if (left <= 0) return {};
    auto old = shared_->get(*key);
    if (!old) return unexpected(old.error());
    if (*old)
      if (auto t = parse(**old); t && t->first > time) return {};
    return shared_->put(*key, util::cat(std::to_string(time), " ", account), std::chrono::seconds(left));
  }

  Result<std::optional<std::string>> find(std::string_view ip, std::int64_t since) override {
    auto key = text_key_of(ip);
    if (!key) return std::optional<std::string>{};
    auto v = shared_->get(*key);
    if (!v) return unexpected(v.error());
    if (!*v) return std::optional<std::string>{};
    auto t = parse(**v);
    if (!t || t->first < since) return std::optional<std::string>{};
    return std::optional<std::string>(std::move(t->second));
  }

 private:
  static std::optional<std::pair<std::int64_t, std::string>> parse(std::string_view v) {
    auto sp = v.find(' ');
    if (sp == std::string_view::npos) return std::nullopt;
    auto t = util::parse_int(v.substr(0, sp));
    if (!t) return std::nullopt;
    return std::pair<std::int64_t, std::string>(*t, std::string(v.substr(sp + 1)));
  }

  std::shared_ptr<state::SharedState> shared_;
  std::function<std::int64_t()> now_;
};

}  // namespace

std::shared_ptr<PopLoginTable> make_shared_pop_login_table(std::shared_ptr<state::SharedState> shared,
                                                           std::function<std::int64_t()> now) {
  return std::make_shared<SharedPopLoginTable>(std::move(shared), std::move(now));
}

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
