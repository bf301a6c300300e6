#include "agent/local_agent.hpp"
#include "agent/shared_records.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <ctime>

#include "mime/header_section.hpp"
#include "mime/message_head.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"
#include "wizmail/account_store.hpp"
#include "wizmail/autoreply.hpp"
#include "mime/header_codec.hpp"
#include "wizmail/hooks.hpp"
#include "wizmail/mailing_list.hpp"
#include "store/maildir_delivery.hpp"
#include "wizmail/mailbox.hpp"
#include "wizmail/relay.hpp"
#include "outbound/notice.hpp"

namespace wizmail::agent {

namespace fs = std::filesystem;

namespace {

// The server's local date "YYYY-MM-DD" (hook active_from/active_until).
std::string local_date_today() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
  return buf;
}

std::int64_t unix_now() { return static_cast<std::int64_t>(std::time(nullptr)); }

bool regular_file(const fs::path& p) {
  struct stat st{};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// The MAILFILE_PATH file of one delivery; removed once nobody uses it.
struct WorkFile {
  fs::path path;
  ~WorkFile() {
    if (!path.empty()) ::unlink(path.c_str());
  }
};

// Server-wide values when an account's config.def is broken (logged).
AccountSettings defaults_of(const Config& c) {
  AccountSettings s;
  const auto& v = c.server;
  s.mailing_list_from_kind = v.mailing_list_from_kind;
  s.mailing_list_to_kind = v.mailing_list_to_kind;
  s.mailing_list_mail_header_x_element = v.mailing_list_mail_header_x_element;
  s.mailing_list_public_level = v.mailing_list_public_level;
  s.mailing_list_subject_header = v.mailing_list_subject_header;
  s.mailing_list_filter_string = v.mailing_list_filter_string;
  s.mailbox_capacity_mail_count = v.mailbox_capacity_mail_count;
  s.mailbox_capacity_mail_size = v.mailbox_capacity_mail_size;
  s.application_cooperation_wait_for_apl_end = v.application_cooperation_wait_for_apl_end;
  return s;
}

// The account a local address names, or "" when the address is not local
// or no such account exists. An account the store cannot look up (EIO …)
// counts as existing: its delivery is tried and a failure reported, never
// skipped as "no account".
std::string local_account(const Config& cfg, const AccountStore& store, std::string_view address) {
  auto at = address.rfind('@');
  if (at == std::string_view::npos) return {};
  std::string domain = util::to_lower(address.substr(at + 1));
  auto domains = cfg.local_domains();
  if (std::find(domains.begin(), domains.end(), domain) == domains.end()) return {};
  auto name = AccountStore::normalize_name(address.substr(0, at));
  if (!name) return {};
  auto kind = store.lookup(*name);
  if (kind && *kind == AccountKind::none) return {};
  return *name;
}

// The header section of a message (for the text/rfc822-headers part of a
// notice), at most 64 KiB, cut at a line end.
std::string header_block(std::string_view message) {
  std::string_view head = message.substr(0, mime::split_header_section(message).head_size);
  if (head.size() > 65536) head = head.substr(0, head.rfind('\n', 65535) + 1);
  return std::string(head);
}

// A message id as it may go into a header the sendmail tool writes: one
// "<...>" token of printable ASCII, or "" when the value is not one.
std::string clean_msg_id(std::string_view v) {
  v = util::trim(v);
  if (v.size() < 3 || v.size() > 250 || v.front() != '<' || v.back() != '>') return {};
  for (char c : v.substr(1, v.size() - 2))
    if (c <= ' ' || c >= 0x7F || c == '<' || c == '>') return {};
  return std::string(v);
}

// RFC 3834 §3.1.5: a reply refers to the message it answers. The
// environment of a reply.def hook (the sendmail tool writes the headers).
void add_reply_env(std::vector<std::string>& env, const mime::MessageHead& head) {
  const std::string id = clean_msg_id(head.get("Message-ID"));
  if (id.empty()) return;
  env.push_back("WIZMAIL_IN_REPLY_TO=" + id);
  // References: the original's (else its In-Reply-To), then its own id;
  // the newest ten ids at most.
  std::string refs = head.get("References");
  if (refs.empty()) refs = head.get("In-Reply-To");
  std::vector<std::string> ids;
  for (std::size_t pos = 0;;) {
    auto lt = refs.find('<', pos);
    if (lt == std::string::npos) break;
    auto gt = refs.find('>', lt);
    if (gt == std::string::npos) break;
    if (auto one = clean_msg_id(std::string_view(refs).substr(lt, gt - lt + 1)); !one.empty()) ids.push_back(one);
    pos = gt + 1;
  }
  ids.push_back(id);
  if (ids.size() > 10) ids.erase(ids.begin(), ids.end() - 10);
  std::string joined;
  for (const auto& i : ids) joined += (joined.empty() ? "" : " ") + i;
  env.push_back("WIZMAIL_REFERENCES=" + joined);
}

}  // namespace

std::string encode_recipient(std::string_view account, std::string_view address) {
  return std::string(account) + "/" + std::string(address);
}

std::pair<std::string, std::string> decode_recipient(std::string_view rcpt) {
  auto slash = rcpt.find('/');
  if (slash == std::string_view::npos) return {std::string(rcpt), {}};
  return {std::string(rcpt.substr(0, slash)), std::string(rcpt.substr(slash + 1))};
}

LocalAgent::LocalAgent(ConfigFn config, LogFn log) : LocalAgent(std::move(config), std::move(log), Options{}) {}

LocalAgent::LocalAgent(ConfigFn config, LogFn log, Options options)
    : config_(std::move(config)), log_(std::move(log)), opt_(options), spool_(spool_dir(*config_()), config_()->node),
      work_(work_dir(*config_())), home_(config_()->home) {}

LocalAgent::~LocalAgent() { stop(std::chrono::seconds(5)); }

Status LocalAgent::start() {
  if (!threads_.empty()) return {};
  auto rec = spool_.recover();
  if (!rec) return unexpected(rec.error());
  if (auto st = adopt_old_node_spool(); !st) return st;
  if (rec->tmp_removed + rec->orphans_removed + rec->reactivated + rec->corrupt > 0)
    log_("agent spool recovery: " + std::to_string(rec->reactivated) + " entries resumed, " +
         std::to_string(rec->tmp_removed + rec->orphans_removed) + " leftovers removed, " +
         std::to_string(rec->corrupt) + " corrupt");
  if (auto st = util::make_dirs(work_, 0700); !st) return st;
  std::error_code ec;
  for (auto& e : fs::directory_iterator(work_, ec)) fs::remove(e.path(), ec);
  runner_ = std::make_unique<ChildRunner>(log_);
  {
    std::lock_guard lk(mu_);
    stop_ = false;
  }
  stopping_ = false;
  for (unsigned i = 0; i < std::max(1u, opt_.threads); ++i) threads_.emplace_back([this] { worker(); });
  return {};
}

bool LocalAgent::lost(const std::string& id) const {
  if (spool_.node().empty() || spool_.holds(id)) return false;
  log_("agent spool entry " + id + ": no longer claimed by this node (taken over by another node); left to it");
  return true;
}

Status LocalAgent::adopt_old_node_spool() {
  auto cfg = config_();
  if (cfg->node.empty()) return {};
  const fs::path old = cfg->node_dir() / "spool" / "agent";
  std::error_code ec;
  if (!fs::is_directory(old, ec)) return {};
  std::size_t moved = 0;
  for (auto state : {"incoming", "active", "deferred"}) {
    for (auto& f : fs::directory_iterator(old / state, ec)) {
      auto id = f.path().filename().string();
      if (!RelayQueue::validate_id(id)) continue;
      // Data first, then the envelope, as a new entry is published.
      auto data = old / "data" / id;
      if (::rename(data.c_str(), spool_.message_path(id).c_str()) != 0 && errno != ENOENT)
        return fail_errno("agent spool: move " + data.string(), errno);
      if (::rename(f.path().c_str(), (spool_.state_dir(QueueState::incoming) / id).c_str()) != 0)
        return fail_errno("agent spool: move " + f.path().string(), errno);
      ++moved;
    }
  }
  for (const auto& d : {spool_.dir() / "data", spool_.state_dir(QueueState::incoming)})
    if (auto st = util::fsync_dir(d); !st) return st;
  fs::remove_all(old, ec);
  if (moved > 0) log_(util::cat("agent spool: ", std::to_string(moved), " entries moved from ", old.string(),
                               " into the shared spool"));
  return {};
}

void LocalAgent::stop(std::chrono::milliseconds grace) {
  {
    std::lock_guard lk(mu_);
    if (threads_.empty() && !runner_) return;
    stop_ = true;
  }
  stopping_ = true;
  cv_.notify_all();
  // Waited-for hooks end (killed after `grace`), so the workers can return.
  if (runner_) runner_->stop(grace);
  for (auto& t : threads_) t.join();
  threads_.clear();
  runner_.reset();
}

void LocalAgent::notify() {
  {
    std::lock_guard lk(mu_);
    ++seq_;
  }
  cv_.notify_all();
}

void LocalAgent::set_relay_notify(std::function<void()> fn) {
  std::lock_guard lk(mu_);
  relay_notify_ = std::move(fn);
}

std::size_t LocalAgent::backlog() const {
  auto ids = spool_.list();
  return ids ? ids->size() : 0;
}

bool LocalAgent::needs_agent(const fs::path& dir) {
  struct stat st{};
  if (::stat(dir.c_str(), &st) != 0) return false;
  std::string key = dir.string();
  {
    std::lock_guard lk(cache_mu_);
    auto it = cache_.find(key);
    if (it != cache_.end() && it->second.sec == st.st_mtim.tv_sec && it->second.nsec == st.st_mtim.tv_nsec)
      return it->second.needs;
  }
  bool needs = regular_file(dir / "ml.def") || regular_file(dir / "exec.def") ||
               regular_file(dir / "forward.def") || regular_file(dir / "reply.def");
  std::lock_guard lk(cache_mu_);
  if (cache_.size() > 100000) cache_.clear();
  cache_[key] = {st.st_mtim.tv_sec, st.st_mtim.tv_nsec, needs};
  return needs;
}

std::vector<std::string> LocalAgent::take(std::vector<store::LocalTarget>& targets, std::vector<DsnRequest>& dsn) {
  std::vector<std::string> out;
  for (auto it = targets.begin(); it != targets.end();) {
    if (!needs_agent(it->dir)) {
      ++it;
      continue;
    }
    // Two addresses of one account (aliases) are one delivery, as on the
    // plain Maildir path: hooks and lists run once.
    bool seen = false;
    for (const auto& r : out) seen = seen || decode_recipient(r).first == it->dir.filename().string();
    if (!seen) {
      out.push_back(encode_recipient(it->dir.filename().string(), it->address));
      dsn.push_back(it->dsn);
    }
    it = targets.erase(it);
  }
  return out;
}

void LocalAgent::worker() {
  std::uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock lk(mu_);
      if (stop_) return;
      seen = seq_;
    }
    // Take every due entry nobody else is working on.
    for (;;) {
      if (stopping_) return;
      auto due = spool_.due(unix_now());
      if (!due) {
        log_("agent spool: " + due.error().message);
        break;
      }
      std::string id;
      if (!lease_ok()) break;  // taken for dead, perhaps: take nothing
      {
        std::lock_guard lk(mu_);
        for (const auto& d : *due)
          if (!busy_.contains(d) && !broken_.contains(d)) {
            id = d;
            busy_.insert(d);
            break;
          }
      }
      if (id.empty()) break;
      process(id);
      std::lock_guard lk(mu_);
      busy_.erase(id);
    }
    std::unique_lock lk(mu_);
    cv_.wait_for(lk, std::chrono::seconds(1), [&] { return stop_ || seq_ != seen; });
    if (stop_) return;
  }
}

