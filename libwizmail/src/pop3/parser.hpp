// POP3 command grammar (RFC 1939 §3, RFC 2449 §4), sans I/O.
//
// LineParser splits the client's byte stream into command lines. A line ends
// at LF; a CR just before it is dropped, so a bare LF is tolerated as Dovecot
// does (clients on odd platforms send it, and a POP3 command carries no data
// for which the difference could matter — unlike SMTP DATA). A line longer
// than max_line_octets is reported once as too_long and the rest of it, up to
// and including its LF, is discarded: it is never executed.
//
// parse_command() turns one line into a verb and arguments.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace wizmail::pop3 {

// RFC 2449 §4: a command line is at most 255 octets including CRLF. We accept
// twice that so a long password or a client that pads still works, and refuse
// anything longer.
inline constexpr std::size_t max_line_octets = 512;

class LineParser {
 public:
  enum class Status { need_more, line, too_long };
  struct Result {
    Status status;
    std::size_t used;  // octets of the input consumed
  };

  // Consume input up to the end of the first complete line (or all of it).
  // After Status::line, line() holds it without its CRLF/LF.
  Result parse(std::string_view in);
  std::string_view line() const noexcept { return line_; }

  // Forget a partial line (STLS: buffered plaintext must not survive).
  void reset() noexcept;
  // A line has begun and not ended yet.
  bool partial() const noexcept { return !buf_.empty() || discarding_; }

 private:
  std::string buf_;      // the partial line so far
  std::string line_;     // the last complete line
  bool discarding_ = false;
};

enum class Verb {
  unknown, user, pass, apop, stat, list, retr, dele, noop, rset, quit, top,
  uidl, capa, stls, auth,
};

struct Command {
  Verb verb = Verb::unknown;
  std::string keyword;             // as the client sent it (for logs)
  std::vector<std::string> args;   // split on runs of spaces
  std::string rest;                // everything after the keyword and one space
};

// Keywords are case-insensitive. Arguments are separated by spaces; `rest`
// keeps the raw remainder for PASS, whose argument may contain spaces.
Command parse_command(std::string_view line);

// A message number argument: 1..INT_MAX, digits only. 0 when not valid.
std::size_t parse_msg_number(std::string_view s) noexcept;

// A non-negative line count for TOP; -1 when not valid.
long parse_line_count(std::string_view s) noexcept;

}  // namespace wizmail::pop3
