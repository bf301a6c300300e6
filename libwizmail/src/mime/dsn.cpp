// RFC 3464 delivery status notifications (bounces), built as text. Pure.
#include <fcntl.h>
#include <unistd.h>

#include <ctime>

#include "mime/date.hpp"
#include "mime/header_section.hpp"
#include "util/strings.hpp"
#include "util/utf8.hpp"
#include "wizmail/relay.hpp"

namespace wizmail {

namespace {

// DSN fields and the human part are 7-bit: anything else becomes '?', line
// breaks become spaces, and a field is cut at `max` octets.
std::string ascii(std::string_view s, std::size_t max = 900) {
  std::string out;
  out.reserve(std::min(s.size(), max));
  for (char ch : s) {
    if (out.size() >= max) break;
    auto c = static_cast<unsigned char>(ch);
    if (c == '\r' || c == '\n' || c == '\t') out += ' ';
    else if (c < 0x20 || c >= 0x7F) out += '?';
    else out += ch;
  }
  return out;
}

std::string field_date(std::int64_t t) {
  return mime::rfc5322_date(std::chrono::system_clock::from_time_t(static_cast<std::time_t>(t)), mime::DateZone::utc);
}

std::string status_of(const DsnRecipient& r, bool timed_out) {
  const bool success = r.action == DsnAction::delivered || r.action == DsnAction::relayed ||
                       r.action == DsnAction::expanded;
  auto valid = [&](std::string_view s) {
    char cls = success ? '2' : r.action == DsnAction::delayed ? '4' : 0;
    bool ok_class = cls ? s[0] == cls : (s[0] == '4' || s[0] == '5');
    return s.size() >= 5 && ok_class && s[1] == '.' &&
           s.find_first_not_of("0123456789.") == std::string_view::npos;
  };
  if (!r.status.empty() && valid(r.status)) return r.status;
  if (success) return "2.0.0";
  if (r.action == DsnAction::delayed) return "4.0.0";
  if (r.smtp_code >= 500) return "5.0.0";
  if (timed_out) return "4.4.7";
  if (r.smtp_code >= 400) return "4.0.0";
  return "5.0.0";
}

// Header block with CRLF line ends; a line that could be taken for our MIME
// boundary cannot occur (the boundary holds a random part and "=_").
std::string crlf_headers(std::string_view h) {
  std::string out;
  out.reserve(h.size() + 64);
  for (std::size_t i = 0; i < h.size(); ++i) {
    char c = h[i];
    if (c == '\n' && (out.empty() || out.back() != '\r')) out += '\r';
    out += c;
  }
  // Drop the empty line ending the block; the part ends with one CRLF.
  while (out.size() >= 4 && out.compare(out.size() - 4, 4, "\r\n\r\n") == 0) out.resize(out.size() - 2);
  if (!out.empty() && (out.size() < 2 || out.compare(out.size() - 2, 2, "\r\n") != 0)) out += "\r\n";
  return out;
}

// A message returned whole (message/rfc822): CRLF line ends, ending in one.
std::string crlf_message(std::string_view m) {
  std::string out = util::to_crlf(m);
  if (!out.ends_with("\r\n")) out += "\r\n";
  return out;
}

// An address in a header field (To:): UTF-8 stays (RFC 6532: the notice to
// a UTF-8 sender travels with SMTPUTF8), anything else is made 7-bit.
std::string header_address(std::string_view s) {
  if (util::is_ascii(s) || !util::valid_utf8(s)) return ascii(s, 300);
  std::string out;
  for (char c : s.substr(0, 300))
    out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  return out;
}

enum class Kind { failure, delay, success };

Kind kind_of(const DsnInput& in) {
  bool delay = false;
  for (const auto& r : in.recipients) {
    if (r.action == DsnAction::failed) return Kind::failure;
    if (r.action == DsnAction::delayed) delay = true;
  }
  return delay ? Kind::delay : Kind::success;
}

}  // namespace

std::string_view to_string(DsnAction a) noexcept {
  switch (a) {
    case DsnAction::failed: return "failed";
    case DsnAction::delayed: return "delayed";
    case DsnAction::delivered: return "delivered";
    case DsnAction::relayed: return "relayed";
    case DsnAction::expanded: return "expanded";
  }
  return "failed";
}

std::string build_dsn(const DsnInput& in) {
  const std::string domain = ascii(in.reporting_domain.empty() ? "localhost" : in.reporting_domain, 200);
  const std::string mta = ascii(in.reporting_mta.empty() ? domain : in.reporting_mta, 200);
  const std::string boundary = "=_wizmail_" + ascii(in.queue_id, 100) + "_" + std::to_string(in.now);
  const std::string sender = header_address(in.original_sender);
  const Kind kind = kind_of(in);
  const bool full = kind == Kind::failure && !in.original_message.empty();
  std::string m;
  m.reserve(2048 + in.original_headers.size() + (full ? in.original_message.size() : 0));
  m += "From: Mail Delivery System <MAILER-DAEMON@" + domain + ">\r\n";
  m += "To: <" + sender + ">\r\n";
  m += "Subject: ";
  if (kind == Kind::success) m += "Successful Mail Delivery Report";
  else if (kind == Kind::delay) m += "Delayed Mail (still being retried)";
  else if (in.timed_out) m += "Undelivered Mail Returned to Sender (delivery time expired)";
  else m += "Undelivered Mail Returned to Sender";
  m += "\r\n";
  m += "Date: " + field_date(in.now) + "\r\n";
  m += "Message-ID: <" + ascii(in.queue_id, 100) + "." + std::to_string(in.now) + ".dsn@" + domain + ">\r\n";
  m += "Auto-Submitted: auto-replied\r\n";
  m += "MIME-Version: 1.0\r\n";
  m += "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"" + boundary + "\"\r\n";
  m += "\r\nThis is a MIME-encapsulated message.\r\n\r\n";

  // 1. For the human.
  m += "--" + boundary + "\r\n";
  m += "Content-Description: Notification\r\n";
  m += "Content-Type: text/plain; charset=us-ascii\r\n\r\n";
  m += "This is the mail system at host " + mta + ".\r\n\r\n";
  if (kind == Kind::success)
    m += "Your message was successfully delivered to the destination(s) listed\r\n"
         "below, as you asked. If the message was delivered to a mailbox you will\r\n"
         "receive no further notifications; otherwise you may still receive\r\n"
         "notifications of mail delivery errors from other systems.\r\n\r\n";
  else if (kind == Kind::delay)
    m += "Your message could not be delivered yet to one or more recipients. The\r\n"
         "mail system will go on trying; you need not send it again.\r\n\r\n";
  else if (in.timed_out)
    m += "Your message could not be delivered to one or more recipients within the\r\n"
         "time the mail system retries. It has been returned to you.\r\n\r\n";
  else
    m += "Your message could not be delivered to one or more recipients.\r\n"
         "It has been returned to you.\r\n\r\n";
  m += "For further assistance, send mail to postmaster@" + domain + ".\r\n\r\n";
  for (const auto& r : in.recipients) {
    m += util::cat("<", ascii(r.address, 300), ">: ");
    if (kind == Kind::success) m += util::cat(to_string(r.action), "; ");
    if (!r.remote_mta.empty()) m += "host " + ascii(r.remote_mta, 200) + " said: ";
    m += ascii(r.diagnostic) + "\r\n";
  }
  m += "\r\n";

  // 2. For the machine (RFC 3464 §2).
  m += "--" + boundary + "\r\n";
  m += "Content-Description: Delivery report\r\n";
  m += "Content-Type: message/delivery-status\r\n\r\n";
  if (!in.envelope_id.empty()) m += "Original-Envelope-Id: " + ascii(in.envelope_id, 100) + "\r\n";
  m += "Reporting-MTA: dns; " + mta + "\r\n";
  if (!in.queue_id.empty()) m += "X-Wizmail-Queue-ID: " + ascii(in.queue_id, 100) + "\r\n";
  if (in.arrival_time > 0) m += "Arrival-Date: " + field_date(in.arrival_time) + "\r\n";
  for (const auto& r : in.recipients) {
    m += "\r\n";
    if (!r.original_recipient.empty()) {
      // "type;address": keep it one 7-bit line whatever it holds.
      auto o = ascii(r.original_recipient, 500);
      auto semi = o.find(';');
      m += "Original-Recipient: ";
      if (semi != std::string::npos && semi + 1 < o.size() && o[semi + 1] != ' ') {
        m.append(o, 0, semi + 1);
        m += ' ';
        m.append(o, semi + 1);
      } else {
        m += o;
      }
      m += "\r\n";
    }
    m += "Final-Recipient: " + dsn_address_field(r.address.substr(0, 300)) + "\r\n";
    m += "Action: " + std::string(to_string(r.action)) + "\r\n";
    m += "Status: " + status_of(r, in.timed_out) + "\r\n";
    if (!r.remote_mta.empty()) m += "Remote-MTA: dns; " + ascii(r.remote_mta, 200) + "\r\n";
    if (r.smtp_code > 0) m += "Diagnostic-Code: smtp; " + ascii(r.diagnostic) + "\r\n";
    else if (!r.diagnostic.empty()) m += "Diagnostic-Code: X-wizmail; " + ascii(r.diagnostic) + "\r\n";
    m += "Last-Attempt-Date: " + field_date(in.now) + "\r\n";
    if (r.action == DsnAction::delayed && in.will_retry_until > 0)
      m += "Will-Retry-Until: " + field_date(in.will_retry_until) + "\r\n";
  }
  m += "\r\n";

  // 3. The original message (RET=FULL on a failure) or its headers.
  const std::string_view returned = full ? std::string_view(in.original_message) : std::string_view(in.original_headers);
  bool eight = false;
  for (char c : returned)
    if (static_cast<unsigned char>(c) >= 0x80) eight = true;
  m += "--" + boundary + "\r\n";
  if (full) {
    m += "Content-Description: Undelivered Message\r\n";
    m += "Content-Type: message/rfc822\r\n";
  } else {
    m += kind == Kind::failure ? "Content-Description: Undelivered Message Headers\r\n"
                               : "Content-Description: Message Headers\r\n";
    m += "Content-Type: text/rfc822-headers\r\n";
  }
  if (eight) m += "Content-Transfer-Encoding: 8bit\r\n";
  m += "\r\n";
  m += full ? crlf_message(returned) : crlf_headers(returned);
  m += "\r\n--" + boundary + "--\r\n";
  return m;
}

Result<std::string> read_header_block(const std::filesystem::path& message, std::size_t limit) {
  int fd = ::open(message.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail_errno("open " + message.string(), errno);
  std::string text;
  char buf[8192];
  while (text.size() < limit) {
    ssize_t n = ::read(fd, buf, std::min(sizeof buf, limit - text.size()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return fail_errno("read " + message.string(), e);
    }
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    auto end = text.find("\r\n\r\n");
    auto end_lf = text.find("\n\n");
    if (end != std::string::npos || end_lf != std::string::npos) break;
  }
  ::close(fd);
  if (auto head = mime::split_header_section(text); head.ended) return text.substr(0, head.body_offset);
  // No end of header found within the limit: cut at the last line end.
  auto last = text.rfind('\n');
  if (last == std::string::npos) return std::string();
  return text.substr(0, last + 1);
}

}  // namespace wizmail
