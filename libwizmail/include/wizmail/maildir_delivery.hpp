// Durable delivery of one message to N local Maildirs (SPEC §3).
//
// The rule: a 2xx to DATA may only leave once the message data is on stable
// storage AND its names in every recipient's new/ are on stable storage.
// A file is never visible in new/ before its data is synced, so a crash
// leaves either no message or a whole one (a leftover in tmp/ at worst,
// removed by Mailbox::cleanup_tmp at start).
//
// The phases, so that a server can commit many messages with one flush
// (group commit):
//   1. stage    StagedMessage::create(<first recipient>/tmp) ; write()… ;
//               finish()           — buffered writes, no fsync
//   2. collect  DeliveryBatch::add(msg, recipients) for every message that
//               finished while the previous commit was running
//   3. commit   DeliveryBatch::commit(): sync all data (fsync each file, or
//               one syncfs), hard-link each file into every recipient's new/
//               (copy when the link is impossible, e.g. another filesystem),
//               sync each distinct new/ folder once (or one syncfs), bump the
//               `received` counters, drop the tmp/ names
//   4. reply    per-recipient results: 2xx for the ok ones only
// deliver() does all of it for one message.
//
// Names follow Maildir: "<sec>.M<usec>P<pid>Q<seq>.<host>,S=<size>" in new/,
// where S= is the file size (the message is stored with CRLF), as Dovecot does.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "wizmail/error.hpp"

namespace wizmail {

enum class SyncMode {
  fsync_each,  // fsync every file / every distinct folder (precise, the default)
  syncfs,      // one syncfs() per phase: cheapest for large batches on a
               // filesystem that holds little else
};

// One message being written into a tmp/ folder. Move-only; an unpublished
// message's tmp file is deleted by discard() or the destructor.
class StagedMessage {
 public:
  // Create "<tmp_dir>/<unique>.<host>" (mode 0600, O_EXCL).
  static Result<StagedMessage> create(const std::filesystem::path& tmp_dir);

  StagedMessage(StagedMessage&&) noexcept;
  StagedMessage& operator=(StagedMessage&&) noexcept;
  StagedMessage(const StagedMessage&) = delete;
  StagedMessage& operator=(const StagedMessage&) = delete;
  ~StagedMessage();

  // Append (buffered; large pieces go straight to the file).
  Status write(std::string_view data);
  // Flush the buffer. The file stays open so that it can be synced; after
  // finish() no more writes are accepted and size() is final.
  Status finish();
  // fsync the file (the batch does this for you).
  Status sync();

  bool finished() const noexcept;
  std::uint64_t size() const noexcept;
  int fd() const noexcept;
  const std::filesystem::path& tmp_path() const noexcept;
  // The name the message gets in new/: "<unique>.<host>,S=<size>".
  std::string new_name() const;

  // Make the message visible in <maildir>/new/ (after finish() and after its
  // data was synced): a hard link, or a synced copy when linking is
  // impossible. The new/ folder itself still needs a sync before a 2xx.
  // Returns the path in new/.
  Result<std::filesystem::path> publish(const std::filesystem::path& maildir);

  // Delete the tmp file and close it.
  void discard() noexcept;

 private:
  struct Impl;
  explicit StagedMessage(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> impl_;
};

// Collects files and folders to sync, and syncs each once.
class BatchSyncer {
 public:
  explicit BatchSyncer(SyncMode mode = SyncMode::fsync_each) : mode_(mode) {}
  // The fd must stay open until sync_files() returned.
  void add_file(int fd);
  void add_dir(const std::filesystem::path& dir);  // duplicates are synced once
  Status sync_files();
  Status sync_dirs();
  void clear();
  std::size_t dir_count() const noexcept { return dirs_.size(); }

 private:
  SyncMode mode_;
  std::vector<int> files_;
  std::vector<std::filesystem::path> dirs_;
};

class DeliveryBatch {
 public:
  explicit DeliveryBatch(SyncMode mode = SyncMode::fsync_each) : mode_(mode) {}

  // Add a finished message and the Maildir folders (account folders) it goes
  // to. Returns its index for results(). A maildir listed twice gets one copy.
  std::size_t add(StagedMessage&& msg, std::vector<std::filesystem::path> maildirs);

  // Sync, publish, sync folders, count. Afterwards each recipient's result is
  // final: ok means durable in new/ (the path), an error means not delivered
  // (nothing left in its new/). Returns an error when the batch as a whole
  // failed (the data or folder sync); then every result is that error.
  // Commit may be called once.
  Status commit();

  std::size_t size() const noexcept { return entries_.size(); }
  std::span<const Result<std::filesystem::path>> results(std::size_t index) const;

 private:
  struct Entry {
    StagedMessage msg;
    std::vector<std::filesystem::path> maildirs;
    std::vector<Result<std::filesystem::path>> results;
  };
  SyncMode mode_;
  bool committed_ = false;
  std::vector<Entry> entries_;
};

// Deliver `data` durably to every maildir (staged in the first one whose tmp/
// accepts it).
// One result per maildir, in order.
std::vector<Result<std::filesystem::path>> deliver(
    std::span<const std::filesystem::path> maildirs, std::string_view data,
    SyncMode mode = SyncMode::fsync_each);

}  // namespace wizmail
