// Private: the heartbeat of a node of a shared home (docs/cluster.md).
// Its own thread writes <home>/nodes/<node>/heartbeat every interval (a
// temporary name, then rename) and, with redis_url, puts the same text under
// `wizmail:node:<node>` with a ttl of kMissedBeats intervals; a failed write
// is logged once until a write succeeds again. The thread never touches a
// session: it reads the figures through `snapshot` (atomics).
#pragma once

#include <chrono>
#include <atomic>
#include <condition_variable>
#include <memory>
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
  // `shared`: null without redis_url; must outlive stop(). `after_beat`
  // (may be empty) runs on the heartbeat's thread after each beat: the
  // takeover of dead nodes (server/cluster_takeover).
  NodeHeartbeat(std::filesystem::path node_dir, std::chrono::seconds interval, Snapshot snapshot, Log log,
                state::SharedState* shared, std::function<void()> after_beat = {});
  ~NodeHeartbeat();  // stop()
  NodeHeartbeat(const NodeHeartbeat&) = delete;
  NodeHeartbeat& operator=(const NodeHeartbeat&) = delete;

  // Writes the first beat before it returns (so a node is listed as soon as
  // it listens), then beats on its thread.
  void start();
  void stop();

  // The Redis key of `node`'s heartbeat.
  static std::string redis_key(std::string_view node);

  // The node's lease: true while its last beat written to the shared home
  // is at most `max_age` old (steady clock). The function may be called from
  // any thread, also after this object is gone (then: false).
  std::function<bool()> lease(std::chrono::milliseconds max_age) const;

 private:
  void beat();
  void run();

  std::filesystem::path dir_;
  std::chrono::seconds interval_;
  Snapshot snapshot_;
  Log log_;
  state::SharedState* shared_;
  std::function<void()> after_beat_;
  // Steady-clock nanoseconds of the last beat written; 0: none yet.
  std::shared_ptr<std::atomic<std::int64_t>> last_written_ = std::make_shared<std::atomic<std::int64_t>>(0);
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool failing_ = false, redis_failing_ = false;
  std::thread thread_;
};

}  // namespace wizmail::server
