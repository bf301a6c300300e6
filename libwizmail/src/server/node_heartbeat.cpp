#include "server/node_heartbeat.hpp"

#include "util/strings.hpp"

namespace wizmail::server {

NodeHeartbeat::NodeHeartbeat(std::filesystem::path node_dir, std::chrono::seconds interval, Snapshot snapshot,
                             Log log, state::SharedState* shared, std::function<void()> after_beat)
    : dir_(std::move(node_dir)), interval_(interval), snapshot_(std::move(snapshot)), log_(std::move(log)),
      shared_(shared), after_beat_(std::move(after_beat)) {}

std::function<bool()> NodeHeartbeat::lease(std::chrono::milliseconds max_age) const {
  std::weak_ptr<std::atomic<std::int64_t>> last = last_written_;
  return [last, max_age] {
    auto l = last.lock();
    if (!l) return false;
    auto t = l->load();
    auto now = std::chrono::steady_clock::now().time_since_epoch();
    return t != 0 && now - std::chrono::nanoseconds(t) <= max_age;
  };
}

NodeHeartbeat::~NodeHeartbeat() { stop(); }

std::string NodeHeartbeat::redis_key(std::string_view node) { return util::cat("wizmail:node:", node); }

void NodeHeartbeat::start() {
  beat();
  thread_ = std::thread([this] { run(); });
}

void NodeHeartbeat::stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void NodeHeartbeat::run() {
  std::unique_lock lk(mu_);
  while (!cv_.wait_for(lk, interval_, [this] { return stopping_; })) {
    lk.unlock();
    beat();
    if (after_beat_) after_beat_();
    lk.lock();
  }
}

void NodeHeartbeat::beat() {
  auto hb = snapshot_();
  hb.beat_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  hb.interval = static_cast<int>(interval_.count());
  const auto before = std::chrono::steady_clock::now();
  if (auto st = cluster::write_heartbeat(dir_, hb); !st) {
    if (!failing_) log_(util::cat("heartbeat not written: ", st.error().message));
    failing_ = true;
  } else {
    // The lease runs from when the beat was stamped, not from when the
    // (perhaps slow) write returned.
    last_written_->store(before.time_since_epoch().count());
    if (failing_) log_("heartbeat written again");
    failing_ = false;
  }
  if (!shared_) return;
  auto ttl = std::chrono::duration_cast<state::Millis>(interval_ * cluster::kMissedBeats);
  if (auto st = shared_->put(redis_key(hb.node), cluster::format_heartbeat(hb), ttl); !st) {
    if (!redis_failing_) log_(util::cat("heartbeat not put in the shared state: ", st.error().message));
    redis_failing_ = true;
  } else if (redis_failing_) {
    log_("heartbeat put in the shared state again");
    redis_failing_ = false;
  }
}

}  // namespace wizmail::server
