// The retry-queue runner (wizmail::Relay). Everything below runs on the
// runner's own io_context thread, so its state needs no lock; route look-ups
// run on a small worker pool (c-ares, blocking) and come back to that thread.
//
// One round for a message: claim it (incoming|deferred → active), split its
// pending recipients by destination (the recipient domain, or one group for
// the smart host), hand each group to that destination's queue. A
// destination has at most outbound_max_per_destination sessions (and all
// of them outbound_max_connections), each delivering
// group after group over one connection. When every group of a message is
// done the message is finished: bounce what failed (once, in this round),
// then remove it, or save it with its next attempt time and move it to
// deferred/. A recipient's result is saved (fsynced) right after its
// transaction, so a 250 is never followed by a second delivery; a crash
// between the peer's 250 and that save can duplicate, as RFC 5321 §6.1
// accepts. When that transaction finished the message (nothing pending,
// nothing to report) the removal is the record instead: the envelope is
// renamed out of active/ at once (RelayQueue::retire; a killed process
// cannot undo that), and the rest is left to the disk threads: unlinking
// its files (with online discard an unlink waits for the device) and the
// folder's fsync, one for every removal since the last (group commit) —
// only an OS crash in that moment can resend. The
// claim (incoming|deferred → active) and the move back to deferred/ are
// not flushed either: an envelope found in active/ after a crash goes back
// to incoming/ (RelayQueue::recover), and a deferred entry's content was
// saved durably before its move.
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/thread_pool.hpp>
#include <asio/use_awaitable.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "dkim/dkim.hpp"
#include "mime/message_head.hpp"
#include "net/tls.hpp"
#include "outbound/notice.hpp"
#include "outbound/smtp_client.hpp"
#include "util/fs.hpp"
#include "util/idna.hpp"
#include "util/strings.hpp"
#include "util/utf8.hpp"
#include "wizmail/account_store.hpp"
#include "store/maildir_delivery.hpp"
#include "wizmail/relay.hpp"

// g++ 12 reports a false -Wmismatched-new-delete for some coroutine frames
// (Asio's awaitable_frame_base defines both its operator new and delete,
// so they always match): silence it for this file only.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace wizmail {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using outbound::SmtpClient;

namespace {

std::int64_t unix_now() {
  using namespace std::chrono;
  return duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
}

std::string domain_of(std::string_view address) {
  auto at = address.rfind('@');
  if (at == std::string_view::npos) return {};
  return util::to_lower(address.substr(at + 1));
}

bool has_eight_bit(const fs::path& file) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[65536];
  bool found = false;
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (ssize_t i = 0; i < n && !found; ++i)
      if (static_cast<unsigned char>(buf[i]) >= 0x80) found = true;
    if (found) break;
  }
  ::close(fd);
  return found;
}

// The report line of one recipient.
DsnRecipient report(const QueueRecipient& r, DsnAction action, std::string status, std::string host,
                    std::string text, int code) {
  DsnRecipient d;
  d.address = r.address;
  d.status = std::move(status);
  d.remote_mta = std::move(host);
  d.diagnostic = std::move(text);
  d.smtp_code = code;
  d.action = action;
  d.original_recipient = r.dsn.orcpt;
  return d;
}

// An address as a peer without SMTPUTF8 can take it: the domain in its
// A-label form; nullopt when the local part itself is UTF-8.
std::optional<std::string> ascii_address(std::string_view address) {
  auto at = address.rfind('@');
  if (!util::is_ascii(address.substr(0, at == std::string_view::npos ? address.size() : at))) return std::nullopt;
  auto a = util::address_domain_to_ascii(address);
  if (!a) return std::nullopt;
  return *a;
}

// How a transaction's session was protected, for the delivery log: "TLS
// TLSv1.3 with cipher … (256/256 bits), verified, peer CN=mx.example" or
// "no TLS".
std::string tls_note(const SmtpClient& c) {
  if (!c.is_tls()) return "no TLS";
  using Trust = SmtpClient::Verification::Trust;
  const auto v = c.tls_verification();
  return util::cat("TLS ", c.tls_summary(), ", ",
                   v.trust == Trust::verified ? "verified" : v.trust == Trust::trusted ? "trusted, name not verified"
                                                                                     : "untrusted",
                   ", peer CN=", c.peer_common_name());
}

// An enhanced status code at the start of `text` ("4.7.4 TLS is
// required…", "451 4.7.4 …"), or "".
std::string leading_enhanced(std::string_view text) {
  if (text.size() > 4 && text[3] == ' ' && std::isdigit(static_cast<unsigned char>(text[0]))) text.remove_prefix(4);
  std::size_t i = 0;
  auto digits = [&](std::size_t max) {
    std::size_t n = 0;
    while (i < text.size() && n < max && std::isdigit(static_cast<unsigned char>(text[i]))) ++i, ++n;
    return n > 0;
  };
  if (text.empty() || (text[0] != '2' && text[0] != '4' && text[0] != '5')) return {};
  i = 1;
  if (i >= text.size() || text[i++] != '.' || !digits(3) || i >= text.size() || text[i++] != '.' || !digits(3))
    return {};
  if (i < text.size() && text[i] != ' ') return {};
  return std::string(text.substr(0, i));
}

}  // namespace

std::chrono::milliseconds retry_delay(std::chrono::milliseconds base, int attempts) {
  if (base.count() <= 0) base = 1ms;
  auto cap = std::max<std::chrono::milliseconds>(base, 1h);
  auto d = base;
  for (int i = 1; i < attempts && d < cap; ++i) d *= 2;
  return std::min(d, cap);
}

struct Relay::Impl {
  Impl(std::shared_ptr<const Config> cfg, RelayOptions o)
      : opt(std::move(o)), config(std::move(cfg)), queue(config->queue_dir(), config->node), scan_timer(io),
        stop_timer(io) {}

