// Private: a node of a shared home takes over the claims of nodes that
// stopped beating (issue 17's "a queue every node works"; docs/cluster.md).
// run() is called on the heartbeat's thread after each beat: it reads every
// node's heartbeat, and for each one older than cluster_takeover_seconds
// (cluster::nodes_to_take_over) adopts its claims in the outbound queue and
// in the agent spool (RelayQueue::adopt: the dead node's folders are renamed
// away in one step, so it cannot finish anything it held), logs what it
// took, and wakes the queue runner and the agent.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>

#include "wizmail/queue.hpp"

namespace wizmail::server {

// How long a node's own lease lasts after its last beat written: half the
// time after which the others take it for dead (cluster_takeover_seconds),
// so it stops claiming and finishing deliveries well before they take its
// claims over (allowing for clocks a little apart and a slow beat).
inline std::chrono::milliseconds lease_age(int takeover_seconds) {
  return std::chrono::milliseconds(std::int64_t{takeover_seconds} * 500);
}

class ClusterTakeover {
 public:
  using Log = std::function<void(const std::string&)>;
  ClusterTakeover(std::filesystem::path home, std::string node, std::chrono::seconds after, RelayQueue queue,
                  RelayQueue spool, Log log);

  // One pass (any thread; the heartbeat's in the server).
  void run();
  // What to call when entries were taken over (the runner's and the
  // agent's notify); settable while run() may be called.
  void set_wake(std::function<void()> wake);
  // Entries this node has claimed now, in both queues (its heartbeat's
  // queue_held).
  std::uint64_t held() const;

 private:
  std::filesystem::path home_;
  std::string node_;
  std::chrono::seconds after_;
  RelayQueue queue_, spool_;
  Log log_;
  std::mutex mu_;
  std::function<void()> wake_;
  bool status_failing_ = false;
};

}  // namespace wizmail::server
