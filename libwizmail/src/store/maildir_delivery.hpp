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
//               one syncfs per filesystem), hard-link each file into every
//               recipient's new/ (copy when the link is impossible, e.g.
//               another filesystem), sync each distinct new/ folder once (or
//               one syncfs per filesystem), bump the `received` counters,
//               drop the tmp/ names
//   4. reply    per-recipient results: 2xx for the ok ones only
// deliver() does all of it for one message.
//
// Names follow Maildir: "<sec>.M<usec>P<pid>Q<seq>.<host>,S=<size>" in new/,
// where S= is the file size (the message is stored with CRLF), as Dovecot does.
// When the content has bare LF line ends (deliver() from a program, a
// rewriting delivery callback), ",W=<size with every bare LF counted as CRLF>"
// follows: the octet count POP3 reports (RFC 1939 counts CRLF line ends).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "wizmail/error.hpp"

namespace wizmail {

class DeliveryJournal;

enum class SyncMode {
  fsync_each,  // fsync every file / every distinct folder (precise, the default)
  syncfs,      // one syncfs() per phase and filesystem: cheapest for large
               // batches on a filesystem that holds little else
};

// One durability step of a BatchSyncer / DeliveryBatch, reported to an
// observer before it is done (tests check the order: data synced, then the
// names published, then the folders synced).
struct DurabilityEvent {
  enum class Kind {
    file_fsync,   // fsync(2) of one staged file (SyncMode::fsync_each)
    data_syncfs,  // syncfs(2) of one filesystem holding staged files (SyncMode::syncfs)
    publish,      // a message gets its name in a new/ folder (link, or synced copy)
    dir_fsync,    // fsync(2) of one folder (SyncMode::fsync_each)
    dir_syncfs,   // syncfs(2) of one filesystem holding folders (SyncMode::syncfs)
  };
  Kind kind = Kind::file_fsync;
  // The file (empty when added by fd alone), the folder, the published name
  // in new/; for the syncfs kinds the first file/folder on that filesystem.
  std::filesystem::path path;
  // st_dev of the filesystem a *_syncfs event flushes (0 for the others).
  std::uint64_t device = 0;
};
// Called before each step. An error return makes the step fail as if the
// system call had (tests inject failures this way); ok lets it proceed.
using DurabilityObserver = std::function<Status(const DurabilityEvent&)>;

// One message being written into a tmp/ folder. Move-only; an unpublished
// message's tmp file is deleted by discard() or the destructor.
class StagedMessage {
 public:
  // Create "<tmp_dir>/<unique>.<host>" (mode 0600, O_EXCL).
  static Result<StagedMessage> create(const std::filesystem::path& tmp_dir);
  // A finished message in `tmp_dir`: `prefix`, then `source`'s octets from
  // `skip` on, copied through a fixed buffer (never the whole message in
  // memory). The per-recipient copy of final delivery (final_headers()).
  static Result<StagedMessage> create_copy(const std::filesystem::path& tmp_dir, std::string_view prefix,
                                           const StagedMessage& source, std::uint64_t skip = 0);

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
  // The size with every bare LF counted as CR LF: what POP3 LIST reports.
  std::uint64_t wire_size() const noexcept;
  int fd() const noexcept;
  const std::filesystem::path& tmp_path() const noexcept;
  // The name the message gets in new/: "<unique>.<host>,S=<size>", plus
  // ",W=<wire_size>" when that differs.
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

// Collects files and folders to sync, and syncs each once. In syncfs mode,
// one syncfs() per distinct filesystem (st_dev) among the files / folders, so
// a batch that spans filesystems (a mailbox or the queue on another one, a
// symlinked account folder) is durable everywhere.
class BatchSyncer {
 public:
  explicit BatchSyncer(SyncMode mode = SyncMode::fsync_each) : mode_(mode) {}
  // The fd must stay open until sync_files() returned. `path` only names the
  // file in errors and observer events.
  void add_file(int fd, std::filesystem::path path = {});
  void add_dir(const std::filesystem::path& dir);  // duplicates are synced once
  Status sync_files();
  Status sync_dirs();
  void clear();
  std::size_t dir_count() const noexcept { return dirs_.size(); }
  // See DurabilityEvent. Empty: none (the default).
  void set_observer(DurabilityObserver observer) { observer_ = std::move(observer); }

 private:
  Status notify(DurabilityEvent::Kind kind, const std::filesystem::path& path,
                std::uint64_t device = 0) const;