  // --- fixed
  RelayOptions opt;
  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread thread;
  asio::thread_pool dns_pool{2};
  // Finished entries' files deleted, and fsyncs of active/ after their
  // retirement (Sync::later), coalesced: a request while one is queued
  // rides on it.
  asio::thread_pool disk_pool{2};
  std::atomic<bool> active_sync_queued{false};
  void remove_later(const std::string& id) {
    asio::post(disk_pool, [this, id] {
      if (auto st = queue.purge_retired(id); !st) log("relay: " + st.error().message);
    });
    if (active_sync_queued.exchange(true)) return;
    asio::post(disk_pool, [this] {
      active_sync_queued = false;
      if (auto st = util::fsync_dir(queue.state_dir(QueueState::active)); !st) log("relay: " + st.error().message);
    });
  }
  net::TlsContextPtr tls;

  mutable std::mutex cfg_mu;
  std::shared_ptr<const Config> config;
  std::shared_ptr<const Config> cfg() const {
    std::lock_guard lk(cfg_mu);
    return config;
  }
  // The home's DKIM keys, read at create() and at each set_config (reload),
  // never per message.
  std::shared_ptr<const dkim::KeyRing> dkim_keys;
  std::shared_ptr<const dkim::KeyRing> keyring() const {
    std::lock_guard lk(cfg_mu);
    return dkim_keys;
  }
  std::shared_ptr<const dkim::KeyRing> load_keys(const Config& c) const {
    auto ring = std::make_shared<dkim::KeyRing>(dkim::KeyRing::load(c.home));
    for (const auto& p : ring->problems()) log("relay: " + p);
    return ring;
  }

  RelayQueue queue;
  asio::steady_timer scan_timer;
  asio::steady_timer stop_timer;

  std::atomic<bool> scan_posted{false};
  std::atomic<std::uint64_t> n_delivered{0}, n_deferred{0}, n_failed{0}, n_bounces{0}, n_connections{0},
      n_in_flight{0};

  // --- runner thread only
  struct Claimed {
    QueueEntry entry;
    int outstanding = 0;  // destination groups not yet done
    bool eight_bit = false;
    bool utf8_headers = false;           // SMTPUTF8 message with UTF-8 header fields
    bool attempted = false;
    std::string dkim_signature;          // sent in front of the message; empty = unsigned
    std::vector<DsnRecipient> failures;  // failed in this round
    std::vector<DsnRecipient> relayed;   // to a peer without DSN, NOTIFY=SUCCESS (RFC 3461 §5.2.2)
  };
  std::map<std::string, Claimed> claimed;
  struct Work {
    std::string id;
    std::vector<std::size_t> rcpts;  // indexes into entry.recipients
  };
  struct Destination {
    std::deque<Work> queue;
    std::size_t workers = 0;
    std::size_t busy = 0;  // workers with a group in hand; the others are about to take one
  };
  std::map<std::string, Destination> dests;
  std::size_t workers_total = 0;
  std::set<std::shared_ptr<SmtpClient>> live;
  bool started = false, stopping = false, flush_requested = false, stop_finished = false;
  std::vector<std::function<void()>> stop_done;

  void log(const std::string& line) const {
    if (opt.log) opt.log(line);
  }
  bool lease_valid() const { return !opt.lease_valid || opt.lease_valid(); }
  // A node's claim on `id` gone (adopted by another node that took this
  // one for dead): logged, and the entry is left alone.
  bool lost(const std::string& id) const {
    if (queue.node().empty() || queue.holds(id)) return false;
    log("relay: " + id + ": no longer claimed by this node (taken over by another node); left to it");
    return true;
  }
  std::string hostname() const { return opt.hostname.empty() ? cfg()->server.domain : opt.hostname; }
  std::chrono::milliseconds scan_interval() const {
    if (opt.scan_interval.count() > 0) return opt.scan_interval;
    return std::chrono::seconds(std::max(cfg()->smtp.resend_scan_interval, 1));
  }
  std::chrono::milliseconds retry_base() const {
    if (opt.retry_base.count() > 0) return opt.retry_base;
    return scan_interval();
  }
  std::chrono::milliseconds give_up_after() const {
    if (opt.give_up_after.count() > 0) return opt.give_up_after;
    return std::chrono::minutes(std::max(cfg()->smtp.resend_timeout, 1));
  }

  void scan();
  void schedule_scan();
  void claim(const std::string& id);
  void ensure_workers();
  asio::awaitable<void> worker(std::string key);
  asio::awaitable<Result<std::shared_ptr<SmtpClient>>> open_session(const std::vector<Hop>& hops, TlsLevel level);
  // The client context that trusts smtp_tls_ca_file (made at create() and
  // on reload when the file name changed), or null and why not.
  net::TlsContextPtr ca_context;
  std::string ca_file, ca_error;
  std::pair<net::TlsContextPtr, std::string> ca_tls() const {
    std::lock_guard lk(cfg_mu);
    return {ca_context, ca_error};
  }
  // Called with cfg_mu held or before the runner starts.
  void load_ca(const Config& c) {
    if (c.smtp.smtp_tls_ca_file == ca_file && (ca_context || !ca_error.empty())) return;
    ca_file = c.smtp.smtp_tls_ca_file;
    ca_context.reset();
    ca_error.clear();
    auto ctx = net::make_client_tls_context(false);
    if (!ctx) {
      ca_error = ctx.error().message;
      return;
    }
    std::error_code ec;
    (*ctx)->load_verify_file(ca_file, ec);
    if (ec) {
      ca_error = util::cat(ca_file, ": ", ec.message());
      log("relay: smtp_tls_ca_file " + ca_error + ": outbound TLS certificates cannot be verified");
      return;
    }
    ca_context = std::move(*ctx);
  }
  void apply(Work& w, const Result<outbound::TransactionResult>& tr, const std::string& host, bool peer_dsn,
             const std::string& tls = {});
  void record(Claimed& c, std::size_t idx, RecipientState st, const std::string& text, int code,
              const std::string& enhanced, const std::string& host, bool peer_dsn = true,
              const std::string& tls = {});
  void fail_work(Work& w, const Error& why, const std::string& host);
  void done_with(const std::string& id);
  void finish(const std::string& id);
  void bounce(const QueueEntry& e, const std::vector<DsnRecipient>& failures, bool timed_out);
  // A notice to the sender of `e` (failure, delay or "relayed"): RET=FULL
  // returns the message when a recipient failed and it is small enough.
  void notify_sender(const QueueEntry& e, std::vector<DsnRecipient> rcpts, bool timed_out,
                     std::int64_t retry_until, std::string_view what);
  DsnInput sender_notice(const QueueEntry& e, std::vector<DsnRecipient> rcpts, bool timed_out,
                         std::int64_t retry_until) const;
  void route_notice(const QueueEntry& e, const std::string& to, const std::string& text, std::string_view what,
                    bool copy_to_postmaster = false, std::string_view postmaster_text = {});
  DsnInput notice_base(const QueueEntry& e, bool timed_out) const;
  void keep_dead(const QueueEntry& e);
  void check_stopped();
  std::string dkim_signature(const QueueEntry& e);
};

