// `wizmail maintenance` (the manual's wmsmnt): purge what a home no longer
// needs — dustbox mail past `dustbox_keep_days`, dead mail, expired queue
// entries and old rotated logs. See docs/maintenance.md.
//
// Nothing outside the folders named below is touched, and no symbolic link is
// followed: a link found inside them is left alone (and counted as skipped),
// and a folder that is itself a link is refused.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "wizmail/config.hpp"
#include "wizmail/error.hpp"

namespace wizmail {

struct MaintenanceOptions {
  bool dry_run = false;          // list what would go, remove nothing
  std::int64_t now = 0;          // unix seconds; 0 = the current time
  int dustbox_keep_days = -1;    // -1 = the configuration's dustbox_keep_days
  int dead_keep_days = -1;       // -1 = the same as dustbox_keep_days
  int log_keep_days = 30;        // rotated logs older than this go
  int log_generations = 10;      // and rotated logs beyond this generation
};

struct MaintenanceItem {
  enum class Kind { dustbox, dead, queue, log };
  Kind kind = Kind::dustbox;
  std::filesystem::path path;    // what was (or would be) removed
  std::uint64_t bytes = 0;
  std::int64_t age = 0;          // seconds
  std::string why;               // e.g. "older than 7 days"
};

struct MaintenanceReport {
  std::vector<MaintenanceItem> items;       // removed (or, dry run, to remove)
  std::vector<std::string> warnings;        // skipped links, unreadable entries
  std::uint64_t bytes = 0;
  std::size_t count(MaintenanceItem::Kind k) const;
};

std::string_view to_string(MaintenanceItem::Kind k) noexcept;

// Run every purge. Errors in one area are reported as warnings and do not
// stop the others; only a bad option or an unusable home is an error.
Result<MaintenanceReport> run_maintenance(const Config& config, const MaintenanceOptions& options);

}  // namespace wizmail
