#include "ops/metrics.hpp"

#include <doctest/doctest.h>

#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "helpers.hpp"
#include "wizmail/queue.hpp"

using namespace wizmail;
using namespace wizmail::ops;

namespace {

// Every line of the text format 0.0.4: HELP, TYPE or a sample; each sample's
// metric announced by a TYPE first.
void check_exposition(const std::string& text) {
  static const std::regex help(R"(# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*)");
  static const std::regex type(R"(# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped))");
  static const std::regex sample(
      R"(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*")*\})? -?[0-9]+(\.[0-9]+)?)");
  REQUIRE(!text.empty());
  REQUIRE(text.back() == '\n');
  std::istringstream in(text);
  std::string line;
  std::set<std::string> typed;
  while (std::getline(in, line)) {
    CAPTURE(line);
    std::smatch m;
    if (std::regex_match(line, m, type)) {
      CHECK(typed.insert(m[1]).second);
    } else if (std::regex_match(line, help)) {
    } else if (std::regex_match(line, m, sample)) {
      CHECK(typed.count(m[1]) == 1);
    } else {
      FAIL("not a valid exposition line");
    }
  }
}

std::string fetch(std::uint16_t port, const std::string& request) {
  asio::io_context io;
  asio::ip::tcp::socket s(io);
  s.connect({asio::ip::make_address("127.0.0.1"), port});
  asio::write(s, asio::buffer(request));
  std::string out;
  std::error_code ec;
  char buf[4096];
  for (;;) {
    auto n = s.read_some(asio::buffer(buf), ec);
    if (ec) break;
    out.append(buf, n);
  }
  return out;
}

}  // namespace

TEST_CASE("render_metrics: a strict exposition text with every family") {
  MetricsSnapshot m;
  m.stats.sessions_smtp = 3;
  m.stats.sessions_pop3 = 1;
  m.stats.messages_received = 10;
  m.stats.messages_bounced = 2;
  m.stats.auth_failures_smtp = 4;
  m.stats.auth_failures_pop3 = 5;
  m.stats.hook_runs = 6;
  m.stats.hook_failures = 1;
  m.stats.smtp_relay_denied = 8;
  m.stats.smtp_refusals_permanent = 11;
  m.stats.smtp_refusals_temporary = 12;
  m.queue_length = 7;
  m.queue_oldest_age = 3600;
  m.start_time = 1700000000;
  auto text = render_metrics(m);
  check_exposition(text);
  for (auto want : {"wizmail_sessions{protocol=\"smtp\"} 3\n", "wizmail_sessions{protocol=\"pop3\"} 1\n",
                    "wizmail_messages_received_total 10\n", "wizmail_messages_delivered_total 0\n",
                    "wizmail_messages_relayed_total 0\n", "wizmail_messages_bounced_total 2\n",
                    "wizmail_queue_messages 7\n", "wizmail_queue_oldest_age_seconds 3600\n",
                    "wizmail_auth_failures_total{protocol=\"smtp\"} 4\n",
                    "wizmail_auth_failures_total{protocol=\"pop3\"} 5\n", "wizmail_hook_runs_total 6\n",
                    "wizmail_hook_failures_total 1\n", "wizmail_smtp_relay_denied_total 8\n",
                    "wizmail_smtp_refusals_total{class=\"5xx\"} 11\n",
                    "wizmail_smtp_refusals_total{class=\"4xx\"} 12\n"})
    CHECK(text.find(want) != std::string::npos);
  m.queue_length = -1;
  check_exposition(render_metrics(m));
}

TEST_CASE("parse_http_request at every chunk size") {
  const std::string req = "GET /metrics?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9187\r\nAccept: text/plain\r\n\r\n";
  for (std::size_t chunk = 1; chunk <= 512; chunk *= 2) {
    CAPTURE(chunk);
    std::string buf;
    HttpRequest r;
    HttpParse st = HttpParse::need_more;
    for (std::size_t i = 0; i < req.size() && st == HttpParse::need_more; i += chunk) {
      buf += req.substr(i, chunk);
      st = parse_http_request(buf, r);
    }
    CHECK(st == HttpParse::done);
    CHECK(r.method == "GET");
    CHECK(r.target == "/metrics?x=1");
    CHECK(r.version == "HTTP/1.1");
  }
  HttpRequest r;
  CHECK(parse_http_request("GET /metrics HTTP/1.0\n\n", r) == HttpParse::done);
  CHECK(parse_http_request("GET /metrics HTTP/1.1\r\n", r) == HttpParse::need_more);
  CHECK(parse_http_request("GET /metrics\r\n\r\n", r) == HttpParse::bad);
  CHECK(parse_http_request("GET  /metrics HTTP/1.1\r\n\r\n", r) == HttpParse::bad);
  CHECK(parse_http_request("get /metrics HTTP/1.1\r\n\r\n", r) == HttpParse::bad);
  CHECK(parse_http_request("GET /metrics HTTP/2\r\n\r\n", r) == HttpParse::bad);
  CHECK(parse_http_request("GET /metrics HTTP/1.1\r\nBad Header: x\r\n\r\n", r) == HttpParse::bad);
  CHECK(parse_http_request("GET /metrics HTTP/1.1\r\nNoColon\r\n\r\n", r) == HttpParse::bad);
  CHECK(parse_http_request(std::string("GET /a\0b HTTP/1.1\r\n\r\n", 22), r) == HttpParse::bad);
  CHECK(parse_http_request("\x01GET", r) == HttpParse::bad);
  CHECK(parse_http_request("GET /" + std::string(9000, 'a'), r) == HttpParse::too_large);
  CHECK(parse_http_request("GET / HTTP/1.1\r\nX: " + std::string(9000, 'a') + "\r\n\r\n", r) == HttpParse::too_large);
}

