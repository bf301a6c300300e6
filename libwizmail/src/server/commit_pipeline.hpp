// Group commit (SPEC §3): messages whose data has been written (not synced)
// are handed over by the I/O threads; one commit thread takes every message
// ready at that moment and makes the whole batch durable with one round of
// syncs — files, links into new/, folders, queue entries — then completes
// each message. No reply leaves before its batch is durable, and no fsync
// ever runs on an I/O thread. The destinations — Maildir, relay queue,
// delivery agent spool — are delivery targets (server/delivery_target.hpp)
// run phase by phase over the whole batch.
#pragma once

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "srs/srs.hpp"
#include "store/local_target.hpp"
#include "wizmail/account_store.hpp"
#include "store/delivery_journal.hpp"
#include "store/maildir_delivery.hpp"
#include "wizmail/relay.hpp"
#include "wizmail/queue.hpp"
#include "wizmail/server.hpp"

namespace wizmail::agent {
class LocalAgent;
}
namespace wizmail::smtp {
struct Transaction;
}

namespace wizmail::server {

class Logger;

using store::LocalTarget;

// A success notice asked for (RFC 3461 NOTIFY=SUCCESS): the report line and
// the account folder it depends on (empty: none, e.g. "expanded"). A copy
// the delivery agent takes (lists, hooks) is reported by the agent when it
// is stored, not here.
struct SuccessReport {
  DsnRecipient report;
  std::filesystem::path dir;
  // The CommitJob::locals entry it reports on (a delivery callback may
  // refuse that copy); npos: none (a notice for an alias's expansion).
  std::size_t local = static_cast<std::size_t>(-1);
};

struct CommitJob {
  StagedMessage message;  // finished (write()s done, not synced)
  std::vector<LocalTarget> locals;
  QueueEnvelope remote;   // recipients empty = nothing to relay
  std::string sender;
  std::string client_ip;
  std::string auth_user;
  // Called on the commit thread: the queue id (message id) or why not.
  std::move_only_function<void(Result<std::string>)> done;
  // The staged file starts with this many octets of final headers
  // (final_headers() of `sender` and locals.front()): it is that
  // recipient's Maildir copy as it is. 0: the message as received, and
  // every local copy is written with its own headers at commit.
  std::uint64_t final_headers_len = 0;
  // RFC 3461: the recipients whose sender asked for a success notice
  // ("delivered", "expanded"), sent once the message is durable, before
  // the reply; RET, the envelope id and SMTPUTF8 of the message (for these
  // notices and the delivery agent's spool entry).
  std::vector<SuccessReport> success{};
  DsnRet ret = DsnRet::unspecified;
  std::string envid{};
  bool smtputf8 = false;
};

// The job for a session's finished transaction (SMTP listeners and the
// submit socket alike): local targets, the queue envelope of the remote
// ones with their DSN requests, and the success notices asked for.
CommitJob make_commit_job(StagedMessage message, const smtp::Transaction& txn,
                          const std::filesystem::path& mailbox_dir, std::string client_ip,
                          std::string auth_user);

// SRS (smtpenv srs=1, libwizmail/src/srs/srs.hpp): the envelope sender the
// queue entry of `txn`'s remote recipients leaves with, when that is not the
// client's own sender. A message is forwarded when it came in on the local
// submit socket (forward.def hooks call wizmail-sendmail) or a remote
// recipient is an alias target; then a sender that is neither null nor at
// a local domain (`local_domains`: lower-case ASCII) nor at `srs_domain` is
// rewritten. One queue entry holds a message's remote recipients, so the
// rewritten sender is also the one of a recipient the client named itself
// in the same transaction (its bounce still reaches the sender, reversed).
// nullopt: the sender stays; an Error: it cannot be rewritten (no domain).
Result<std::optional<std::string>> srs_forward_sender(const srs::Rewriter& rewriter, std::string_view srs_domain,
                                                      const std::vector<std::string>& local_domains,
                                                      const smtp::Transaction& txn, bool local_submit,
                                                      std::int64_t now);

struct PipelineStats {
  std::atomic<std::uint64_t> delivered{0};
  std::atomic<std::uint64_t> relayed{0};
  std::atomic<std::uint64_t> batches{0};
};

using CallbackList = std::vector<std::pair<CallbackId, DeliveryCallback>>;

class CommitPipeline {
 public:
  // `threads` commit threads: each takes every job pending when it is free,
  // so while one batch waits for the disk the next one gathers and starts
  // (concurrent flushes overlap on the device). A new job wakes one idle
  // thread (the last to go idle, its cache still warm) and the others sleep
  // on: a lone client costs one wake-up per message, not one per thread.
  CommitPipeline(AccountStore store, RelayQueue queue, SyncMode mode, Logger& log,
                 PipelineStats& stats, unsigned threads = 4);
  ~CommitPipeline();

