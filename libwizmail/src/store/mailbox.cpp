#include "wizmail/mailbox.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "util/fd.hpp"
#include "store/maildir_name.hpp"
#include "store/store_util.hpp"
#include "util/fs.hpp"

namespace wizmail {

namespace fs = std::filesystem;
using util::UniqueFd;

MessageFile& MessageFile::operator=(MessageFile&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
    size_ = o.size_;
  }
  return *this;
}

MessageFile::~MessageFile() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::size_t> MessageFile::read(std::span<char> buf) {
  if (fd_ < 0) return fail(Errc::invalid_argument, "message file is not open");
  while (true) {
    ssize_t n = ::read(fd_, buf.data(), buf.size());
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno != EINTR) return fail_errno("read message", errno);
  }
}

namespace {

using DirPtr = std::unique_ptr<DIR, int (*)(DIR*)>;

// Open a folder for readdir + *at() calls.
Result<DirPtr> open_dir(const fs::path& p) {
  int fd = ::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return fail_errno("open " + p.string(), errno);
  DIR* d = ::fdopendir(fd);
  if (!d) {
    int e = errno;
    ::close(fd);
    return fail_errno("open " + p.string(), e);
  }
  return DirPtr(d, ::closedir);
}

// Call f(name) — or f(name, d_type) — for every entry of a Maildir folder
// that may be a message (hidden names, "." and ".." are skipped).
template <class F>
Status for_each_entry(DIR* d, const fs::path& p, F&& f) {
  errno = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    if (e->d_type != DT_REG && e->d_type != DT_UNKNOWN && e->d_type != DT_LNK) continue;
    Status st;
    if constexpr (std::is_invocable_v<F, std::string_view, unsigned char>)
      st = f(std::string_view(e->d_name), e->d_type);
    else
      st = f(std::string_view(e->d_name));
    if (!st) return st;
    errno = 0;
  }
  if (errno != 0) return fail_errno("read " + p.string(), errno);
  return {};
}

// The message counters file. Event counters change at every delivery, so
// they are written in place (fixed-width fields, one pwrite under an flock),
// and deliberately not fsynced: a crash may lose the last few increments
// of a statistic, which is a better trade than an extra fsync per message on
// the delivery path (DeliveryBatch also adds them once per batch and
// mailbox, not once per message). Message count and bytes are not stored at
// all: they are derived from the folder (totals()), so they can never drift.
constexpr const char* kCountersFile = "counters";

MailboxCounters parse_counters(std::string_view text) {
  MailboxCounters c;
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    auto eq = line.find('=');
    if (eq != std::string_view::npos) {
      std::string_view k = line.substr(0, eq), v = line.substr(eq + 1);
      std::uint64_t n = 0;
      auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec == std::errc{} && ptr == v.data() + v.size()) {
        if (k == "received") c.received = n;
        else if (k == "sent") c.sent = n;
        else if (k == "deleted") c.deleted = n;
      }
    }
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return c;
}

std::string format_counters(const MailboxCounters& c) {
  char buf[160];
  int n = std::snprintf(buf, sizeof buf, "received=%020llu\nsent=%020llu\ndeleted=%020llu\n",
                        static_cast<unsigned long long>(c.received),
                        static_cast<unsigned long long>(c.sent),
                        static_cast<unsigned long long>(c.deleted));
  return std::string(buf, static_cast<std::size_t>(n));
}

Result<std::string> pread_small(int fd, const fs::path& p) {
  char buf[512];
  std::string out;
  off_t off = 0;
  while (out.size() < 4096) {
    ssize_t n = ::pread(fd, buf, sizeof buf, off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno("read " + p.string(), errno);
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    off += n;
  }
  return out;
}

Status flock_retry(int fd, int op, const fs::path& p) {
  while (::flock(fd, op) != 0) {
    if (errno != EINTR) return fail_errno("lock " + p.string(), errno);
  }
  return {};
}

// A regular file's size and mtime through its folder's fd.
std::optional<struct stat> stat_regular(int dfd, const char* name) {
  struct stat st {};
  if (::fstatat(dfd, name, &st, 0) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  return st;
}

// Copy `from` (size `size`) to a new file `to`, fsynced. Deletes `to` on failure.
Status copy_synced(const fs::path& from, const fs::path& to) {
  UniqueFd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in) return fail_errno("open " + from.string(), errno);
  UniqueFd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!out) return fail_errno("create " + to.string(), errno);
  auto undo = [&](Status st) {
    ::unlink(to.c_str());
    return st;
  };
  constexpr std::size_t kChunk = 64 * 1024;
  auto buf = std::make_unique_for_overwrite<char[]>(kChunk);
  while (true) {
    ssize_t n = ::read(in.get(), buf.get(), kChunk);
    if (n < 0) {
      if (errno == EINTR) continue;
      return undo(fail_errno("read " + from.string(), errno));
    }
    if (n == 0) break;
    const char* p = buf.get();
    std::size_t left = static_cast<std::size_t>(n);
    while (left > 0) {
      ssize_t w = ::write(out.get(), p, left);
      if (w < 0) {
        if (errno == EINTR) continue;
        return undo(fail_errno("write " + to.string(), errno));
      }
      p += w;
      left -= static_cast<std::size_t>(w);
    }
  }
  if (::fsync(out.get()) != 0) return undo(fail_errno("fsync " + to.string(), errno));
  if (::close(out.release()) != 0) return undo(fail_errno("close " + to.string(), errno));
  return {};
}