// The DKIM-Signature for a message leaving now, or "" (no key for its
// domains, or signing failed: then it goes unsigned and the log says why).
// The signing domain: the From: address's, else the envelope sender's
// (a list post's bounce address), else a list post's List-Post address's.
std::string Relay::Impl::dkim_signature(const QueueEntry& e) {
  auto ring = keyring();
  if (!ring || ring->size() == 0) return {};
  auto head = read_header_block(queue.message_path(e.id));
  if (!head) {
    log("relay: " + e.id + ": not DKIM-signed: " + head.error().message);
    return {};
  }
  mime::MessageHead h(*head);
  std::vector<std::string> domains = {domain_of(mime::extract_address(h.get("From"))), domain_of(e.sender)};
  if (h.has("List-Id")) domains.push_back(domain_of(mime::extract_address(h.get("List-Post"))));
  for (auto& d : domains) {
    if (d.empty()) continue;
    const dkim::Signer* signer = ring->find(util::domain_to_ascii(d).value_or(d));
    if (!signer) continue;
    auto sig = signer->sign_file(queue.message_path(e.id));
    if (!sig) {
      log("relay: " + e.id + ": DKIM signing for " + signer->domain() + " failed, sent unsigned: " +
          sig.error().message);
      return {};
    }
    log("relay: " + e.id + ": DKIM-signed d=" + signer->domain() + " s=" + signer->selector() + " (" +
        std::string(dkim::to_string(signer->algorithm())) + ")");
    return std::move(*sig);
  }
  return {};
}

void Relay::Impl::schedule_scan() {
  if (stopping) return;
  auto wait = scan_interval();
  if (auto next = queue.next_due(); next && *next) {
    auto delta = std::chrono::seconds(std::max<std::int64_t>(**next - unix_now(), 0));
    // A retry due before the next regular scan is taken on time.
    if (delta < wait) wait = std::max<std::chrono::milliseconds>(delta, 50ms);
  }
  scan_timer.expires_after(wait);
  scan_timer.async_wait([this](std::error_code ec) {
    if (!ec) scan();
  });
}

void Relay::Impl::scan() {
  if (stopping) return;
  if (!lease_valid()) {
    // A node whose heartbeat is stale may have been taken for dead: it
    // claims nothing until it beats again.
    schedule_scan();
    return;
  }
  std::vector<std::string> ids;
  if (flush_requested) {
    flush_requested = false;
    // Everything waiting, whatever its back-off (queue flush).
    ids = queue.due(std::numeric_limits<std::int64_t>::max()).value_or(std::vector<std::string>{});
  } else if (auto due = queue.due(unix_now())) {
    ids = std::move(*due);
  } else {
    log("relay: queue scan failed: " + due.error().message);
  }
  for (const auto& id : ids) {
    if (claimed.count(id)) continue;
    claim(id);
  }
  ensure_workers();
  schedule_scan();
}

void Relay::Impl::claim(const std::string& id) {
  // The rename is the claim: an admin's `queue delete` racing with us either
  // took the envelope first (then move fails) or finds it active.
  if (auto st = queue.move(id, QueueState::active, RelayQueue::Sync::later); !st) return;
  auto e = queue.load(id);
  if (!e) {
    log("relay: " + id + ": unreadable envelope, moved to corrupt/: " + e.error().message);
    auto from = queue.state_dir(QueueState::active) / id;
    ::rename(from.c_str(), (queue.dir() / "corrupt" / id).c_str());
    return;
  }
  Claimed c;
  c.entry = std::move(*e);
  c.eight_bit = has_eight_bit(queue.message_path(id));
  if (c.entry.smtputf8)
    if (auto h = read_header_block(queue.message_path(id))) c.utf8_headers = !util::is_ascii(*h);
  auto config = cfg();
  const bool smart = !config->smtp.smart_host.empty();
  std::map<std::string, std::vector<std::size_t>> groups;
  for (std::size_t i = 0; i < c.entry.recipients.size(); ++i) {
    const auto& r = c.entry.recipients[i];
    if (r.state != RecipientState::pending) continue;
    // U-label domains are looked up (and grouped) in their A-label form.
    std::string d = domain_of(r.address);
    groups[smart ? "[smart-host]" : util::domain_to_ascii(d).value_or(d)].push_back(i);
  }
  c.outstanding = static_cast<int>(groups.size());
  // Signed once per claim (a retry signs again, with a new t=), and only
  // when something is to be sent.
  if (!groups.empty()) c.dkim_signature = dkim_signature(c.entry);
  claimed.emplace(id, std::move(c));
  n_in_flight.fetch_add(1);
  if (groups.empty()) {
    finish(id);
    return;
  }
  for (auto& [key, idx] : groups) dests[key].queue.push_back({id, std::move(idx)});
}

