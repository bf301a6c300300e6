// Mail a milter quarantined (SMFIR_QUARANTINE, docs/milter.md): Postfix's
// hold queue. Each message is one file, <queue>/quarantine/<id>.eml, written
// durably (fsync of the file and its folder) before the client's 250, and
// never delivered until an administrator releases it (`wizmail queue
// release`, which hands it to the running server's submit socket) or
// deletes it. The file is the message with three kinds of fields in front:
//   X-Wizmail-Quarantine: <the milter's reason>
//   X-Wizmail-Envelope-From: <sender>        (<> = null sender)
//   X-Wizmail-Envelope-To: <recipient>       one per recipient
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "wizmail/error.hpp"

namespace wizmail {

struct QuarantinedMessage {
  std::string id;                       // the file's name without .eml
  std::string reason;                   // the milter's
  std::string sender;                   // "" = null sender
  std::vector<std::string> recipients;
  std::int64_t created = 0;             // unix seconds (the file's time)
  std::uint64_t size = 0;               // of the message, without the fields in front
  std::string message;                  // load_quarantined() only
};

// The file's text for a message. Control characters in the reason become
// spaces (a milter's text never breaks the field).
std::string quarantine_record(std::string_view reason, std::string_view sender,
                              const std::vector<std::string>& recipients, std::string_view message);
// The fields in front and the message; Errc::parse when they are missing
// or malformed (no reason, no sender field, no recipient).
Result<QuarantinedMessage> parse_quarantine_record(std::string_view text);

// Write it durably into `quarantine_dir` (made when missing); the new id.
Result<std::string> quarantine_message(const std::filesystem::path& quarantine_dir, std::string_view reason,
                                       std::string_view sender, const std::vector<std::string>& recipients,
                                       std::string_view message);
// Every quarantined message (without its text), oldest first; an empty
// list when the folder does not exist. Unreadable files are skipped.
Result<std::vector<QuarantinedMessage>> list_quarantine(const std::filesystem::path& quarantine_dir);
// One, with its text. Errc::not_found; Errc::invalid_argument for an id
// that is not a plain name.
Result<QuarantinedMessage> load_quarantined(const std::filesystem::path& quarantine_dir, std::string_view id);
// Remove one (durably).
Status delete_quarantined(const std::filesystem::path& quarantine_dir, std::string_view id);

}  // namespace wizmail