void LocalAgent::process(const std::string& id) {
  auto e = spool_.load(id);
  // Another node of a shared home took it (and perhaps finished it) since
  // the scan: nothing to do here.
  if (!e && !spool_.node().empty() && e.error().code == Errc::not_found) return;
  if (!e) {
    log_("agent spool entry " + id + " unreadable: " + e.error().message);
    std::lock_guard lk(mu_);
    broken_.insert(id);
    return;
  }
  if (auto st = spool_.move(id, QueueState::active); !st) {
    // Another node of a shared home claimed it first: its to deliver.
    if (!spool_.node().empty() && st.error().code == Errc::not_found) return;
    log_("agent spool entry " + id + ": " + st.error().message);
    return;
  }
  bool retry = false;
  for (const auto& r : e->recipients) {
    if (r.state != RecipientState::pending) continue;
    if (stopping_ || !lease_ok()) {  // stopping, or taken for dead perhaps: the rest later
      retry = true;
      break;
    }
    if (lost(id)) return;
    Result1 res;
    try {
      res = deliver_one(*e, r.address);
    } catch (const std::exception& ex) {
      res = {Outcome::retry, std::string("internal error: ") + ex.what()};
    }
    if (res.outcome == Outcome::retry) {
      retry = true;
      log_("agent: " + r.address + " deferred: " + res.text);
      continue;
    }
    auto state = res.outcome == Outcome::done ? RecipientState::delivered : RecipientState::failed;
    if (res.outcome == Outcome::failed) log_("agent: " + r.address + " failed: " + res.text);
    // RFC 3461 NOTIFY=SUCCESS: "delivered" once the copy is stored (or the
    // list post distributed).
    if (res.delivered && wants_success_notice(r.dsn.notify)) {
      auto cfgp = config_();
      auto [account, address] = decode_recipient(r.address);
      DsnRecipient d;
      d.address = address.empty() ? account + "@" + cfgp->server.domain : address;
      d.action = DsnAction::delivered;
      d.diagnostic = res.text;
      std::string head;
      if (auto m = util::read_file(spool_.message_path(id))) head = header_block(*m);
      const std::string label = "agent: " + d.address + ": success notice";
      notify_sender(*cfgp, *e, e->sender, {std::move(d)}, std::move(head), label, r.address);
    }
    if (auto st = spool_.update_recipient(id, r.address, state, res.text); !st)
      log_("agent spool entry " + id + ": " + st.error().message);
  }
  if (lost(id)) return;
  auto now_entry = spool_.load(id);
  if (!now_entry) return;
  if (now_entry->finished()) {
    if (auto st = spool_.remove(id); !st) log_("agent spool entry " + id + ": " + st.error().message);
    return;
  }
  if (!retry) return;
  auto now = unix_now();
  if (now - now_entry->created > opt_.give_up_after.count()) {
    for (auto& r : now_entry->recipients)
      if (r.state == RecipientState::pending) {
        r.state = RecipientState::failed;
        log_("agent: " + r.address + " given up after " + std::to_string(opt_.give_up_after.count()) + " s");
      }
    if (auto st = spool_.save(*now_entry); st) (void)spool_.remove(id);
    return;
  }
  // Exponential back-off (at most an hour) measured by the attempts made.
  int attempts = static_cast<int>(now_entry->attempts.size());
  auto delay = opt_.retry_base * (1 << std::min(attempts, 7));
  delay = std::min<std::chrono::milliseconds>(delay, std::chrono::hours(1));
  now_entry->next_attempt = now + std::max<std::int64_t>(1, std::chrono::duration_cast<std::chrono::seconds>(delay).count());
  now_entry->attempts.push_back({now, "deferred"});
  if (auto st = spool_.save(*now_entry); !st) log_("agent spool entry " + id + ": " + st.error().message);
  if (auto st = spool_.move(id, QueueState::deferred); !st) log_("agent spool entry " + id + ": " + st.error().message);
}

