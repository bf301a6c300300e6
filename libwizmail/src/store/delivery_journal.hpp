// The delivery journal: SPEC §3's "message fsynced in a journal from which
// start-up recovery completes those deliveries".
//
// Why: on ext4 making a new file durable costs several dependent metadata
// writes (the inode, the tmp/ entry, the new/ entry — about 5 ms here),
// while overwriting already-allocated blocks of one file and fdatasync()ing
// them costs one data write and a cache flush (about 0.4 ms). So a batch of
// small messages is made durable by appending one record per message
// (name, target Maildirs, the whole data, a CRC32C) to a preallocated,
// pre-zeroed ring file with a single pwrite + fdatasync. The caller may then
// link each staged file into its new/ folders and answer 2xx without any
// further flush: the data and the names reach the disk later, when a
// checkpoint (a background thread, every `checkpoint_interval`, or when
// the ring runs short of room) syncfs()es the filesystems of every Maildir
// touched by the records it covers and only then advances the checkpoint
// stored in the journal's header.
//
// Recovery (open()) replays every record after the checkpoint: for each
// target Maildir it finds the copy (new/<name>, or cur/<name>[:2,…] after a
// POP3 login moved it) and compares it with the journaled data; a missing
// copy is written (tmp/, fsync, rename into new/), a different one (data
// lost with the power) is rewritten in place by rename. So after a crash
// every acknowledged message is whole in new/ or cur/ before the server
// accepts a connection; a file left half-written in new/ by a power loss is
// repaired before anyone reads it. A message must therefore not be removed
// (POP3 DELE+QUIT) or refused (4xx after a failed link) while a record not
// yet covered by a checkpoint names it, or a crash would bring it back:
// settle() checkpoints through such records first — only fresh messages
// pay for it.
//
// Layout: two 512-octet header slots at 0 and 512 (magic, CRC, checkpoint
// sequence, offset of the next record, file size; written alternately, the
// valid one with the higher sequence wins), records from 4096 on. A record
// is found by its exact expected sequence number at the expected offset (or,
// once, at 4096 after the writer wrapped), so stale records of an earlier lap
// and torn writes (CRC) end the replay. An acknowledged record is never
// preceded by a missing one: records are written in sequence order under
// one lock and a reply waits for an fdatasync that started after every
// earlier record was written.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "wizmail/error.hpp"

namespace wizmail {

class DeliveryJournal {
 public:
  struct Options {
    // Size of a newly created journal file (an existing one keeps its size).
    std::uint64_t size = 16ull << 20;
    std::chrono::milliseconds checkpoint_interval{200};
  };
  struct RecoveryReport {
    std::size_t records = 0;   // records replayed (after the last checkpoint)
    std::size_t present = 0;   // copies found whole
    std::size_t restored = 0;  // copies that were missing, written
    std::size_t repaired = 0;  // copies whose content differed, rewritten
    std::size_t skipped = 0;   // target Maildirs that no longer exist
    std::filesystem::path corrupt_kept;  // set when an unreadable journal was set aside
    // Why no journal was made (its file system has not the room for a new
    // one): open() then returns a null journal, and the caller commits the
    // classic way; the next open() with room makes it.
    std::string not_created;
  };

  // Open the journal `file` (creating and preallocating it, and its folder,
  // when missing: null, with report->not_created, when that has no room)
  // and replay what follows its checkpoint. A journal whose
  // headers are both unreadable is renamed to "<file>.corrupt.<time>" (kept
  // for the administrator) and a new one is created; report->corrupt_kept
  // names it.
  static Result<std::unique_ptr<DeliveryJournal>> open(const std::filesystem::path& file,
                                                       const Options& options,
                                                       RecoveryReport* report = nullptr);
  static Result<std::unique_ptr<DeliveryJournal>> open(const std::filesystem::path& file) {
    return open(file, Options{});
  }
  ~DeliveryJournal();
  DeliveryJournal(const DeliveryJournal&) = delete;
  DeliveryJournal& operator=(const DeliveryJournal&) = delete;