void Relay::Impl::ensure_workers() {
  auto config = cfg();
  const std::size_t per_destination =
      opt.max_per_destination ? opt.max_per_destination
                              : static_cast<std::size_t>(std::max(config->smtp.outbound_max_per_destination, 1));
  const std::size_t overall =
      opt.max_connections ? opt.max_connections
                          : static_cast<std::size_t>(std::max(config->smtp.outbound_max_connections, 1));
  for (auto& [key, d] : dests) {
    // One more session while more groups wait than workers are about to
    // take: a group that arrives while every session is busy gets a session
    // of its own (up to the limits) instead of waiting behind another.
    while (!stopping && d.workers < per_destination && d.workers - d.busy < d.queue.size() &&
           workers_total < overall) {
      ++d.workers;
      ++workers_total;
      asio::co_spawn(io, worker(key), asio::detached);
    }
  }
  std::erase_if(dests, [](const auto& p) { return p.second.workers == 0 && p.second.queue.empty(); });
}

void Relay::Impl::record(Claimed& c, std::size_t idx, RecipientState st, const std::string& text, int code,
                         const std::string& enhanced, const std::string& host, bool peer_dsn,
                         const std::string& tls) {
  auto& r = c.entry.recipients[idx];
  if (r.state != RecipientState::pending) return;
  r.state = st;
  ++r.attempts;
  r.last_reply = host.empty() ? text : host + ": " + text;
  c.attempted = true;
  if (st == RecipientState::delivered) {
    n_delivered.fetch_add(1);
    log("relay: " + c.entry.id + " to <" + r.address + "> delivered: " + r.last_reply + (tls.empty() ? "" : " (" + tls + ")"));
    // A peer without DSN says nothing more: report "relayed" ourselves.
    if (!peer_dsn && wants_success_notice(r.dsn.notify))
      c.relayed.push_back(report(r, DsnAction::relayed, enhanced, host, text, code));
  } else if (st == RecipientState::failed) {
    n_failed.fetch_add(1);
    c.failures.push_back(report(r, DsnAction::failed, enhanced, host, text, code));
    log("relay: " + c.entry.id + " to <" + r.address + "> failed: " + r.last_reply + (tls.empty() ? "" : " (" + tls + ")"));
  } else {
    n_deferred.fetch_add(1);
    log("relay: " + c.entry.id + " to <" + r.address + "> deferred: " + r.last_reply + (tls.empty() ? "" : " (" + tls + ")"));
  }
}

void Relay::Impl::fail_work(Work& w, const Error& why, const std::string& host) {
  auto it = claimed.find(w.id);
  if (it == claimed.end()) return;
  bool permanent = why.code == Errc::not_found || why.code == Errc::invalid_argument ||
                   why.code == Errc::refused;
  for (auto i : w.rcpts)
    record(it->second, i, permanent ? RecipientState::failed : RecipientState::pending, why.message, 0,
           permanent ? (why.code == Errc::not_found ? "5.1.2" : "5.1.10") : why.enhanced, host);
  it->second.entry.attempts.push_back({unix_now(), (host.empty() ? "" : host + ": ") + why.message});
}

void Relay::Impl::apply(Work& w, const Result<outbound::TransactionResult>& tr, const std::string& host,
                        bool peer_dsn, const std::string& tls) {
  auto it = claimed.find(w.id);
  if (it == claimed.end()) return;
  auto& c = it->second;
  if (!tr) {
    fail_work(w, tr.error(), host);
    return;
  }
  auto state_of = [](const SmtpReply& r) {
    return r.positive() ? RecipientState::delivered
                        : r.permanent() ? RecipientState::failed : RecipientState::pending;
  };
  auto put = [&](std::size_t k, const SmtpReply& r) {
    record(c, w.rcpts[k], state_of(r), r.to_string(), r.code, r.enhanced, host, peer_dsn, tls);
  };
  std::string summary;
  if (tr->local_failure) {
    for (std::size_t k = 0; k < w.rcpts.size(); ++k) put(k, *tr->local_failure);
    summary = tr->local_failure->to_string();
  } else if (!tr->mail.positive()) {
    for (std::size_t k = 0; k < w.rcpts.size(); ++k) put(k, tr->mail);
    summary = "MAIL: " + tr->mail.to_string();
  } else {
    const SmtpReply* final_reply = tr->end.code ? &tr->end : tr->data.code && tr->data.code != 354 ? &tr->data : nullptr;
    for (std::size_t k = 0; k < w.rcpts.size(); ++k) {
      const auto& rr = tr->rcpts[k];
      if (!rr.positive()) put(k, rr.code ? rr : tr->mail);
      else if (final_reply) put(k, *final_reply);
      else {
        // Accepted recipient, but no DATA happened (cannot occur with a
        // well-behaved peer): try again later.
        SmtpReply r;
        r.code = 451;
        r.lines = {"no DATA reply"};
        put(k, r);
      }
    }
    summary = final_reply ? final_reply->to_string() : "no recipient accepted";
  }
  c.entry.attempts.push_back({unix_now(), host + ": " + summary});
  if (lost(w.id)) return;
  // The message's last group, nothing pending and nothing to report:
  // finish() removes it right away, and the removal is the record.
  if (c.outstanding == 1 && c.entry.finished() && c.failures.empty() && c.relayed.empty()) return;
  // Durable before anything else happens: a recorded 250 is never resent.
  if (auto st = queue.save(c.entry); !st) log("relay: cannot save " + w.id + ": " + st.error().message);
}

void Relay::Impl::done_with(const std::string& id) {
  auto it = claimed.find(id);
  if (it == claimed.end()) return;
  if (--it->second.outstanding <= 0) finish(id);
}

