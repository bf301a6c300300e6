#include "store/maildir_delivery.hpp"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

#include "util/fd.hpp"
#include "store/store_util.hpp"
#include "util/fs.hpp"
#include "store/delivery_journal.hpp"
#include "wizmail/mailbox.hpp"

namespace wizmail {

namespace fs = std::filesystem;
using util::UniqueFd;

namespace {

constexpr std::size_t kBufferSize = 64 * 1024;

}  // namespace

struct StagedMessage::Impl {
  UniqueFd fd;
  fs::path tmp_path;
  std::string unique;  // "<sec>.M<usec>P<pid>Q<seq>.<host>"
  std::unique_ptr<char[]> buf;
  std::size_t buf_len = 0;
  std::uint64_t size = 0;
  std::uint64_t bare_lf = 0;  // LFs not preceded by CR (each costs a CR on the wire)
  char last = '\0';          // the last octet written, for a CR LF split across writes
  bool finished = false;
  bool failed = false;

  Status flush() {
    if (buf_len == 0) return {};
    auto st = util::write_all(fd.get(), std::string_view(buf.get(), buf_len), tmp_path);
    buf_len = 0;
    return st;
  }
};

StagedMessage::StagedMessage(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
StagedMessage::StagedMessage(StagedMessage&&) noexcept = default;
StagedMessage& StagedMessage::operator=(StagedMessage&& o) noexcept {
  if (this != &o) {
    discard();
    impl_ = std::move(o.impl_);
  }
  return *this;
}
StagedMessage::~StagedMessage() { discard(); }

Result<StagedMessage> StagedMessage::create(const fs::path& tmp_dir) {
  auto impl = std::make_unique<Impl>();
  impl->unique = util::unique_name_part();
  impl->unique += '.';
  impl->unique += util::maildir_hostname();
  impl->tmp_path = tmp_dir / impl->unique;
  // O_RDWR: the copy fallback of publish() reads the file back.
  impl->fd.reset(::open(impl->tmp_path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!impl->fd) return fail_errno("create " + impl->tmp_path.string(), errno);
  impl->buf = std::make_unique_for_overwrite<char[]>(kBufferSize);
  return StagedMessage(std::move(impl));
}

Result<StagedMessage> StagedMessage::create_copy(const fs::path& tmp_dir, std::string_view prefix,
                                                const StagedMessage& source, std::uint64_t skip) {
  if (!source.finished()) return fail(Errc::internal, "copy of a staged message that is not finished");
  auto m = create(tmp_dir);
  if (!m) return m;
  if (auto st = m->write(prefix); !st) return unexpected(st.error());
  auto buf = std::make_unique_for_overwrite<char[]>(kBufferSize);
  for (std::uint64_t off = skip; off < source.size();) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(kBufferSize, source.size() - off));
    ssize_t n = ::pread(source.fd(), buf.get(), want, static_cast<off_t>(off));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno("read " + source.tmp_path().string(), errno);
    if (n == 0) return fail(Errc::io, "staged message " + source.tmp_path().string() + " shrank while being copied");
    if (auto st = m->write(std::string_view(buf.get(), static_cast<std::size_t>(n))); !st)
      return unexpected(st.error());
    off += static_cast<std::uint64_t>(n);
  }
  if (auto st = m->finish(); !st) return unexpected(st.error());
  return m;
}

Status StagedMessage::write(std::string_view data) {
  if (!impl_ || impl_->finished || impl_->failed)
    return fail(Errc::internal, "write to a staged message that is finished or failed");
  Impl& m = *impl_;
  m.size += data.size();
  if (!data.empty()) {
    for (const char* p = data.data(), *end = p + data.size();
         (p = static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p))));
         ++p) {
      const char prev = p == data.data() ? m.last : p[-1];
      if (prev != '\r') ++m.bare_lf;
    }
    m.last = data.back();
  }
  if (m.buf_len + data.size() <= kBufferSize) {
    std::memcpy(m.buf.get() + m.buf_len, data.data(), data.size());
    m.buf_len += data.size();
    return {};
  }
  Status st = m.flush();
  if (st && data.size() >= kBufferSize) {
    st = util::write_all(m.fd.get(), data, m.tmp_path);
  } else if (st) {
    std::memcpy(m.buf.get(), data.data(), data.size());
    m.buf_len = data.size();
  }
  if (!st) m.failed = true;
  return st;
}

Status StagedMessage::finish() {
  if (!impl_ || impl_->failed) return fail(Errc::internal, "finish of a failed staged message");
  if (impl_->finished) return {};
  if (auto st = impl_->flush(); !st) {
    impl_->failed = true;
    return st;
  }
  impl_->finished = true;
  impl_->buf.reset();
  return {};
}

