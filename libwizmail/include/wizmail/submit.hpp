// Local mail submission (wizmail-sendmail, SPEC §8): building messages from
// a subject-and-body file, the classic sendmail message handling (-t, -i),
// the -onlyonce record, and the SMTP client for var/run/submit.sock.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "wizmail/error.hpp"

namespace wizmail::submit {

// A subject-and-body file: line 1 the subject, the rest the body. UTF-8 (a
// BOM is dropped); Errc::invalid_argument otherwise.
struct SubjectBody {
  std::string subject;
  std::string body;
};
Result<SubjectBody> parse_subject_body(std::string_view file_content);

// A mail address as accepted on the command line: local@domain (or a bare
// local part), no spaces, quotes, angle brackets or control characters.
bool valid_address(std::string_view address);

// RFC 2047 encoded-words (UTF-8, "B") for a header value when it needs them
// (non-ASCII, control characters, "=?", or longer than the 998-octet line);
// printable ASCII comes back as is. mime::encode_header() in UTF-8: words
// stay within 75 octets, never split a character, folded with CRLF SP.
std::string encode_header_value(std::string_view utf8, std::size_t first_line_used);

struct TextMessage {
  std::string from;              // address
  std::vector<std::string> to;   // addresses
  std::string subject;           // UTF-8
  std::string body;              // UTF-8, any line ends
  std::string hostname;          // for Message-ID
  std::string extra_headers;     // whole lines with CRLF, e.g. "Auto-Submitted: auto-generated\r\n"
};
// A complete RFC 5322 message with CRLF line ends: Date, From, To, Subject,
// Message-ID, MIME-Version, text/plain; charset=UTF-8, 7bit for ASCII bodies
// and base64 otherwise.
std::string build_text_message(const TextMessage& m);
std::string rfc5322_date(std::chrono::system_clock::time_point t);
std::string new_message_id(std::string_view hostname);

// Standard input of the classic interface: `ignore_dots` (-i/-oi) false
// means a line with a single "." ends the message. Line ends become CRLF.
std::string read_message(std::string_view input, bool ignore_dots);

// -t: the addresses of To, Cc and Bcc (RFC 5322 address lists, display names,
// groups and comments handled), and the message without its Bcc header.
struct HeaderRecipients {
  std::vector<std::string> recipients;
  std::string message;
};
Result<HeaderRecipients> recipients_from_headers(std::string_view message);

// Adds From, Date and Message-ID when the message lacks them.
std::string complete_headers(std::string_view message, std::string_view from, std::string_view hostname);

// -onlyonce: has the pair (from, to) been recorded in `file` (one "from,to"
// a line, case-insensitive)? `record` adds it. Both lock the file.
Result<bool> onlyonce_seen(const std::filesystem::path& file, std::string_view from, std::string_view to);
Status onlyonce_record(const std::filesystem::path& file, std::string_view from, std::string_view to);

// Hand the message to the server over `socket` (SMTP; the server treats the
// peer as trusted and local). Errc::unavailable when the server is not
// running; an SMTP refusal keeps its code in Error::smtp_code.
struct Envelope {
  std::string sender;  // "" = null sender <>
  std::vector<std::string> recipients;
};
Status send(const std::filesystem::path& socket, const Envelope& envelope, std::string_view message,
            std::chrono::seconds timeout = std::chrono::seconds(120));

}  // namespace wizmail::submit
