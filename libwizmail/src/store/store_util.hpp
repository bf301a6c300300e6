// Private helpers of the store area.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "wizmail/error.hpp"

namespace wizmail::store {

// `s` in double quotes for error messages, control and non-ASCII octets
// escaped as \xNN, cut after 80 octets: user input can never garble stderr.
std::string quote(std::string_view s);

// Replace `path` atomically (temporary file beside it + rename). With
// `durable`, fsync the file and the folder too (util::write_file_atomic).
Status replace_file(const std::filesystem::path& path, std::string_view data, unsigned mode,
                    bool durable);

// rename(2) that never replaces `to` (a file or a folder): renameat2 with
// RENAME_NOREPLACE, and on a filesystem without it (EINVAL, ENOSYS) the
// fallback below. Returns 0 or the errno (EEXIST when `to` exists; a folder
// may also give ENOTEMPTY).
int rename_noreplace(const std::filesystem::path& from, const std::filesystem::path& to) noexcept;
// The fallback alone (tests call it directly): a file is hard-linked to `to`
// (link(2) refuses atomically to replace) and its old name unlinked; a folder,
// or a file on a filesystem without hard links, is renamed after an lstat
// found `to` absent (rename(2) never replaces a non-empty folder).
int rename_noreplace_fallback(const std::filesystem::path& from,
                              const std::filesystem::path& to) noexcept;

}  // namespace wizmail::store