Status StagedMessage::sync() {
  if (!impl_ || !impl_->fd) return fail(Errc::internal, "sync of a discarded staged message");
  if (::fsync(impl_->fd.get()) != 0) return fail_errno("fsync " + impl_->tmp_path.string(), errno);
  return {};
}

bool StagedMessage::finished() const noexcept { return impl_ && impl_->finished; }
std::uint64_t StagedMessage::size() const noexcept { return impl_ ? impl_->size : 0; }
std::uint64_t StagedMessage::wire_size() const noexcept {
  return impl_ ? impl_->size + impl_->bare_lf : 0;
}
int StagedMessage::fd() const noexcept { return impl_ ? impl_->fd.get() : -1; }
const fs::path& StagedMessage::tmp_path() const noexcept {
  static const fs::path none;
  return impl_ ? impl_->tmp_path : none;
}

std::string StagedMessage::new_name() const {
  if (!impl_) return {};
  std::string n = impl_->unique;
  n += ",S=";
  n += std::to_string(impl_->size);
  if (impl_->bare_lf != 0) {
    n += ",W=";
    n += std::to_string(impl_->size + impl_->bare_lf);
  }
  return n;
}

namespace {

// The rare path: no hard link possible. Copy into the maildir's own tmp/,
// fsync the copy, then rename it into new/.
Status copy_into(int src_fd, std::uint64_t size, const fs::path& maildir,
                 const std::string& name, const fs::path& target) {
  const fs::path tmp = maildir / "tmp" / name;
  UniqueFd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!out) return fail_errno("create " + tmp.string(), errno);
  auto undo = [&](Status st) {
    ::unlink(tmp.c_str());
    return st;
  };
  auto buf = std::make_unique_for_overwrite<char[]>(kBufferSize);
  off_t off = 0;
  while (static_cast<std::uint64_t>(off) < size) {
    ssize_t n = ::pread(src_fd, buf.get(), kBufferSize, off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return undo(fail_errno("read staged message", errno));
    }
    if (n == 0) return undo(fail(Errc::io, "staged message shrank while being copied"));
    std::string_view chunk(buf.get(), static_cast<std::size_t>(n));
    if (auto st = util::write_all(out.get(), chunk, tmp); !st) return undo(st);
    off += n;
  }
  if (::fsync(out.get()) != 0) return undo(fail_errno("fsync " + tmp.string(), errno));
  if (::close(out.release()) != 0) return undo(fail_errno("close " + tmp.string(), errno));
  if (int e = store::rename_noreplace(tmp, target); e != 0)
    return undo(fail_errno("rename " + tmp.string() + " to " + target.string(), e));
  return {};
}

}  // namespace

Result<fs::path> StagedMessage::publish(const fs::path& maildir) {
  if (!impl_ || !impl_->finished)
    return fail(Errc::internal, "publish of a staged message that is not finished");
  std::string name = new_name();
  fs::path target = maildir / "new" / name;
  if (::link(impl_->tmp_path.c_str(), target.c_str()) == 0) return target;
  int e = errno;
  // Other filesystem, too many links, or a filesystem without hard links.
  if (e == EXDEV || e == EMLINK || e == EPERM || e == EOPNOTSUPP) {
    if (auto st = copy_into(impl_->fd.get(), impl_->size, maildir, name, target); !st)
      return unexpected(st.error());
    return target;
  }
  return fail_errno("link " + impl_->tmp_path.string() + " to " + target.string(), e);
}

void StagedMessage::discard() noexcept {
  if (!impl_) return;
  if (impl_->fd) {
    ::unlink(impl_->tmp_path.c_str());
    impl_->fd.reset();
  }
  impl_.reset();
}

void BatchSyncer::add_file(int fd, fs::path path) { files_.emplace_back(fd, std::move(path)); }

void BatchSyncer::add_dir(const fs::path& dir) { dirs_.push_back(dir); }

Status BatchSyncer::notify(DurabilityEvent::Kind kind, const fs::path& path,
                           std::uint64_t device) const {
  if (!observer_) return {};
  DurabilityEvent ev;
  ev.kind = kind;
  ev.path = path;
  ev.device = device;
  return observer_(ev);
}

namespace {

// The first fd (and its name) of each distinct filesystem, in order.
struct DeviceFd {
  std::uint64_t device;
  int fd;
  fs::path path;
};

void add_device(std::vector<DeviceFd>& devs, std::uint64_t dev, int fd, const fs::path& path) {
  for (const auto& d : devs)
    if (d.device == dev) return;
  devs.push_back(DeviceFd{dev, fd, path});
}

}  // namespace

