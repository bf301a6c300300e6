#include "ops/server_metrics.hpp"

#include <ctime>

namespace wizmail::ops {

std::function<std::string()> server_metrics_renderer(const Server& server, const Config& config) {
  auto gauge = std::make_shared<QueueGauge>(config.queue_dir());
  const std::int64_t started = static_cast<std::int64_t>(std::time(nullptr));
  const bool cluster = !config.node.empty();
  const auto home = config.home;
  return [&server, gauge, started, cluster, home] {
    MetricsSnapshot s;
    s.stats = server.stats();
    auto q = gauge->get();
    s.queue_length = q.length;
    auto now = static_cast<std::int64_t>(std::time(nullptr));
    s.queue_oldest_age = q.oldest_created > 0 && now > q.oldest_created ? now - q.oldest_created : 0;
    s.start_time = started;
    if (cluster) {
      s.cluster = true;
      if (auto nodes = cluster::read_cluster_status(home)) s.nodes = std::move(*nodes);
    }
    return render_metrics(s);
  };
}

Result<std::unique_ptr<MetricsServer>> open_server_metrics(const Server& server,
                                                           const Config& config, bool ephemeral) {
  if (config.server.metrics_port <= 0) return std::unique_ptr<MetricsServer>();
  auto m = std::make_unique<MetricsServer>(server_metrics_renderer(server, config));
  // Loopback only: the figures are not secret, but nothing about them needs
  // the network; a remote Prometheus scrapes through a proxy or a tunnel.
  auto port = static_cast<std::uint16_t>(ephemeral ? 0 : config.server.metrics_port);
  if (auto st = m->open("127.0.0.1", port); !st) return unexpected(st.error());
  return m;
}

}  // namespace wizmail::ops
