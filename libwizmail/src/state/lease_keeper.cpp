#include "state/lease_keeper.hpp"

#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "util/strings.hpp"

namespace wizmail::state {

struct LeaseKeeper::Shared {
  struct Held {
    std::string name;
    std::string owner;
    bool intact = true;
  };

  std::shared_ptr<SharedState> store;
  Millis ttl;
  std::string node;
  std::function<void(std::string_view)> log;

  std::mutex mu;
  std::condition_variable cv;
  std::map<std::uint64_t, Held> held;
  std::vector<Held> to_release;
  std::uint64_t next_id = 1;
  bool stopping = false;
  std::thread thread;

  void note(std::string_view text) {
    if (log) log(text);
  }

  void run() {
    auto every = std::max(Millis(1), ttl / 3);
    auto next = std::chrono::steady_clock::now() + every;
    std::unique_lock lk(mu);
    for (;;) {
      cv.wait_until(lk, next, [&] { return stopping || !to_release.empty(); });
      auto releases = std::move(to_release);
      to_release.clear();
      bool stop = stopping;
      bool renew_now = std::chrono::steady_clock::now() >= next;
      std::vector<std::pair<std::uint64_t, Held>> renewals;
      if (renew_now && !stop)
        for (const auto& [id, h] : held)
          if (h.intact) renewals.emplace_back(id, h);
      if (stop)
        for (auto& [id, h] : held) releases.push_back(std::move(h));
      lk.unlock();
      for (const auto& h : releases) {
        auto r = store->release(h.name, h.owner);
        if (!r) note(util::cat("lease ", h.name, " not released (it expires by itself): ", r.error().message));
      }
      for (const auto& [id, h] : renewals) {
        auto r = store->renew(h.name, h.owner, ttl);
        if (!r) {
          note(util::cat("lease ", h.name, " not renewed (tried again later): ", r.error().message));
        } else if (!*r) {
          note(util::cat("lease ", h.name, " lost: expired or taken by another owner"));
          std::lock_guard g(mu);
          if (auto it = held.find(id); it != held.end()) it->second.intact = false;
        }
      }
      lk.lock();
      if (stop) return;
      if (renew_now) next = std::chrono::steady_clock::now() + every;
    }
  }
};

LeaseKeeper::LeaseKeeper(std::shared_ptr<SharedState> store, Millis ttl,
                         std::function<void(std::string_view)> log)
    : shared_(std::make_shared<Shared>()) {
  shared_->store = std::move(store);
  shared_->ttl = ttl;
  shared_->node = node_id();
  shared_->log = std::move(log);
  shared_->thread = std::thread([s = shared_.get()] { s->run(); });
}

LeaseKeeper::~LeaseKeeper() {
  {
    std::lock_guard lk(shared_->mu);
    shared_->stopping = true;
  }
  shared_->cv.notify_all();
  shared_->thread.join();
}

Result<LeaseKeeper::Lease> LeaseKeeper::acquire(std::string_view name, std::string_view owner) {
  auto got = shared_->store->acquire(name, owner, shared_->ttl);
  if (!got) return unexpected(got.error());
  if (!*got) return unexpected(Error(Errc::busy, util::cat("lease ", name, " is held by another owner")));
  std::lock_guard lk(shared_->mu);
  if (shared_->stopping) {
    shared_->to_release.push_back({std::string(name), std::string(owner)});
    return unexpected(Error(Errc::unavailable, "shutting down"));
  }
  auto id = shared_->next_id++;
  shared_->held.emplace(id, Shared::Held{std::string(name), std::string(owner)});
  return Lease(shared_, id);
}

Millis LeaseKeeper::ttl() const noexcept { return shared_->ttl; }
const std::string& LeaseKeeper::node() const noexcept { return shared_->node; }
SharedState& LeaseKeeper::store() noexcept { return *shared_->store; }

bool LeaseKeeper::Lease::intact() const noexcept {
  if (!shared_) return false;
  std::lock_guard lk(shared_->mu);
  auto it = shared_->held.find(id_);
  return it != shared_->held.end() && it->second.intact;
}

void LeaseKeeper::Lease::release_now() {
  if (!shared_) return;
  auto shared = std::move(shared_);
  shared_.reset();
  Shared::Held h;
  {
    std::lock_guard lk(shared->mu);
    auto it = shared->held.find(id_);
    if (it == shared->held.end()) return;
    h = std::move(it->second);
    shared->held.erase(it);
  }
  if (shared->store->release(h.name, h.owner)) return;
  // The store could not be asked: the keeper tries again (and the ttl ends it).
  {
    std::lock_guard lk(shared->mu);
    shared->to_release.push_back(std::move(h));
  }
  shared->cv.notify_all();
}

void LeaseKeeper::Lease::drop() noexcept {
  if (!shared_) return;
  {
    std::lock_guard lk(shared_->mu);
    if (auto it = shared_->held.find(id_); it != shared_->held.end()) {
      shared_->to_release.push_back(std::move(it->second));
      shared_->held.erase(it);
    }
  }
  shared_->cv.notify_all();
  shared_.reset();
}

std::string LeaseKeeper::node_id() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  std::random_device rd;
  char nonce[17];
  std::uint64_t r = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  std::snprintf(nonce, sizeof nonce, "%016llx", static_cast<unsigned long long>(r));
  return util::cat(host, ":", std::to_string(::getpid()), ":", nonce);
}

}  // namespace wizmail::state