  SyncMode mode_;
  std::vector<std::pair<int, std::filesystem::path>> files_;
  std::vector<std::filesystem::path> dirs_;
  DurabilityObserver observer_;
};

class DeliveryBatch {
 public:
  explicit DeliveryBatch(SyncMode mode = SyncMode::fsync_each) : mode_(mode) {}
  ~DeliveryBatch();
  DeliveryBatch(DeliveryBatch&&) = delete;

  // Add a finished message and the Maildir folders (account folders) it goes
  // to. Returns its index for results(). A maildir listed twice gets one copy.
  // `data_shared`: something else (a queue entry) links the staged file and
  // relies on commit() syncing its data, so the journal must not take it.
  std::size_t add(StagedMessage&& msg, std::vector<std::filesystem::path> maildirs,
                  bool data_shared = false);

  // With a journal, commit() records the messages that fit (not data_shared,
  // at most journal->max_message() octets) in it with one flush, instead of
  // syncing their files before and their new/ folders after the links;
  // the others, or all when the journal has no room, go the classic way.
  // See store/delivery_journal.hpp. The journal must outlive commit().
  void set_journal(DeliveryJournal* journal) noexcept { journal_ = journal; }

  // Sync, publish, sync folders, count. Afterwards each recipient's result is
  // final: ok means durable in new/ (the path), an error means not delivered
  // (nothing left in its new/). Returns an error when the batch as a whole
  // failed (the data or folder sync); then every result is that error.
  // Commit may be called once.
  Status commit();

  // commit() in its phases, for a caller that makes several kinds of entry
  // durable with one BatchSyncer (the commit pipeline, server/delivery_target.hpp);
  // commit() is exactly these with a syncer of its own:
  //   files_to_sync(s)  the journal takes what fits (its one flush, here);
  //                     every other file is added to `s`
  //   publish(data)     `data`: the result of syncing those files (an error
  //                     fails the classic entries, the journaled ones still
  //                     get their names); links every entry into its new/
  //   dirs_to_sync(s)   the new/ folders of the classic entries published
  //   dirs_synced(st)   `st`: the result of syncing them; an error takes the
  //                     classic names back and fails them. Returns `st`.
  // Then tidy() (or defer_tidy()), withdraw() and results() as after commit().
  Status files_to_sync(BatchSyncer& syncer);
  void publish(const Status& data);
  void dirs_to_sync(BatchSyncer& syncer) const;
  Status dirs_synced(const Status& st);

  // Leave commit()'s last step — per-mailbox statistics, removing the tmp/
  // names — to tidy(), for a caller that answers its clients first (the
  // commit pipeline). Neither changes a result.
  void defer_tidy() noexcept { defer_tidy_ = true; }
  void tidy();

  // After commit(): take back every copy of the given entries, for messages
  // whose client is told 4xx after all (it will retry; a copy left behind
  // would be a duplicate). Their names in new/ are removed, and durably so
  // before this returns: a journaled entry's record is checkpointed
  // (DeliveryJournal::settle; recovery never replays it), the new/ folders
  // of the others are synced. Their results become errors (so a later
  // tidy() does not count them: use defer_tidy()). An error return means a
  // crash could still bring a copy back.
  Status withdraw(std::span<const std::size_t> indexes);

  std::size_t size() const noexcept { return entries_.size(); }
  // Whether commit() / files_to_sync() recorded the entry in the journal.
  bool journaled(std::size_t index) const noexcept {
    return index < entries_.size() && entries_[index].journaled;
  }
  std::span<const Result<std::filesystem::path>> results(std::size_t index) const;
  // Sees every sync and publish step of commit() (see DurabilityEvent).
  void set_observer(DurabilityObserver observer) { observer_ = std::move(observer); }

 private:
  struct Entry {
    StagedMessage msg;
    std::vector<std::filesystem::path> maildirs;
    std::vector<Result<std::filesystem::path>> results;
    bool shared = false;
    bool journaled = false;
  };
  void close_ticket() noexcept;
  void fail_classic(const Error& err);
  bool has_journaled() const noexcept;

