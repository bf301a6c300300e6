// The SRS secret in the home: def/srs.secret (SPEC §14: "SRS secret under
// def/", mode 0600). One secret a line; the first signs new addresses, all
// of them are accepted when reversing, so a new secret goes on the first
// line and the old one stays below it until its addresses have expired
// (srs_max_age days). Empty lines and lines starting with '#' are skipped.
// The file PostSRSd reads (secrets-file) has the same form.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "wizmail/error.hpp"

namespace wizmail::srs {

// <home>/def/srs.secret
std::filesystem::path secret_file(const std::filesystem::path& home);

// Create `file` with one new secret (24 random octets from getrandom(2), in
// base64) unless it exists: mode 0600, exclusively, fsynced with its
// folder. true when it was created now.
Result<bool> create_secret_file(const std::filesystem::path& file);

// The secrets the file holds (pure: from its text). Errc::parse when none.
Result<std::vector<std::string>> parse_secrets(std::string_view text, const std::filesystem::path& file);

// Create the file when missing, then read it.
Result<std::vector<std::string>> load_secrets(const std::filesystem::path& file);

}  // namespace wizmail::srs
