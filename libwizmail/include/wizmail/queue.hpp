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
//
// Nodes of a shared home (a queue made with a node name; docs/cluster.md)
// share data/, incoming/, deferred/ and corrupt/, and each has its own:
//   resendmail/tmp/<node>/      that node's files in the making or retired
//   resendmail/claims/<node>/   that node's claimed entries (its "active")
// A claim is the rename of an envelope into the node's claims/ folder: the
// one node whose rename succeeds owns the entry. Nothing here touches
// another node's claims except adopt(), which a live node calls for a node
// whose heartbeat stopped (server/cluster_takeover): it renames the dead
// node's claims/ and tmp/ folders away in one step each — so the dead
// node, should it still be running, can neither save nor move nor retire
// those entries any more (every path it holds is gone) — and then puts the
// entries back in incoming/ for every node's runner:
//   resendmail/adopted/<dead>@<adopter>@<unique>/{claims,tmp}/
// A node's ids end in ".<node>", so two nodes never make the same id.
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
  // A node of a shared home (`node` a valid node name; empty = a single
  // server, as above).
  RelayQueue(std::filesystem::path dir, std::string node);
  const std::filesystem::path& dir() const noexcept { return dir_; }
  const std::string& node() const noexcept { return node_; }
  // Where this queue's files in the making go (tmp/ or tmp/<node>/).
  std::filesystem::path tmp_dir() const;
  // Every folder of claimed entries: active/ and claims/<each node>/.
  std::vector<std::filesystem::path> claim_dirs() const;

  // Create the folders (idempotent).
  Status init() const;

  struct Recovery {
    std::size_t tmp_removed = 0;       // leftovers in tmp/
    std::size_t orphans_removed = 0;   // data/ files without envelope
    std::size_t reactivated = 0;       // active/ → incoming/
    std::size_t corrupt = 0;           // envelopes moved to corrupt/
  };
  // At start, before anything else uses the queue. A node's recover()
  // touches only what is its own (tmp/<node>/, claims/<node>/, and what a
  // single server left in active/), and deletes a data file without an
  // envelope only when it is an hour old (another node may be publishing).
  Result<Recovery> recover() const;

  // A node only: take over `dead`'s claims (see above). Counts what was
  // put back in incoming/ and what was deleted from its tmp/ (unfinished
  // entries, never acknowledged; retired ones with their data files).
  // Another node adopting the same node at once gets what it got first,
  // never an entry twice. Also finishes adoptions left half done by an
  // adopter that is `dead` too, or is this node (a crash mid-way).
  struct Adoption {
    std::size_t entries = 0;
    std::size_t tmp_removed = 0;
  };
  Result<Adoption> adopt(std::string_view dead) const;
  // Whether this node still holds its claim on `id` (the fence a sender
  // checks before the last step that cannot be undone, e.g. the final dot).
  bool holds(std::string_view id) const;

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
    std::filesystem::path dir_, tmp_;
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

  // Entries in every state (every node's claims too), sorted by id
  // (oldest first).
  Result<std::vector<std::string>> list() const;
  // Wherever the entry is (another node's claim included).
  Result<QueueEntry> load(std::string_view id) const;
  std::filesystem::path message_path(std::string_view id) const;

  // Whether a move is flushed (the folders fsynced) before it returns.
  // `later`: the rename is done (a killed process cannot undo it) but an OS
  // crash may; the caller syncs the folders itself, or relies on recover()
  // (an entry found in active/ goes back to incoming/).
  enum class Sync { now, later };
  // Move between states (a sender claims an entry by moving it to active).
  // The mutators below find an entry in incoming/, deferred/ and this
  // queue's own active folder only: never in another node's claims.
  // A node whose claims/ folder was adopted while it ran (it was taken for
  // dead) makes it again at its next claim, and logs nothing here: the
  // caller sees which entries it lost through holds().
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
  // `anywhere`: other nodes' claims and active/ too (readers).
  Result<std::filesystem::path> find(std::string_view id, QueueState* state = nullptr,
                                     bool anywhere = false) const;
  std::filesystem::path active_dir() const;
  Status drain_adopted(const std::filesystem::path& adopted, Adoption& a) const;
  Result<Staged> begin_stage(const QueueEnvelope& env) const;
  Status write_staged_envelope(Staged& s, const QueueEnvelope& env, std::uint64_t size) const;
  std::filesystem::path dir_;
  std::string node_;
};

std::string_view to_string(RecipientState s) noexcept;
std::string_view to_string(QueueState s) noexcept;

}  // namespace wizmail