  void start();
  // Finish everything submitted, then stop the thread.
  void stop();
  void submit(CommitJob job);
  // Commit `job` on the calling thread, now, if no job is waiting for a
  // commit thread (nothing to batch it with); false (job untouched)
  // otherwise. For a session alone on its thread: the two hand-overs
  // between threads cost more than the flush it waits for anyway.
  bool commit_here(CommitJob& job);
  void set_callbacks(std::shared_ptr<const CallbackList> cbs);
  // Whether a copy for this account folder goes straight into its Maildir
  // (no delivery callbacks, no list or hooks): then a session may stage it
  // with its final headers (server/staging.hpp). Any thread.
  bool plain_delivery(const std::filesystem::path& account_dir);
  // Before start(): copies for accounts that need the delivery agent (lists,
  // hooks) are committed into its spool instead of their Maildir.
  void set_agent(agent::LocalAgent* agent) { agent_ = agent; }
  // Before start(): called on a commit thread each time a message's queue
  // entry became durable (wakes the outbound queue runner).
  void set_relay_notify(std::function<void()> notify) { relay_notify_ = std::move(notify); }
  // Before start(): sends a success notice (CommitJob::success), or a
  // failure notice for the recipients a delivery callback refused with 5xx
  // while others were delivered (DeliveryDecision::reject), for a
  // committed message; called on a commit thread before its reply. The
  // DsnInput has the recipients, sender, envelope id, id, arrival and
  // headers; the callee adds who reports and routes it.
  void set_notices(std::function<void(DsnInput, bool smtputf8)> fn) { notices_ = std::move(fn); }
  // Before start(): commit small local-only messages through the delivery
  // journal `file` (store/delivery_journal.hpp), replaying it now.
  Result<DeliveryJournal::RecoveryReport> use_journal(const std::filesystem::path& file);
  // The journal in use (null: none). POP3 settles it before removing mail.
  DeliveryJournal* journal() const noexcept { return journal_.get(); }

 private:
  struct Waiter {
    std::condition_variable cv;
    bool woken = false;
  };
  void run(Waiter& me);
  // commit_batch(), answering every job with an error if it throws.
  void process(std::vector<CommitJob>& batch) noexcept;
  void commit_batch(std::vector<CommitJob>& jobs);
  // Call job.done once (later calls do nothing); never throws.
  static void complete(CommitJob& job, Result<std::string> result) noexcept;

  AccountStore store_;
  RelayQueue queue_;
  SyncMode mode_;
  Logger& log_;
  PipelineStats& stats_;
  std::mutex mu_;
  std::vector<CommitJob> pending_;
  // One per thread, owned here so a notify after unlocking never reaches a
  // finished thread's; idle_ = those waiting now (under mu_).
  std::vector<std::unique_ptr<Waiter>> waiters_;
  std::vector<Waiter*> idle_;
  std::shared_ptr<const CallbackList> callbacks_;
  std::atomic<bool> has_callbacks_{false};
  bool stop_ = false;
  unsigned nthreads_;
  std::vector<std::thread> threads_;
  agent::LocalAgent* agent_ = nullptr;
  std::function<void()> relay_notify_;
  std::function<void(DsnInput, bool)> notices_;
  std::unique_ptr<DeliveryJournal> journal_;
};

}  // namespace wizmail::server
