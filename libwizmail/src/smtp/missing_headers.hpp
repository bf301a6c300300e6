// Date: and Message-ID: for submissions that lack them (RFC 6409 §8.2,
// §8.3; SPEC §4), added where Postfix's cleanup adds them: at the end of the
// header section. Used by the session for authenticated sessions and the
// local submit socket only; mail from other MTAs is stored as it came.
//
// A MessageSink filter between DataReader and the session's sink. It
// streams: bytes go on as they arrive, except the start of one line (up to
// its colon, at most kMaxHeld octets) while it decides whether that line is
// a header field. The header section ends at the empty line, or at the first
// line that is neither a field ("name:") nor a continuation (SP/HT); in the
// second case the fields are followed by an empty line, so that the line
// stays body. A message that ends inside its header section gets the fields
// at its end (finish()).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "smtp/session.hpp"

namespace wizmail::smtp {

class MissingHeaders final : public MessageSink {
 public:
  static constexpr std::size_t kMaxHeld = 1000;

  // A new message going to `next`. `date` and `message_id` are the field
  // values to add when missing ("Tue, 4 Mar 2025 …", "<id@host>").
  void start(MessageSink& next, std::string date, std::string message_id);

  Status begin(const Transaction&) override { return {}; }
  Status write(std::string_view bytes) override;
  void abort() noexcept override {}
  // End of data (CR LF "." CR LF seen).
  Status finish();

  // Octets added to the message.
  std::int64_t added() const noexcept { return added_; }
  bool had_date() const noexcept { return has_date_; }
  bool had_message_id() const noexcept { return has_message_id_; }

 private:
  enum class St : std::uint8_t { line_start, name, rest_of_line, body };

  Status insert(bool blank_line);
  void note_field() noexcept;

  MessageSink* next_ = nullptr;
  std::string date_, message_id_;
  St st_ = St::line_start;
  bool first_line_ = true;
  std::string held_;         // the start of a line not yet known to be a field
  std::size_t name_len_ = 0;  // field-name octets seen (ftext)
  std::size_t line_len_ = 0;  // octets of the undecided line seen
  bool wsp_ = false;          // WSP after the name (obsolete "Date :")
  char name_[11] = {};        // the name's first octets, lower-cased
  bool has_date_ = false, has_message_id_ = false;
  std::int64_t added_ = 0;
  Status status_;
};

}  // namespace wizmail::smtp