Status BatchSyncer::sync_files() {
  if (files_.empty()) return {};
  if (mode_ == SyncMode::syncfs) {
    std::vector<DeviceFd> devs;
    for (const auto& [fd, path] : files_) {
      struct stat st {};
      if (::fstat(fd, &st) != 0) return fail_errno("stat " + path.string(), errno);
      add_device(devs, static_cast<std::uint64_t>(st.st_dev), fd, path);
    }
    for (const auto& d : devs) {
      if (auto st = notify(DurabilityEvent::Kind::data_syncfs, d.path, d.device); !st) return st;
      if (::syncfs(d.fd) != 0) return fail_errno("syncfs (for " + d.path.string() + ")", errno);
    }
  } else {
    for (const auto& [fd, path] : files_) {
      if (auto st = notify(DurabilityEvent::Kind::file_fsync, path); !st) return st;
      if (::fsync(fd) != 0) return fail_errno("fsync " + path.string(), errno);
    }
  }
  files_.clear();
  return {};
}

Status BatchSyncer::sync_dirs() {
  if (dirs_.empty()) return {};
  std::sort(dirs_.begin(), dirs_.end());
  dirs_.erase(std::unique(dirs_.begin(), dirs_.end()), dirs_.end());
  if (mode_ == SyncMode::syncfs) {
    // Follows symbolic links: an account folder linked to another
    // filesystem is synced there.
    std::vector<UniqueFd> open_fds;
    std::vector<DeviceFd> devs;
    for (const auto& d : dirs_) {
      UniqueFd fd(::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!fd) return fail_errno("open " + d.string(), errno);
      struct stat st {};
      if (::fstat(fd.get(), &st) != 0) return fail_errno("stat " + d.string(), errno);
      const std::size_t before = devs.size();
      add_device(devs, static_cast<std::uint64_t>(st.st_dev), fd.get(), d);
      if (devs.size() != before) open_fds.push_back(std::move(fd));
    }
    for (const auto& d : devs) {
      if (auto st = notify(DurabilityEvent::Kind::dir_syncfs, d.path, d.device); !st) return st;
      if (::syncfs(d.fd) != 0) return fail_errno("syncfs (for " + d.path.string() + ")", errno);
    }
  } else {
    for (const auto& d : dirs_) {
      if (auto st = notify(DurabilityEvent::Kind::dir_fsync, d); !st) return st;
      if (auto st = util::fsync_dir(d); !st) return st;
    }
  }
  dirs_.clear();
  return {};
}

void BatchSyncer::clear() {
  files_.clear();
  dirs_.clear();
}

std::size_t DeliveryBatch::add(StagedMessage&& msg, std::vector<fs::path> maildirs,
                               bool data_shared) {
  entries_.push_back(Entry{std::move(msg), std::move(maildirs), {}, data_shared, false});
  return entries_.size() - 1;
}

std::span<const Result<fs::path>> DeliveryBatch::results(std::size_t index) const {
  if (index >= entries_.size()) return {};
  return entries_[index].results;
}

DeliveryBatch::~DeliveryBatch() { close_ticket(); }

void DeliveryBatch::close_ticket() noexcept {
  if (!ticket_open_) return;
  ticket_open_ = false;
  journal_->applied(DeliveryJournal::Ticket{journal_first_, journal_last_});
}

void DeliveryBatch::fail_classic(const Error& err) {
  // A failure of the classic flushes fails the classic entries only: the
  // journaled ones are durable already.
  for (auto& e : entries_) {
    if (e.journaled) continue;
    e.results.assign(e.maildirs.size(), unexpected(err));
    e.msg.discard();
  }
}

Status DeliveryBatch::commit() {
  BatchSyncer syncer(mode_);
  syncer.set_observer(observer_);
  if (auto st = files_to_sync(syncer); !st) return st;
  Status data_st = syncer.sync_files();
  if (!data_st && !has_journaled()) {
    fail_classic(data_st.error());
    close_ticket();
    return data_st;
  }
  publish(data_st);  // with a failed data sync, the journaled ones still get their names
  dirs_to_sync(syncer);
  if (auto st = dirs_synced(syncer.sync_dirs()); !st) return st;
  // Statistics and the tmp/ names (tidy()), unless the caller does it.
  if (!defer_tidy_) tidy();
  return data_st;
}

bool DeliveryBatch::has_journaled() const noexcept {
  return std::any_of(entries_.begin(), entries_.end(), [](const Entry& e) { return e.journaled; });
}