void Relay::Impl::finish(const std::string& id) {
  auto it = claimed.find(id);
  if (it == claimed.end()) return;
  Claimed c = std::move(it->second);
  claimed.erase(it);
  n_in_flight.fetch_sub(1);
  // Taken over by another node while we worked on it: its results, notices
  // and next attempt are that node's business now.
  if (lost(id)) return;
  auto& e = c.entry;
  auto now = unix_now();
  bool timed_out = false;
  if (!e.finished() && c.attempted) {
    using namespace std::chrono;
    auto now_ms = duration_cast<milliseconds>(system_clock::now().time_since_epoch());
    timed_out = now_ms - milliseconds(e.created * 1000) >= give_up_after();
  }
  if (timed_out) {
    for (auto& r : e.recipients) {
      if (r.state != RecipientState::pending) continue;
      r.state = RecipientState::failed;
      n_failed.fetch_add(1);
      auto sp = r.last_reply.find(": ");
      std::string host = sp == std::string::npos ? "" : r.last_reply.substr(0, sp);
      std::string text = sp == std::string::npos ? r.last_reply : r.last_reply.substr(sp + 2);
      int code = 0;
      if (auto n = util::parse_int(std::string_view(text).substr(0, 3)); n && *n >= 400 && *n < 600)
        code = static_cast<int>(*n);
      c.failures.push_back(report(r, DsnAction::failed, leading_enhanced(text), host,
                                  "delivery time expired; last error: " + (text.empty() ? "none" : text), code));
      log("relay: " + e.id + " to <" + r.address + "> given up after resend_timeout: " + r.last_reply);
    }
  }
  // One delay notice per message (RFC 3461 §5.2.5: only to recipients that
  // asked NOTIFY=DELAY), once it waited delay_warning_time.
  const auto warn_after = std::int64_t{cfg()->smtp.delay_warning_time} * 3600;
  if (!timed_out && !e.finished() && c.attempted && warn_after > 0 && e.delay_notified == 0 &&
      now - e.created >= warn_after) {
    std::vector<DsnRecipient> delayed;
    for (const auto& r : e.recipients) {
      if (r.state != RecipientState::pending || !wants_delay_notice(r.dsn.notify)) continue;
      auto sp = r.last_reply.find(": ");
      std::string text = sp == std::string::npos ? r.last_reply : r.last_reply.substr(sp + 2);
      std::string status = leading_enhanced(text);
      delayed.push_back(report(r, DsnAction::delayed, status.starts_with('4') ? status : "",
                               sp == std::string::npos ? "" : r.last_reply.substr(0, sp), std::move(text), 0));
    }
    if (!delayed.empty()) {
      auto until = e.created + std::int64_t{std::chrono::duration_cast<std::chrono::seconds>(give_up_after()).count()};
      notify_sender(e, std::move(delayed), false, until, "delay notice");
      e.delay_notified = now;
    }
  }
  if (!c.failures.empty()) bounce(e, c.failures, timed_out);
  if (!c.relayed.empty()) notify_sender(e, std::move(c.relayed), false, 0, "relayed notice");
  if (e.finished()) {
    if (auto st = queue.retire(id); !st)
      log("relay: cannot remove " + id + ": " + st.error().message);
    else
      remove_later(id);
    return;
  }
  if (c.attempted) {
    int rounds = 0;
    for (const auto& r : e.recipients)
      if (r.state == RecipientState::pending) rounds = std::max(rounds, r.attempts);
    auto delay = retry_delay(retry_base(), rounds);
    e.next_attempt = now + std::max<std::int64_t>(
                               std::chrono::duration_cast<std::chrono::seconds>(delay + 999ms).count(), 0);
    if (delay < 1s) e.next_attempt = now;
    if (auto st = queue.save(e); !st) log("relay: cannot save " + id + ": " + st.error().message);
  }
  if (auto st = queue.move(id, QueueState::deferred, RelayQueue::Sync::later); !st)
    log("relay: cannot defer " + id + ": " + st.error().message);
}

void Relay::Impl::keep_dead(const QueueEntry& e) {
  auto dead = cfg()->dead_dir();
  if (auto st = util::make_dirs(dead, 0700); !st) {
    log("relay: " + st.error().message);
    return;
  }
  auto target = dead / e.id;
  struct stat sb{};
  if (::stat(target.c_str(), &sb) != 0) {
    auto src = queue.message_path(e.id);
    if (::link(src.c_str(), target.c_str()) != 0) {
      if (auto text = util::read_file(src)) (void)util::write_file_atomic(target, *text, 0600);
    }
  }
  (void)util::write_file_atomic(dead / (e.id + ".envelope"), serialize_queue_entry(e), 0600);
  (void)util::fsync_dir(dead);
}

DsnInput Relay::Impl::notice_base(const QueueEntry& e, bool timed_out) const {
  auto config = cfg();
  DsnInput in;
  in.reporting_domain = config->server.domain;
  in.reporting_mta = hostname();
  in.original_sender = e.sender;
  in.queue_id = e.id;
  in.arrival_time = e.created;
  in.now = unix_now();
  in.timed_out = timed_out;
  in.envelope_id = e.envid;
  if (auto h = read_header_block(queue.message_path(e.id))) in.original_headers = std::move(*h);
  return in;
}

void Relay::Impl::route_notice(const QueueEntry& e, const std::string& to, const std::string& text,
                               std::string_view what, bool copy_to_postmaster, std::string_view postmaster_text) {
  outbound::NoticeOptions o;
  o.smtputf8 = e.smtputf8;
  o.postmaster_notice = postmaster_text;
  if (outbound::deliver_notice(*cfg(), queue, to, text, copy_to_postmaster, util::cat("relay: ", e.id, ": ", what),
                               [this](const std::string& line) { log(line); }, o))
    asio::post(io, [this] { scan(); });
}

DsnInput Relay::Impl::sender_notice(const QueueEntry& e, std::vector<DsnRecipient> rcpts, bool timed_out,
                                    std::int64_t retry_until) const {
  auto in = notice_base(e, timed_out);
  in.recipients = std::move(rcpts);
  in.will_retry_until = retry_until;
  const bool failed = std::any_of(in.recipients.begin(), in.recipients.end(),
                                  [](const DsnRecipient& r) { return r.action == DsnAction::failed; });
  if (failed && e.ret == DsnRet::full && e.size <= static_cast<std::uint64_t>(cfg()->smtp.bounce_size_limit)) {
    if (auto m = util::read_file(queue.message_path(e.id))) in.original_message = std::move(*m);
  }
  return in;
}

