#include "server/cluster_takeover.hpp"

#include <dirent.h>

#include <cmath>

#include "util/strings.hpp"
#include "wizmail/admin/cluster.hpp"

namespace wizmail::server {

ClusterTakeover::ClusterTakeover(std::filesystem::path home, std::string node, std::chrono::seconds after,
                                 RelayQueue queue, RelayQueue spool, Log log)
    : home_(std::move(home)), node_(std::move(node)), after_(after), queue_(std::move(queue)),
      spool_(std::move(spool)), log_(std::move(log)) {}

void ClusterTakeover::set_wake(std::function<void()> wake) {
  std::lock_guard lk(mu_);
  wake_ = std::move(wake);
}

namespace {
std::uint64_t count_entries(const std::filesystem::path& dir) {
  std::uint64_t n = 0;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return 0;
  while (dirent* e = ::readdir(d))
    if (RelayQueue::validate_id(e->d_name)) ++n;
  ::closedir(d);
  return n;
}
}  // namespace

std::uint64_t ClusterTakeover::held() const {
  return count_entries(queue_.state_dir(QueueState::active)) + count_entries(spool_.state_dir(QueueState::active));
}

void ClusterTakeover::run() {
  auto nodes = cluster::read_cluster_status(home_);
  if (!nodes) {
    if (!status_failing_) log_(util::cat("cluster takeover: cannot read the nodes' heartbeats: ", nodes.error().message));
    status_failing_ = true;
    return;
  }
  status_failing_ = false;
  bool took = false;
  for (const auto& dead : cluster::nodes_to_take_over(*nodes, node_, after_)) {
    double age = 0;
    for (const auto& n : *nodes)
      if (n.name == dead) age = n.age_seconds;
    auto q = queue_.adopt(dead);
    auto s = spool_.adopt(dead);
    if (!q) log_(util::cat("cluster takeover of node ", dead, ": queue: ", q.error().message));
    if (!s) log_(util::cat("cluster takeover of node ", dead, ": agent spool: ", s.error().message));
    const std::size_t entries = (q ? q->entries : 0) + (s ? s->entries : 0);
    const std::size_t removed = (q ? q->tmp_removed : 0) + (s ? s->tmp_removed : 0);
    if (entries + removed == 0) continue;
    log_(util::cat("took over node ", dead, " (heartbeat ", std::to_string(std::llround(age)), " s old): ",
                   std::to_string(q ? q->entries : 0), " queue entries and ", std::to_string(s ? s->entries : 0),
                   " agent spool entries back in incoming/, ", std::to_string(removed),
                   " unfinished or retired files removed"));
    took = took || entries > 0;
  }
  if (!took) return;
  std::lock_guard lk(mu_);
  if (wake_) wake_();
}

}  // namespace wizmail::server
