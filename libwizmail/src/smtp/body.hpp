// Message data after DATA (RFC 5321 §4.1.1.4, §4.5.2): end-of-data
// detection, dot-unstuffing and the checks that decide whether the message
// may be committed. No I/O: unstuffed bytes go to a MessageSink in the spans
// they arrived in (one write per received chunk in the common case).
//
// Rules (summarised in src/smtp/README.md):
// - Only CR LF "." CR LF ends the data (the CR LF before the dot may be the
//   one that ended the DATA command). "\n.\n", "\n.\r\n", "\r\n.\n",
//   "\r.\r\n", "\r\n.\r" + other, … are data (CVE-2023-51764/5/6).
// - A bare LF or a bare CR anywhere in the data refuses the message at end of
//   data (550 5.5.2), like Postfix's smtpd_forbid_bare_newline=yes; the
//   session stays usable.
// - A line over 1000 octets including CR LF refuses the message (552 5.3.4);
//   lines are never split.
// - Over the size limit (max_mail_size, or the SIZE the client declared)
//   refuses the message (552 5.3.4); nothing more is written once over.
// - More than 50 "Received:" header lines in the header section refuse the
//   message as a loop (554 5.4.6).
// After the first refusal reason or sink error the reader stops writing and
// only looks for the end of data.
#pragma once

#include <cstdint>
#include <string_view>

#include "smtp/session.hpp"

namespace wizmail::smtp {

class DataReader {
 public:
  static constexpr std::size_t kMaxLine = 1000;  // octets incl. CR LF
  static constexpr int kMaxReceived = 50;

  // Start a message whose data may be at most `max_size` bytes.
  void begin(std::int64_t max_size) noexcept;

  // Consume bytes from `in` (advancing it); true when the end of data was
  // reached (`in` then holds what follows the final CR LF).
  bool consume(std::string_view& in, MessageSink& sink);

  bool bare_newline() const noexcept { return bare_lf_ || bare_cr_; }
  bool line_too_long() const noexcept { return too_long_; }
  bool too_big() const noexcept { return too_big_; }
  int received_headers() const noexcept { return received_; }
  bool loop() const noexcept { return received_ > kMaxReceived; }
  // The first error the sink returned, if any.
  const Status& sink_status() const noexcept { return sink_status_; }
  std::int64_t size() const noexcept { return size_; }
  // Nothing stops the message (apart from the checks done by the session).
  bool acceptable() const noexcept {
    return !bare_newline() && !too_long_ && !too_big_ && !loop() && sink_status_;
  }

 private:
  enum class St : std::uint8_t { line_start, in_line, cr, dot, dot_cr };

  void emit(const char* p, std::size_t n, MessageSink& sink);
  void end_of_line() noexcept;

  St st_ = St::line_start;
  std::int64_t max_size_ = 0;
  std::int64_t size_ = 0;   // octets written to the sink
  std::int64_t total_ = 0;  // octets of the message, written or not
  std::size_t line_len_ = 0;  // octets of the current line, CR LF included
  bool in_headers_ = true;
  char head_[9] = {};         // first octets of a header line, lower-cased
  std::size_t head_len_ = 0;
  int received_ = 0;
  bool bare_lf_ = false, bare_cr_ = false, too_long_ = false, too_big_ = false;
  Status sink_status_;
};

}  // namespace wizmail::smtp