  // The background checkpoint thread (optional: append() and checkpoint()
  // work without it). stop() makes a last checkpoint.
  void start();
  void stop();

  // The largest message a record takes; larger ones go the classic way.
  std::uint64_t max_message() const noexcept { return max_message_; }

  struct Message {
    int fd = -1;               // the staged file (read with pread from 0)
    std::uint64_t size = 0;    // its size
    std::string_view name;     // its name in new/
    std::span<const std::filesystem::path> maildirs;  // the target Maildirs
  };
  struct Ticket {
    std::uint64_t first = 0, last = 0;
  };
  // Make the messages durable in the journal (one write, one fdatasync).
  // Errc::busy: no room until the next checkpoint (or a message too large):
  // nothing was recorded, sync the files yourself. Other errors: the journal
  // is broken (later calls fail too); nothing of this call is durable.
  Result<Ticket> append(std::span<const Message> messages);
  // The names of the ticket's messages are in their new/ folders (or failed
  // for good): a checkpoint may now cover them. Must be called once per
  // ticket, whatever happened.
  void applied(Ticket ticket) noexcept;
  // Sync every filesystem the applied records touched, then advance the
  // header past them.
  Status checkpoint();
  // When this returns ok, recovery replays no record up to `seq`: it waits
  // until every record up to it is applied (their tickets' applied() calls
  // come from the commits that wrote them) and checkpoints through it.
  // Before a 4xx for a message whose record is on disk: the client retries,
  // and recovery must not deliver it a second time.
  Status settle(std::uint64_t seq);
  // The same for the records naming any of `names` (new/ names, which are
  // unique; POP3 UIDLs): before these messages are removed from a mailbox,
  // so that a crash cannot bring them back. Nothing to do (no wait, no
  // sync) when no record after the checkpoint names one of them.
  Status settle(std::span<const std::string> names);

  // Records appended and not yet covered by a checkpoint (tests).
  std::uint64_t pending() const;

 private:
  struct Inflight {
    std::uint64_t first, last, end;  // sequence range and offset after it
    std::uint64_t lap;               // wrap_ when it was written
    std::vector<std::filesystem::path> maildirs;
    std::vector<std::string> names;  // the messages' names in new/ (settle)
    bool applied = false;
  };
  DeliveryJournal() = default;
  Status write_header(std::uint64_t seq, std::uint64_t off);
  Status replay(RecoveryReport& report);

  std::filesystem::path file_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
  std::uint64_t max_message_ = 0;
  std::chrono::milliseconds interval_{200};
  int next_slot_ = 0;

  mutable std::mutex mu_;  // the state below
  std::condition_variable cv_;
  std::condition_variable applied_cv_;  // applied() was called (settle waits)
  std::uint64_t next_seq_ = 1;
  std::uint64_t head_ = 0;      // where the next record goes
  std::uint64_t ckpt_seq_ = 0;  // last sequence covered by the header
  std::uint64_t ckpt_off_ = 0;  // where the record after it starts
  // Laps of the ring: the writer's, and that of the last checkpointed
  // record. While records are unchecked and the laps differ, the writer
  // has wrapped and may not pass ckpt_off_.
  std::uint64_t wrap_ = 0, ckpt_lap_ = 0;
  // Records after the checkpoint, in order; a checkpoint removes the ones
  // it covered only once the header is written (settle() looks here).
  std::deque<Inflight> inflight_;
  bool broken_ = false;
  bool stop_ = false;
  bool wanted_ = false;  // a checkpoint was asked for (room)

  std::mutex checkpoint_mu_;  // one checkpoint at a time
  // One fdatasync at a time: a write-back error is reported to one caller
  // only, so each flush checks, under this lock, that no other flush failed.
  std::mutex flush_mu_;
  std::thread thread_;
};

}  // namespace wizmail
