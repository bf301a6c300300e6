// Concurrent connections per client network (Postfix's
// smtpd_client_connection_count_limit), for SMTP and POP3 together. A
// network is what net::client_network() says: the IPv4 address, or the /64
// of an IPv6 address (one host usually has a whole /64, so counting single
// IPv6 addresses would let one host take every slot). Thread-safe; no I/O.
#pragma once

#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace wizmail::net {

class ClientConnections {
 public:
  // A counted connection; gives its place back when destroyed. Empty (not
  // counted) when default-made or moved from.
  class Slot {
   public:
    Slot() = default;
    Slot(Slot&& o) noexcept : owner_(std::exchange(o.owner_, nullptr)), key_(std::move(o.key_)) {}
    Slot& operator=(Slot&& o) noexcept {
      if (this != &o) {
        release();
        owner_ = std::exchange(o.owner_, nullptr);
        key_ = std::move(o.key_);
      }
      return *this;
    }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    ~Slot() { release(); }
    explicit operator bool() const noexcept { return owner_ != nullptr; }
    void release() noexcept {
      if (owner_) std::exchange(owner_, nullptr)->release(key_);
    }

   private:
    friend class ClientConnections;
    Slot(ClientConnections* o, std::string k) : owner_(o), key_(std::move(k)) {}
    ClientConnections* owner_ = nullptr;
    std::string key_;
  };

  // One more connection from ip's network, unless it holds `limit` already
  // (0 = no limit): {false, empty slot} then, and nothing is counted.
  std::pair<bool, Slot> acquire(std::string_view ip, int limit);
  // Connections of ip's network now.
  int count(std::string_view ip) const;
  std::size_t networks() const;

 private:
  void release(const std::string& key) noexcept;
  mutable std::mutex mu_;
  std::unordered_map<std::string, int> map_;
};

}  // namespace wizmail::net
