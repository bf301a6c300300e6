#include "server/connection_registry.hpp"

#include <asio/post.hpp>

namespace wizmail::server {

bool ConnectionRegistry::remove(Id id) {
  std::lock_guard lk(mu_);
  map_.erase(id);
  return stopping_ && !finished_ && map_.empty();
}

ConnectionRegistry::Stop ConnectionRegistry::stop_all(Clock::time_point deadline,
                                                      const std::function<void(bool first)>& under_lock) {
  Stop out;
  std::vector<std::shared_ptr<Connection>> live;
  {
    std::lock_guard lk(mu_);
    if (finished_) {
      out.finished = true;
      out.deadline = deadline_;
      return out;
    }
    out.first = !stopping_;
    if (out.first) {
      deadline_ = deadline;
    } else if (deadline < deadline_) {
      // A second stop with a shorter grace (e.g. a second SIGTERM) brings
      // the hard close forward.
      deadline_ = deadline;
      out.sooner = true;
    }
    stopping_ = true;
    out.deadline = deadline_;
    if (under_lock) under_lock(out.first);
    if (out.first || out.sooner) {
      live.reserve(map_.size());
      for (auto& [id, w] : map_)
        if (auto c = w.lock()) live.push_back(std::move(c));
    }
  }
  out.live = live.size();
  for (auto& c : live) {
    auto ex = c->executor();
    asio::post(ex, [c = std::move(c), d = out.deadline] { c->shutdown(d); });
  }
  return out;
}

bool ConnectionRegistry::finish_stop(const std::function<bool()>& ready,
                                     const std::function<void()>& under_lock) {
  std::lock_guard lk(mu_);
  if (!stopping_ || finished_ || !map_.empty()) return false;
  if (ready && !ready()) return false;
  finished_ = true;
  if (under_lock) under_lock();
  return true;
}

bool ConnectionRegistry::stopping() const {
  std::lock_guard lk(mu_);
  return stopping_;
}

bool ConnectionRegistry::stopped() const {
  std::lock_guard lk(mu_);
  return stopping_ && map_.empty();
}

ConnectionRegistry::Clock::time_point ConnectionRegistry::deadline() const {
  std::lock_guard lk(mu_);
  return deadline_;
}

std::size_t ConnectionRegistry::size() const {
  std::lock_guard lk(mu_);
  return map_.size();
}

std::vector<std::shared_ptr<Connection>> ConnectionRegistry::snapshot() const {
  std::vector<std::shared_ptr<Connection>> out;
  std::lock_guard lk(mu_);
  out.reserve(map_.size());
  for (auto& [id, w] : map_)
    if (auto c = w.lock()) out.push_back(std::move(c));
  return out;
}

}  // namespace wizmail::server