// Rename across folders. On different filesystems: copy to a hidden temporary
// name in the target folder, fsync it, rename it into place, fsync the folder,
// and only then unlink the source; so a crash or an error never leaves a
// partial file under the final name (nor loses the message). A final name
// that already holds a file of the source's size is a finished earlier
// attempt (the source's unlink was lost): only the source is dropped. One of
// another size (a partial copy by an older version) is replaced.
Status move_file(const fs::path& from, const fs::path& to) {
  if (::rename(from.c_str(), to.c_str()) == 0) return {};
  if (errno != EXDEV) return fail_errno("move " + from.string() + " to " + to.string(), errno);
  struct stat src {}, dst {};
  if (::stat(from.c_str(), &src) != 0) return fail_errno("stat " + from.string(), errno);
  const fs::path folder = to.parent_path();
  if (::lstat(to.c_str(), &dst) == 0 && S_ISREG(dst.st_mode) && dst.st_size == src.st_size) {
    // Make sure the earlier copy is durable before its source goes.
    UniqueFd fd(::open(to.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd || ::fsync(fd.get()) != 0) return fail_errno("fsync " + to.string(), errno);
  } else {
    const fs::path part =
        folder / ("." + to.filename().string() + ".part." + util::unique_name_part());
    if (auto st = copy_synced(from, part); !st) return st;
    if (::rename(part.c_str(), to.c_str()) != 0) {
      int e = errno;
      ::unlink(part.c_str());
      return fail_errno("rename " + part.string() + " to " + to.string(), e);
    }
  }
  if (auto st = util::fsync_dir(folder); !st) return st;
  if (::unlink(from.c_str()) != 0 && errno != ENOENT)
    return fail_errno("unlink " + from.string(), errno);
  return {};
}

// Digit runs compared as numbers: "1.M99999P1Q9" before "1.M100005P1Q10"
// (unique_name_part() does not pad), so one second's messages keep their
// delivery order.
bool natural_less(std::string_view a, std::string_view b) noexcept {
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (digit(a[i]) && digit(b[j])) {
      std::size_t i0 = i, j0 = j;
      while (i0 < a.size() && a[i0] == '0') ++i0;
      while (j0 < b.size() && b[j0] == '0') ++j0;
      std::size_t i1 = i0, j1 = j0;
      while (i1 < a.size() && digit(a[i1])) ++i1;
      while (j1 < b.size() && digit(b[j1])) ++j1;
      if (i1 - i0 != j1 - j0) return i1 - i0 < j1 - j0;
      if (int c = a.substr(i0, i1 - i0).compare(b.substr(j0, j1 - j0)); c != 0) return c < 0;
      if (i1 - i != j1 - j) return i1 - i < j1 - j;  // fewer leading zeros first
      i = i1;
      j = j1;
    } else {
      if (a[i] != b[j]) return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[j]);
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

}  // namespace

Status add_mailbox_counters(const fs::path& account_dir, const MailboxCounters& delta) {
  if (delta.received == 0 && delta.sent == 0 && delta.deleted == 0) return {};
  const fs::path p = account_dir / kCountersFile;
  UniqueFd fd(::open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return fail_errno("open " + p.string(), errno);
  if (auto st = flock_retry(fd.get(), LOCK_EX, p); !st) return st;
  auto text = pread_small(fd.get(), p);
  if (!text) return unexpected(text.error());
  MailboxCounters c = parse_counters(*text);
  c.received += delta.received;
  c.sent += delta.sent;
  c.deleted += delta.deleted;
  const std::string out = format_counters(c);
  // Same length every time, so readers under LOCK_SH never see a short file.
  ssize_t w = ::pwrite(fd.get(), out.data(), out.size(), 0);
  if (w != static_cast<ssize_t>(out.size())) return fail_errno("write " + p.string(), errno ? errno : EIO);
  if (text->size() > out.size() && ::ftruncate(fd.get(), static_cast<off_t>(out.size())) != 0)
    return fail_errno("truncate " + p.string(), errno);
  return {};
}

Mailbox::Mailbox(fs::path account_dir) : dir_(std::move(account_dir)) {}

Status Mailbox::validate_uid(std::string_view uid) {
  if (uid.empty()) return fail(Errc::invalid_argument, "message uid is empty");
  if (uid.size() > 255)
    return fail(Errc::invalid_argument, "message uid is longer than 255 octets");
  if (uid.front() == '.')
    return fail(Errc::invalid_argument, "message uid " + store::quote(uid) + " starts with '.'");
  for (char c : uid) {
    if (c == '/' || c == ':' || c == '\0' || c == '\n' || c == '\r')
      return fail(Errc::invalid_argument, "message uid " + store::quote(uid) + " is invalid");
  }
  return {};
}

Result<std::vector<Mailbox::Entry>> Mailbox::list_entries() const {
  std::vector<Entry> out;
  for (bool is_new : {true, false}) {
    const fs::path sub = dir_ / (is_new ? "new" : "cur");
    auto d = open_dir(sub);
    if (!d) return unexpected(d.error());
    const int dfd = ::dirfd(d->get());
    auto each = [&](std::string_view name, unsigned char type) -> Status {
      Entry m;
      std::string_view base = store::maildir_base(name);
      // Our own names (and Dovecot's) carry the size and the delivery time:
      // no stat needed, which matters for 100,000 messages.
      auto size = store::maildir_size_field(base);
      auto time = store::maildir_time_field(base);
      if (size && time && type == DT_REG) {
        m.size = *size;
        m.mtime = *time;
      } else {
        auto s = stat_regular(dfd, name.data());
        if (!s) return {};  // gone meanwhile (another POP session), or not a file
        m.size = size.value_or(static_cast<std::uint64_t>(s->st_size));
        m.mtime = s->st_mtim.tv_sec;
      }
      m.name.assign(name);
      m.uid_size = static_cast<std::uint32_t>(base.size());
      m.is_new = is_new;
      out.push_back(std::move(m));
      return {};
    };
    if (auto st = for_each_entry(d->get(), sub, each); !st) return unexpected(st.error());
  }
  std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) {
    return a.mtime != b.mtime ? a.mtime < b.mtime : natural_less(a.uid(), b.uid());
  });
  return out;
}

