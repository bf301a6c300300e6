#include "ops/metrics.hpp"

#include <httplib.h>


#include <algorithm>
#include <cctype>
#include <cstdio>

#include "util/strings.hpp"
#include "wizmail/queue.hpp"

namespace wizmail::ops {

namespace {

void metric(std::string& out, std::string_view name, std::string_view type, std::string_view help,
            std::initializer_list<std::pair<std::string_view, std::string>> samples) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
  for (const auto& [labels, value] : samples) {
    out += name;
    out += labels;
    out += ' ';
    out += value;
    out += '\n';
  }
}

std::string num(std::uint64_t v) { return std::to_string(v); }
std::string num(std::int64_t v) { return std::to_string(v); }

}  // namespace

std::string render_metrics(const MetricsSnapshot& m) {
  const auto& s = m.stats;
  std::string out;
  out.reserve(2048);
  metric(out, "wizmail_sessions", "gauge", "Open client sessions by protocol.",
         {{"{protocol=\"smtp\"}", num(s.sessions_smtp)}, {"{protocol=\"pop3\"}", num(s.sessions_pop3)}});
  metric(out, "wizmail_sessions_accepted_total", "counter", "Connections accepted since start.",
         {{"", num(s.sessions_total)}});
  metric(out, "wizmail_sessions_refused_busy_total", "counter",
         "Connections refused by the multiprocessing limit.", {{"", num(s.refused_busy)}});
  metric(out, "wizmail_messages_received_total", "counter", "Messages accepted (250 to DATA).",
         {{"", num(s.messages_received)}});
  metric(out, "wizmail_messages_delivered_total", "counter", "Local mailbox copies made durable.",
         {{"", num(s.messages_delivered)}});
  metric(out, "wizmail_messages_relayed_total", "counter", "Outbound queue entries made durable.",
         {{"", num(s.messages_relayed)}});
  metric(out, "wizmail_messages_bounced_total", "counter", "Delivery error notices generated.",
         {{"", num(s.messages_bounced)}});
  metric(out, "wizmail_commit_batches_total", "counter", "Group-commit rounds.", {{"", num(s.commit_batches)}});
  metric(out, "wizmail_queue_messages", "gauge", "Entries in the outbound retry queue (-1: unreadable).",
         {{"", num(m.queue_length)}});
  metric(out, "wizmail_queue_oldest_age_seconds", "gauge", "Age of the oldest queue entry (0: empty).",
         {{"", num(m.queue_oldest_age)}});
  metric(out, "wizmail_auth_failures_total", "counter", "Failed authentications by protocol.",
         {{"{protocol=\"smtp\"}", num(s.auth_failures_smtp)}, {"{protocol=\"pop3\"}", num(s.auth_failures_pop3)}});
  metric(out, "wizmail_smtp_refusals_total", "counter",
         "SMTP commands refused (they count toward max_errors), by reply class.",
         {{"{class=\"5xx\"}", num(s.smtp_refusals_permanent)}, {"{class=\"4xx\"}", num(s.smtp_refusals_temporary)}});
  metric(out, "wizmail_smtp_relay_denied_total", "counter", "RCPTs refused by the relay rules.",
         {{"", num(s.smtp_relay_denied)}});
  metric(out, "wizmail_smtp_dnsbl_rejected_total", "counter",
         "RCPTs refused and connections dropped because the DNS block lists list the client.", {{"", num(s.smtp_dnsbl_rejected)}});
  metric(out, "wizmail_hook_runs_total", "counter", "Delivery hooks started.", {{"", num(s.hook_runs)}});
  metric(out, "wizmail_hook_failures_total", "counter", "Delivery hooks that failed.", {{"", num(s.hook_failures)}});
  metric(out, "wizmail_start_time_seconds", "gauge", "When the server started (unix seconds).",
         {{"", num(m.start_time)}});
  if (m.cluster) {
    // Node names are letters, digits, '-' and '_' (validate_node_name): no
    // label escaping needed.
    out += "# HELP wizmail_cluster_node_heartbeat_age_seconds Seconds since each node's last heartbeat "
           "(-1: none readable).\n# TYPE wizmail_cluster_node_heartbeat_age_seconds gauge\n";
    for (const auto& n : m.nodes) {
      char value[64];
      std::snprintf(value, sizeof value, "%.3f", n.beat ? n.age_seconds : -1.0);
      util::append(out, "wizmail_cluster_node_heartbeat_age_seconds{node=\"", n.name, "\"} ", value, "\n");
    }
    out += "# HELP wizmail_cluster_node_alive 1 when the node's heartbeat is at most 3 intervals old.\n"
           "# TYPE wizmail_cluster_node_alive gauge\n";
    for (const auto& n : m.nodes)
      util::append(out, "wizmail_cluster_node_alive{node=\"", n.name, "\"} ", n.alive ? "1" : "0", "\n");
  }
  return out;
}

QueueGauge::Figures QueueGauge::get() {
  std::lock_guard lk(mu_);
  auto now = std::chrono::steady_clock::now();
  if (have_ && now - at_ < every_) return cached_;
  Figures f;
  RelayQueue q(dir_);
  if (auto ids = q.list()) {
    f.length = static_cast<std::int64_t>(ids->size());
    // An id starts with its creation second (util::unique_name_part).
    for (const auto& id : *ids) {
      auto v = util::parse_int(std::string_view(id).substr(0, id.find('.')));
      if (v && *v > 0 && (f.oldest_created == 0 || *v < f.oldest_created)) f.oldest_created = *v;
    }
  }
  ++scans_;
  cached_ = f;
  at_ = now;
  have_ = true;
  return f;
}

MetricsServer::MetricsServer(Render render) : render_(std::move(render)) {}

MetricsServer::~MetricsServer() { close(); }

Status MetricsServer::open(const std::string& address, std::uint16_t port) {
  // Two scrapes at a time are plenty; a request is a GET (a small body is
  // read only to answer 405 rather than 413).
  auto svc = HttpService::make(HttpLimits{.threads = 2, .io_timeout_s = 5, .keep_alive_requests = 5, .max_body = 1024});
  if (!svc) return unexpected(svc.error());
  auto& h = (*svc)->http();
  // GET (and HEAD, which httplib answers from the GET handler without the
  // body) of /metrics; other methods there 405, any other path 404.
  h.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(render_(), "text/plain; version=0.0.4; charset=utf-8");
  });
  auto not_allowed = [](const httplib::Request&, httplib::Response& res) {
    res.status = 405;
    res.set_header("Allow", "GET, HEAD");
  };
  h.Post("/metrics", not_allowed);
  h.Put("/metrics", not_allowed);
  h.Patch("/metrics", not_allowed);
  h.Delete("/metrics", not_allowed);
  h.Options("/metrics", not_allowed);
  if (auto st = (*svc)->start(address, port, "metrics_port"); !st) return st;
  svc_ = std::move(*svc);
  return {};
}

std::uint16_t MetricsServer::port() const noexcept { return svc_ ? svc_->port() : 0; }

void MetricsServer::close() {
  if (svc_) svc_->close();
}

}  // namespace wizmail::ops
