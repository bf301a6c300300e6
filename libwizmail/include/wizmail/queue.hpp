// The outbound retry queue (SPEC §6): resendmail/ in the home.
//
// Layout (states are directories; moving between them is a rename):
//   resendmail/tmp/       being written, or retired (<id>.done: delivered,
//                         its files not yet deleted); anything here at start
//                         is a crash leftover and is deleted by recover()
//   resendmail/data/<id>  the message, exactly as it is to be sent (immutable)
//   resendmail/incoming/<id>  envelope of a new entry, never tried
//   resendmail/active/<id>    envelope of an entry a sender is working on;
//                             moved back to incoming/ by recover()
//   resendmail/deferred/<id>  envelope after a temporary failure
//   resendmail/corrupt/<id>   envelopes that could not be read (kept for a human)
//
// An envelope is a small text file of records, one per line, values
// %-encoded (space, '%', control bytes and non-ASCII as %XX):
//   wizmail-queue 1
//   id <id>
//   created <unix seconds>
//   next <unix seconds>            next attempt
//   size <message octets>          must match data/<id>
//   sender <address>               empty value = null sender <>
//   client <ip>  / auth <account>  where the message came from (may be empty)
//   ret FULL|HDRS                  RFC 3461 RET (only when given)
//   envid <id>                     RFC 3461 ENVID, decoded (only when given)
//   smtputf8 1                     received with SMTPUTF8 (RFC 6531)
//   delay-notified <unix seconds>  when the delay notice went out
//   rcpt <pending|delivered|failed> <attempts> <address> <last reply>
//   dsn <NOTIFY or -> [<ORCPT>]    that recipient's NOTIFY and ORCPT (decoded
//                                  "type;address"), right after its rcpt line
//                                  (only when one was given)
//   attempt <unix seconds> <text>  one per delivery attempt, oldest first
//   end
// The optional records are written only when they say something, so an
// entry without them reads exactly as before they existed.
// The explicit `end` record means a truncated file is never taken for mail.
// Writes are tmp → fsync → rename → fsync directory; an entry is created by
// renaming data/ first and the envelope last, so a crash leaves at worst an
// orphan data file (deleted by recover()).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wizmail/dsn.hpp"
#include "wizmail/error.hpp"

namespace wizmail {

enum class RecipientState { pending, delivered, failed };
enum class QueueState { incoming, active, deferred };

struct QueueRecipient {
  std::string address;
  RecipientState state = RecipientState::pending;
  int attempts = 0;
  std::string last_reply;  // the peer's last reply (or our reason)
  DsnRequest dsn{};        // RFC 3461 NOTIFY / ORCPT
};

struct QueueAttempt {
  std::int64_t time = 0;  // unix seconds
  std::string text;       // e.g. "mx.example.org: 451 4.3.0 try later"
};

// What enqueue() needs.
struct QueueEnvelope {
  std::string sender;  // empty = null sender
  std::vector<std::string> recipients;
  std::string client_ip;
  std::string auth_user;
  // RFC 3461 requests: `dsn` is empty or holds one entry per recipient.
  DsnRet ret = DsnRet::unspecified;
  std::string envid{};
  std::vector<DsnRequest> dsn{};
  bool smtputf8 = false;  // received with SMTPUTF8 (RFC 6531)
};

struct QueueEntry {
  std::string id;
  QueueState state = QueueState::incoming;
  std::string sender;
  std::vector<QueueRecipient> recipients;
  std::vector<QueueAttempt> attempts;
  std::int64_t created = 0;
  std::int64_t next_attempt = 0;
  std::uint64_t size = 0;
  std::string client_ip;
  std::string auth_user;
  DsnRet ret = DsnRet::unspecified;
  std::string envid{};
  bool smtputf8 = false;
  std::int64_t delay_notified = 0;  // unix seconds; 0 = no delay notice yet

  bool finished() const noexcept;  // no recipient pending
};

// Envelope text (exposed for tests and `wizmail` tools).
std::string serialize_queue_entry(const QueueEntry& e);
// Errc::parse for anything short of a whole, well-formed envelope.
Result<QueueEntry> parse_queue_entry(std::string_view text);

class RelayQueue {
 public:
  explicit RelayQueue(std::filesystem::path dir);
  const std::filesystem::path& dir() const noexcept { return dir_; }

  // Create the folders (idempotent).
  Status init() const;

  struct Recovery {
    std::size_t tmp_removed = 0;       // leftovers in tmp/
    std::size_t orphans_removed = 0;   // data/ files without envelope
    std::size_t reactivated = 0;       // active/ → incoming/
    std::size_t corrupt = 0;           // envelopes moved to corrupt/
  };
  // At start, before anything else uses the queue.
  Result<Recovery> recover() const;

