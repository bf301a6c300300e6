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

// The whole response, read until the server closes; with `head_only`, only
// until the end of the response head (httplib keeps a connection open after
// a 400 or a refused request line until its read timeout: do not wait).
std::string fetch(std::uint16_t port, const std::string& request, bool head_only = false) {
  asio::io_context io;
  asio::ip::tcp::socket s(io);
  s.connect({asio::ip::make_address("127.0.0.1"), port});
  std::string out;
  std::error_code ec;
  asio::write(s, asio::buffer(request), ec);  // a server that refused early may have closed
  ec.clear();
  char buf[4096];
  while (!head_only || out.find("\r\n\r\n") == std::string::npos) {
    auto n = s.read_some(asio::buffer(buf), ec);
    if (ec) break;
    out.append(buf, n);
  }
  return out;
}

std::string fetch_head(std::uint16_t port, const std::string& request) { return fetch(port, request, true); }

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
  std::atomic<int> renders{0};
  MetricsServer m([&] {
    ++renders;
    return std::string("wizmail_up 1\n");
  });
  REQUIRE(m.open("127.0.0.1", 0));
  REQUIRE(m.port() != 0);

  auto ok = fetch(m.port(), "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  CHECK(ok.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(ok.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n") != std::string::npos);
  CHECK(ok.find("Content-Length: 13\r\n") != std::string::npos);
  CHECK(ok.ends_with("\r\n\r\nwizmail_up 1\n"));
  // HEAD: the same head, no body.
  auto head = fetch(m.port(), "HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  CHECK(head.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(head.ends_with("\r\n\r\n"));
  CHECK(fetch(m.port(), "GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n").starts_with("HTTP/1.1 404 "));
  CHECK(fetch(m.port(), "GET /metrics/../x HTTP/1.1\r\nConnection: close\r\n\r\n").starts_with("HTTP/1.1 404 "));
  auto del = fetch(m.port(), "DELETE /metrics HTTP/1.1\r\nConnection: close\r\n\r\n");
  CHECK(del.starts_with("HTTP/1.1 405 "));
  CHECK(del.find("Allow: GET, HEAD\r\n") != std::string::npos);
  CHECK(fetch(m.port(), "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .starts_with("HTTP/1.1 405 "));
  CHECK(fetch_head(m.port(), "hello\r\n\r\n").starts_with("HTTP/1.1 400 "));
  // A request line beyond httplib's limit is refused, never served.
  auto huge = fetch_head(m.port(), "GET /" + std::string(10000, 'a') + " HTTP/1.1\r\nConnection: close\r\n\r\n");
  CHECK((huge.empty() || huge.starts_with("HTTP/1.1 4")));
  CHECK(renders == 2);  // the GET and the HEAD

  // A bound port is refused.
  MetricsServer second([] { return std::string(); });
  auto busy = second.open("127.0.0.1", m.port());
  REQUIRE_FALSE(busy);
  CHECK(busy.error().code == Errc::busy);
  CHECK_FALSE(second.open("not-an-ip.invalid", 0));

  // A client that connects and sends nothing is dropped by close() (at the
  // latest when its read times out), and render is not called again.
  asio::io_context cio;
  asio::ip::tcp::socket idle(cio);
  idle.connect({asio::ip::make_address("127.0.0.1"), m.port()});
  m.close();
  char c;
  std::error_code ec;
  idle.read_some(asio::buffer(&c, 1), ec);
  CHECK(ec);  // eof or reset: the server closed it
  asio::ip::tcp::socket late(cio);
  late.connect({asio::ip::make_address("127.0.0.1"), m.port()}, ec);
  CHECK(ec);  // no longer listening
  CHECK(renders == 2);
}
