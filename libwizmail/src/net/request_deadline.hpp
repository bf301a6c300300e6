// The deadline of the client's current request, beside the silence timer
// (session_timeout), so that trickling bytes cannot hold a session open
// (slowloris): a command line must be complete within `command` of its
// first byte, and a DATA phase within `command` + bytes / `min_rate` of
// its start (Postfix's smtpd_per_request_deadline and smtpd_min_data_rate:
// every byte received buys 1/min_rate s more). Pure: the connection tells
// it the phase after each read, with the time; Watchdog enforces the
// result (net/stream.hpp).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>

namespace wizmail::net {

class RequestDeadline {
 public:
  using Clock = std::chrono::steady_clock;
  enum class Phase {
    idle,     // nothing begun: the silence timer only
    command,  // a command line (or SASL response) has begun
    data,     // message data (after the 354)
  };
  struct Options {
    std::chrono::seconds command{120};
    std::int64_t min_rate = 500;  // bytes/s in DATA; 0 = no deadline for DATA
  };
  RequestDeadline() = default;
  explicit RequestDeadline(Options o) : opt_(o) {}

  // The phase the session is in at `now`, after `data_bytes` more bytes of
  // message data arrived (0 outside DATA). A phase starts when it differs
  // from the last one; a command phase keeps its start while it lasts.
  void update(Phase phase, std::size_t data_bytes, Clock::time_point now) {
    if (phase != phase_) {
      phase_ = phase;
      start_ = now;
      bytes_ = 0;
    }
    if (phase_ == Phase::data) bytes_ += data_bytes;
  }

  // When the request must be complete; nullopt when none runs.
  std::optional<Clock::time_point> deadline() const {
    switch (phase_) {
      case Phase::idle: return std::nullopt;
      case Phase::command: return start_ + opt_.command;
      case Phase::data: {
        if (opt_.min_rate <= 0) return std::nullopt;
        auto earned = std::chrono::duration_cast<Clock::duration>(
            std::chrono::duration<double>(static_cast<double>(bytes_) /
                                          static_cast<double>(opt_.min_rate)));
        return start_ + opt_.command + earned;
      }
    }
    return std::nullopt;
  }
  Phase phase() const noexcept { return phase_; }

 private:
  Options opt_;
  Phase phase_ = Phase::idle;
  Clock::time_point start_{};
  std::uint64_t bytes_ = 0;
};

}  // namespace wizmail::net