void Relay::Impl::notify_sender(const QueueEntry& e, std::vector<DsnRecipient> rcpts, bool timed_out,
                                std::int64_t retry_until, std::string_view what) {
  if (e.sender.empty() || rcpts.empty()) return;  // never to the null sender
  route_notice(e, e.sender, build_dsn(sender_notice(e, std::move(rcpts), timed_out, retry_until)), what);
}

void Relay::Impl::bounce(const QueueEntry& e, const std::vector<DsnRecipient>& failures, bool timed_out) {
  keep_dead(e);
  n_bounces.fetch_add(1);
  if (opt.on_bounce) opt.on_bounce();
  // The postmaster sees every failure (SPEC §6), with the headers only.
  auto pm = notice_base(e, timed_out);
  pm.recipients = failures;
  const std::string pm_text = build_dsn(pm);
  const std::string postmaster = "postmaster@" + cfg()->server.domain;
  if (e.sender.empty()) {
    log("relay: " + e.id + ": null sender, no bounce (copy to postmaster, message kept in deadmail/)");
    route_notice(e, postmaster, pm_text, "bounce");
    return;
  }
  // The sender is told about the recipients that did not say NOTIFY
  // without FAILURE (RFC 3461 §4.1).
  std::vector<DsnRecipient> wanted;
  for (const auto& f : failures) {
    auto it = std::find_if(e.recipients.begin(), e.recipients.end(),
                           [&](const QueueRecipient& r) { return r.address == f.address; });
    if (it == e.recipients.end() || wants_failure_notice(it->dsn.notify)) wanted.push_back(f);
  }
  if (wanted.empty()) {
    log("relay: " + e.id + ": no failure notice to <" + e.sender + ">: its NOTIFY did not ask for one");
    route_notice(e, postmaster, pm_text, "bounce");
    return;
  }
  const bool same = wanted.size() == failures.size();
  auto in = sender_notice(e, std::move(wanted), timed_out, 0);
  if (same && in.original_message.empty()) {
    route_notice(e, e.sender, pm_text, "bounce", true);
    return;
  }
  route_notice(e, e.sender, build_dsn(in), "bounce", true, pm_text);
}

asio::awaitable<Result<std::shared_ptr<SmtpClient>>> Relay::Impl::open_session(const std::vector<Hop>& hops,
                                                                                 TlsLevel level) {
  Error last(Errc::temporary, "no host to try");
  const bool required = level == TlsLevel::encrypt || level == TlsLevel::verify;
  // The context that trusts smtp_tls_ca_file (its verdict is logged at
  // every level); without it only the verify level cannot go on.
  auto [ca_context, ca_problem] = ca_tls();
  auto context = ca_context ? ca_context : tls;
  for (const auto& hop : hops) {
    for (const auto& addr : hop.addresses) {
      // Opportunistic TLS (may): when the handshake fails, the same host
      // again in plain text, as Postfix does.
      for (bool try_tls : {true, false}) {
        if (stopping) co_return unexpected(Error(Errc::temporary, "stopping"));
        auto client = std::make_shared<SmtpClient>(io.get_executor(), opt.timeouts);
        live.insert(client);
        struct Forget {
          Impl* self;
          std::shared_ptr<SmtpClient> c;
          bool keep = false;
          ~Forget() {
            if (!keep) {
              c->close();
              self->live.erase(c);
            }
          }
        } forget{this, client};
        n_connections.fetch_add(1);
        auto greeting = co_await client->connect(addr, hop.port);
        std::string where = hop.host + "[" + addr + "]";
        if (!greeting) {
          last = Error(Errc::temporary, where + ": " + greeting.error().message);
          break;
        }
        if (!greeting->positive()) {
          last = Error(Errc::temporary, where + ": greeting " + greeting->to_string());
          co_await client->quit();
          break;
        }
        auto hello = co_await client->hello(hostname());
        if (!hello || !hello->positive()) {
          last = Error(Errc::temporary,
                       where + ": " + (hello ? "EHLO/HELO " + hello->to_string() : hello.error().message));
          co_await client->quit();
          break;
        }
        // A TLS level that requires TLS never lets the message go in
        // clear: every failure below defers it (4.7.x) and the next host
        // is tried.
        auto tls_failure = [&](std::string enhanced, std::string text) {
          last = Error::smtp(451, enhanced, util::cat(enhanced, " ", text), util::cat(where, ": ", enhanced, " ", text));
          log(util::cat("relay: ", where, ": ", text, " (TLS level ", to_string(level), ")"));
        };
        if (required && !context) {
          tls_failure("4.7.5", util::cat("TLS is required, but no client TLS context could be made"));
          co_await client->quit();
          break;
        }
        if (level == TlsLevel::verify && !ca_context) {
          tls_failure("4.7.5", util::cat("TLS is required, but the CA file cannot be used: ", ca_problem));
          co_await client->quit();
          break;
        }
        if (required && !client->has("STARTTLS")) {
          tls_failure("4.7.4", util::cat("TLS is required, but was not offered by host ", where));
          co_await client->quit();
          break;
        }
        if (level != TlsLevel::none && try_tls && context && client->has("STARTTLS")) {
          auto st = co_await client->starttls(context, hop.host);
          if (!st) {
            if (required) {
              tls_failure("4.7.5", util::cat("Cannot start TLS: handshake failure with host ", where, ": ",
                                             st.error().message));
              break;
            }
            last = Error(Errc::temporary, where + ": " + st.error().message);
            log("relay: " + where + ": STARTTLS failed (" + st.error().message + "), retrying without TLS");
            continue;
          }
          if (st->code != 220 && required) {
            tls_failure("4.7.5", util::cat("TLS is required, but host ", where, " refused to start TLS: ",
                                           st->to_string()));
            co_await client->quit();
            break;
          }
          if (st->code == 220) {
            const auto v = client->tls_verification();
            using Trust = SmtpClient::Verification::Trust;
            std::string trust = v.trust == Trust::verified  ? "Verified"
                                : v.trust == Trust::trusted ? "Trusted"
                                                            : "Untrusted";
            std::string note = util::cat(trust, " TLS connection established to ", where, ": ", client->tls_summary(),
                                         ", peer CN=", client->peer_common_name());
            if (v.trust != Trust::verified)
              note += util::cat(", not verified for name ", hop.host, " (", v.reason, ")");
            log("relay: " + note);
            if (level == TlsLevel::verify && v.trust != Trust::verified) {
              tls_failure("4.7.5", util::cat("Server certificate not verified: host ", where, " (name ", hop.host,
                                             ", peer CN=", client->peer_common_name(), "): ", v.reason));
              co_await client->quit();
              break;
            }
            auto again = co_await client->hello(hostname());
            if (!again || !again->positive()) {
              last = Error(Errc::temporary, where + ": EHLO after STARTTLS failed");
              co_await client->quit();
              break;
            }
          }
        }
        forget.keep = true;
        co_return client;
      }
    }
  }
  co_return unexpected(last);
}

