#include "server/free_space.hpp"

#include <algorithm>

#include "util/fs.hpp"

namespace wizmail::server {

std::optional<std::uint64_t> FreeSpace::bytes(const std::filesystem::path& dir) {
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard lk(mu_);
  auto it = std::find_if(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.dir == dir; });
  if (it != entries_.end() && now - it->at < kInterval) return it->free;
  std::optional<std::uint64_t> free;
  if (auto f = util::free_space(dir)) free = *f;
  if (it == entries_.end()) {
    if (entries_.size() >= 16) entries_.clear();  // folders changed by reloads
    entries_.push_back({dir, now, free});
  } else {
    it->at = now;
    it->free = free;
  }
  return free;
}

bool FreeSpace::allows(const std::filesystem::path& dir, std::int64_t minfree, std::int64_t size) {
  auto free = bytes(dir);
  if (!free) return true;
  const auto need = static_cast<std::uint64_t>(std::max<std::int64_t>(minfree, 0)) +
                    static_cast<std::uint64_t>(std::max<std::int64_t>(size, 0));
  return *free >= need;
}

}  // namespace wizmail::server
