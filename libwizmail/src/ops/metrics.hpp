// Private: the Prometheus endpoint (metrics_port) on loopback: GET /metrics
// answers the text exposition format 0.0.4, every other path 404, every
// other method there 405. The HTTP server is cpp-httplib (ops/http_service.hpp):
// two threads of its own, 5 s read/write timeouts, no request body.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "ops/http_service.hpp"
#include "wizmail/admin/cluster.hpp"
#include "wizmail/error.hpp"
#include "wizmail/server.hpp"

namespace wizmail::ops {

// What one scrape shows.
struct MetricsSnapshot {
  ServerStats stats;
  std::int64_t queue_length = -1;        // -1: the queue could not be read
  std::int64_t queue_oldest_age = 0;     // seconds; 0 when empty
  std::int64_t start_time = 0;           // unix seconds
  // A node of a shared home (docs/cluster.md): every node's heartbeat, as
  // `wizmail cluster status` reads them. Without a node nothing is shown.
  bool cluster = false;
  std::vector<cluster::NodeStatus> nodes;
};

// The exposition text (pure).
std::string render_metrics(const MetricsSnapshot& m);

// Queue length and oldest entry, scanned at most once per `every`.
class QueueGauge {
 public:
  explicit QueueGauge(std::filesystem::path dir, std::chrono::milliseconds every = std::chrono::seconds(1))
      : dir_(std::move(dir)), every_(every) {}
  struct Figures {
    std::int64_t length = -1;
    std::int64_t oldest_created = 0;  // unix seconds of the oldest id; 0 = empty
  };
  Figures get();
  std::size_t scans() const noexcept { return scans_; }

 private:
  std::filesystem::path dir_;
  std::chrono::milliseconds every_;
  std::mutex mu_;
  std::chrono::steady_clock::time_point at_{};
  bool have_ = false;
  Figures cached_;
  std::size_t scans_ = 0;
};

class MetricsServer {
 public:
  using Render = std::function<std::string()>;
  explicit MetricsServer(Render render);
  ~MetricsServer();  // close()
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Bind (port 0: any free one) and start serving on the HTTP service's own
  // threads (Errc::busy when the port is in use).
  Status open(const std::string& address, std::uint16_t port);
  std::uint16_t port() const noexcept;
  // Stop accepting, finish the request in progress; `render` is never
  // called once this returns. Idempotent; not from `render`.
  void close();

 private:
  Render render_;
  std::unique_ptr<HttpService> svc_;
};

}  // namespace wizmail::ops
