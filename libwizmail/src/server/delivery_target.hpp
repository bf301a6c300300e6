// One delivery contract for every place a commit makes a message durable
// (maddy's pattern): the Maildir delivery (classic and journal), the relay
// queue and the delivery agent's spool. The commit pipeline stages each
// message of a batch into the targets that take it, then runs the phases
// below in order, each over every target (commit_targets()), so that the
// whole batch costs one round of file syncs and one of folder syncs:
//
//   stage      per message, target-specific (the entry is written, not synced)
//   files      files_to_sync(): the data to make durable before any name is
//              published (a journal makes its records durable here itself)
//   publish    publish(): give each staged entry its name, for the messages
//              not failed yet; a failure fails that message only
//   dirs       dirs_to_sync(): the folders the new names are in; only once
//              they are synced is an entry durable
//   withdraw   withdraw(): take back the published entries of messages
//              answered 4xx after all (the client retries: a copy, a relay
//              or a hook left behind would run twice) — durably, before any
//              reply of the batch leaves
//
// No 2xx before every target of a message has passed `dirs` (SPEC §3).
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "wizmail/error.hpp"
#include "store/maildir_delivery.hpp"
#include "wizmail/queue.hpp"

namespace wizmail::server {

class DeliveryTarget {
 public:
  virtual ~DeliveryTarget() = default;
  // For logs and tests.
  virtual std::string_view name() const noexcept = 0;
  // Add to `sync` every file whose data must be durable before publish()
  // (synced by the caller, once for all targets), for the messages whose
  // `result` is still ok. A target that cannot (its journal) remembers why
  // and fails those messages in publish().
  virtual void files_to_sync(BatchSyncer& sync, std::span<const Status> result) = 0;
  // `files`: the result of syncing the files of every target. Publish the
  // entries of the messages whose `result` is still ok; set a message's
  // `result` to the error when its entry cannot be published (or its data
  // is not durable). `result` has one element per message of the batch.
  virtual void publish(const Status& files, std::span<Status> result) = 0;
  // Add the folders of the entries published to `sync`, and mark in
  // `depends` (one per message) the messages whose entries are durable only
  // once they are synced.
  virtual void dirs_to_sync(BatchSyncer& sync, std::vector<bool>& depends) = 0;
  // Take back, durably, the published entries of these messages (their
  // client gets 4xx). An error means a crash or the retry may duplicate one.
  virtual Status withdraw(std::span<const std::size_t> messages) = 0;
};

// The phases after staging, for every target in order: files (one
// sync_files()), publish, dirs (one sync_dirs(); a failure fails every
// message marked as depending on it), then withdraw for the messages whose
// `result` is an error (every target is asked; each takes back only what it
// published). `result` holds one Status per message: ok, or the error it
// failed with before (its targets then publish nothing for it). Withdraw
// errors are returned for the caller to log (empty: none).
std::vector<Error> commit_targets(std::span<DeliveryTarget* const> targets, BatchSyncer& sync,
                                  std::span<Status> result);

// The Maildir delivery: every local copy of the batch in one DeliveryBatch,
// which journals the small ones (one append and fdatasync in
// files_to_sync(), no folder sync) and syncs the others the classic way
// (file, link, new/ folder). Its entries are published whatever a later
// target does; a message failed later gets them withdrawn (unlinked, its
// record settled), which is why it comes first among the targets.
class MaildirTarget final : public DeliveryTarget {
 public:
  MaildirTarget(SyncMode mode, DeliveryJournal* journal, std::size_t messages);
  std::string_view name() const noexcept override { return "maildir"; }
  // Stage: a finished copy of message `message` for the account folder `dir`;
  // `main`: the staged message itself (written with that folder's final
  // headers), else a copy made for one recipient.
  void stage(std::size_t message, StagedMessage&& copy, const std::filesystem::path& dir, bool main);
  void files_to_sync(BatchSyncer& sync, std::span<const Status> result) override;
  void publish(const Status& files, std::span<Status> result) override;
  void dirs_to_sync(BatchSyncer& sync, std::vector<bool>& depends) override;
  Status withdraw(std::span<const std::size_t> messages) override;

  // After the phases: how many copies message `message` has, and the name
  // of its first (the main copy's when there is one).
  std::size_t copies(std::size_t message) const;
  std::optional<std::filesystem::path> first_copy(std::size_t message) const;
  // The per-mailbox counters and the tmp/ names, once the replies are out.
  void tidy() { batch_.tidy(); }

 private:
  struct Copies {
    std::optional<std::size_t> main;  // DeliveryBatch indexes
    std::vector<std::size_t> extra;
  };
  DeliveryBatch batch_;
  std::vector<Copies> msgs_;
  Status staged_;  // DeliveryBatch::files_to_sync()
};

// An entry in a RelayQueue: the outbound relay queue, or the delivery
// agent's spool (the same queue format). One entry per message at most.
class QueueTarget final : public DeliveryTarget {
 public:
  QueueTarget(std::string name, const RelayQueue& queue, std::size_t messages);
  std::string_view name() const noexcept override { return name_; }
  // Stage an entry for message `message` linking `file` (its data as
  // received). `sync_file`: this entry is the first to link `file`, which
  // is synced with the entry's own files (a file is synced once).
  Status stage(std::size_t message, const QueueEnvelope& env, const StagedMessage& file, bool sync_file);
  void files_to_sync(BatchSyncer& sync, std::span<const Status> result) override;
  void publish(const Status& files, std::span<Status> result) override;
  void dirs_to_sync(BatchSyncer& sync, std::vector<bool>& depends) override;
  Status withdraw(std::span<const std::size_t> messages) override;

  bool staged(std::size_t message) const { return entries_[message].has_value(); }
  bool published(std::size_t message) const { return entries_[message] && entries_[message]->published; }
  const std::string& id(std::size_t message) const { return entries_[message]->staged.id(); }
  bool any_published() const;

 private:
  struct Entry {
    RelayQueue::Staged staged;
    int file_fd = -1;  // the linked file, when this entry syncs it
    std::filesystem::path file_path;
    bool published = false;
  };
  std::string name_;
  const RelayQueue& queue_;
  std::vector<std::optional<Entry>> entries_;
};

}  // namespace wizmail::server
