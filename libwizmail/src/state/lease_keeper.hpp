// Leases held for as long as something lives (a POP3 session's mailbox
// lease, docs/cluster.md): acquire() takes the lease in the caller's thread
// (it may block: the server's blocking pool), and the keeper's own thread
// renews every held lease each ttl/3 and releases a dropped one — so
// neither a renew nor a release ever runs on an I/O thread, and an idle
// session keeps its lease. A process that dies renews nothing: its leases
// expire after the ttl.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "state/shared_state.hpp"

namespace wizmail::state {

class LeaseKeeper {
  struct Shared;

 public:
  // Held until destroyed (then released by the keeper's thread).
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&&) noexcept = default;
    Lease& operator=(Lease&& o) noexcept {
      if (this != &o) {
        drop();
        shared_ = std::move(o.shared_);
        id_ = o.id_;
      }
      return *this;
    }
    ~Lease() { drop(); }
    bool held() const noexcept { return shared_ != nullptr; }
    // false once a renew found it expired or taken by another owner.
    bool intact() const noexcept;
    // Release it now, in the caller's thread (which may block: the
    // blocking pool), so that it is free before the caller answers — a
    // POP3 QUIT, after which the client may log in again at once on
    // another node. A release the store refused is left to the keeper's
    // thread (and the ttl) as when dropped. The lease is not held after.
    void release_now();

   private:
    friend class LeaseKeeper;
    Lease(std::shared_ptr<Shared> s, std::uint64_t id) : shared_(std::move(s)), id_(id) {}
    void drop() noexcept;
    std::shared_ptr<Shared> shared_;
    std::uint64_t id_ = 0;
  };

  // `log`: what went wrong in the background (a renew that failed or found
  // the lease lost); called on the keeper's thread.
  LeaseKeeper(std::shared_ptr<SharedState> store, Millis ttl,
              std::function<void(std::string_view)> log = {});
  ~LeaseKeeper();  // releases what is still held, then stops
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  // Errc::busy naming nothing when another owner holds `name`;
  // Errc::unavailable (or temporary) when the store cannot be asked.
  Result<Lease> acquire(std::string_view name, std::string_view owner);

  Millis ttl() const noexcept;
  // This process among the nodes (node_id(), fixed at construction): the
  // first part of every owner it is given.
  const std::string& node() const noexcept;
  SharedState& store() noexcept;

  // A name for this process among the nodes: host, pid and a random nonce
  // (so that a restarted process with the same pid is another owner).
  static std::string node_id();

 private:
  std::shared_ptr<Shared> shared_;
};

}  // namespace wizmail::state
