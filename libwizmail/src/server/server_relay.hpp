// Glue between the Server and its outbound queue runner (wizmail::Relay):
// the few calls server.cpp makes, so that file only carries one line each.
#pragma once

#include <chrono>

#include "server/server_impl.hpp"

namespace wizmail::server {

// After queue recovery and before the commit pipeline starts: create and
// start the runner (unless ServerOptions::relay is off) and let the pipeline
// wake it whenever it publishes a queue entry.
Status start_server_relay(Server::Impl& I);
// Before the commit pipeline starts: it sends the success notices of local
// deliveries (RFC 3461 NOTIFY=SUCCESS) through outbound::deliver_notice.
void install_success_notices(Server::Impl& I);
// From Server::stop: in-flight deliveries may finish until `deadline`; when
// the runner is down, relay_running turns false and the stop completes.
void stop_server_relay(Server::Impl& I, std::chrono::steady_clock::time_point deadline);

}  // namespace wizmail::server
