// Private: the heartbeat of a node of a shared home (docs/cluster.md).
// Its own thread writes <home>/nodes/<node>/heartbeat every interval (a
// temporary name, then rename) and, with redis_url, puts the same text under
// `wizmail:node:<node>` with a ttl of kMissedBeats intervals; a failed write
// is logged once until a write succeeds again. The thread never touches a
// session: it reads the figures through `snapshot` (atomics).
#pragma once

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "state/shared_state.hpp"
#include "wizmail/admin/cluster.hpp"

namespace wizmail::server {

class NodeHeartbeat {
 public:
  using Snapshot = std::function<cluster::Heartbeat()>;
  using Log = std::function<void(const std::string&)>;
  // `shared`: null without redis_url; must outlive stop().
  NodeHeartbeat(std::filesystem::path node_dir, std::chrono::seconds interval, Snapshot snapshot, Log log,
                state::SharedState* shared);
  ~NodeHeartbeat();  // stop()
  NodeHeartbeat(const NodeHeartbeat&) = delete;
  NodeHeartbeat& operator=(const NodeHeartbeat&) = delete;

  // Writes the first beat before it returns (so a node is listed as soon as
  // it listens), then beats on its thread.
  void start();
  void stop();

  // The Redis key of `node`'s heartbeat.
  static std::string redis_key(std::string_view node);

 private:
  void beat();
  void run();

  std::filesystem::path dir_;
  std::chrono::seconds interval_;
  Snapshot snapshot_;
  Log log_;
  state::SharedState* shared_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool failing_ = false, redis_failing_ = false;
  std::thread thread_;
};

}  // namespace wizmail::server