LocalAgent::Result1 LocalAgent::deliver_one(const QueueEntry& e, const std::string& rcpt) {
  auto cfgp = config_();
  const Config& cfg = *cfgp;
  auto [account, address] = decode_recipient(rcpt);
  AccountStore store(cfg.mailbox_dir());
  auto dir = store.account_dir(account);
  if (!dir) return {Outcome::failed, dir.error().message};
  auto kind = store.lookup(account);
  if (!kind) return {Outcome::retry, kind.error().message};
  if (*kind == AccountKind::none) return {Outcome::failed, "no such account " + account};
  if (address.empty()) address = account + "@" + cfg.server.domain;
  auto msg = util::read_file(spool_.message_path(e.id));
  if (!msg) return {Outcome::retry, "cannot read the message: " + msg.error().message};

  const bool is_list = regular_file(*dir / "ml.def");
  AccountSettings settings;
  if (auto s = cfg.account_settings(account)) {
    settings = std::move(*s);
  } else {
    log_("agent: " + account + ": " + s.error().message + " (server defaults used)");
    settings = defaults_of(cfg);
  }
  mime::MessageHead head(*msg);
  const auto headers = head.unfolded();
  // Final delivery (store/maildir_delivery.hpp): the copy — and so the
  // MAILFILE_PATH file the hooks see — starts with Return-Path and
  // Delivered-To; a list's post gets them per member when distributed.
  // Delivered-To is also Postfix's local(8) way to end forwarding loops: no
  // hook runs for mail that was delivered here before.
  std::string content = is_list ? std::move(*msg) : final_headers(e.sender, address) + without_return_path(*msg);
  const bool loop = forward_loop(headers, address);

  auto work = std::make_shared<WorkFile>();
  work->path = work_ / (util::unique_name_part() + "." + account + ".eml");
  if (auto st = util::write_file_atomic(work->path, content, 0600); !st)
    return {Outcome::retry, "cannot write the working file: " + st.error().message};

  HookTokens tokens;
  tokens.from_address = e.sender.empty() ? mime::extract_address(head.get("From")) : e.sender;
  tokens.to_address = address;
  tokens.subject = mime::decode_header(head.get("Subject")).utf8;
  tokens.mailfile_path = work->path.string();

  const bool wait = settings.application_cooperation_wait_for_apl_end;
  const auto timeout = std::chrono::seconds(cfg.server.application_cooperation_timeout);
  if (!wait) {
    auto r = store_copy(cfg, e, rcpt, account, address, *dir, content, is_list);
    if (r.outcome != Outcome::done || !r.delivered) return r;
  }
  for (const auto& hf : hook_files(*dir)) {
    if (stopping_) return {Outcome::retry, "stopping"};
    const std::string label = account + "/" + hf.path.filename().string();
    auto text = util::read_file(hf.path);
    if (!text) {
      log_("hook " + label + ": " + text.error().message);
      continue;
    }
    auto def = parse_hook_def(*text, hf.path.string());
    if (!def) {
      log_("hook " + label + " not run: " + def.error().message);
      continue;
    }
    if (!hook_permits(*def, e.sender)) {
      log_("hook " + label + " not run: sender <" + e.sender + "> not in permission_mailaddress");
      continue;
    }
    if (!hook_active_on(*def, local_date_today())) {
      log_("hook " + label + " not run: outside active_from/active_until");
      continue;
    }
    if (loop) {
      log_("hook " + label + " not run: the message was already delivered to " + address + " (loop)");
      continue;
    }
    if (hf.kind == HookKind::reply) {
      auto ok = auto_reply_check(e.sender, headers, address);
      if (!ok.allowed) {
        log_("hook " + label + " not run (RFC 3834): " + ok.reason);
        continue;
      }
      if (opt_.shared) {
        // Every node asks one record: the first claim in the interval wins.
        // Unreachable: no reply now (a later message may get it), never two.
        auto first = claim_auto_reply(*opt_.shared, account, e.sender, opt_.reply_interval);
        if (!first) {
          log_(util::cat("hook ", label, " not run: the auto-reply record cannot be asked: ", first.error().message));
          continue;
        }
        if (!*first) {
          log_(util::cat("hook ", label, " not run: <", e.sender, "> had an auto-reply recently"));
          continue;
        }
      } else {
        ReplyMemory memory(*dir / ".autoreply");
        if (memory.recently(e.sender, unix_now(), opt_.reply_interval)) {
          log_("hook " + label + " not run: <" + e.sender + "> had an auto-reply recently");
          continue;
        }
        if (auto st = memory.record(e.sender, unix_now()); !st)
          log_("hook " + label + ": cannot record the reply: " + st.error().message);
      }
    }
    SpawnSpec spec;
    spec.argv = hook_argv(*def, tokens);
    spec.cwd = *dir;
    if (def->stdin_message) spec.stdin_file = work->path;
    spec.env = {"WIZ98MS_HOME=" + home_.string(), "WIZMAIL_ACCOUNT=" + account,
                "WIZMAIL_HOOK=" + std::string(to_string(hf.kind))};
    // A node of a shared home: wizmail-sendmail in the hook submits through
    // this node's socket (nodes/<node>/run/submit.sock, docs/cluster.md).
    if (const auto& node = config_()->node; !node.empty()) spec.env.push_back(util::cat("WIZMAIL_NODE=", node));
    if (hf.kind == HookKind::reply) {
      spec.env.push_back("WIZMAIL_AUTO_SUBMITTED=auto-replied");
      add_reply_env(spec.env, head);
    }
    spec.label = label;
    spec.keepalive = work;
    auto count_failure = [this] {
      if (failures_) failures_->fetch_add(1, std::memory_order_relaxed);
    };
    // A forward that failed is the sender's business too (never the null
    // sender's): an RFC 3464 notice naming the recipient and the reason.
    std::function<void(const std::string&)> forward_failed;
    if (hf.kind == HookKind::forward && !e.sender.empty()) {
      forward_failed = [this, cfgp, e, rcpt, address, label,
                        headers_text = header_block(content)](const std::string& why) {
        DsnRecipient r;
        r.address = address;
        r.status = "5.3.0";
        r.diagnostic = "the message was stored for " + address + ", but forwarding it (" + label + ") failed: " + why;
        notify_sender(*cfgp, e, e.sender, {r}, headers_text, "agent: " + address + ": forward failure notice", rcpt);
      };
    }
    auto why_failed = [](const ChildExit& x) {
      return x.describe() + (x.last_line.empty() ? std::string() : ": " + x.last_line);
    };
    if (runs_) runs_->fetch_add(1, std::memory_order_relaxed);
    if (wait) {
      spec.timeout = timeout;
      auto r = runner_->run(std::move(spec));
      if (!r) {
        count_failure();
        log_("hook " + label + ": " + r.error().message);
        if (forward_failed && !stopping_) forward_failed("cannot start it: " + r.error().message);
      } else {
        if (r->timed_out || r->status != 0) count_failure();
        if (r->timed_out && stopping_) return {Outcome::retry, "stopped while " + label + " ran"};
        if ((r->timed_out || r->status != 0) && forward_failed) forward_failed(why_failed(*r));
      }
    } else {
      spec.timeout = std::nullopt;
      auto r = runner_->spawn(std::move(spec), [this, count_failure, forward_failed, why_failed](const ChildExit& x) {
        if (!(x.timed_out || x.status != 0)) return;
        count_failure();
        // Killed by stop(): not a failure of the forward itself.
        if (forward_failed && !stopping_) forward_failed(why_failed(x));
      });
      if (!r) {
        count_failure();
        log_("hook " + label + ": " + r.error().message);
        if (forward_failed && !stopping_) forward_failed("cannot start it: " + r.error().message);
      }
    }
  }
  if (!wait) return {Outcome::done, "delivered to the mailbox", true};
  // The hooks are done: what they left in the file is the message.
  if (!regular_file(work->path)) {
    log_("agent: " + address + ": the hooks removed the message; not stored");
    return {Outcome::done, "removed by a hook", true};
  }
  auto rewritten = util::read_file(work->path);
  if (!rewritten) return {Outcome::retry, "cannot read the working file: " + rewritten.error().message};
  // What the hooks left is stored as the final copy: its final headers are
  // ours again (a hook may have dropped or changed them).
  if (!is_list) {
    const std::string fh = final_headers(e.sender, address);
    const std::string_view delivered_to = std::string_view(fh).substr(fh.find('\n') + 1);
    std::string rest = without_return_path(*rewritten);
    if (std::string_view(rest).starts_with(delivered_to)) rest.erase(0, delivered_to.size());
    *rewritten = fh + rest;
  }
  return store_copy(cfg, e, rcpt, account, address, *dir, *rewritten, is_list);
}