  SyncMode mode_;
  DeliveryJournal* journal_ = nullptr;
  std::uint64_t journal_first_ = 0;
  std::uint64_t journal_last_ = 0;  // the batch's last journal record (0: none)
  bool ticket_open_ = false;        // appended, applied() not yet called
  bool committed_ = false;
  bool defer_tidy_ = false;
  bool tidied_ = false;
  std::vector<Entry> entries_;
  DurabilityObserver observer_;
};

// Deliver `data` durably to every maildir (staged in the first one whose tmp/
// accepts it), as it is: the caller adds final_headers() (below).
// One result per maildir, in order.
std::vector<Result<std::filesystem::path>> deliver(
    std::span<const std::filesystem::path> maildirs, std::string_view data,
    SyncMode mode = SyncMode::fsync_each);

// Final delivery records the envelope, as Postfix local(8)/virtual(8) and
// Dovecot's LDA do: every copy stored in a Maildir starts with
//   Return-Path: <sender>          ("<>" for the null sender; RFC 5321 §4.4)
//   Delivered-To: recipient        (the address the copy was delivered to)
// and a Return-Path the message arrived with is dropped (only final delivery
// writes one; Postfix's cleanup drops it too). Copies for different
// recipients therefore differ: only copies for one recipient share a file.
// Control characters in either value are dropped.
std::string final_headers(std::string_view sender, std::string_view recipient);
// `message` without the Return-Path fields of its header section.
std::string without_return_path(std::string_view message);
// deliver() of one final copy: final_headers() + without_return_path(message).
Result<std::filesystem::path> deliver_final(const std::filesystem::path& maildir, std::string_view sender,
                                            std::string_view recipient, std::string_view message,
                                            SyncMode mode = SyncMode::fsync_each);

// Streams a message through, dropping every Return-Path field (with its
// continuation lines) from the header section; chunks may be cut anywhere
// (a field name split across chunks is held back until it is known). After
// the header section everything passes through in the caller's spans.
class ReturnPathFilter {
 public:
  // `emit(std::string_view) -> Status` gets what passes, in order.
  template <class Emit>
  Status feed(std::string_view in, Emit&& emit);
  // At the end of the message: what is still held back (a header line
  // cut short without a line end).
  template <class Emit>
  Status finish(Emit&& emit) {
    if (name_.empty()) return {};
    std::string held = std::move(name_);
    name_.clear();
    st_ = St::keep;
    return emit(std::string_view(held));
  }
  bool in_body() const noexcept { return st_ == St::body; }

 private:
  enum class St : std::uint8_t { line_start, name, keep, drop, body };
  enum class Verdict : std::uint8_t { undecided, keep, drop };
  static Verdict classify(std::string_view name) noexcept;
  St st_ = St::line_start;
  bool dropping_ = false;  // the field whose continuation lines follow is dropped
  std::string name_;       // held-back start of a header line
};

template <class Emit>
Status ReturnPathFilter::feed(std::string_view in, Emit&& emit) {
  if (st_ == St::body) return in.empty() ? Status{} : emit(in);
  const std::size_t n = in.size();
  std::size_t i = 0, pass = 0;  // [pass, i) passes
  auto flush = [&](std::size_t upto) -> Status {
    std::size_t from = pass;
    pass = upto;
    return upto > from ? emit(in.substr(from, upto - from)) : Status{};
  };
  while (i < n) {
    switch (st_) {
      case St::body:
        return flush(n);
      case St::line_start: {
        const char c = in[i];
        if (c == ' ' || c == '\t') {  // a continuation line
          st_ = dropping_ ? St::drop : St::keep;
          if (dropping_)
            if (auto st = flush(i); !st) return st;
        } else if (c == '\r' || c == '\n') {
          st_ = St::body;  // the empty line ends the header section
        } else {
          if (auto st = flush(i); !st) return st;
          st_ = St::name;
        }
        break;
      }
      case St::name: {
        const char c = in[i++];
        pass = i;  // held in name_ until decided
        name_ += c;
        const Verdict v = classify(name_);
        if (v == Verdict::drop) {
          name_.clear();
          dropping_ = true;
          st_ = St::drop;
        } else if (v == Verdict::keep) {
          dropping_ = false;
          st_ = c == '\n' ? St::line_start : St::keep;
          std::string held = std::move(name_);
          name_.clear();
          if (auto st = emit(std::string_view(held)); !st) return st;
        }
        break;
      }
      case St::keep:
      case St::drop: {
        const auto nl = in.find('\n', i);
        i = nl == std::string_view::npos ? n : nl + 1;
        if (nl != std::string_view::npos) {
          if (st_ == St::drop) pass = i;
          st_ = St::line_start;
        } else if (st_ == St::drop) {
          pass = i;
        }
        break;
      }
    }
  }
  if (st_ == St::name) return {};
  return flush(n);
}

}  // namespace wizmail
