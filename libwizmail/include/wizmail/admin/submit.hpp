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

// Adds each of `fields` (whole lines "Name: value\r\n") whose name the
// message's header section lacks, before its first field.
std::string add_missing_fields(std::string_view message, const std::vector<std::string>& fields);

// Nothing but white space and line ends: nothing to send.
bool empty_message(std::string_view message);

// The command line of wizmail-sendmail (SPEC §8, the manual's メール送信ツール,
// and the classic sendmail interface). Which form:
//   1. -mf FILE or -sb FILE present: the manual's form, FROM TO[,TO...].
//   2. exactly two arguments and no option (-nowait aside): the manual's
//      form with the message on standard input, FROM TO[,TO...] — unless
//      the program was started as "sendmail" outside a hook, where
//      `sendmail rcpt1 rcpt2 < msg` keeps its Unix meaning (two recipients).
//   3. anything else: the classic form, every argument a recipient; -t, -i,
//      -oi, -f/-r FROM, -F NAME; -- ends the options (and forces this form).
struct CommandLine {
  enum class Form { stored_file, subject_body, manual_stdin, classic };
  Form form = Form::classic;
  std::string sender;            // FROM (manual), -f/-r (classic; "<>" = null sender)
  bool sender_given = false;     // classic: -f or -r given
  std::vector<std::string> recipients;
  std::string file;              // -mf / -sb
  std::string onlyonce;          // -onlyonce CSV
  bool del = false;              // -del
  bool auto_replied = false;     // --auto-replied
  bool from_headers = false;     // -t
  bool ignore_dots = false;      // -i / -oi (always for the manual forms)
  std::string full_name;         // -F
};
// `invoked_as_sendmail`: argv[0]'s file name is "sendmail"; `in_hook`: run
// by a hook of the server (WIZMAIL_HOOK set). Errc::invalid_argument with
// the reason for a usage error.
Result<CommandLine> parse_command_line(const std::vector<std::string>& args, bool invoked_as_sendmail,
                                       bool in_hook);

// The exit status (sysexits.h) of wizmail-sendmail for an error:
//   64 EX_USAGE      bad command line          65 EX_DATAERR  bad message
//   66 EX_NOINPUT    unreadable file, empty message on standard input
//   67 EX_NOUSER     the server refused a recipient (5.1.x)
//   69 EX_UNAVAILABLE the server refused the message otherwise (5xx)
//   70 EX_SOFTWARE   internal error            73 EX_CANTCREAT -onlyonce file
//   75 EX_TEMPFAIL   server not running, 4xx, I/O error: try again later
//   76 EX_PROTOCOL   the server broke the protocol
//   77 EX_NOPERM     the submit socket (or its folder) may not be used
//   78 EX_CONFIG     no home (WIZ98MS_HOME / --home)
namespace exit_code {
inline constexpr int ok = 0, usage = 64, data_err = 65, no_input = 66, no_user = 67, unavailable = 69,
                     software = 70, cant_create = 73, temp_fail = 75, protocol = 76, no_perm = 77, config = 78;
}
int exit_status(const Error& e);

// -onlyonce: has the pair (from, to) been recorded in `file` (one "from,to"
// a line, case-insensitive)? `record` adds it. Both lock the file.
Result<bool> onlyonce_seen(const std::filesystem::path& file, std::string_view from, std::string_view to);
Status onlyonce_record(const std::filesystem::path& file, std::string_view from, std::string_view to);

// Hand the message to the server over `socket` (SMTP; the server treats the
// peer as trusted and local). Errc::unavailable when the server is not
// running; Errc::permission_denied when the socket, its folder or the
// server refuses this user (the message says which user or group may);
// an SMTP refusal keeps its code in Error::smtp_code and Error::enhanced.
struct Envelope {
  std::string sender;  // "" = null sender <>
  std::vector<std::string> recipients;
};
Status send(const std::filesystem::path& socket, const Envelope& envelope, std::string_view message,
            std::chrono::seconds timeout = std::chrono::seconds(120));

}  // namespace wizmail::submit