// The quota of the account folder `dir` against a copy of `size` octets:
// ok, full (the Error says why) or unknown (a temporary error).
Status LocalAgent::check_quota(const Config& cfg, const std::string& account, const fs::path& dir,
                               std::uint64_t size) {
  AccountSettings settings;
  if (auto s = cfg.account_settings(account)) settings = std::move(*s);
  else settings = defaults_of(cfg);
  return Mailbox(dir).check_quota(settings.mailbox_capacity_mail_count, settings.mailbox_capacity_mail_size, size);
}

void LocalAgent::notify_sender(const Config& cfg, const QueueEntry& e, const std::string& to,
                               std::vector<DsnRecipient> reports, std::string headers, const std::string& label,
                               std::string_view about) {
  if (to.empty()) return;  // never to the null sender
  DsnInput in;
  in.reporting_domain = cfg.server.domain;
  in.reporting_mta = cfg.server.domain;
  in.original_sender = to;
  in.queue_id = e.id;
  in.arrival_time = e.created;
  in.now = unix_now();
  const bool failure = std::any_of(reports.begin(), reports.end(),
                                   [](const DsnRecipient& r) { return r.action == DsnAction::failed; });
  auto origin = std::find_if(e.recipients.begin(), e.recipients.end(),
                             [&](const QueueRecipient& r) { return !about.empty() && r.address == about; });
  if (origin != e.recipients.end()) {
    if (failure && !wants_failure_notice(origin->dsn.notify)) {
      log_(label + " not sent: NOTIFY=" + format_dsn_notify(origin->dsn.notify));
      return;
    }
    for (auto& r : reports) r.original_recipient = origin->dsn.orcpt;
    in.envelope_id = e.envid;
    if (failure && e.ret == DsnRet::full && e.size <= static_cast<std::uint64_t>(cfg.smtp.bounce_size_limit))
      if (auto m = util::read_file(spool_.message_path(e.id))) in.original_message = std::move(*m);
  }
  in.recipients = std::move(reports);
  in.original_headers = std::move(headers);
  RelayQueue relay(cfg.queue_dir(), cfg.node);
  outbound::NoticeOptions o;
  o.smtputf8 = e.smtputf8;
  if (outbound::deliver_notice(cfg, relay, to, build_dsn(in), false, label, log_, o)) wake_relay();
}