Status DeliveryBatch::files_to_sync(BatchSyncer& syncer) {
  if (committed_) return fail(Errc::internal, "a delivery batch was committed twice");
  committed_ = true;
  // 0. The journal takes what fits, with one flush (see set_journal()).
  if (journal_) {
    std::vector<std::string> names;
    std::vector<DeliveryJournal::Message> logged;
    std::vector<Entry*> which;
    for (auto& e : entries_) {
      if (!e.msg.finished() || e.shared || e.maildirs.empty() ||
          e.msg.size() > journal_->max_message())
        continue;
      names.push_back(e.msg.new_name());
      which.push_back(&e);
    }
    for (std::size_t i = 0; i < which.size(); ++i)
      logged.push_back({which[i]->msg.fd(), which[i]->msg.size(), names[i], which[i]->maildirs});
    if (!logged.empty()) {
      // Busy (no room) or a broken journal: everything goes the classic way.
      if (auto t = journal_->append(logged)) {
        ticket_open_ = true;
        journal_first_ = t->first;
        journal_last_ = t->last;
        for (auto* e : which) e->journaled = true;
      }
    }
  }
  // 1. Every other message's data, for the caller's one flush.
  for (auto& e : entries_) {
    if (e.journaled) continue;
    if (e.msg.finished()) {
      syncer.add_file(e.msg.fd(), e.msg.tmp_path());
    } else {
      e.results.assign(e.maildirs.size(),
                       unexpected(Error{Errc::internal, "message was not staged completely"}));
      e.msg.discard();
    }
  }
  return {};
}

void DeliveryBatch::publish(const Status& data) {
  if (!data) fail_classic(data.error());
  // 2. Make each message visible in every recipient's new/.
  for (auto& e : entries_) {
    if (!e.results.empty()) continue;  // failed above
    e.results.reserve(e.maildirs.size());
    for (std::size_t i = 0; i < e.maildirs.size(); ++i) {
      // A maildir listed twice (two addresses of one account) gets one copy.
      auto dup = std::find(e.maildirs.begin(), e.maildirs.begin() + static_cast<long>(i),
                           e.maildirs[i]);
      if (dup != e.maildirs.begin() + static_cast<long>(i)) {
        e.results.push_back(e.results[static_cast<std::size_t>(dup - e.maildirs.begin())]);
        continue;
      }
      Result<fs::path> r = fs::path();
      if (observer_) {
        DurabilityEvent ev;
        ev.kind = DurabilityEvent::Kind::publish;
        ev.path = e.maildirs[i] / "new" / e.msg.new_name();
        if (auto st = observer_(ev); !st) r = unexpected(st.error());
      }
      if (r) r = e.msg.publish(e.maildirs[i]);
      e.results.push_back(std::move(r));
    }
  }
  // The journaled names are in new/: a checkpoint may cover them now.
  close_ticket();
}

void DeliveryBatch::dirs_to_sync(BatchSyncer& syncer) const {
  for (const auto& e : entries_) {
    if (e.journaled) continue;
    for (std::size_t i = 0; i < e.results.size() && i < e.maildirs.size(); ++i)
      if (e.results[i]) syncer.add_dir(e.maildirs[i] / "new");
  }
}

Status DeliveryBatch::dirs_synced(const Status& st) {
  // 3. If the sync of the new/ folders failed, nothing classic of the batch
  //    is known to be durable: take the names back, report failure (the
  //    client retries; a duplicate is better than a loss).
  if (st) return st;
  for (auto& e : entries_) {
    if (e.journaled) continue;
    for (auto& r : e.results) {
      if (r) {
        ::unlink(r->c_str());
        r = unexpected(st.error());
      }
    }
    e.msg.discard();
  }
  return st;
}

Status DeliveryBatch::withdraw(std::span<const std::size_t> indexes) {
  if (!committed_) return fail(Errc::internal, "withdraw before commit");
  BatchSyncer syncer(mode_);
  syncer.set_observer(observer_);
  bool journaled = false;
  Status result;
  for (auto i : indexes) {
    if (i >= entries_.size()) continue;
    auto& e = entries_[i];
    journaled = journaled || e.journaled;
    const Error why{Errc::temporary, "withdrawn: the message was refused"};
    for (auto& r : e.results) {
      if (!r) continue;
      // A maildir listed twice shares one copy (and one path).
      if (::unlink(r->c_str()) == 0 || errno == ENOENT) {
        if (!e.journaled) syncer.add_dir(r->parent_path());
      } else if (result) {
        result = fail_errno("unlink " + r->string(), errno);
      }
      r = unexpected(why);
    }
  }
  // A record behind the checkpoint is never replayed; the checkpoint's
  // syncfs also makes the unlinks above durable.
  if (journaled && journal_ && journal_last_ != 0) {
    if (auto st = journal_->settle(journal_last_); !st && result) result = st;
  }
  if (auto st = syncer.sync_dirs(); !st && result) result = st;
  return result;
}

