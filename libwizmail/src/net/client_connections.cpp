#include "net/client_connections.hpp"

#include "net/address.hpp"

namespace wizmail::net {

std::pair<bool, ClientConnections::Slot> ClientConnections::acquire(std::string_view ip, int limit) {
  auto key = client_network(ip);
  std::lock_guard lk(mu_);
  auto& n = map_[key];
  if (limit > 0 && n >= limit) {
    if (n == 0) map_.erase(key);
    return {false, Slot{}};
  }
  ++n;
  return {true, Slot(this, std::move(key))};
}

int ClientConnections::count(std::string_view ip) const {
  auto key = client_network(ip);
  std::lock_guard lk(mu_);
  auto it = map_.find(key);
  return it == map_.end() ? 0 : it->second;
}

std::size_t ClientConnections::networks() const {
  std::lock_guard lk(mu_);
  return map_.size();
}

void ClientConnections::release(const std::string& key) noexcept {
  std::lock_guard lk(mu_);
  auto it = map_.find(key);
  if (it == map_.end()) return;
  if (--it->second <= 0) map_.erase(it);
}

}  // namespace wizmail::net
