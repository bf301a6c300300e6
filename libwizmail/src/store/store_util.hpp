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

}  // namespace wizmail::store