void DeliveryBatch::tidy() {
  if (tidied_) return;
  tidied_ = true;
  // Statistics, once per mailbox and batch; then drop the tmp/ names.
  std::vector<std::pair<fs::path, std::uint64_t>> received;
  for (auto& e : entries_) {
    for (std::size_t i = 0; i < e.results.size(); ++i) {
      if (!e.results[i]) continue;
      if (i > 0 && std::find(e.maildirs.begin(), e.maildirs.begin() + static_cast<long>(i),
                             e.maildirs[i]) != e.maildirs.begin() + static_cast<long>(i))
        continue;
      auto it = std::find_if(received.begin(), received.end(),
                             [&](const auto& p) { return p.first == e.maildirs[i]; });
      if (it == received.end()) received.emplace_back(e.maildirs[i], 1);
      else ++it->second;
    }
    e.msg.discard();
  }
  for (const auto& [dir, n] : received) {
    MailboxCounters d;
    d.received = n;
    // A statistic; the mail is delivered whether or not it could be counted.
    (void)add_mailbox_counters(dir, d);
  }
}

std::vector<Result<fs::path>> deliver(std::span<const fs::path> maildirs, std::string_view data,
                                      SyncMode mode) {
  if (maildirs.empty()) return {};
  auto fail_each = [&](const Error& err) {
    return std::vector<Result<fs::path>>(maildirs.size(), unexpected(err));
  };
  // Stage in the first recipient whose tmp/ accepts the file.
  Result<StagedMessage> msg = fail(Errc::internal, "no maildir");
  for (const auto& m : maildirs) {
    msg = StagedMessage::create(m / "tmp");
    if (msg) break;
  }
  if (!msg) return fail_each(msg.error());
  if (auto st = msg->write(data); !st) return fail_each(st.error());
  if (auto st = msg->finish(); !st) return fail_each(st.error());
  DeliveryBatch batch(mode);
  batch.add(std::move(*msg), std::vector<fs::path>(maildirs.begin(), maildirs.end()));
  (void)batch.commit();  // the per-recipient results say everything
  auto r = batch.results(0);
  return std::vector<Result<fs::path>>(r.begin(), r.end());
}

namespace {

// A header value from an envelope address: no control characters (a line
// break would start a field of the sender's choosing).
void append_printable(std::string& out, std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x20 && c != 0x7F) out += c;
}

}  // namespace

std::string final_headers(std::string_view sender, std::string_view recipient) {
  std::string h;
  h.reserve(32 + sender.size() + recipient.size());
  h += "Return-Path: <";
  append_printable(h, sender);
  h += ">\r\nDelivered-To: ";
  append_printable(h, recipient);
  h += "\r\n";
  return h;
}

ReturnPathFilter::Verdict ReturnPathFilter::classify(std::string_view name) noexcept {
  static constexpr std::string_view kName = "return-path";
  const std::size_t k = name.size();
  for (std::size_t j = 0; j < std::min(k, kName.size()); ++j) {
    char c = name[j];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
    if (c != kName[j]) return Verdict::keep;
  }
  // "Return-Path", optional white space (RFC 5322 obs-optional), ':'.
  for (std::size_t j = kName.size(); j < k; ++j) {
    if (name[j] == ':') return Verdict::drop;
    if (name[j] != ' ' && name[j] != '\t') return Verdict::keep;
  }
  return k > 64 ? Verdict::keep : Verdict::undecided;
}

std::string without_return_path(std::string_view message) {
  std::string out;
  out.reserve(message.size());
  ReturnPathFilter f;
  auto append = [&](std::string_view s) -> Status {
    out += s;
    return {};
  };
  (void)f.feed(message, append);
  (void)f.finish(append);
  return out;
}

Result<fs::path> deliver_final(const fs::path& maildir, std::string_view sender, std::string_view recipient,
                               std::string_view message, SyncMode mode) {
  std::string copy = final_headers(sender, recipient) + without_return_path(message);
  auto r = deliver(std::span<const fs::path>(&maildir, 1), copy, mode);
  if (r.empty()) return fail(Errc::internal, "no delivery result");
  return std::move(r.front());
}

}  // namespace wizmail
