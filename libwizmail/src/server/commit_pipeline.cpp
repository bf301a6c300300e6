#include "server/commit_pipeline.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <ctime>
#include <exception>

#include "agent/local_agent.hpp"
#include "mime/header_section.hpp"
#include "server/delivery_target.hpp"
#include "server/embedder_callbacks.hpp"
#include "server/log.hpp"
#include "smtp/session.hpp"
#include "util/idna.hpp"
#include "util/strings.hpp"

namespace wizmail::server {

namespace fs = std::filesystem;

CommitJob make_commit_job(StagedMessage message, const smtp::Transaction& txn, const fs::path& mailbox_dir,
                          std::string client_ip, std::string auth_user) {
  CommitJob job{std::move(message), {}, {}, {}, {}, {}, {}};
  job.sender = txn.reverse_path;
  job.client_ip = std::move(client_ip);
  job.auth_user = std::move(auth_user);
  job.ret = txn.ret;
  job.envid = txn.envid;
  job.smtputf8 = txn.smtputf8;
  const bool notices = !txn.reverse_path.empty();  // never to the null sender
  auto success = [&](const smtp::Recipient& r, DsnAction action, std::string text, fs::path dir) {
    DsnRecipient d;
    d.address = r.address;
    d.diagnostic = std::move(text);
    d.action = action;
    d.original_recipient = r.dsn.orcpt;
    job.success.push_back({std::move(d), std::move(dir)});
  };
  bool remote_dsn = false;
  for (const auto& r : txn.recipients) {
    if (r.local()) {
      job.locals.push_back({std::string(r.delivered_to()), r.account, mailbox_dir / r.account, r.dsn});
      if (notices && wants_success_notice(r.dsn.notify)) {
        success(r, DsnAction::delivered, "delivered to the mailbox", mailbox_dir / r.account);
        job.success.back().local = job.locals.size() - 1;
      }
    } else {
      job.remote.recipients.push_back(r.address);
      job.remote.dsn.push_back(r.dsn);
      remote_dsn = remote_dsn || !r.dsn.empty();
    }
  }
  if (notices)
    for (const auto& e : txn.expanded) success(e, DsnAction::expanded, "alias expanded to several addresses", {});
  if (!job.remote.recipients.empty()) {
    job.remote.sender = txn.reverse_path;
    job.remote.client_ip = job.client_ip;
    job.remote.auth_user = job.auth_user;
    job.remote.ret = txn.ret;
    job.remote.envid = txn.envid;
    job.remote.smtputf8 = txn.smtputf8;
  }
  if (!remote_dsn) job.remote.dsn.clear();
  return job;
}

Result<std::optional<std::string>> srs_forward_sender(const srs::Rewriter& rewriter, std::string_view srs_domain,
                                                      const std::vector<std::string>& local_domains,
                                                      const smtp::Transaction& txn, bool local_submit,
                                                      std::int64_t now) {
  const std::string& sender = txn.reverse_path;
  if (sender.empty()) return std::nullopt;  // <> stays <>
  const bool forwarded = local_submit || std::any_of(txn.recipients.begin(), txn.recipients.end(),
                                                     [](const smtp::Recipient& r) { return !r.local() && r.via_alias; });
  if (!forwarded || !txn.has_remote()) return std::nullopt;
  const auto at = sender.rfind('@');
  if (at != std::string::npos) {
    const std::string domain = util::domain_to_ascii(std::string_view(sender).substr(at + 1))
                                   .value_or(util::to_lower(std::string_view(sender).substr(at + 1)));
    if (std::find(local_domains.begin(), local_domains.end(), domain) != local_domains.end()) return std::nullopt;
    if (util::iequals(domain, srs_domain)) return std::nullopt;
  }
  auto out = rewriter.forward(sender, srs_domain, now);
  if (!out) return unexpected(out.error());
  return std::optional<std::string>(std::move(*out));
}

CommitPipeline::CommitPipeline(AccountStore store, RelayQueue queue, SyncMode mode, Logger& log,
                               PipelineStats& stats, unsigned threads)
    : store_(std::move(store)), queue_(std::move(queue)), mode_(mode), log_(log), stats_(stats),
      nthreads_(std::max(1u, threads)) {}

CommitPipeline::~CommitPipeline() { stop(); }

void CommitPipeline::start() {
  if (!threads_.empty()) return;
  stop_ = false;
  waiters_.clear();
  for (unsigned i = 0; i < nthreads_; ++i) waiters_.push_back(std::make_unique<Waiter>());
  for (unsigned i = 0; i < nthreads_; ++i) threads_.emplace_back([this, w = waiters_[i].get()] { run(*w); });
  if (journal_) journal_->start();
}

Result<DeliveryJournal::RecoveryReport> CommitPipeline::use_journal(const fs::path& file) {
  DeliveryJournal::RecoveryReport report;
  auto j = DeliveryJournal::open(file, DeliveryJournal::Options{}, &report);
  if (!j) return unexpected(j.error());
  journal_ = std::move(*j);
  return report;
}

void CommitPipeline::stop() {
  {
    std::lock_guard lk(mu_);
    if (threads_.empty()) return;
    stop_ = true;
    for (auto* w : idle_) {
      w->woken = true;
      w->cv.notify_one();
    }
    idle_.clear();
  }
  for (auto& t : threads_) t.join();
  threads_.clear();
  if (journal_) journal_->stop();  // a last checkpoint: nothing to replay at the next start
}

void CommitPipeline::submit(CommitJob job) {
  Waiter* wake = nullptr;
  {
    std::lock_guard lk(mu_);
    pending_.push_back(std::move(job));
    // A busy thread takes pending jobs when it is done; wake one only if
    // this is the first job waiting.
    if (pending_.size() == 1 && !idle_.empty()) {
      wake = idle_.back();
      idle_.pop_back();
      wake->woken = true;
    }
  }
  if (wake) wake->cv.notify_one();
}

void CommitPipeline::set_callbacks(std::shared_ptr<const CallbackList> cbs) {
  std::lock_guard lk(mu_);
  has_callbacks_ = cbs && !cbs->empty();
  callbacks_ = std::move(cbs);
}

bool CommitPipeline::plain_delivery(const fs::path& account_dir) {
  if (has_callbacks_.load(std::memory_order_relaxed)) return false;
  return !(agent_ && agent_->needs_agent(account_dir));
}

void CommitPipeline::run(Waiter& me) {
  std::vector<CommitJob> batch;
  for (;;) {
    {
      std::unique_lock lk(mu_);
      while (pending_.empty() && !stop_) {
        idle_.push_back(&me);
        me.cv.wait(lk, [&] { return me.woken; });
        me.woken = false;  // whoever woke us took us off idle_
      }
      if (pending_.empty() && stop_) return;
      batch.swap(pending_);
    }
    process(batch);
    batch.clear();
  }
}

void CommitPipeline::process(std::vector<CommitJob>& batch) noexcept {
  // Nothing may escape a commit (a user callback that throws, bad_alloc):
  // every job not yet answered gets a temporary error (451).
  std::string why;
  try {
    commit_batch(batch);
  } catch (const std::exception& e) {
    why = e.what();
  } catch (...) {
    why = "unknown exception";
  }
  if (!why.empty()) {
    log_.server("commit batch failed: " + why);
    for (auto& job : batch) complete(job, fail(Errc::internal, "commit failed: " + why));
  }
}

bool CommitPipeline::commit_here(CommitJob& job) {
  {
    std::lock_guard lk(mu_);
    if (stop_ || threads_.empty() || !pending_.empty()) return false;
  }
  std::vector<CommitJob> one;
  one.push_back(std::move(job));
  process(one);
  return true;
}

void CommitPipeline::complete(CommitJob& job, Result<std::string> result) noexcept {
  auto done = std::move(job.done);
  job.done = nullptr;
  if (!done) return;
  try {
    done(std::move(result));
  } catch (...) {
    // The completion only posts to the connection's executor; if even that
    // fails the connection times out on its own.
  }
}

namespace {

std::string read_head(const StagedMessage& m, std::uint64_t offset = 0) {
  std::string head(std::min<std::uint64_t>(m.size() - std::min(offset, m.size()), 65536), '\0');
  ssize_t n = ::pread(m.fd(), head.data(), head.size(), static_cast<off_t>(offset));
  head.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return head;
}

// The header fields as received (after the final headers a staged file may
// start with), for a notice's text/rfc822-headers part.
std::string received_head(const CommitJob& job) {
  std::string head = read_head(job.message, job.final_headers_len);
  head.resize(mime::split_header_section(head).head_size);
  return head;
}

std::string what_of(std::exception_ptr p) {
  try {
    std::rethrow_exception(p);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
  }
  return "unknown exception";
}

}  // namespace

void CommitPipeline::commit_batch(std::vector<CommitJob>& jobs) {
  std::shared_ptr<const CallbackList> cbs;
  {
    std::lock_guard lk(mu_);
    cbs = callbacks_;
  }
  struct Work {
    std::optional<StagedMessage> plain;               // the message without final headers
    bool plain_linked = false;                        // an entry links (and syncs) it
    std::string head;                                  // headers, for a success notice
    std::vector<fs::path> agent_dirs;                  // account folders the agent took
    std::vector<DsnRecipient> refused;                 // 5xx by a delivery callback, others delivered
    std::vector<std::size_t> refused_locals;           // their job.locals indexes
    Status error;                                      // ok unless staging failed
  };
  std::vector<Work> work(jobs.size());
  // The delivery targets, in publish order: the local copies first (a
  // failed copy keeps the message out of the others), then the agent's
  // spool (a failure there keeps it out of the relay queue).
  const std::size_t n = jobs.size();
  MaildirTarget maildir(mode_, journal_.get(), n);
  std::optional<QueueTarget> spool;
  if (agent_) spool.emplace("agent spool", agent_->spool(), n);
  QueueTarget relay("queue", queue_, n);
  std::vector<DeliveryTarget*> targets{&maildir};
  if (spool) targets.push_back(&*spool);
  targets.push_back(&relay);
  // The message as received, for a queue or spool entry to link: synced by
  // the first entry that links it.
  auto link_plain = [&](Work& w) {
    const bool first = !w.plain_linked;
    w.plain_linked = true;
    return first;
  };

  for (std::size_t i = 0; i < jobs.size(); ++i) {
    auto& job = jobs[i];
    auto& w = work[i];
    try {
      const bool prefixed = job.final_headers_len > 0 && !job.locals.empty();
      // The message as received, without final headers, for the relay queue
      // and the agent's spool: the staged file itself, or (rarely: the
      // account got hooks after DATA began) a copy without them.
      auto plain = [&]() -> Result<const StagedMessage*> {
        if (!prefixed) return &job.message;
        if (!w.plain) {
          auto c = StagedMessage::create_copy(job.message.tmp_path().parent_path(), {}, job.message,
                                              job.final_headers_len);
          if (!c) return unexpected(c.error());
          w.plain.emplace(std::move(*c));
        }
        return &*w.plain;
      };
      if (notices_ && !job.success.empty()) w.head = received_head(job);
      if (!job.remote.recipients.empty()) {
        auto p = plain();
        if (!p) {
          w.error = unexpected(p.error());
          continue;
        }
        if (auto st = relay.stage(i, job.remote, **p, link_plain(w)); !st) {
          w.error = st;
          continue;
        }
      }
      // The local copies: which account folder gets a copy, delivered to
      // which address (its Delivered-To).
      std::vector<LocalTarget> targets;
      // Rewritten copies join the delivery batch only once every local
      // recipient of this job was decided without error: a failure for one
      // recipient leaves no extra copy for another.
      std::vector<std::pair<StagedMessage, fs::path>> rewrites;
      if (cbs && !cbs->empty() && !job.locals.empty()) {
        Delivery d;
        d.sender = job.sender;
        for (const auto& l : job.locals) d.recipients.push_back(l.address);
        for (const auto& r : job.remote.recipients) d.recipients.push_back(r);
        d.message_file = job.message.tmp_path();
        d.headers = mime::unfolded_fields(read_head(job.message));
        d.client_ip = job.client_ip;
        d.auth_user = job.auth_user;
        std::vector<std::pair<std::size_t, CheckedRefusal>> refusals;
        for (std::size_t li = 0; li < job.locals.size(); ++li) {
          const auto& l = job.locals[li];
          if (!w.error) break;
          d.recipient = l.address;
          d.account = l.account;
          d.mailbox = l.dir;
          DeliveryDecision dec;
          for (const auto& [id, cb] : *cbs) {
            try {
              dec = cb(d);
            } catch (...) {
              w.error = fail(Errc::internal,
                             "delivery callback failed for " + l.address + ": " +
                                 what_of(std::current_exception()));
              break;
            }
            if (dec.action != DeliveryDecision::Action::accept) break;
          }
          if (!w.error) break;
          switch (dec.action) {
            case DeliveryDecision::Action::accept: targets.push_back(l); break;
            case DeliveryDecision::Action::discard:
              log_.server("delivery callback discarded the copy for " + l.address);
              break;
            case DeliveryDecision::Action::redirect: {
              auto dir = store_.account_dir(dec.target);
              auto kind = store_.lookup(dec.target);
              if (!kind) {
                // The target may exist: retry later rather than misdeliver.
                w.error = unexpected(kind.error());
                break;
              }
              if (dir && *kind != AccountKind::none) {
                // Delivered to the target account at the recipient's domain.
                const auto at = l.address.rfind('@');
                targets.push_back({dec.target + (at == std::string::npos ? "" : l.address.substr(at)),
                                   dec.target, *dir});
              } else {
                log_.server("delivery callback: redirect to unknown account '" + dec.target +
                            "' ignored; delivered to " + l.account);
                targets.push_back(l);
              }
              break;
            }
            case DeliveryDecision::Action::rewrite: {
              auto m = StagedMessage::create(l.dir / "tmp");
              Status st = m ? m->write(final_headers(job.sender, l.address)) : Status(unexpected(m.error()));
              if (st) st = m->write(without_return_path(dec.content));
              if (st) st = m->finish();
              if (!st) {
                w.error = st;
                break;
              }
              rewrites.emplace_back(std::move(*m), l.dir);
              break;
            }
            case DeliveryDecision::Action::reject: {
              auto c = check_refusal(dec.reply, "Error: message refused");
              if (!c.problem.empty())
                log_.server(std::string("delivery callback gave an ").append(c.problem).append(" for ").append(l.address));
              log_.log(LogFile::error, {}, job.client_ip, job.auth_user,
                       std::string("delivery callback refused <").append(l.address).append(">: ").append(c.line()));
              refusals.emplace_back(li, std::move(c));
              break;
            }
          }
        }
        // One reply to DATA for the whole message (RFC 5321): a temporary
        // refusal refuses all of it (no copy kept, the client retries every
        // recipient: no duplicates, nothing lost); refusing every recipient
        // refuses it; a permanent refusal among delivered recipients is
        // reported to the sender in a failure notice after the 250.
        if (w.error && !refusals.empty()) {
          auto temp = std::find_if(refusals.begin(), refusals.end(), [](const auto& r) { return r.second.temporary(); });
          const bool all = refusals.size() == job.locals.size() && job.remote.recipients.empty();
          if (temp != refusals.end() || all) {
            const auto& [li, c] = temp != refusals.end() ? *temp : refusals.front();
            w.error = unexpected(Error::smtp(c.code, c.enhanced, c.text,
                                             std::string("delivery callback refused <")
                                                 .append(job.locals[li].address)
                                                 .append(">: ")
                                                 .append(c.line())));
            continue;
          }
          for (const auto& [li, c] : refusals) {
            const auto& l = job.locals[li];
            w.refused_locals.push_back(li);
            if (job.sender.empty() || !wants_failure_notice(l.dsn.notify)) continue;
            DsnRecipient f;
            f.address = l.address;
            f.status = c.enhanced;
            f.diagnostic = c.line();
            f.smtp_code = c.code;
            f.action = DsnAction::failed;
            f.original_recipient = l.dsn.orcpt;
            w.refused.push_back(std::move(f));
          }
          if (notices_ && !w.refused.empty() && w.head.empty()) w.head = received_head(job);
        }
      } else {
        targets = job.locals;
      }
      if (!w.error) continue;  // staged copies and rewrites are dropped with their tmp files
      if (agent_) {
        // The agent's spool entry keeps the DSN requests (RFC 3461): the
        // agent reports success or failure when it stores the copy.
        std::vector<fs::path> before;
        for (const auto& t : targets) before.push_back(t.dir);
        std::vector<DsnRequest> adsn;
        QueueEnvelope aenv;
        aenv.sender = job.sender;
        aenv.recipients = agent_->take(targets, adsn);
        aenv.client_ip = job.client_ip;
        aenv.auth_user = job.auth_user;
        if (std::any_of(adsn.begin(), adsn.end(), [](const DsnRequest& d) { return !d.empty(); }))
          aenv.dsn = std::move(adsn);
        aenv.ret = job.ret;
        aenv.envid = job.envid;
        aenv.smtputf8 = job.smtputf8;
        for (const auto& d : before)
          if (std::none_of(targets.begin(), targets.end(), [&](const LocalTarget& t) { return t.dir == d; }))
            w.agent_dirs.push_back(d);
        if (!aenv.recipients.empty()) {
          auto p = plain();
          if (!p) {
            w.error = unexpected(p.error());
            continue;
          }
          if (auto st = spool->stage(i, aenv, **p, link_plain(w)); !st) {
            w.error = st;
            continue;
          }
        }
      }
      // One copy per account folder (two addresses of one account are one
      // delivery), each starting with its own final headers: the staged
      // file itself when it was written for that recipient, else a copy.
      std::optional<fs::path> main_dir;
      std::vector<std::pair<StagedMessage, fs::path>> copies;
      std::vector<fs::path> seen;
      for (const auto& t : targets) {
        if (std::find(seen.begin(), seen.end(), t.dir) != seen.end()) continue;
        seen.push_back(t.dir);
        if (prefixed && !main_dir && t.dir == job.locals.front().dir) {
          main_dir = t.dir;
          continue;
        }
        auto c = StagedMessage::create_copy(t.dir / "tmp", final_headers(job.sender, t.address), job.message,
                                            job.final_headers_len);
        if (!c) {
          w.error = unexpected(c.error());
          break;
        }
        copies.emplace_back(std::move(*c), t.dir);
      }
      if (!w.error) continue;
      for (auto& [m, dir] : rewrites) maildir.stage(i, std::move(m), dir, false);
      for (auto& [m, dir] : copies) maildir.stage(i, std::move(m), dir, false);
      if (main_dir) maildir.stage(i, std::move(job.message), *main_dir, true);
    } catch (...) {
      w.error = fail(Errc::internal, "commit failed: " + what_of(std::current_exception()));
    }
  }

  // Every phase over every target: one round of file syncs, the names,
  // one round of folder syncs, then the refused messages withdrawn (so no
  // copy of a message told 4xx stays in new/ or comes back from the
  // journal, nor is it relayed or handed to hooks twice) — all before any
  // reply of the batch leaves.
  std::vector<Status> results(n);
  for (std::size_t i = 0; i < n; ++i) results[i] = work[i].error;
  {
    BatchSyncer sync(mode_);
    for (const auto& e : commit_targets(targets, sync, results)) log_.server(e.message);
  }
  stats_.batches.fetch_add(1, std::memory_order_relaxed);
  // A staged file no copy took (every local copy written anew, or
  // discarded) is dropped before the client hears back: the queue and the
  // spool entries have their own links by now.
  std::vector<std::string> own_names(n);
  for (std::size_t i = 0; i < n; ++i) {
    own_names[i] = jobs[i].message.new_name();
    jobs[i].message.discard();
    work[i].plain.reset();
  }

  for (std::size_t i = 0; i < jobs.size(); ++i) {
    auto& w = work[i];
    auto& job = jobs[i];
    Status& result = results[i];
    if (result) {
      stats_.delivered.fetch_add(maildir.copies(i), std::memory_order_relaxed);
      const bool queued = relay.published(i);
      if (queued) stats_.relayed.fetch_add(1, std::memory_order_relaxed);
      if (queued && relay_notify_) relay_notify_();
      // The first local copy's name, else the queue id, else the message's own name.
      std::string id;
      if (auto first = maildir.first_copy(i)) {
        // new_name() of a moved-from message is not available: use the batch's path.
        id = first->filename().string();
      } else if (queued) {
        id = relay.id(i);
      } else {
        id = own_names[i];
      }
      auto comma = id.find(',');
      if (comma != std::string::npos) id.resize(comma);
      if (notices_ && !job.success.empty()) {
        DsnInput in;
        in.original_sender = job.sender;
        in.queue_id = id;
        in.arrival_time = static_cast<std::int64_t>(::time(nullptr));
        // Copies the delivery agent took are reported by the agent; copies a
        // delivery callback refused were not delivered.
        for (auto& sr : job.success)
          if ((sr.dir.empty() || std::find(w.agent_dirs.begin(), w.agent_dirs.end(), sr.dir) == w.agent_dirs.end()) &&
              std::find(w.refused_locals.begin(), w.refused_locals.end(), sr.local) == w.refused_locals.end())
            in.recipients.push_back(std::move(sr.report));
        in.original_headers = w.head;
        in.envelope_id = job.envid;
        if (!in.recipients.empty()) {
          try {
            notices_(std::move(in), job.smtputf8);
          } catch (const std::exception& e) {
            log_.server("success notice for " + id + " not sent: " + e.what());
          }
        }
      }
      if (notices_ && !w.refused.empty()) {
        DsnInput in;
        in.original_sender = job.sender;
        in.queue_id = id;
        in.arrival_time = static_cast<std::int64_t>(::time(nullptr));
        in.recipients = std::move(w.refused);
        in.original_headers = std::move(w.head);
        in.envelope_id = job.envid;
        try {
          notices_(std::move(in), job.smtputf8);
        } catch (const std::exception& e) {
          log_.server("failure notice for " + id + " not sent: " + e.what());
        }
      }
      complete(job, std::move(id));
    } else {
      log_.log(LogFile::error, {}, job.client_ip, job.auth_user,
               "commit failed: " + result.error().message);
      complete(job, unexpected(result.error()));
    }
  }
  if (spool && spool->any_published()) agent_->notify();
  maildir.tidy();
}

}  // namespace wizmail::server