asio::awaitable<void> Relay::Impl::worker(std::string key) {
  auto config = cfg();
  auto ropt = route_options(*config);
  std::string domain = key == "[smart-host]" ? std::string() : key;
  // The look-up blocks (c-ares poll loop): run it on the pool, resume here.
  // The initiation captures raw pointers only: g++ 12 destroys a coroutine
  // parameter of lambda type with non-trivial captures twice (seen as a
  // double free inside asio's use_awaitable initiate).
  struct Lookup {
    std::string domain;
    RouteOptions ropt;
    Result<std::vector<Hop>> result;
  };
  auto lookup = std::make_shared<Lookup>(Lookup{domain, ropt, fail(Errc::internal, "no look-up")});
  Lookup* lp = lookup.get();
  co_await asio::async_initiate<decltype(asio::use_awaitable), void()>(
      [this, lp](auto handler) {
        asio::post(dns_pool, [this, lp, handler = std::move(handler)]() mutable {
          lp->result = route(lp->domain, lp->ropt);
          asio::post(io, std::move(handler));
        });
      },
      asio::use_awaitable);
  auto hops = std::move(lp->result);
  // The TLS level of this destination: the recipient domain's, or with a
  // smart host the smart host's name's (def/tls_policy.def, else
  // smtp_tls_security_level).
  std::string tls_dest = domain;
  if (domain.empty())
    if (auto hp = parse_host_port(config->smtp.smart_host)) tls_dest = hp->host;
  const TlsLevel level = config->tls_level_for(tls_dest);
  std::shared_ptr<SmtpClient> client;
  std::string host;
  std::size_t sent = 0;
  int connect_failures = 0;
  for (;;) {
    auto dit = dests.find(key);
    if (dit == dests.end() || dit->second.queue.empty()) break;
    Work w = std::move(dit->second.queue.front());
    dit->second.queue.pop_front();
    // Busy with `w` until the end of this iteration, whichever way it ends.
    ++dit->second.busy;
    struct Busy {
      Impl* self;
      const std::string& key;
      ~Busy() {
        if (auto d = self->dests.find(key); d != self->dests.end() && d->second.busy > 0) --d->second.busy;
      }
    } busy{this, key};
    if (stopping) {  // not attempted: it stays queued as it was
      done_with(w.id);
      continue;
    }
    if (!hops) {
      fail_work(w, hops.error(), {});
      if (auto it = claimed.find(w.id); it != claimed.end())
        (void)queue.save(it->second.entry);
      done_with(w.id);
      continue;
    }
    if (client && (!client->is_open() || sent >= opt.max_messages_per_connection)) {
      co_await client->quit();
      live.erase(client);
      client.reset();
    }
    if (!client) {
      auto c = co_await open_session(*hops, level);
      if (!c) {
        // Nobody reachable: this message and, after a second failure, the
        // rest of this destination's queue wait for the next round.
        fail_work(w, c.error(), {});
        if (auto it = claimed.find(w.id); it != claimed.end()) (void)queue.save(it->second.entry);
        done_with(w.id);
        if (++connect_failures >= 2) {
          auto d2 = dests.find(key);
          while (d2 != dests.end() && !d2->second.queue.empty()) {
            Work rest = std::move(d2->second.queue.front());
            d2->second.queue.pop_front();
            fail_work(rest, c.error(), {});
            if (auto it = claimed.find(rest.id); it != claimed.end()) (void)queue.save(it->second.entry);
            done_with(rest.id);
            d2 = dests.find(key);
          }
        }
        continue;
      }
      client = std::move(*c);
      host = client->remote_address();
      sent = 0;
    }
    auto it = claimed.find(w.id);
    if (it == claimed.end()) continue;
    const auto& entry = it->second.entry;
    // SMTPUTF8 (RFC 6531 §3.2): a peer that does not offer it gets the
    // message only when nothing needs it — U-label domains go as A-labels;
    // a UTF-8 local part or (with SMTPUTF8) UTF-8 header fields cannot,
    // and bounce with 5.6.7 rather than be mangled.
    const bool peer_utf8 = client->has("SMTPUTF8");
    std::vector<std::string> rcpts;
    bool needs_utf8 = entry.smtputf8 && it->second.utf8_headers;
    std::string sender = entry.sender;
    if (!peer_utf8) {
      if (auto a = ascii_address(entry.sender)) sender = *a;
      else needs_utf8 = true;
    }
    for (auto i : w.rcpts) {
      const auto& address = entry.recipients[i].address;
      auto a = peer_utf8 ? std::optional<std::string>(address) : ascii_address(address);
      if (!a) needs_utf8 = true;
      rcpts.push_back(a.value_or(address));
    }
    if (needs_utf8 && !peer_utf8) {
      for (auto i : w.rcpts)
        record(it->second, i, RecipientState::failed,
               "553 5.6.7 SMTPUTF8 is required, but was not offered by host " + host, 553, "5.6.7", host);
      it->second.entry.attempts.push_back({unix_now(), host + ": SMTPUTF8 required, not offered"});
      if (auto st = queue.save(it->second.entry); !st) log("relay: cannot save " + w.id + ": " + st.error().message);
      done_with(w.id);
      continue;
    }
    outbound::MailOptions mo;
    mo.size = entry.size + it->second.dkim_signature.size();
    mo.prefix = it->second.dkim_signature;
    mo.eight_bit = it->second.eight_bit;
    mo.smtputf8 = peer_utf8 && (entry.smtputf8 || !util::is_ascii(sender) ||
                                std::any_of(rcpts.begin(), rcpts.end(), [](const std::string& r) { return !util::is_ascii(r); }));
    mo.ret = entry.ret;
    mo.envid = entry.envid;
    bool any_dsn = false;
    for (auto i : w.rcpts) {
      mo.dsn.push_back(entry.recipients[i].dsn);
      any_dsn = any_dsn || !entry.recipients[i].dsn.empty();
    }
    if (!any_dsn) mo.dsn.clear();
    if (!queue.node().empty())
      mo.may_finish = [this, id = w.id] { return lease_valid() && queue.holds(id); };
    const bool peer_dsn = client->has("DSN");
    auto tr = co_await client->send_mail(sender, rcpts, queue.message_path(w.id), std::move(mo));
    ++sent;
    apply(w, tr, host, peer_dsn, tls_note(*client));
    if (!tr) {
      live.erase(client);
      client.reset();
    }
    done_with(w.id);
  }
  if (client) {
    co_await client->quit();
    live.erase(client);
  }
  if (auto dit = dests.find(key); dit != dests.end()) --dit->second.workers;
  --workers_total;
  if (stopping) check_stopped();
  else ensure_workers();
}