void LocalAgent::wake_relay() {
  std::function<void()> fn;
  {
    std::lock_guard lk(mu_);
    fn = relay_notify_;
  }
  if (fn) fn();
}

LocalAgent::Result1 LocalAgent::store_copy(const Config& cfg, const QueueEntry& e, const std::string& rcpt,
                                           const std::string& account, const std::string& address,
                                           const fs::path& dir, std::string_view content, bool is_list) {
  if (is_list) return distribute(cfg, e, rcpt, account, content);
  // Quotas hold on every path: the SMTP check before the 250 saw the message
  // as received, this one the copy as stored (hooks may have rewritten it,
  // other mail may have arrived meanwhile). Full: the sender is told, as by
  // Dovecot's LDA (quota_full_tempfail=no) — and for a list copy that is
  // the list's envelope sender, never the poster.
  if (auto q = check_quota(cfg, account, dir, content.size()); !q) {
    if (q.error().code != Errc::mailbox_full) return {Outcome::retry, "quota: " + q.error().message};
    DsnRecipient r;
    r.address = address;
    r.status = "5.2.2";
    r.diagnostic = "mailbox full: " + q.error().message;
    notify_sender(cfg, e, e.sender, {r}, header_block(content), "agent: " + address + ": over quota notice", rcpt);
    return {Outcome::failed, "mailbox full: " + q.error().message};
  }
  fs::path d = dir;
  auto r = deliver(std::span<const fs::path>(&d, 1), content);
  if (r.empty() || !r.front()) return {Outcome::retry, r.empty() ? "no result" : r.front().error().message};
  return {Outcome::done, "delivered to the mailbox", true};
}

