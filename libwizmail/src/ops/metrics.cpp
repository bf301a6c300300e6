#include "ops/metrics.hpp"

#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/write.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <unordered_set>

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
  return out;
}

HttpParse parse_http_request(std::string_view buf, HttpRequest& out, std::size_t max) {
  auto end = buf.find("\r\n\r\n");
  std::size_t head_len = end == std::string_view::npos ? std::string_view::npos : end + 4;
  if (auto lf = buf.find("\n\n"); lf != std::string_view::npos && lf + 2 < head_len) head_len = lf + 2;
  if (head_len == std::string_view::npos) {
    if (buf.size() > max) return HttpParse::too_large;
    // The request line alone can already be refused.
    auto eol = buf.find('\n');
    std::string_view first = buf.substr(0, eol);
    for (char c : first)
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\r' && c != '\t') || c == 0x7f) return HttpParse::bad;
    return HttpParse::need_more;
  }
  if (head_len > max) return HttpParse::too_large;
  std::string_view head = buf.substr(0, head_len);
  auto eol = head.find('\n');
  std::string_view line = head.substr(0, eol);
  if (line.ends_with('\r')) line.remove_suffix(1);
  // request-line = method SP request-target SP HTTP-version
  auto sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) return HttpParse::bad;
  auto sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return HttpParse::bad;
  std::string_view method = line.substr(0, sp1), target = line.substr(sp1 + 1, sp2 - sp1 - 1),
                   version = line.substr(sp2 + 1);
  for (char c : method)
    if (!std::isupper(static_cast<unsigned char>(c))) return HttpParse::bad;
  for (char c : target)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return HttpParse::bad;
  if (version != "HTTP/1.1" && version != "HTTP/1.0") return HttpParse::bad;
  // Header lines: "name: value", no control characters except tab.
  std::string_view rest = head.substr(eol + 1);
  while (!rest.empty()) {
    auto e = rest.find('\n');
    std::string_view h = rest.substr(0, e);
    rest.remove_prefix(e == std::string_view::npos ? rest.size() : e + 1);
    if (h.ends_with('\r')) h.remove_suffix(1);
    if (h.empty()) break;
    auto colon = h.find(':');
    if (colon == std::string_view::npos || colon == 0) return HttpParse::bad;
    for (char c : h.substr(0, colon))
      if (c == ' ' || c == '\t' || static_cast<unsigned char>(c) < 0x21 || c == 0x7f) return HttpParse::bad;
    for (char c : h.substr(colon + 1))
      if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) return HttpParse::bad;
  }
  out.method = std::string(method);
  out.target = std::string(target);
  out.version = std::string(version);
  return HttpParse::done;
}

namespace {
std::string reply(std::string_view status, std::string_view type, const std::string& body, bool head_only) {
  std::string r = "HTTP/1.1 ";
  r += status;
  r += "\r\nContent-Type: ";
  r += type;
  r += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n";
  if (status.starts_with("405")) r += "Allow: GET, HEAD\r\n";
  r += "\r\n";
  if (!head_only) r += body;
  return r;
}
}  // namespace

