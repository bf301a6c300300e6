// Private: the Prometheus endpoint (metrics_port). A minimal HTTP/1.1 server
// on loopback: GET /metrics answers the text exposition format 0.0.4, every
// other path 404, every other method 405; one request per connection, the
// request head bounded (8 KiB) and read within a deadline (5 s).
#pragma once

#include <asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "wizmail/error.hpp"
#include "wizmail/server.hpp"

namespace wizmail::ops {

// What one scrape shows.
struct MetricsSnapshot {
  ServerStats stats;
  std::int64_t queue_length = -1;        // -1: the queue could not be read
  std::int64_t queue_oldest_age = 0;     // seconds; 0 when empty
  std::int64_t start_time = 0;           // unix seconds
};

// The exposition text (pure).
std::string render_metrics(const MetricsSnapshot& m);

// The request head parser (pure, sans I/O).
struct HttpRequest {
  std::string method, target, version;
};
enum class HttpParse { need_more, done, bad, too_large };
// `buf` holds everything read so far; done once "\r\n\r\n" (or "\n\n") ends
// the head. A head longer than `max` is too_large.
HttpParse parse_http_request(std::string_view buf, HttpRequest& out, std::size_t max = 8192);
// The whole response for a parsed request; `body` is rendered only for
// GET /metrics (or HEAD).
std::string http_response(const HttpRequest& req, const std::function<std::string()>& body);

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
  MetricsServer(asio::io_context& io, Render render);
  ~MetricsServer();  // close()
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Bind and start accepting (Errc::busy when the port is in use).
  Status open(const std::string& address, std::uint16_t port);
  std::uint16_t port() const noexcept { return port_; }
  // Stop accepting, drop open connections; `render` is never called once
  // this returns. Any thread, idempotent.
  void close();

  struct State;

 private:
  std::shared_ptr<State> st_;
  std::uint16_t port_ = 0;
};

}  // namespace wizmail::ops
