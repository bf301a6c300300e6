#include "server/server_relay.hpp"

#include "agent/local_agent.hpp"
#include "outbound/notice.hpp"

#include <asio/post.hpp>

#include <algorithm>

namespace wizmail::server {

using outbound::NoticeOptions;
using outbound::deliver_notice;

Status start_server_relay(Server::Impl& I) {
  if (!I.opt.relay) return {};
  auto rt = I.runtime();
  RelayOptions o;
  o.hostname = rt->hostname;
  o.scan_interval = I.opt.relay_scan_interval;
  o.give_up_after = I.opt.relay_give_up_after;
  o.log = [&I](const std::string& line) { I.logger.server(line); };
  o.on_bounce = [&I] { I.messages_bounced.fetch_add(1, std::memory_order_relaxed); };
  if (I.heartbeat) o.lease_valid = I.heartbeat->lease(lease_age(rt->config->server.cluster_takeover_seconds));
  auto relay = Relay::create(rt->config, std::move(o));
  if (!relay) return unexpected(relay.error());
  if (auto st = (*relay)->start(); !st) return st;
  I.relay = std::move(*relay);
  I.relay_running = true;
  Relay* r = I.relay.get();
  if (I.pipeline) I.pipeline->set_relay_notify([r] { r->notify(); });
  // Remote list members and forwards the delivery agent queues go out at once.
  if (I.agent) I.agent->set_relay_notify([r] { r->notify(); });
  return {};
}

void install_success_notices(Server::Impl& I) {
  I.pipeline->set_notices([&I](DsnInput in, bool smtputf8) {
    auto rt = I.runtime();
    const auto& cfg = *rt->config;
    in.reporting_domain = cfg.server.domain;
    in.reporting_mta = rt->hostname;
    in.now = in.arrival_time;
    const std::string to = in.original_sender;
    RelayQueue queue(cfg.queue_dir(), cfg.node);
    NoticeOptions o;
    o.smtputf8 = smtputf8;
    // A failure notice: recipients a delivery callback refused (5xx) while
    // the others were delivered (DeliveryDecision::reject).
    const bool failure = std::any_of(in.recipients.begin(), in.recipients.end(),
                                     [](const DsnRecipient& r) { return r.action == DsnAction::failed; });
    if (failure) I.messages_bounced.fetch_add(1, std::memory_order_relaxed);
    const std::string label = "commit: " + in.queue_id + (failure ? ": failure notice" : ": success notice");
    if (deliver_notice(cfg, queue, to, build_dsn(in), false, label,
                       [&I](const std::string& line) { I.logger.server(line); }, o) &&
        I.relay)
      I.relay->notify();
  });
}

void stop_server_relay(Server::Impl& I, std::chrono::steady_clock::time_point deadline) {
  if (!I.relay) return;
  auto grace = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  if (grace.count() < 0) grace = std::chrono::milliseconds(0);
  I.relay->stop(grace, [&I] {
    I.relay_running = false;
    asio::post(I.io, [&I] { I.maybe_finish_stop(); });
  });
}

}  // namespace wizmail::server

namespace wizmail {

Status Server::flush_queue() {
  auto& I = *impl_;
  if (!I.relay || !I.relay_running) return fail(Errc::unavailable, "no outbound queue runner is running");
  I.relay->flush();
  I.logger.server("queue flush requested");
  return {};
}

}  // namespace wizmail
