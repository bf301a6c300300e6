// One POP3 session per mailbox (RFC 1939 §8 "exclusive-access lock"), safe
// across processes and across hosts that share the mailbox folder (NFS).
//
// The lock is the file <account>/pop3.lock. The exclusion on this host is an
// flock(LOCK_EX) on that file, held (through an open descriptor) for the
// whole session: the kernel drops it when the holder dies, and nobody ever
// renames or removes a lock file whose flock they do not hold, so a live lock
// cannot be broken. flock is per open file description, so two sessions of
// one process exclude each other too. A descriptor locked on a file that was
// removed meanwhile is detected (inode of the descriptor != inode at the
// path) and the acquisition starts over.
//
// The file holds "host pid start-time nonce\n" (start-time: field 22 of
// /proc/<pid>/stat) for the message and for other hosts. Holding the flock,
// the acquirer judges the content left by the previous holder:
//   - same host: stale unless that pid still runs with the same start time
//     (a holder that does not flock, e.g. an older wizmail);
//   - another host: its processes are invisible, so it is stale only when its
//     mtime is older than `foreign_stale_age` (the holder refreshes the mtime
//     on activity, and an idle holder is logged out before that age);
//   - unreadable content: stale only after the same age (a holder on another
//     host may be between create and write).
// A stale lock is taken over in place (truncate, write our content) while
// holding the flock. Across hosts the exclusion is as strong as the shared
// file system's locking: with NFS locking (lockd, NFSv4) flock is seen by
// every host; without it only the mtime rule protects a foreign holder.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "wizmail/error.hpp"

namespace wizmail::pop3 {

inline constexpr const char* lock_file_name = "pop3.lock";

class MailboxLock {
 public:
  struct Options {
    std::chrono::seconds foreign_stale_age{600};
    std::string host;  // empty: this host's name
  };

  // Errc::busy (with the holder in the message) when a live session holds it.
  static Result<MailboxLock> acquire(const std::filesystem::path& account_dir,
                                     const Options& options);
  static Result<MailboxLock> acquire(const std::filesystem::path& account_dir) {
    return acquire(account_dir, Options{});
  }

  MailboxLock() = default;
  MailboxLock(MailboxLock&& o) noexcept;
  MailboxLock& operator=(MailboxLock&& o) noexcept;
  MailboxLock(const MailboxLock&) = delete;
  MailboxLock& operator=(const MailboxLock&) = delete;
  ~MailboxLock() { release(); }

  bool held() const noexcept { return !path_.empty(); }
  const std::filesystem::path& path() const noexcept { return path_; }

  // Touch the lock so other hosts see the holder is alive.
  Status refresh();
  // Remove the lock file if it is still ours (same inode and content: a
  // lock broken and re-created by someone else is left alone), then drop
  // the flock.
  void release() noexcept;

 private:
  std::filesystem::path path_;
  int fd_ = -1;  // open, flock(LOCK_EX) held while path_ is set
  std::string content_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
};

// The start time of a process in clock ticks since boot (/proc/<pid>/stat
// field 22); 0 when unknown.
unsigned long long process_start_time(pid_t pid);

}  // namespace wizmail::pop3
