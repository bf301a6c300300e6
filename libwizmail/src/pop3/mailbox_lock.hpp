// One POP3 session per mailbox (RFC 1939 §8 "exclusive-access lock"), safe
// across processes and across hosts that share the mailbox folder (NFS).
//
// The lock is the file <account>/pop3.lock, created with O_CREAT|O_EXCL and
// holding "host pid start-time nonce\n" (start-time: field 22 of /proc/<pid>/stat,
// which tells a reused pid from the original holder). A lock found in place:
//   - same host: stale when the pid does not exist (kill(pid, 0) == ESRCH) or
//     now belongs to a process started at another time (pid reuse);
//   - another host: we cannot see its processes, so it is stale only when its
//     mtime is older than `foreign_stale_age` (10 minutes by default; the
//     server uses the autologout timeout + 5 minutes). The holder refreshes
//     the mtime (refresh(), on activity at most once a minute) and an idle
//     holder is logged out before that age, so a live session on another
//     host is never broken;
//   - unreadable content: stale only after the same age (a holder may be
//     between create and write).
// Breaking renames the stale file aside and checks, by inode, that the file
// moved is the one judged stale; if another breaker won the race in between
// the fresh lock is put back with link() and we report busy.
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
  // lock broken and re-created by someone else is left alone).
  void release() noexcept;

 private:
  std::filesystem::path path_;
  std::string content_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
};

// The start time of a process in clock ticks since boot (/proc/<pid>/stat
// field 22); 0 when unknown.
unsigned long long process_start_time(pid_t pid);

}  // namespace wizmail::pop3
