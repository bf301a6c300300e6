#include "server/live.hpp"

namespace wizmail {

void WorkerHandle::set_state(std::string state) {
  if (!slot_) return;
  std::lock_guard lk(slot_->mu);
  if (slot_->state == state) return;
  slot_->state = std::move(state);
  slot_->since = std::chrono::steady_clock::now();
}

}  // namespace wizmail

namespace wizmail::server {

using Clock = std::chrono::steady_clock;

WorkerHandle WorkerRegistry::add(std::string name, std::string state) {
  auto slot = std::make_shared<WorkerHandle::Slot>();
  slot->name = std::move(name);
  slot->state = std::move(state);
  slot->since = Clock::now();
  std::lock_guard lk(mu_);
  std::erase_if(slots_, [](const auto& w) { return w.expired(); });
  slots_.push_back(slot);
  return WorkerHandle(std::move(slot));
}

std::vector<WorkerInfo> WorkerRegistry::list() {
  std::vector<std::shared_ptr<WorkerHandle::Slot>> live;
  {
    std::lock_guard lk(mu_);
    std::erase_if(slots_, [](const auto& w) { return w.expired(); });
    for (const auto& w : slots_)
      if (auto s = w.lock()) live.push_back(std::move(s));
  }
  std::vector<WorkerInfo> out;
  auto now = Clock::now();
  for (const auto& s : live) {
    std::lock_guard lk(s->mu);
    out.push_back({s->name, s->state, std::chrono::duration_cast<std::chrono::seconds>(now - s->since)});
  }
  return out;
}

void SessionNote::start(Protocol protocol, std::string peer) {
  std::lock_guard lk(mu_);
  info_.protocol = protocol;
  info_.peer = std::move(peer);
  started_ = Clock::now();
}

void SessionNote::update(std::string_view state, std::string_view account, std::string_view command) {
  std::lock_guard lk(mu_);
  info_.state = state;
  info_.account = account;
  info_.command = command;
}

void SessionNote::set_state(std::string_view state) {
  std::lock_guard lk(mu_);
  info_.state = state;
}

SessionInfo SessionNote::snapshot(std::uint64_t id) const {
  std::lock_guard lk(mu_);
  SessionInfo s = info_;
  s.id = id;
  s.age = std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - started_);
  return s;
}

}  // namespace wizmail::server
