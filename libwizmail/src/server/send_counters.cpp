#include "server/send_counters.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>

#include "state/shared_state.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"
#include "wizmail/account_store.hpp"
#include "wizmail/mailbox.hpp"

namespace wizmail::server {

namespace {

std::string local_day() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
  return buf;
}

// A day's shared counter outlives the day in every time zone a node may
// have, then goes by itself.
constexpr std::chrono::hours kSharedDayTtl{48};

}  // namespace

SendCounters::SendCounters(std::filesystem::path dir, DayFn day)
    : dir_(std::move(dir)), day_fn_(day ? std::move(day) : DayFn(local_day)) {}

void SendCounters::share(std::shared_ptr<state::SharedState> shared) { shared_ = std::move(shared); }

std::string SendCounters::key(std::string_view day, std::string_view account) const {
  return util::cat("wizmail:sendcount:", day, ":", account);
}

SendCounters::Entry& SendCounters::load(const std::string& account, const std::string& day) {
  if (day != day_) {
    map_.clear();  // yesterday's counts are 0 today; their files are read again if needed
    day_ = day;
  }
  auto it = map_.find(account);
  if (it == map_.end()) {
    Entry e;
    if (auto text = util::read_file(dir_ / account)) {
      auto parts = util::split_list(*text, ' ');
      if (parts.size() == 2)
        if (auto n = util::parse_int(parts[1])) e = {parts[0], *n};
    }
    it = map_.emplace(account, e).first;
  }
  if (it->second.day != day) it->second = {day, 0};
  return it->second;
}

Result<std::int64_t> SendCounters::today(std::string_view account) {
  if (!AccountStore::validate_name(account)) return 0;
  if (shared_) return shared_->counter(key(day_fn_(), account));
  std::lock_guard lk(mu_);
  return load(std::string(account), day_fn_()).count;
}

Status SendCounters::record(std::string_view account) {
  if (!AccountStore::validate_name(account)) return {};
  if (shared_) {
    auto n = shared_->increment(key(day_fn_(), account), kSharedDayTtl, false);
    if (!n) return unexpected(n.error());
    return {};
  }
  std::lock_guard lk(mu_);
  auto day = day_fn_();
  auto& e = load(std::string(account), day);
  ++e.count;
  // Not fsynced: a crash may forget a few sends of today, which only errs on
  // the side of the sender; the mail itself is durable elsewhere.
  (void)util::make_dirs(dir_, 0750);
  auto tmp = dir_ / util::cat(".", account, ".tmp");
  auto text = util::cat(day, " ", std::to_string(e.count), "\n");
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) return {};
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  if (ok) ::rename(tmp.c_str(), (dir_ / account).c_str());
  return {};
}

// Only existing accounts are counted: a forged local sender must not create
// counters (memory, var/sendcount/ files, shared keys) for arbitrary names.
Result<std::int64_t> SendCounters::today_of(const AccountStore& store, std::string_view account) {
  auto kind = store.lookup(account);
  if (!kind) return unexpected(kind.error());
  if (*kind == AccountKind::none) return 0;
  return today(account);
}

Status SendCounters::record_for(const AccountStore& store, std::string_view account, bool relayed) {
  auto kind = store.lookup(account);
  if (!kind) return unexpected(kind.error());
  if (*kind == AccountKind::none) return {};
  Status counted;
  if (relayed) counted = record(account);
  auto dir = store.account_dir(account);
  if (!dir) return unexpected(dir.error());
  MailboxCounters sent;
  sent.sent = 1;
  if (auto st = add_mailbox_counters(*dir, sent); !st) return st;
  return counted;
}

}  // namespace wizmail::server
