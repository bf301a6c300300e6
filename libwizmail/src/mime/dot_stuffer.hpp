// The multi-line response body of RETR and TOP (RFC 1939 §3), produced chunk
// by chunk from the stored file: line ends normalised to CRLF (a bare LF gets
// its CR; a CR not followed by LF is passed through), a '.' at the start of a
// line doubled, and the response ended by CRLF "." CRLF (a missing final
// line end is supplied). For TOP, the header, the blank line and then at most
// `body_lines` body lines are sent. A line may span any number of chunks.
// The relay's SMTP client sends DATA through it too (RFC 5321 §4.5.2: the
// same transparency and terminator).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace wizmail::mime {

class DotStuffer {
 public:
  // body_lines < 0: the whole message (RETR).
  explicit DotStuffer(long body_lines = -1) noexcept : body_lines_(body_lines) {}

  // Append the transformed `in` to `out`. Returns false once TOP's limit is
  // reached: the caller may stop reading, further input is ignored.
  bool feed(std::string_view in, std::string& out);

  // Append the terminator (and a final CRLF when the message lacked one).
  void finish(std::string& out);

  bool done() const noexcept { return done_; }

 private:
  void end_line();  // a line just ended: header/body accounting for TOP

  long body_lines_;
  bool line_start_ = true;
  bool pending_cr_ = false;  // a CR was the last octet seen
  bool in_header_ = true;
  bool line_empty_ = true;   // nothing but (possibly) the CR on this line yet
  bool done_ = false;
};

// Octets RETR sends for a message body of this content, before dot-stuffing
// and without the terminator (RFC 1939 §11): the size LIST/STAT report.
std::size_t transmitted_size(std::string_view content) noexcept;

}  // namespace wizmail::mime
