// Private: the local delivery agent (SPEC §7–8). Accounts that need more than
// a Maildir copy — a mailing list, or an account with exec.def, forward.def
// or reply.def — get their copy committed durably into a spool (a RelayQueue
// at <home>/var/spool/agent, staged and published in the same group-commit
// round as everything else, so the 250 still means durable). Worker threads
// (never an I/O or commit thread) take spool entries and, per recipient
// account, run the hooks in the manual's order (exec.def, exec2.def …,
// forward.def, reply.def), then store the copy or distribute the list post.
// A recipient is marked done in the entry when finished, so a crash redoes
// only unfinished recipients (at-least-once for those); temporary failures
// are retried with back-off.
//
// application_cooperation_wait_for_apl_end=1: hooks run one after the other,
// each waited for (killed at application_cooperation_timeout); then the
// MAILFILE_PATH file — possibly rewritten, or removed to drop the message —
// is what gets stored or distributed. =0: the copy is stored (distributed)
// first, then the hooks are started and not waited for; their working file
// lives until the last of them exits.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent/child_runner.hpp"
#include "store/local_target.hpp"
#include "wizmail/config.hpp"
#include "wizmail/relay.hpp"
#include "wizmail/queue.hpp"

namespace wizmail::state {
class SharedState;
}

namespace wizmail::agent {

// A spool recipient is "<account>/<address>" (an account name holds no '/').
std::string encode_recipient(std::string_view account, std::string_view address);
std::pair<std::string, std::string> decode_recipient(std::string_view rcpt);

class LocalAgent {
 public:
  using ConfigFn = std::function<std::shared_ptr<const Config>()>;
  using LogFn = std::function<void(const std::string&)>;
  struct Options {
    unsigned threads = 2;
    std::chrono::milliseconds retry_base{30000};
    std::chrono::seconds give_up_after{86400};
    // RFC 3834 §2: one auto-reply per sender and account within this time.
    std::chrono::seconds reply_interval{86400};
    // The cluster's shared state (redis_url; docs/cluster.md): list post
    // numbers and the auto-reply record live there. Null: ml.def's count
    // and the account's .autoreply file alone (a single node).
    std::shared_ptr<state::SharedState> shared;
    // A node of a shared home: whether its lease holds (its heartbeat is
    // fresh). While false the agent takes no entry and stops between
    // recipients. Empty: always.
    std::function<bool()> lease_valid;
  };

  LocalAgent(ConfigFn config, LogFn log);
  LocalAgent(ConfigFn config, LogFn log, Options options);
  ~LocalAgent();
  LocalAgent(const LocalAgent&) = delete;
  LocalAgent& operator=(const LocalAgent&) = delete;

  // The spool is the home's, shared by the nodes of a shared home: each
  // claims entries into its own claims/<node>/ (RelayQueue; docs/cluster.md)
  // and a live node takes a dead one's over. A node's working files are its
  // own, under nodes/<node>/.
  static std::filesystem::path spool_dir(const Config& c) { return c.home / "var" / "spool" / "agent"; }
  static std::filesystem::path work_dir(const Config& c) {
    return (c.node.empty() ? c.home / "var" / "spool" : c.node_dir() / "spool") / "agent-work";
  }

  // Create and recover the spool, clear stale working files, start workers.
  Status start();
  // Stop taking entries; hooks still running get `grace`, then are killed
  // (their recipients stay pending for the next start). Idempotent.
  void stop(std::chrono::milliseconds grace = std::chrono::seconds(5));

  // Whether mail for this account folder goes through the agent (cached per
  // folder, revalidated by the folder's mtime).
  bool needs_agent(const std::filesystem::path& account_dir);
  // Commit-pipeline glue: move the local targets whose account needs the
  // agent out of `targets`, returning their spool recipients; `dsn` gets
  // each one's RFC 3461 request, in the same order.
  std::vector<std::string> take(std::vector<store::LocalTarget>& targets, std::vector<DsnRequest>& dsn);

  const RelayQueue& spool() const noexcept { return spool_; }
  // New entries are in the spool: look now.
  void notify();
  // Called after list copies for remote members were queued in resendmail/.
  void set_relay_notify(std::function<void()> fn);

  // Counters the server reports (ServerStats::hook_runs/hook_failures):
  // hooks started, and hooks that could not start, exited non-zero, died
  // of a signal or were killed at their timeout. Before start().
  void set_counters(std::atomic<std::uint64_t>* runs, std::atomic<std::uint64_t>* failures) {
    runs_ = runs;
    failures_ = failures;
  }

  // Entries waiting or in progress (tests).
  std::size_t backlog() const;

 private:
  enum class Outcome { done, retry, failed };
  struct Result1 {
    Outcome outcome = Outcome::done;
    std::string text;
    bool delivered = false;  // done, and the copy was stored (or the list post distributed)
  };
  void worker();
  void process(const std::string& id);
  bool lease_ok() const { return !opt_.lease_valid || opt_.lease_valid(); }
  // A node's claim on `id` gone (another node took this one for dead):
  // logged; the entry is left to the node that has it.
  bool lost(const std::string& id) const;
  // Entries an earlier version kept in nodes/<node>/spool/agent: moved into
  // the shared spool at start (only this node ever used that folder).
  Status adopt_old_node_spool();
  Result1 deliver_one(const QueueEntry& e, const std::string& rcpt);
  // `rcpt`: the spool recipient of `e` being delivered (for its notices).
  Result1 store_copy(const Config& cfg, const QueueEntry& e, const std::string& rcpt, const std::string& account,
                     const std::string& address, const std::filesystem::path& dir, std::string_view content,
                     bool is_list);
  Result1 distribute(const Config& cfg, const QueueEntry& e, const std::string& rcpt, const std::string& account,
                     std::string_view content);
  Status check_quota(const Config& cfg, const std::string& account, const std::filesystem::path& dir,
                     std::uint64_t size);
  // An RFC 3464 notice to `to` (nothing for the null sender) about entry `e`.
  // `about` is the spool recipient of `e` the notice reports on when it goes
  // to e's sender (empty: another envelope, e.g. a list's): its RFC 3461
  // request is honoured — no failure notice unless NOTIFY allows it, its
  // ORCPT, e's ENVID, RET=FULL.
  void notify_sender(const Config& cfg, const QueueEntry& e, const std::string& to,
                     std::vector<DsnRecipient> reports, std::string headers, const std::string& label,
                     std::string_view about = {});
  void wake_relay();

  ConfigFn config_;
  LogFn log_;
  Options opt_;
  RelayQueue spool_;
  std::filesystem::path work_;
  std::filesystem::path home_;
  std::unique_ptr<ChildRunner> runner_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t seq_ = 0;
  bool stop_ = false;
  std::atomic<bool> stopping_{false};
  std::set<std::string> busy_;
  std::set<std::string> broken_;
  std::vector<std::thread> threads_;
  std::function<void()> relay_notify_;
  std::atomic<std::uint64_t>* runs_ = nullptr;
  std::atomic<std::uint64_t>* failures_ = nullptr;

  std::mutex cache_mu_;
  struct CacheEntry {
    std::int64_t sec = 0, nsec = 0;
    bool needs = false;
  };
  std::map<std::string, CacheEntry> cache_;
};

}  // namespace wizmail::agent
