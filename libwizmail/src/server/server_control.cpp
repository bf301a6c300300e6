// Server's introspection API (wizmail/server.hpp): sessions, workers, the
// control-socket stop handler.
#include <algorithm>

#include "agent/local_agent.hpp"
#include "server/server_impl.hpp"
#include "wizmail/relay.hpp"

namespace wizmail {

std::vector<SessionInfo> Server::sessions() const {
  auto live = impl_->connections.snapshot();
  std::vector<SessionInfo> out;
  out.reserve(live.size());
  for (const auto& c : live) out.push_back(c->describe());
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return out;
}

std::vector<WorkerInfo> Server::workers() const {
  auto& I = *impl_;
  if (I.relay && I.relay_running) {
    auto n = I.relay->stats().in_flight;
    I.relay_worker.set_state(n ? "delivering " + std::to_string(n) + " message" + (n == 1 ? "" : "s")
                               : "idle");
  }
  if (I.agent) {
    auto n = I.agent->backlog();
    I.agent_worker.set_state(n ? std::to_string(n) + " message" + (n == 1 ? "" : "s") + " in the spool"
                               : "idle");
  }
  return I.workers.list();
}

WorkerHandle Server::register_worker(std::string name, std::string state) {
  return impl_->workers.add(std::move(name), std::move(state));
}

void Server::set_stop_handler(std::function<void(bool force)> handler) {
  std::lock_guard lk(impl_->stop_handler_mu);
  impl_->stop_handler = std::move(handler);
}

}  // namespace wizmail