fs::path Mailbox::path_of(const Entry& e) const { return dir_ / (e.is_new ? "new" : "cur") / e.name; }

Result<std::vector<MessageInfo>> Mailbox::list() const {
  auto entries = list_entries();
  if (!entries) return unexpected(entries.error());
  std::vector<MessageInfo> out;
  out.reserve(entries->size());
  for (auto& e : *entries) {
    MessageInfo m;
    m.uid.assign(e.uid());
    m.path = path_of(e);
    m.size = e.size;
    m.is_new = e.is_new;
    m.mtime = e.mtime;
    out.push_back(std::move(m));
  }
  return out;
}

Result<MessageInfo> Mailbox::find(std::string_view uid) const {
  if (auto st = validate_uid(uid); !st) return unexpected(st.error());
  auto make = [&](const fs::path& p, bool is_new, const struct stat& s) {
    MessageInfo m;
    m.uid.assign(uid);
    m.path = p;
    m.size = store::maildir_size_field(uid).value_or(static_cast<std::uint64_t>(s.st_size));
    m.is_new = is_new;
    m.mtime = s.st_mtim.tv_sec;
    return m;
  };
  // The usual places first: new/<uid> and cur/<uid>:2, (no flags).
  struct stat s {};
  fs::path p = dir_ / "new" / std::string(uid);
  if (::stat(p.c_str(), &s) == 0 && S_ISREG(s.st_mode)) return make(p, true, s);
  p = dir_ / "cur" / (std::string(uid) + ":2,");
  if (::stat(p.c_str(), &s) == 0 && S_ISREG(s.st_mode)) return make(p, false, s);
  // Then any info part (flags set by an IMAP server), in either folder.
  for (bool is_new : {false, true}) {
    const fs::path sub = dir_ / (is_new ? "new" : "cur");
    auto d = open_dir(sub);
    if (!d) return unexpected(d.error());
    std::optional<MessageInfo> found;
    const int dfd = ::dirfd(d->get());
    auto st = for_each_entry(d->get(), sub, [&](std::string_view name) -> Status {
      if (found || store::maildir_base(name) != uid) return {};
      if (auto s2 = stat_regular(dfd, name.data())) found = make(sub / name, is_new, *s2);
      return {};
    });
    if (!st) return unexpected(st.error());
    if (found) return *found;
  }
  return fail(Errc::not_found, "no message " + store::quote(uid) + " in " + account());
}

