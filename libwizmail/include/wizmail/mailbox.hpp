// One account's messages, stored as a Maildir (SPEC §3): new/ cur/ tmp/.
//
// A message's uid is its Maildir base name without the ":2,<flags>" info
// part; it is stable across sessions and restarts (POP3 UIDL uses it).
// A Mailbox is a stateless view over an account folder; several processes may
// use the same folder at once (Maildir needs no locks for this).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "wizmail/error.hpp"

namespace wizmail {

struct MessageInfo {
  std::string uid;                 // base name without ":2,..."
  std::filesystem::path path;      // where the file is now
  std::uint64_t size = 0;          // octets (the ",S=" field, else the file size)
  bool is_new = false;             // in new/ (not yet seen by a POP3 login)
  std::int64_t mtime = 0;          // seconds since the epoch (list(): the delivery
                                   // time in the name when it carries ",S=")
};

// The persisted event counters of an account (SPEC §3, §10).
struct MailboxCounters {
  std::uint64_t received = 0;  // messages delivered into the mailbox
  std::uint64_t sent = 0;      // messages the account sent: submissions and relayed mail (docs/smtp.md)
  std::uint64_t deleted = 0;   // messages removed from the mailbox
};

// What `wizmail mailbox status` and the monitor show for one account.
struct MailboxStats {
  std::uint64_t messages = 0;  // new + cur
  std::uint64_t bytes = 0;
  std::uint64_t new_count = 0;
  std::uint64_t cur_count = 0;
  MailboxCounters counters;
};

// An open message file for streaming (RETR, TOP, relaying). Move-only.
class MessageFile {
 public:
  MessageFile() = default;
  MessageFile(int fd, std::uint64_t size) noexcept : fd_(fd), size_(size) {}
  MessageFile(MessageFile&& o) noexcept : fd_(o.fd_), size_(o.size_) { o.fd_ = -1; }
  MessageFile& operator=(MessageFile&& o) noexcept;
  MessageFile(const MessageFile&) = delete;
  MessageFile& operator=(const MessageFile&) = delete;
  ~MessageFile();

  int fd() const noexcept { return fd_; }
  std::uint64_t size() const noexcept { return size_; }
  // Read up to buf.size() octets; 0 at the end.
  Result<std::size_t> read(std::span<char> buf);

 private:
  int fd_ = -1;
  std::uint64_t size_ = 0;
};

class Mailbox {
 public:
  // `account_dir` is <mailbox_dir>/<account> (AccountStore::account_dir).
  explicit Mailbox(std::filesystem::path account_dir);

  const std::filesystem::path& dir() const noexcept { return dir_; }
  // The account's name: the folder's base name.
  std::string account() const { return dir_.filename().string(); }

  // A valid uid: 1–255 octets, no '/', no ':', no NUL, not starting with '.'.
  static Status validate_uid(std::string_view uid);

  // Every message of new/ and cur/, oldest first (mtime, then uid, digit runs
  // compared as numbers so one second's deliveries keep their order). Reads no
  // message body: one readdir per folder, and an fstatat only for a file
  // whose name lacks ",S=" or the leading delivery seconds (foreign names).
  Result<std::vector<MessageInfo>> list() const;
  // The same listing, compact: for a POP3 session over a huge mailbox.
  // Each entry is one string (the file's name in its folder) and a few
  // numbers, not MessageInfo's uid and full path (a std::filesystem::path
  // keeps its components too): about a fifth of the memory per message.
  struct Entry {
    std::string name;           // "<uid>" or "<uid>:2,<flags>"
    std::uint64_t size = 0;     // as MessageInfo::size
    std::int64_t mtime = 0;     // as MessageInfo::mtime
    std::uint32_t uid_size = 0; // the uid is name.substr(0, uid_size)
    bool is_new = false;
    std::string_view uid() const noexcept { return std::string_view(name).substr(0, uid_size); }
  };
  Result<std::vector<Entry>> list_entries() const;
  // Where an entry of list_entries() is.
  std::filesystem::path path_of(const Entry& e) const;
  // Find one message by uid. Errc::not_found when it is not there.
  Result<MessageInfo> find(std::string_view uid) const;
  Result<std::string> read(std::string_view uid) const;
  Result<MessageFile> open(std::string_view uid) const;

  // Delete messages: unlink them, or, when `dustbox_root` is not empty, move
  // them to <dustbox_root>/<account>/. The folder is fsynced once for the
  // whole batch and the `deleted` counter updated once. Stops at the first
  // failure (messages removed before it stay removed; the counter counts them).
  // A counter that cannot be written (a full disk) is not a failure.
  // A dustbox on another filesystem gets a copy made under a hidden name,
  // fsynced, renamed into place and its folder fsynced before the message is
  // unlinked: an error or crash never leaves a partial file under the final
  // name, and a retry succeeds.
  Status remove(std::string_view uid, const std::filesystem::path& dustbox_root = {});
  Status remove(std::span<const std::string> uids,
                const std::filesystem::path& dustbox_root = {});

  // Move a message from new/ to cur/ (its uid does not change). A message
  // already in cur/ is fine.
  Status move_to_cur(std::string_view uid);
  // Move everything in new/ to cur/ (done at POP3 login); returns how many.
  Result<std::size_t> move_all_to_cur();

  // Delete crash leftovers in tmp/: files older than `max_age` (Maildir
  // says 36 hours), and, when `dead_writers` is set, also younger files that
  // this host wrote from a process that no longer exists (safe at server
  // start: a live writer — another server, the admin CLI, a foreign MDA on
  // another host — is never disturbed). Returns how many files were deleted.
  Result<std::size_t> cleanup_tmp(std::chrono::seconds max_age = std::chrono::hours(36),
                                  bool dead_writers = false);

  // Message count and bytes (new + cur), from file names (",S=") where they
  // carry the size, else from fstatat.
  struct Totals {
    std::uint64_t messages = 0;
    std::uint64_t bytes = 0;
    std::uint64_t new_count = 0;
    std::uint64_t cur_count = 0;
  };
  Result<Totals> totals() const;

  // Would one more message of `incoming` octets fit? Negative limits mean
  // unlimited. Over a limit: Error::smtp(452, "4.2.2", ...) (temporary).
  Status check_quota(std::int64_t max_count, std::int64_t max_bytes,
                     std::uint64_t incoming) const;

  // Counters (see mailbox.cpp for why they are not fsynced).
  Result<MailboxCounters> counters() const;
  Status add_counters(const MailboxCounters& delta);
  Result<MailboxStats> stats() const;

 private:
  std::filesystem::path dir_;
};

// Add to an account's persisted counters without constructing a Mailbox.
Status add_mailbox_counters(const std::filesystem::path& account_dir,
                            const MailboxCounters& delta);

}  // namespace wizmail