TEST_CASE("http_response: 200 for /metrics, 404 elsewhere, 405 for other methods") {
  auto body = [] { return std::string("x 1\n"); };
  HttpRequest get{"GET", "/metrics", "HTTP/1.1"};
  auto ok = http_response(get, body);
  CHECK(ok.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(ok.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n") != std::string::npos);
  CHECK(ok.find("Content-Length: 4\r\n") != std::string::npos);
  CHECK(ok.ends_with("\r\n\r\nx 1\n"));
  HttpRequest head{"HEAD", "/metrics", "HTTP/1.1"};
  CHECK(http_response(head, body).ends_with("Content-Length: 4\r\nConnection: close\r\n\r\n"));
  HttpRequest other{"GET", "/", "HTTP/1.1"};
  CHECK(http_response(other, body).starts_with("HTTP/1.1 404 "));
  HttpRequest trick{"GET", "/metrics/../x", "HTTP/1.1"};
  CHECK(http_response(trick, body).starts_with("HTTP/1.1 404 "));
  HttpRequest post{"POST", "/metrics", "HTTP/1.1"};
  auto r = http_response(post, body);
  CHECK(r.starts_with("HTTP/1.1 405 "));
  CHECK(r.find("Allow: GET, HEAD\r\n") != std::string::npos);
}

TEST_CASE("QueueGauge: length and oldest id, scanned at most once per interval") {
  test::TempHome h;
  RelayQueue q(h.path() / "resendmail");
  REQUIRE(q.init());
  QueueGauge g(q.dir(), std::chrono::hours(1));
  auto f = g.get();
  CHECK(f.length == 0);
  CHECK(f.oldest_created == 0);
  REQUIRE(q.enqueue({"a@b.c", {"d@e.f"}, "", ""}, std::string_view("x\r\n")));
  CHECK(g.get().length == 0);  // cached
  CHECK(g.scans() == 1);
  QueueGauge fresh(q.dir(), std::chrono::milliseconds(0));
  auto f2 = fresh.get();
  CHECK(f2.length == 1);
  CHECK(f2.oldest_created > 1700000000);
  CHECK(f2.oldest_created <= test::unix_now());
  QueueGauge none(h.path() / "missing", std::chrono::milliseconds(0));
  CHECK(none.get().length == 0);  // no queue folder yet: empty
  test::write(h.path() / "file-not-folder", "x");
  QueueGauge bad(h.path() / "file-not-folder", std::chrono::milliseconds(0));
  CHECK(bad.get().length == -1);
}

TEST_CASE("MetricsServer: serves, refuses, and stops calling render once closed") {
  asio::io_context io;
  std::atomic<int> renders{0};
  MetricsServer m(io, [&] {
    ++renders;
    return std::string("wizmail_up 1\n");
  });
  REQUIRE(m.open("127.0.0.1", 0));
  REQUIRE(m.port() != 0);
  auto work = asio::make_work_guard(io);
  std::thread t([&] { io.run(); });

  auto ok = fetch(m.port(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(ok.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(ok.ends_with("\r\n\r\nwizmail_up 1\n"));
  CHECK(fetch(m.port(), "GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
  CHECK(fetch(m.port(), "DELETE /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405 "));
  CHECK(fetch(m.port(), "hello\r\n\r\n").starts_with("HTTP/1.1 400 "));
  CHECK(fetch(m.port(), "GET /" + std::string(10000, 'a')).starts_with("HTTP/1.1 431 "));
  CHECK(renders == 1);

  // A bound port is refused.
  MetricsServer second(io, [] { return std::string(); });
  auto busy = second.open("127.0.0.1", m.port());
  REQUIRE_FALSE(busy);
  CHECK(busy.error().code == Errc::busy);
  CHECK_FALSE(second.open("not-an-ip", 0));

  // A client that connects and sends nothing is dropped by close().
  asio::io_context cio;
  asio::ip::tcp::socket idle(cio);
  idle.connect({asio::ip::make_address("127.0.0.1"), m.port()});
  m.close();
  char c;
  std::error_code ec;
  idle.read_some(asio::buffer(&c, 1), ec);
  CHECK(ec);  // eof or reset: the server closed it
  work.reset();
  t.join();  // nothing left to keep io.run() going
  CHECK(renders == 1);
}