void Relay::Impl::check_stopped() {
  if (!stopping || stop_finished || workers_total > 0) return;
  // Groups no worker picked up (the overall cap): leave them queued.
  for (auto& [key, d] : dests) {
    while (!d.queue.empty()) {
      auto id = d.queue.front().id;
      d.queue.pop_front();
      done_with(id);
    }
  }
  dests.clear();
  while (!claimed.empty()) finish(claimed.begin()->first);
  // Everything the runner moved or removed is on disk before it says it
  // stopped.
  for (auto st : {QueueState::active, QueueState::deferred})
    if (auto r = util::fsync_dir(queue.state_dir(st)); !r) log("relay: " + r.error().message);
  stop_finished = true;
  scan_timer.cancel();
  stop_timer.cancel();
  auto done = std::move(stop_done);
  for (auto& f : done)
    if (f) f();
  work.reset();
}

// ---------------------------------------------------------------------------

Relay::Relay(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Relay::~Relay() {
  stop(0ms);
  join();
  impl_->dns_pool.join();
  impl_->disk_pool.join();
}

Result<std::unique_ptr<Relay>> Relay::create(std::shared_ptr<const Config> config, RelayOptions options) {
  if (!config) return fail(Errc::invalid_argument, "relay: no configuration");
  auto impl = std::make_unique<Impl>(std::move(config), std::move(options));
  impl->dkim_keys = impl->load_keys(*impl->config);
  impl->load_ca(*impl->config);
  auto tls = net::make_client_tls_context(false);
  if (tls) impl->tls = std::move(*tls);
  else impl->log("relay: no client TLS context (" + tls.error().message + "), STARTTLS disabled");
  return std::unique_ptr<Relay>(new Relay(std::move(impl)));
}

Status Relay::start() {
  auto& I = *impl_;
  if (I.started) return fail(Errc::invalid_argument, "relay already started");
  if (auto st = I.queue.init(); !st) return st;
  I.started = true;
  I.work.emplace(I.io.get_executor());
  asio::post(I.io, [&I] { I.scan(); });
  I.thread = std::thread([&I] { I.io.run(); });
  return {};
}

void Relay::notify() {
  auto& I = *impl_;
  // Many commits in a burst wake the runner once.
  if (I.scan_posted.exchange(true)) return;
  asio::post(I.io, [&I] {
    I.scan_posted = false;
    if (!I.stopping) I.scan();
  });
}

void Relay::flush() {
  auto& I = *impl_;
  asio::post(I.io, [&I] {
    if (I.stopping) return;
    I.flush_requested = true;
    I.scan();
  });
}

void Relay::set_config(std::shared_ptr<const Config> config) {
  if (!config) return;
  auto keys = impl_->load_keys(*config);
  std::lock_guard lk(impl_->cfg_mu);
  impl_->load_ca(*config);
  impl_->config = std::move(config);
  impl_->dkim_keys = std::move(keys);
}

void Relay::stop(std::chrono::milliseconds grace, std::function<void()> done) {
  auto& I = *impl_;
  if (!I.started) {
    if (done) done();
    return;
  }
  asio::post(I.io, [&I, grace, done = std::move(done)]() mutable {
    if (I.stop_finished) {
      if (done) done();
      return;
    }
    I.stop_done.push_back(std::move(done));
    auto deadline = std::chrono::steady_clock::now() + grace;
    if (!I.stopping || deadline < I.stop_timer.expiry()) {
      I.stopping = true;
      I.scan_timer.cancel();
      I.stop_timer.expires_at(deadline);
      I.stop_timer.async_wait([&I](std::error_code ec) {
        if (ec) return;
        // Grace is over: close every session; their recipients stay queued.
        for (const auto& c : I.live) c->close();
      });
      if (grace <= 0ms)
        for (const auto& c : I.live) c->close();
    }
    I.check_stopped();
  });
}

void Relay::join() {
  if (impl_->thread.joinable()) impl_->thread.join();
}

RelayStats Relay::stats() const {
  auto& I = *impl_;
  return {I.n_delivered.load(), I.n_deferred.load(), I.n_failed.load(), I.n_bounces.load(),
          I.n_connections.load(), I.n_in_flight.load()};
}

}  // namespace wizmail
