// `wizmail parse` (the manual's mailparser): MIME-parse mail files with GMime
// and write each message's headers, decoded text and attachments into a
// folder. See docs/parse.md for the layout:
//
//   OUT/<message>/headers.txt        header fields, decoded (RFC 2047), UTF-8
//   OUT/<message>/body.txt           first inline text/plain part, UTF-8, LF
//   OUT/<message>/body-1.txt ...     further inline text/plain parts
//   OUT/<message>/body.html          first inline text/html part, UTF-8
//   OUT/<message>/attachments/<name> every other part, transfer-decoded
//   OUT/<message>/message-1/ ...     an attached message/rfc822, same layout
//
// Every name written is sanitised (sanitize_file_name) and created with
// O_EXCL relative to an open folder: nothing is overwritten (a clash gets
// "-1", "-2", ... before the extension) and nothing lands outside OUT.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "wizmail/error.hpp"

namespace wizmail {

struct MimeParseOptions {
  std::size_t max_name_bytes = 200;   // longer names are cut (UTF-8 safe, extension kept)
  int max_depth = 16;                 // nesting of multiparts and attached messages
  int max_input_depth = 8;            // folders below -i DIR
};

struct MimeParseReport {
  std::size_t messages = 0;            // messages written (attached ones included)
  std::size_t attachments = 0;
  std::vector<std::filesystem::path> written;  // every file written
  std::vector<std::string> errors;     // inputs that could not be parsed (others go on)
};

// A safe file name from an untrusted one (a MIME filename, a Maildir name):
// the part after the last '/' or '\\'; control characters, NUL, DEL and
// <>:"|?* become '_'; invalid UTF-8 bytes become '_'; a leading '.' or '-'
// becomes '_'; trailing spaces and dots are dropped; at most `max_bytes`
// octets (cut on a UTF-8 boundary, a short extension kept). Empty, "." or
// ".." results give `fallback` (which must itself be safe).
std::string sanitize_file_name(std::string_view name, std::string_view fallback,
                               std::size_t max_bytes = 200);

// Parse `input` (a file, or a folder whose regular files are parsed,
// sub-folders mirrored) into `out_dir` (created when missing). An input that
// is not a readable file is recorded in report.errors; only an unusable
// `out_dir` or `input` is an error.
Result<MimeParseReport> parse_mail_files(const std::filesystem::path& input,
                                         const std::filesystem::path& out_dir,
                                         const MimeParseOptions& options = {});

}  // namespace wizmail
