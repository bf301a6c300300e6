// Server's introspection API (wizmail/server.hpp): sessions, workers, the
// control-socket stop handler.
#include <algorithm>

#include "server/server_impl.hpp"

namespace wizmail {

std::vector<SessionInfo> Server::sessions() const {
  std::vector<std::shared_ptr<server::Connection>> live;
  {
    std::lock_guard lk(impl_->conn_mu);
    live.reserve(impl_->conns.size());
    for (auto& [id, w] : impl_->conns)
      if (auto c = w.lock()) live.push_back(std::move(c));
  }
  std::vector<SessionInfo> out;
  out.reserve(live.size());
  for (const auto& c : live) out.push_back(c->describe());
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return out;
}

std::vector<WorkerInfo> Server::workers() const { return impl_->workers.list(); }

WorkerHandle Server::register_worker(std::string name, std::string state) {
  return impl_->workers.add(std::move(name), std::move(state));
}

void Server::set_stop_handler(std::function<void(bool force)> handler) {
  std::lock_guard lk(impl_->stop_handler_mu);
  impl_->stop_handler = std::move(handler);
}

}  // namespace wizmail