  // Durable enqueue (fsyncs before returning). The message is copied from
  // `message_file` (hard-linked when possible).
  Result<std::string> enqueue(const QueueEnvelope& env, const std::filesystem::path& message_file) const;
  Result<std::string> enqueue(const QueueEnvelope& env, std::string_view message) const;

  // The phases of enqueue, so a server can sync many entries in one round
  // (group commit with local deliveries):
  //   stage()   writes tmp/<id>.env and tmp/<id>.data (link or copy), no fsync
  //   files_to_sync() → sync them (or syncfs)
  //   publish() renames data then envelope into place
  //   dirs_to_sync()  → sync them; only then is the entry durable
  class Staged {
   public:
    Staged() = default;
    Staged(Staged&&) noexcept;
    Staged& operator=(Staged&&) noexcept;
    ~Staged();  // an unpublished entry's tmp files are removed
    const std::string& id() const noexcept { return id_; }
    // Open descriptors of the tmp files (valid until publish()).
    std::vector<int> files_to_sync() const;
    Status publish();
    std::vector<std::filesystem::path> dirs_to_sync() const;

   private:
    friend class RelayQueue;
    std::filesystem::path dir_;
    std::string id_;
    int env_fd_ = -1, data_fd_ = -1;  // data_fd_ = -1 when linked (already synced by owner)
    bool published_ = false;
    void cleanup() noexcept;
  };
  // `message_fd`/`message_path`: an existing file (e.g. the staged local
  // delivery) that the caller syncs itself; it is hard-linked when possible,
  // else copied (and the copy is among files_to_sync()).
  Result<Staged> stage(const QueueEnvelope& env, const std::filesystem::path& message_path,
                       std::uint64_t size) const;
  // The same with the message given whole: written to tmp/<id>.data (among
  // files_to_sync()). Many entries staged, then synced together, cost one
  // flush instead of one each (a mailing list's copies).
  Result<Staged> stage(const QueueEnvelope& env, std::string_view message) const;

  // Entries in every state, sorted by id (oldest first).
  Result<std::vector<std::string>> list() const;
  Result<QueueEntry> load(std::string_view id) const;
  std::filesystem::path message_path(std::string_view id) const;

  // Whether a move is flushed (the folders fsynced) before it returns.
  // `later`: the rename is done (a killed process cannot undo it) but an OS
  // crash may; the caller syncs the folders itself, or relies on recover()
  // (an entry found in active/ goes back to incoming/).
  enum class Sync { now, later };
  // Move between states (a sender claims an entry by moving it to active).
  Status move(std::string_view id, QueueState to, Sync sync = Sync::now) const;
  // Rewrite an entry's envelope in its current state (recipient results,
  // attempts, next attempt), atomically and durably.
  Status save(const QueueEntry& e) const;
  // Record one recipient's result and the attempt; see RecipientState.
  Status update_recipient(std::string_view id, std::string_view address, RecipientState state,
                          std::string_view reply) const;
  // Remove the entry (envelope first, then data).
  Status remove(std::string_view id) const;
  // Removal in two steps, for a runner that must not wait for the file
  // system's frees: retire() takes the envelope out of its state by one
  // rename into tmp/ (the entry is gone for every reader and for recover();
  // not flushed: see Sync::later), purge_retired() then unlinks it and the
  // data file. A crash between the two leaves files recover() deletes (tmp/
  // leftovers, an orphan data file).
  Status retire(std::string_view id) const;
  Status purge_retired(std::string_view id) const;
  // The folder of entries in `state` (to fsync after Sync::later).
  std::filesystem::path state_dir(QueueState state) const;

  // The earliest next-attempt time over incoming/ and deferred/ entries
  // (incoming entries are due at once); nullopt when the queue is empty.
  Result<std::optional<std::int64_t>> next_due() const;
  // Ids due at `now` (unix seconds).
  Result<std::vector<std::string>> due(std::int64_t now) const;

  static Status validate_id(std::string_view id);

 private:
  Result<std::filesystem::path> find(std::string_view id, QueueState* state = nullptr) const;
  Result<Staged> begin_stage(const QueueEnvelope& env) const;
  Status write_staged_envelope(Staged& s, const QueueEnvelope& env, std::uint64_t size) const;
  std::filesystem::path dir_;
};

std::string_view to_string(RecipientState s) noexcept;
std::string_view to_string(QueueState s) noexcept;

}  // namespace wizmail
