// Private: the glue between Server and the metrics endpoint.
#pragma once

#include <memory>

#include "ops/metrics.hpp"
#include "wizmail/config.hpp"
#include "wizmail/server.hpp"

namespace wizmail::ops {

// The exposition text of `server`'s figures now (what GET /metrics answers,
// on metrics_port and on the web console's port). `server` must outlive it.
std::function<std::string()> server_metrics_renderer(const Server& server, const Config& config);

// Open the Prometheus endpoint on 127.0.0.1:<metrics_port> (an ephemeral
// port when `ephemeral`) serving `server`'s figures; null when
// metrics_port is 0. `server` must outlive the returned object's close().

Result<std::unique_ptr<MetricsServer>> open_server_metrics(const Server& server, const Config& config,
                                                           bool ephemeral);

}  // namespace wizmail::ops
