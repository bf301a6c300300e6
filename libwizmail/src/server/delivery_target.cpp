#include "server/delivery_target.hpp"

#include <algorithm>
#include <utility>

namespace wizmail::server {

namespace fs = std::filesystem;

std::vector<Error> commit_targets(std::span<DeliveryTarget* const> targets, BatchSyncer& sync,
                                  std::span<Status> result) {
  for (auto* t : targets) t->files_to_sync(sync, result);
  const Status files = sync.sync_files();
  for (auto* t : targets) t->publish(files, result);
  std::vector<bool> depends(result.size(), false);
  for (auto* t : targets) t->dirs_to_sync(sync, depends);
  if (Status dirs = sync.sync_dirs(); !dirs) {
    // Which names are durable is unknown: every message that needs a
    // folder sync fails (and is withdrawn below; a retry may duplicate,
    // nothing is lost).
    for (std::size_t i = 0; i < result.size(); ++i)
      if (depends[i] && result[i]) result[i] = dirs;
  }
  std::vector<std::size_t> failed;
  for (std::size_t i = 0; i < result.size(); ++i)
    if (!result[i]) failed.push_back(i);
  std::vector<Error> problems;
  if (failed.empty()) return problems;
  for (auto* t : targets)
    if (auto st = t->withdraw(failed); !st) problems.push_back(st.error());
  return problems;
}

MaildirTarget::MaildirTarget(SyncMode mode, DeliveryJournal* journal, std::size_t messages)
    : batch_(mode), msgs_(messages) {
  if (journal) batch_.set_journal(journal);
  batch_.defer_tidy();  // after the replies (tidy())
}

void MaildirTarget::stage(std::size_t message, StagedMessage&& copy, const fs::path& dir, bool main) {
  auto idx = batch_.add(std::move(copy), {dir});
  if (main) msgs_[message].main = idx;
  else msgs_[message].extra.push_back(idx);
}

void MaildirTarget::files_to_sync(BatchSyncer& sync, std::span<const Status>) {
  // Every entry staged belongs to a message that was ok when it was staged
  // (this target comes first): nothing to leave out.
  if (batch_.size()) staged_ = batch_.files_to_sync(sync);
}

void MaildirTarget::publish(const Status& files, std::span<Status> result) {
  if (!batch_.size()) return;
  batch_.publish(staged_ ? files : staged_);
  auto check = [&](std::size_t m, std::size_t idx) {
    for (const auto& r : batch_.results(idx))
      if (!r && result[m]) result[m] = unexpected(r.error());
  };
  for (std::size_t m = 0; m < msgs_.size(); ++m) {
    if (msgs_[m].main) check(m, *msgs_[m].main);
    for (auto idx : msgs_[m].extra) check(m, idx);
  }
}

void MaildirTarget::dirs_to_sync(BatchSyncer& sync, std::vector<bool>& depends) {
  if (!batch_.size()) return;
  batch_.dirs_to_sync(sync);
  // A journaled copy is durable already (its record); a classic one once
  // its new/ folder is synced.
  auto classic = [&](std::size_t idx) {
    if (batch_.journaled(idx)) return false;
    const auto rs = batch_.results(idx);
    return std::any_of(rs.begin(), rs.end(), [](const auto& r) { return r.has_value(); });
  };
  for (std::size_t m = 0; m < msgs_.size(); ++m) {
    bool d = msgs_[m].main && classic(*msgs_[m].main);
    for (auto idx : msgs_[m].extra) d = d || classic(idx);
    if (d) depends[m] = true;
  }
}

Status MaildirTarget::withdraw(std::span<const std::size_t> messages) {
  std::vector<std::size_t> idx;
  for (auto m : messages) {
    if (m >= msgs_.size()) continue;
    if (msgs_[m].main) idx.push_back(*msgs_[m].main);
    idx.insert(idx.end(), msgs_[m].extra.begin(), msgs_[m].extra.end());
  }
  if (idx.empty()) return {};
  if (auto st = batch_.withdraw(idx); !st)
    return fail(st.error().code,
                "cannot take back every copy of a refused message (a retry may duplicate it): " + st.error().message);
  return {};
}

std::size_t MaildirTarget::copies(std::size_t message) const {
  const auto& c = msgs_[message];
  return (c.main ? batch_.results(*c.main).size() : 0) + c.extra.size();
}

std::optional<fs::path> MaildirTarget::first_copy(std::size_t message) const {
  const auto& c = msgs_[message];
  auto first = [&](std::size_t idx) -> std::optional<fs::path> {
    auto rs = batch_.results(idx);
    if (rs.empty() || !rs.front()) return std::nullopt;
    return *rs.front();
  };
  if (c.main) return first(*c.main);
  if (!c.extra.empty()) return first(c.extra.front());
  return std::nullopt;
}

QueueTarget::QueueTarget(std::string name, const RelayQueue& queue, std::size_t messages)
    : name_(std::move(name)), queue_(queue), entries_(messages) {}

Status QueueTarget::stage(std::size_t message, const QueueEnvelope& env, const StagedMessage& file,
                          bool sync_file) {
  auto st = queue_.stage(env, file.tmp_path(), file.size());
  if (!st) return unexpected(st.error());
  Entry e{std::move(*st), -1, {}, false};
  if (sync_file) {
    e.file_fd = file.fd();
    e.file_path = file.tmp_path();
  }
  entries_[message].emplace(std::move(e));
  return {};
}

void QueueTarget::files_to_sync(BatchSyncer& sync, std::span<const Status> result) {
  for (std::size_t m = 0; m < entries_.size(); ++m) {
    if (!entries_[m] || !result[m]) continue;
    for (int fd : entries_[m]->staged.files_to_sync()) sync.add_file(fd);
    if (entries_[m]->file_fd >= 0) sync.add_file(entries_[m]->file_fd, entries_[m]->file_path);
  }
}

void QueueTarget::publish(const Status& files, std::span<Status> result) {
  // Visible only once its data is durable, and only for a message nothing
  // failed for so far: a client told 4xx retries, and a published entry
  // would be relayed (or its hooks run) twice.
  for (std::size_t m = 0; m < entries_.size(); ++m) {
    if (!entries_[m] || !result[m]) continue;
    if (!files) {
      result[m] = files;
      continue;
    }
    if (auto st = entries_[m]->staged.publish(); !st) {
      result[m] = st;
      continue;
    }
    entries_[m]->published = true;
  }
}

void QueueTarget::dirs_to_sync(BatchSyncer& sync, std::vector<bool>& depends) {
  for (std::size_t m = 0; m < entries_.size(); ++m) {
    if (!published(m)) continue;
    for (const auto& d : entries_[m]->staged.dirs_to_sync()) sync.add_dir(d);
    depends[m] = true;
  }
}

Status QueueTarget::withdraw(std::span<const std::size_t> messages) {
  Status out;
  for (auto m : messages) {
    if (m >= entries_.size() || !published(m)) continue;
    if (auto rm = queue_.remove(id(m)); !rm && out)
      out = fail(rm.error().code, std::string("cannot withdraw ").append(name_).append(" entry ").append(id(m))
                                      .append(": ").append(rm.error().message));
    entries_[m]->published = false;
  }
  return out;
}

bool QueueTarget::any_published() const {
  return std::any_of(entries_.begin(), entries_.end(), [](const auto& e) { return e && e->published; });
}

}  // namespace wizmail::server
