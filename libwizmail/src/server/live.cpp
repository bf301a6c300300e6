#include "server/live.hpp"

#include <algorithm>
#include <cstdio>

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

std::string session_id(std::string_view prefix, std::uint64_t n) {
  static const std::uint64_t boot = static_cast<std::uint64_t>(
      std::chrono::system_clock::now().time_since_epoch().count());
  const int width = 6 - static_cast<int>(std::min<std::size_t>(prefix.size(), 5));
  const std::uint64_t mask = (std::uint64_t{1} << (4 * width)) - 1;
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.*s%0*llx%06llx", static_cast<int>(prefix.size()), prefix.data(), width,
                static_cast<unsigned long long>((boot >> 20) & mask),
                static_cast<unsigned long long>(n & 0xFFFFFF));
  return buf;
}

std::string local_session_id(std::uint64_t n) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "L%llx", static_cast<unsigned long long>(n));
  return buf;
}

}  // namespace wizmail::server