std::string http_response(const HttpRequest& req, const std::function<std::string()>& body) {
  bool head = req.method == "HEAD";
  if (req.method != "GET" && !head) return reply("405 Method Not Allowed", "text/plain", "method not allowed\n", false);
  std::string_view path = req.target;
  if (auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
  if (path != "/metrics") return reply("404 Not Found", "text/plain", "not found; try /metrics\n", head);
  return reply("200 OK", "text/plain; version=0.0.4; charset=utf-8", body ? body() : std::string(), head);
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

// ---------------------------------------------------------------------------

using tcp = asio::ip::tcp;
using Strand = asio::strand<asio::io_context::executor_type>;

namespace {
constexpr std::size_t max_connections = 16;
constexpr std::size_t max_head = 8192;
constexpr auto read_deadline = std::chrono::seconds(5);
}  // namespace

struct MetricsServer::State : std::enable_shared_from_this<MetricsServer::State> {
  struct Conn {
    tcp::socket socket;
    asio::steady_timer timer;
    std::string buf;
    std::string out;
    explicit Conn(const Strand& s) : socket(s), timer(s) {}
  };

  Strand strand;
  tcp::acceptor acceptor;
  std::unordered_set<std::shared_ptr<Conn>> conns;  // strand only
  bool closed = false;                               // strand only
  std::mutex render_mu;
  Render render;  // under render_mu; emptied by close()

  State(asio::io_context& io, Render r) : strand(asio::make_strand(io)), acceptor(strand), render(std::move(r)) {}

  void accept() {
    if (closed) return;
    acceptor.async_accept(strand, [self = shared_from_this()](std::error_code ec, tcp::socket s) {
      if (self->closed || ec == asio::error::operation_aborted) return;
      if (!ec) self->start(std::move(s));
      self->accept();
    });
  }

  void start(tcp::socket s) {
    std::error_code ec;
    if (conns.size() >= max_connections) {
      s.close(ec);
      return;
    }
    auto c = std::make_shared<Conn>(strand);
    c->socket = std::move(s);
    conns.insert(c);
    c->timer.expires_after(read_deadline);
    c->timer.async_wait([self = shared_from_this(), c](std::error_code e) {
      if (!e) self->finish(c);
    });
    read(c);
  }

  void read(const std::shared_ptr<Conn>& c) {
    auto chunk = std::make_shared<std::array<char, 1024>>();
    c->socket.async_read_some(asio::buffer(*chunk), [self = shared_from_this(), c, chunk](std::error_code ec,
                                                                                         std::size_t n) {
      if (ec || self->closed) {
        self->finish(c);
        return;
      }
      c->buf.append(chunk->data(), n);
      HttpRequest req;
      switch (parse_http_request(c->buf, req, max_head)) {
        case HttpParse::need_more: self->read(c); return;
        case HttpParse::bad:
          self->respond(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
          return;
        case HttpParse::too_large:
          self->respond(c, "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
          return;
        case HttpParse::done: break;
      }
      std::string resp;
      {
        std::lock_guard lk(self->render_mu);
        if (!self->render) {
          self->finish(c);
          return;
        }
        resp = http_response(req, self->render);
      }
      self->respond(c, std::move(resp));
    });
  }

  void respond(const std::shared_ptr<Conn>& c, std::string text) {
    c->out = std::move(text);
    asio::async_write(c->socket, asio::buffer(c->out), [self = shared_from_this(), c](std::error_code, std::size_t) {
      std::error_code e;
      c->socket.shutdown(tcp::socket::shutdown_both, e);
      self->finish(c);
    });
  }

  void finish(const std::shared_ptr<Conn>& c) {
    std::error_code e;
    c->timer.cancel();
    c->socket.close(e);
    conns.erase(c);
  }

  void shut() {
    closed = true;
    std::error_code e;
    acceptor.close(e);
    for (const auto& c : conns) {
      c->timer.cancel();
      c->socket.close(e);
    }
    conns.clear();
  }
};

MetricsServer::MetricsServer(asio::io_context& io, Render render)
    : st_(std::make_shared<State>(io, std::move(render))) {}

MetricsServer::~MetricsServer() { close(); }

Status MetricsServer::open(const std::string& address, std::uint16_t port) {
  std::error_code ec;
  auto addr = asio::ip::make_address(address, ec);
  if (ec) return fail(Errc::invalid_argument, "metrics: not an IP address: '" + address + "'");
  tcp::endpoint ep(addr, port);
  auto& a = st_->acceptor;
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    std::error_code ignored;
    a.close(ignored);
    return fail(ec == asio::error::address_in_use ? Errc::busy : Errc::io,
                "cannot listen on " + address + ":" + std::to_string(port) + " (metrics_port): " + ec.message());
  }
  port_ = a.local_endpoint(ec).port();
  asio::post(st_->strand, [s = st_] { s->accept(); });
  return {};
}

void MetricsServer::close() {
  {
    std::lock_guard lk(st_->render_mu);
    st_->render = nullptr;
  }
  asio::post(st_->strand, [s = st_] { s->shut(); });
}

}  // namespace wizmail::ops