LocalAgent::Result1 LocalAgent::distribute(const Config& cfg, const QueueEntry& e, const std::string& rcpt,
                                           const std::string& account, std::string_view content) {
  const std::string& sender = e.sender;
  auto list = MailingList::load(cfg, account);
  if (!list) return {Outcome::failed, "mailing list " + account + ": " + list.error().message};
  auto verdict = list->check(sender, content);
  if (verdict.verdict != MailingList::Verdict::distribute) {
    log_("mailing list " + account + ": post from <" + sender + "> not distributed (" +
         std::string(to_string(verdict.verdict)) + "): " + verdict.reason);
    // The poster is told (Mailman's rejection notice), never the null
    // sender, and never for a post that came back to its own list (loop).
    if (verdict.verdict != MailingList::Verdict::loop) {
      DsnRecipient r;
      r.address = list->address();
      r.status = "5.7.1";
      r.diagnostic = (verdict.verdict == MailingList::Verdict::not_permitted
                          ? "the mailing list " + list->address() + " does not accept posts from you: "
                          : "the mailing list " + list->address() + " refused the post: ") +
                     verdict.reason;
      notify_sender(cfg, e, sender, {r}, header_block(content), "mailing list " + account + ": refusal notice", rcpt);
    }
    return {Outcome::done, "not distributed: " + verdict.reason};
  }
  AccountStore store(cfg.mailbox_dir());
  auto dir = store.account_dir(account);
  if (!dir) return {Outcome::failed, dir.error().message};
  // One sequence for every node with a shared state (seeded by ml.def);
  // unreachable: retried later, never sent without its number.
  auto count = opt_.shared ? next_post_number(*opt_.shared, account, *dir / "ml.def")
                           : increment_ml_count(*dir / "ml.def");
  if (!count) return {Outcome::retry, "ml.def count: " + count.error().message};
  const std::string rewritten = list->rewrite(content, *count);
  const std::string from = list->envelope_sender();

  struct Member {
    std::string address, account;
    fs::path dir;
    bool agent = false;
  };
  std::vector<Member> locals;
  std::vector<std::string> remotes;
  for (const auto& m : list->members()) {
    std::string acct = local_account(cfg, store, m);
    if (acct == account) continue;  // the list itself: a loop
    if (acct.empty()) {
      auto at = m.rfind('@');
      auto domains = cfg.local_domains();
      if (at != std::string::npos &&
          std::find(domains.begin(), domains.end(), util::to_lower(m.substr(at + 1))) != domains.end()) {
        log_("mailing list " + account + ": member " + m + " has no account; skipped");
        continue;
      }
      remotes.push_back(m);
      continue;
    }
    auto d = store.account_dir(acct);
    if (!d) continue;
    locals.push_back({m, acct, *d, needs_agent(*d)});
  }
  std::size_t ok = 0, failed = 0;
  bool queued_remote = false, queued_agent = false;
  RelayQueue relay(cfg.queue_dir(), cfg.node);
  auto to_agent = [&](const std::vector<const Member*>& ms, const std::string& text) {
    QueueEnvelope env;
    env.sender = from;
    for (auto* m : ms) env.recipients.push_back(encode_recipient(m->account, m->address));
    auto id = spool_.enqueue(env, std::string_view(text));
    if (id) {
      ok += ms.size();
      queued_agent = true;
    } else {
      failed += ms.size();
      log_("mailing list " + account + ": spool: " + id.error().message);
    }
  };
  // Copies are written in rounds of up to kBatch and made durable together
  // (files synced, then published, then their folders synced), as the
  // commit pipeline does. A round also bounds the files open at once and
  // the copies held.
  // A round of several copies is flushed with one syncfs() per file system
  // (SyncMode::syncfs): on a file system without a journal each fsync() is
  // a device flush of its own, so fsyncing a round file by file would cost
  // what copy-by-copy delivery did. Not on a node of a shared home: a
  // network file system's syncfs() is not known to flush what the server
  // wrote there (docs/cluster.md), so every file and folder is fsynced.
  constexpr std::size_t kBatch = 128;
  constexpr std::size_t kBatchBytes = 32u << 20;
  auto mode_for = [&cfg](std::size_t copies) {
    return copies > 2 && cfg.node.empty() ? SyncMode::syncfs : SyncMode::fsync_each;
  };
  // A local member's copy starts with its own final headers (Delivered-To
  // differs per member, so no two members share a file). Over quota: no
  // copy; the list's envelope sender gets one notice per post naming every
  // such member (as a bounce of the copy would reach it with Postfix), the
  // poster none.
  std::vector<DsnRecipient> over_quota;
  struct LocalCopy {
    const Member* member;
    std::shared_ptr<const std::string> text;  // the list's copy, before the member's final headers
  };
  std::vector<LocalCopy> local_round;
  std::size_t local_bytes = 0;
  auto flush_local = [&] {
    DeliveryBatch batch(mode_for(local_round.size()));
    std::vector<const Member*> in_batch;
    for (auto& c : local_round) {
      const Member* m = c.member;
      auto staged = StagedMessage::create(m->dir / "tmp");
      Status st = staged ? Status{} : unexpected(staged.error());
      if (st) st = staged->write(final_headers(from, m->address));
      if (st) st = staged->write(without_return_path(*c.text));
      if (st) st = staged->finish();
      if (!st) {
        ++failed;
        log_("mailing list " + account + ": " + m->address + ": " + st.error().message);
        if (staged) staged->discard();
        continue;
      }
      batch.add(std::move(*staged), {m->dir});
      in_batch.push_back(m);
    }
    local_round.clear();
    local_bytes = 0;
    if (in_batch.empty()) return;
    (void)batch.commit();  // the per-copy results say everything
    for (std::size_t i = 0; i < in_batch.size(); ++i) {
      const auto& r = batch.results(i).front();
      if (r) {
        ++ok;
      } else {
        ++failed;
        log_("mailing list " + account + ": " + in_batch[i]->address + ": " + r.error().message);
      }
    }
  };
  auto to_maildirs = [&](const std::vector<const Member*>& ms, const std::string& text) {
    auto shared = std::make_shared<const std::string>(text);
    for (auto* m : ms) {
      if (auto q = check_quota(cfg, m->account, m->dir, final_headers(from, m->address).size() + text.size()); !q) {
        if (q.error().code == Errc::mailbox_full) {
          log_("mailing list " + account + ": " + m->address + ": mailbox full, no copy: " + q.error().message);
          DsnRecipient r;
          r.address = m->address;
          r.status = "5.2.2";
          r.diagnostic = "mailbox full: " + q.error().message;
          over_quota.push_back(std::move(r));
        } else {
          ++failed;
          log_("mailing list " + account + ": " + m->address + ": quota: " + q.error().message);
        }
        continue;
      }
      local_round.push_back({m, shared});
      local_bytes += text.size();
      if (local_round.size() >= kBatch || local_bytes >= kBatchBytes) flush_local();
    }
  };
  struct RemoteCopy {
    std::vector<std::string> rcpts;
    std::string text;
  };
  std::vector<RemoteCopy> remote_round;
  std::size_t remote_bytes = 0;
  auto flush_remote = [&] {
    std::vector<RelayQueue::Staged> staged;
    std::vector<std::size_t> counts;
    BatchSyncer syncer(mode_for(remote_round.size()));
    for (auto& c : remote_round) {
      QueueEnvelope env;
      env.sender = from;
      env.recipients = c.rcpts;
      auto s = relay.stage(env, std::string_view(c.text));
      if (!s) {
        failed += c.rcpts.size();
        log_("mailing list " + account + ": relay queue: " + s.error().message);
        continue;
      }
      for (int fd : s->files_to_sync()) syncer.add_file(fd);
      counts.push_back(c.rcpts.size());
      staged.push_back(std::move(*s));
    }
    remote_round.clear();
    remote_bytes = 0;
    if (staged.empty()) return;
    auto lost = [&](std::size_t i, const Error& why) {
      failed += counts[i];
      log_("mailing list " + account + ": relay queue: " + why.message);
    };
    if (auto st = syncer.sync_files(); !st) {
      // Nothing published: the staged files go with `staged`.
      for (std::size_t i = 0; i < staged.size(); ++i) lost(i, st.error());
      return;
    }
    std::vector<bool> published(staged.size(), false);
    for (std::size_t i = 0; i < staged.size(); ++i) {
      if (auto st = staged[i].publish(); !st) {
        lost(i, st.error());
        continue;
      }
      published[i] = true;
      for (const auto& d : staged[i].dirs_to_sync()) syncer.add_dir(d);
    }
    auto st = syncer.sync_dirs();
    for (std::size_t i = 0; i < staged.size(); ++i) {
      if (!published[i]) continue;
      if (!st) {
        lost(i, st.error());
        continue;
      }
      ok += counts[i];
      queued_remote = true;
    }
  };
  auto to_relay = [&](const std::vector<std::string>& rcpts, const std::string& text) {
    remote_round.push_back({rcpts, text});
    remote_bytes += text.size();
    if (remote_round.size() >= kBatch || remote_bytes >= kBatchBytes) flush_remote();
  };
  if (list->policy().to_kind == 1) {
    std::vector<const Member*> plain, agent;
    for (const auto& m : locals) (m.agent ? agent : plain).push_back(&m);
    if (!plain.empty()) to_maildirs(plain, rewritten);
    if (!agent.empty()) to_agent(agent, rewritten);
    if (!remotes.empty()) to_relay(remotes, rewritten);
  } else {
    for (const auto& m : locals) {
      std::string copy = list->copy_for(rewritten, m.address);
      if (m.agent) to_agent({&m}, copy);
      else to_maildirs({&m}, copy);
    }
    for (const auto& r : remotes) to_relay({r}, list->copy_for(rewritten, r));
  }
  flush_local();
  flush_remote();
  if (queued_agent) notify();
  if (queued_remote) wake_relay();
  log_("mailing list " + account + ": post " + std::to_string(*count) + " from <" + sender + "> to " +
       std::to_string(ok) + " members" + (failed ? ", " + std::to_string(failed) + " failed" : "") +
       (over_quota.empty() ? "" : ", " + std::to_string(over_quota.size()) + " over quota"));
  if (!over_quota.empty())
    notify_sender(cfg, e, from, std::move(over_quota), header_block(rewritten),
                  "mailing list " + account + ": over quota notice");
  if (ok == 0 && failed > 0) return {Outcome::retry, "no member could be served"};
  return {Outcome::done, "delivered to the mailing list " + list->address() + " (" + std::to_string(ok) + " members)",
          true};
}

}  // namespace wizmail::agent