Result<MessageFile> Mailbox::open(std::string_view uid) const {
  auto m = find(uid);
  if (!m) return unexpected(m.error());
  UniqueFd fd(::open(m->path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return fail_errno("open " + m->path.string(), errno);
  struct stat s {};
  if (::fstat(fd.get(), &s) != 0) return fail_errno("stat " + m->path.string(), errno);
  return MessageFile(fd.release(), static_cast<std::uint64_t>(s.st_size));
}

Result<std::string> Mailbox::read(std::string_view uid) const {
  auto f = open(uid);
  if (!f) return unexpected(f.error());
  std::string out;
  out.resize(static_cast<std::size_t>(f->size()));
  std::size_t got = 0;
  while (true) {
    if (got == out.size()) out.resize(out.size() + 65536);  // grew meanwhile
    auto n = f->read(std::span<char>(out.data() + got, out.size() - got));
    if (!n) return unexpected(n.error());
    if (*n == 0) break;
    got += *n;
  }
  out.resize(got);
  return out;
}

Status Mailbox::remove(std::string_view uid, const fs::path& dustbox_root) {
  const std::string u(uid);
  return remove(std::span<const std::string>(&u, 1), dustbox_root);
}

Status Mailbox::remove(std::span<const std::string> uids, const fs::path& dustbox_root) {
  for (const auto& u : uids) {
    if (auto st = validate_uid(u); !st) return st;
  }
  fs::path dust;
  if (!dustbox_root.empty()) {
    dust = dustbox_root / account();
    if (auto st = util::make_dirs(dust, 0700); !st) return st;
  }
  std::uint64_t removed = 0;
  bool touched_new = false, touched_cur = false;
  Status result;
  for (const auto& u : uids) {
    auto m = find(u);
    if (!m) {
      result = unexpected(m.error());
      break;
    }
    Status st = dust.empty() ? (::unlink(m->path.c_str()) == 0
                                    ? Status{}
                                    : Status{fail_errno("unlink " + m->path.string(), errno)})
                             : move_file(m->path, dust / m->path.filename());
    if (!st) {
      result = st;
      break;
    }
    ++removed;
    (m->is_new ? touched_new : touched_cur) = true;
  }
  // One folder sync for the whole batch (a POP3 QUIT deletes many at once).
  if (touched_new) {
    if (auto st = util::fsync_dir(dir_ / "new"); !st && result) result = st;
  }
  if (touched_cur) {
    if (auto st = util::fsync_dir(dir_ / "cur"); !st && result) result = st;
  }
  if (removed && !dust.empty()) {
    if (auto st = util::fsync_dir(dust); !st && result) result = st;
  }
  if (removed) {
    // A statistic, never fsynced anyway: failing to count (no room for a
    // new counters file on a full disk) does not undo the removal, and must
    // not tell a POP3 client that its deletions failed.
    MailboxCounters d;
    d.deleted = removed;
    (void)add_counters(d);
  }
  return result;
}

Status Mailbox::move_to_cur(std::string_view uid) {
  auto m = find(uid);
  if (!m) return unexpected(m.error());
  if (!m->is_new) return {};
  std::string name = m->path.filename().string();
  if (name.find(':') == std::string::npos) name += ":2,";
  const fs::path to = dir_ / "cur" / name;
  if (::rename(m->path.c_str(), to.c_str()) != 0)
    return fail_errno("move " + m->path.string() + " to cur/", errno);
  return {};
}

Result<std::size_t> Mailbox::move_all_to_cur() {
  const fs::path nd = dir_ / "new";
  auto d = open_dir(nd);
  if (!d) return unexpected(d.error());
  UniqueFd cur(::open((dir_ / "cur").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cur) return fail_errno("open " + (dir_ / "cur").string(), errno);
  const int dfd = ::dirfd(d->get());
  std::size_t moved = 0;
  std::string target;
  // Not fsynced: if a crash forgets the move, the message is simply in new/
  // again, which changes nothing a POP3 client can see.
  auto st = for_each_entry(d->get(), nd, [&](std::string_view name) -> Status {
    target.assign(name);
    if (target.find(':') == std::string::npos) target += ":2,";
    if (::renameat(dfd, name.data(), cur.get(), target.c_str()) != 0) {
      if (errno == ENOENT) return {};  // another session moved it
      return fail_errno("move " + (nd / name).string() + " to cur/", errno);
    }
    ++moved;
    return {};
  });
  if (!st) return unexpected(st.error());
  return moved;
}

Result<std::size_t> Mailbox::cleanup_tmp(std::chrono::seconds max_age, bool dead_writers) {
  const fs::path td = dir_ / "tmp";
  auto d = open_dir(td);
  if (!d) return unexpected(d.error());
  const int dfd = ::dirfd(d->get());
  // The fine clock: time() can still show the previous second when a file
  // written just now already has the next one (the kernel stamps files from
  // its coarse clock), and a file would then look younger than it is.
  const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  const pid_t self = ::getpid();
  std::size_t removed = 0;
  auto st = for_each_entry(d->get(), td, [&](std::string_view name) -> Status {
    auto s = stat_regular(dfd, name.data());
    if (!s) return {};
    bool old = now - s->st_mtim.tv_sec > max_age.count();
    bool dead = false;
    if (!old && dead_writers) {
      auto w = store::parse_writer(name);
      dead = w && w->host == util::maildir_hostname() && w->pid != self &&
             ::kill(w->pid, 0) != 0 && errno == ESRCH;
    }
    if (!old && !dead) return {};
    if (::unlinkat(dfd, name.data(), 0) != 0) {
      if (errno == ENOENT) return {};
      return fail_errno("unlink " + (td / name).string(), errno);
    }
    ++removed;
    return {};
  });
  if (!st) return unexpected(st.error());
  return removed;
}

Result<Mailbox::Totals> Mailbox::totals() const {
  Totals t;
  for (bool is_new : {true, false}) {
    const fs::path sub = dir_ / (is_new ? "new" : "cur");
    auto d = open_dir(sub);
    if (!d) return unexpected(d.error());
    const int dfd = ::dirfd(d->get());
    auto st = for_each_entry(d->get(), sub, [&](std::string_view name) -> Status {
      std::uint64_t size = 0;
      if (auto s = store::maildir_size_field(store::maildir_base(name))) {
        size = *s;
      } else if (auto st2 = stat_regular(dfd, name.data())) {
        size = static_cast<std::uint64_t>(st2->st_size);
      } else {
        return {};
      }
      ++t.messages;
      ++(is_new ? t.new_count : t.cur_count);
      t.bytes += size;
      return {};
    });
    if (!st) return unexpected(st.error());
  }
  return t;
}

Status Mailbox::check_quota(std::int64_t max_count, std::int64_t max_bytes,
                            std::uint64_t incoming) const {
  if (max_count < 0 && max_bytes < 0) return {};
  auto t = totals();
  if (!t) return unexpected(t.error());
  if (max_count >= 0 && t->messages + 1 > static_cast<std::uint64_t>(max_count))
    return unexpected(Error::mailbox_full(
        "mailbox " + account() + " holds " + std::to_string(t->messages) +
            " messages; the limit is " + std::to_string(max_count)));
  if (max_bytes >= 0 && t->bytes + incoming > static_cast<std::uint64_t>(max_bytes))
    return unexpected(Error::mailbox_full(
        "mailbox " + account() + " holds " + std::to_string(t->bytes) + " bytes; " +
            std::to_string(incoming) + " more would pass the limit of " +
            std::to_string(max_bytes)));
  return {};
}

Result<MailboxCounters> Mailbox::counters() const {
  const fs::path p = dir_ / kCountersFile;
  UniqueFd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return MailboxCounters{};
    return fail_errno("open " + p.string(), errno);
  }
  if (auto st = flock_retry(fd.get(), LOCK_SH, p); !st) return unexpected(st.error());
  auto text = pread_small(fd.get(), p);
  if (!text) return unexpected(text.error());
  return parse_counters(*text);
}

Status Mailbox::add_counters(const MailboxCounters& delta) {
  return add_mailbox_counters(dir_, delta);
}

Result<MailboxStats> Mailbox::stats() const {
  auto t = totals();
  if (!t) return unexpected(t.error());
  auto c = counters();
  if (!c) return unexpected(c.error());
  MailboxStats s;
  s.messages = t->messages;
  s.bytes = t->bytes;
  s.new_count = t->new_count;
  s.cur_count = t->cur_count;
  s.counters = *c;
  return s;
}

}  // namespace wizmail
