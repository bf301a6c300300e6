// One POP3 session per mailbox (RFC 1939 §8 "exclusive-access lock"), safe
// across processes and across hosts that share the mailbox folder (NFS), and
// on a full disk.
//
// On this host the exclusion is an flock(LOCK_EX) on the account's `cur/`
// folder, held (through an open descriptor) for the whole session: the
// kernel drops it when the holder dies, and taking it needs no disk space at
// all, so the owner of a mailbox on a full file system can still log in,
// download and delete. flock is per open file description, so two sessions
// of one process exclude each other too. (Not the account folder itself:
// mailing-list edits flock that one briefly, and must not wait for a POP3
// session to end.) Where directories cannot be flocked (NFS: an exclusive
// flock needs a descriptor open for writing) the lock file alone excludes.
//
// For other hosts (and as the record of who holds it) there is also the lock
// file <account>/pop3.lock, flocked too (seen by every host where the shared
// file system's locking works: lockd, NFSv4), holding "host pid start-time
// nonce\n" (start-time: field 22 of /proc/<pid>/stat). Nobody ever removes a
// lock file whose flock they do not hold, so a live lock cannot be broken; a
// descriptor locked on a file that was removed meanwhile is detected (inode
// of the descriptor != inode at the path) and the acquisition starts over.
// Holding the flock, the acquirer judges the content left by the previous
// holder:
//   - same host: stale unless that pid still runs with the same start time
//     (a holder that does not flock, e.g. an older wizmail);
//   - another host: its processes are invisible, so it is stale only when its
//     mtime is older than `foreign_stale_age` (the holder refreshes the mtime
//     on activity, and an idle holder is logged out before that age);
//   - empty or unreadable content: stale only after the same age (a holder
//     on another host may be between create and write, or had no room).
// A stale lock is taken over in place (truncate, write our content) while
// holding the flock.
//
// A full disk (what Dovecot's dotlocks do, too): when the content cannot be
// written, the lock file stays empty and the lock holds all the same (the
// flocks; other hosts judge an empty file by its age). When not even the
// empty file can be made (no inode left), the `cur/` flock alone holds the
// lock: safe on this host, and no other host can make its lock file either
// while the file system is full. note() says which of these happened.
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

  bool held() const noexcept { return dir_fd_ >= 0 || fd_ >= 0; }
  // The lock file; empty when it could not be made (disk full, see above).
  const std::filesystem::path& path() const noexcept { return path_; }
  // Why the lock is weaker than usual (the lock file is empty or missing),
  // for the log; empty when it is not.
  const std::string& note() const noexcept { return note_; }

  // Touch the lock so other hosts see the holder is alive.
  Status refresh();
  // Remove the lock file if it is still ours (same inode and content: a
  // lock broken and re-created by someone else is left alone), then drop
  // the flocks.
  void release() noexcept;

 private:
  int dir_fd_ = -1;  // cur/, flock(LOCK_EX) held (-1: that file system has no flock)
  std::filesystem::path path_;
  int fd_ = -1;  // the lock file, open and flocked while path_ is set
  std::string content_;
  std::string note_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
};

// The start time of a process in clock ticks since boot (/proc/<pid>/stat
// field 22); 0 when unknown.
unsigned long long process_start_time(pid_t pid);

}  // namespace wizmail::pop3
