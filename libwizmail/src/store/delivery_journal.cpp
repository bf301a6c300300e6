#include "store/delivery_journal.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <map>
#include <optional>
#include <set>

#include "util/fd.hpp"
#include "store/journal_record.hpp"
#include "store/store_util.hpp"
#include "util/fs.hpp"

namespace wizmail {

namespace fs = std::filesystem;
using util::UniqueFd;
using store::journal::crc32c;
using store::journal::Record;

namespace {

constexpr std::uint32_t kHeaderMagic = 0x4a5a5757;  // "WWZJ"
constexpr std::uint64_t kSlotSize = 512;
constexpr std::uint64_t kDataStart = 4096;
constexpr std::uint64_t kMinSize = 1ull << 20;

struct HeaderSlot {
  std::uint32_t magic;
  std::uint32_t crc;  // of the fields after it
  std::uint64_t seq;  // every record up to this one is delivered durably
  std::uint64_t off;  // where record seq+1 starts (or kDataStart after a wrap)
  std::uint64_t size;
};

std::uint32_t slot_crc(const HeaderSlot& s) {
  return crc32c(0, reinterpret_cast<const char*>(&s) + 8, sizeof s - 8);
}

Status pwrite_all(int fd, const char* p, std::size_t n, std::uint64_t off, const fs::path& path) {
  while (n > 0) {
    ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(off));
    if (w < 0) {
      if (errno == EINTR) continue;
      return fail_errno("write " + path.string(), errno);
    }
    p += w;
    n -= static_cast<std::size_t>(w);
    off += static_cast<std::uint64_t>(w);
  }
  return {};
}

Status pread_all(int fd, char* p, std::size_t n, std::uint64_t off, const fs::path& path) {
  while (n > 0) {
    ssize_t r = ::pread(fd, p, n, static_cast<off_t>(off));
    if (r < 0) {
      if (errno == EINTR) continue;
      return fail_errno("read " + path.string(), errno);
    }
    if (r == 0) return fail(Errc::io, "short read of " + path.string());
    p += r;
    n -= static_cast<std::size_t>(r);
    off += static_cast<std::uint64_t>(r);
  }
  return {};
}

// A new journal: zeros written (not just allocated: overwriting written
// blocks later needs no metadata update), both header slots valid.
Status create_journal(const fs::path& file, std::uint64_t size) {
  const fs::path tmp = file.string() + ".new";
  ::unlink(tmp.c_str());
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) return fail_errno("create " + tmp.string(), errno);
  auto undo = [&](Status st) {
    ::unlink(tmp.c_str());
    return st;
  };
  std::vector<char> zeros(1 << 20, '\0');
  for (std::uint64_t off = 0; off < size; off += zeros.size()) {
    auto n = static_cast<std::size_t>(std::min<std::uint64_t>(zeros.size(), size - off));
    if (auto st = pwrite_all(fd.get(), zeros.data(), n, off, tmp); !st) return undo(st);
  }
  for (std::uint64_t slot = 0; slot < 2; ++slot) {
    HeaderSlot h{kHeaderMagic, 0, 0, kDataStart, size};
    h.crc = slot_crc(h);
    if (auto st = pwrite_all(fd.get(), reinterpret_cast<const char*>(&h), sizeof h,
                             slot * kSlotSize, tmp);
        !st)
      return undo(st);
  }
  if (::fsync(fd.get()) != 0) return undo(fail_errno("fsync " + tmp.string(), errno));
  fd.reset();
  if (::rename(tmp.c_str(), file.c_str()) != 0)
    return undo(fail_errno("rename " + tmp.string(), errno));
  return util::fsync_dir(file.parent_path());
}

bool no_room(const Error& e) { return e.code == Errc::temporary; }  // ENOSPC, EDQUOT

// create_journal() unless its file system has no room for it: then nothing
// is written (not even for a moment, so no other writer meets a full disk
// for it) and the reason is returned; "" when the journal was made.
Result<std::string> create_journal_if_room(const fs::path& file, std::uint64_t size) {
  if (auto st = util::make_dirs(file.parent_path(), 0700); !st) {
    if (no_room(st.error())) return st.error().message;
    return unexpected(st.error());
  }
  auto free = util::free_space(file.parent_path());
  if (free && *free < size)
    return "only " + std::to_string(*free) + " bytes free in " + file.parent_path().string() +
           ", the journal needs " + std::to_string(size);
  if (auto st = create_journal(file, size); !st) {
    if (no_room(st.error())) return st.error().message;
    return unexpected(st.error());
  }
  return std::string();
}

// The record `seq` at `off`, if it is there whole.
std::optional<Record> read_record(int fd, std::uint64_t off, std::uint64_t size,
                                  std::uint64_t seq) {
  char head[sizeof(store::journal::RecordHead)];
  if (off + sizeof head > size) return std::nullopt;
  if (::pread(fd, head, sizeof head, static_cast<off_t>(off)) != static_cast<ssize_t>(sizeof head))
    return std::nullopt;
  auto len = store::journal::record_length(std::string_view(head, sizeof head), seq, size - off);
  if (!len) return std::nullopt;
  std::string bytes(static_cast<std::size_t>(*len), '\0');
  if (::pread(fd, bytes.data(), bytes.size(), static_cast<off_t>(off)) !=
      static_cast<ssize_t>(bytes.size()))
    return std::nullopt;
  return store::journal::parse_record(bytes, seq);
}

Status write_synced(const fs::path& path, std::string_view data) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) return fail_errno("create " + path.string(), errno);
  if (auto st = pwrite_all(fd.get(), data.data(), data.size(), 0, path); !st) return st;
  if (::fsync(fd.get()) != 0) return fail_errno("fsync " + path.string(), errno);
  return {};
}

// syncfs() once per filesystem holding one of `dirs`.
Status sync_filesystems(const std::vector<fs::path>& dirs) {
  std::set<dev_t> done;
  for (const auto& d : dirs) {
    UniqueFd fd(::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd) {
      if (errno == ENOENT) continue;  // account removed meanwhile: nothing to keep
      return fail_errno("open " + d.string(), errno);
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return fail_errno("stat " + d.string(), errno);
    if (!done.insert(st.st_dev).second) continue;
    if (::syncfs(fd.get()) != 0) return fail_errno("syncfs (for " + d.string() + ")", errno);
  }
  return {};
}

}  // namespace

Result<std::unique_ptr<DeliveryJournal>> DeliveryJournal::open(const fs::path& file,
                                                               const Options& options,
                                                               RecoveryReport* report) {
  RecoveryReport local;
  RecoveryReport& rep = report ? *report : local;
  const std::uint64_t want = std::max(options.size, kMinSize);
  // A new journal that does not fit is no error: no journal, the classic
  // commit path (a null journal, and why in the report).
  auto make = [&]() -> Result<bool> {
    auto made = create_journal_if_room(file, want);
    if (!made) return unexpected(made.error());
    if (!made->empty()) rep.not_created = std::move(*made);
    return rep.not_created.empty();
  };
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    if (errno != ENOENT) return fail_errno("stat " + file.string(), errno);
    auto made = make();
    if (!made) return unexpected(made.error());
    if (!*made) return std::unique_ptr<DeliveryJournal>();
  }
  std::unique_ptr<DeliveryJournal> j(new DeliveryJournal());
  j->file_ = file;
  j->interval_ = options.checkpoint_interval;
  for (int round = 0; round < 2; ++round) {
    j->fd_ = ::open(file.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (j->fd_ < 0) return fail_errno("open " + file.string(), errno);
    if (::fstat(j->fd_, &st) != 0) return fail_errno("stat " + file.string(), errno);
    HeaderSlot best{};
    bool found = false;
    for (int slot = 0; slot < 2; ++slot) {
      HeaderSlot h{};
      if (::pread(j->fd_, &h, sizeof h, slot * static_cast<off_t>(kSlotSize)) !=
          static_cast<ssize_t>(sizeof h))
        continue;
      if (h.magic != kHeaderMagic || slot_crc(h) != h.crc ||
          h.size != static_cast<std::uint64_t>(st.st_size) || h.size < kMinSize ||
          h.off < kDataStart || h.off > h.size)
        continue;
      if (!found || h.seq > best.seq) {
        best = h;
        found = true;
        j->next_slot_ = 1 - slot;
      }
    }
    if (found) {
      j->size_ = best.size;
      j->ckpt_seq_ = best.seq;
      j->ckpt_off_ = best.off;
      break;
    }
    // Neither header is valid: keep the file for a human, start a new one.
    ::close(j->fd_);
    j->fd_ = -1;
    if (round == 1) return fail(Errc::io, "journal " + file.string() + " unreadable after creation");
    fs::path aside = file.string() + ".corrupt." + std::to_string(std::time(nullptr));
    if (::rename(file.c_str(), aside.c_str()) != 0)
      return fail_errno("rename " + file.string(), errno);
    rep.corrupt_kept = aside;
    auto made = make();
    if (!made) return unexpected(made.error());
    if (!*made) return std::unique_ptr<DeliveryJournal>();
  }
  j->max_message_ = std::min<std::uint64_t>(1ull << 20, (j->size_ - kDataStart) / 8);
  if (auto s = j->replay(rep); !s) return unexpected(s.error());
  return j;
}

Status DeliveryJournal::replay(RecoveryReport& rep) {
  std::uint64_t seq = ckpt_seq_ + 1;
  std::uint64_t off = ckpt_off_;
  std::vector<fs::path> touched;
  // cur/ listings by Maildir: base name (before ':') -> file name.
  std::map<fs::path, std::map<std::string, std::string>> cur_names;
  for (;;) {
    auto rec = read_record(fd_, off, size_, seq);
    if (!rec && off != kDataStart) {
      rec = read_record(fd_, kDataStart, size_, seq);
      if (rec) off = kDataStart;
    }
    if (!rec) break;
    ++rep.records;
    for (const auto& dir : rec->maildirs) {
      std::error_code ec;
      if (!fs::is_directory(dir / "new", ec)) {
        // Only an account that is gone (ENOENT) is skipped; any other error
        // (EACCES, EIO, a file system not mounted yet) fails the recovery,
        // so acknowledged mail is never written off.
        struct stat st {};
        if (::stat((dir / "new").c_str(), &st) != 0 && errno != ENOENT && errno != ENOTDIR)
          return fail_errno("journal recovery: " + (dir / "new").string(), errno);
        ++rep.skipped;
        continue;
      }
      touched.push_back(dir);
      fs::path found = dir / "new" / rec->name;
      if (!fs::exists(found, ec)) {
        auto it = cur_names.find(dir);
        if (it == cur_names.end()) {
          std::map<std::string, std::string> names;
          for (const auto& e : fs::directory_iterator(dir / "cur", ec)) {
            std::string n = e.path().filename().string();
            names.emplace(n.substr(0, n.find(':')), n);
          }
          it = cur_names.emplace(dir, std::move(names)).first;
        }
        auto n = it->second.find(rec->name);
        found = n == it->second.end() ? fs::path() : dir / "cur" / n->second;
      }
      const fs::path tmp = dir / "tmp" / (rec->name + ".journal");
      if (found.empty()) {
        if (auto st = write_synced(tmp, rec->data); !st) return st;
        if (int e = store::rename_noreplace(tmp, dir / "new" / rec->name); e != 0) {
          ::unlink(tmp.c_str());
          return fail_errno("rename " + tmp.string(), e);
        }
        ++rep.restored;
        continue;
      }
      auto have = util::read_file(found);
      if (have && *have == rec->data) {
        ++rep.present;
        continue;
      }
      if (auto st = write_synced(tmp, rec->data); !st) return st;
      if (::rename(tmp.c_str(), found.c_str()) != 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        return fail_errno("rename " + tmp.string(), e);
      }
      ++rep.repaired;
    }
    off += rec->len;
    ++seq;
  }
  // Whole copies found in new/ or cur/ may still be only in the page cache
  // (a process crash): sync them, and the names, before forgetting the records.
  if (auto st = sync_filesystems(touched); !st) return st;
  next_seq_ = seq;
  head_ = off;
  if (rep.records > 0) {
    if (auto st = write_header(seq - 1, off); !st) return st;
    ckpt_seq_ = seq - 1;
    ckpt_off_ = off;
  }
  return {};
}

Status DeliveryJournal::write_header(std::uint64_t seq, std::uint64_t off) {
  HeaderSlot h{kHeaderMagic, 0, seq, off, size_};
  h.crc = slot_crc(h);
  if (auto st = pwrite_all(fd_, reinterpret_cast<const char*>(&h), sizeof h,
                           static_cast<std::uint64_t>(next_slot_) * kSlotSize, file_);
      !st)
    return st;
  if (::fdatasync(fd_) != 0) return fail_errno("fdatasync " + file_.string(), errno);
  next_slot_ = 1 - next_slot_;
  return {};
}

DeliveryJournal::~DeliveryJournal() {
  stop();
  (void)checkpoint();
  if (fd_ >= 0) ::close(fd_);
}

void DeliveryJournal::start() {
  std::lock_guard lk(mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] {
    std::unique_lock lk(mu_);
    while (!stop_) {
      cv_.wait_for(lk, interval_, [&] { return stop_ || wanted_; });
      wanted_ = false;
      bool work = !inflight_.empty() && inflight_.front().applied;
      lk.unlock();
      if (work) (void)checkpoint();  // a failure leaves the records for the next try
      lk.lock();
    }
  });
}

void DeliveryJournal::stop() {
  {
    std::lock_guard lk(mu_);
    if (!thread_.joinable()) return;
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  (void)checkpoint();
}

std::uint64_t DeliveryJournal::pending() const {
  std::lock_guard lk(mu_);
  return next_seq_ - 1 - ckpt_seq_;
}

Result<DeliveryJournal::Ticket> DeliveryJournal::append(std::span<const Message> messages) {
  if (messages.empty()) return fail(Errc::invalid_argument, "empty journal append");
  // Build the records outside the lock; the sequence numbers and the CRCs'
  // last step are filled in under it.
  std::size_t total = 0;
  std::vector<std::size_t> lens;
  for (const auto& m : messages) {
    if (m.size > max_message_) return fail(Errc::busy, "message too large for the journal");
    std::size_t len = store::journal::record_size(m.name, m.maildirs, m.size);
    lens.push_back(len);
    total += len;
  }
  if (total > size_ - kDataStart) return fail(Errc::busy, "batch too large for the journal");
  std::string buf(total, '\0');
  std::vector<std::uint32_t> payload_crcs;
  std::vector<fs::path> dirs;
  std::vector<std::string> names;
  names.reserve(messages.size());
  std::size_t pos = 0;
  for (std::size_t i = 0; i < messages.size(); ++i) {
    const auto& m = messages[i];
    names.emplace_back(m.name);
    char* p = buf.data() + pos;
    char* q = store::journal::lay_out_record(p, m.name, m.maildirs, m.size);
    dirs.insert(dirs.end(), m.maildirs.begin(), m.maildirs.end());
    if (auto st = pread_all(m.fd, q, static_cast<std::size_t>(m.size), 0, m.name); !st)
      return unexpected(st.error());
    payload_crcs.push_back(store::journal::payload_crc(p));
    pos += lens[i];
  }
  std::sort(dirs.begin(), dirs.end());
  dirs.erase(std::unique(dirs.begin(), dirs.end()), dirs.end());

  Ticket t;
  {
    std::unique_lock lk(mu_);
    if (broken_) return fail(Errc::io, "the delivery journal failed earlier");
    // The ring: records after the checkpoint live in [ckpt_off_, head_), or
    // [ckpt_off_, end) + [kDataStart, head_) after a wrap.
    std::uint64_t at = head_;
    const bool unchecked = next_seq_ != ckpt_seq_ + 1;
    const bool wrapped = unchecked && wrap_ != ckpt_lap_;
    bool wrap_now = false;
    if (!wrapped) {
      if (at + total > size_) {
        at = kDataStart;
        wrap_now = true;
        // Unchecked records before ckpt_off_ would be overwritten. (With
        // none, ckpt_off_ still bounds the new lap: recovery looks there
        // first, so it must keep holding an older record.)
        if (at + total > ckpt_off_) at = size_;
      }
    } else if (at + total > ckpt_off_) {
      at = size_;  // the wrapped writer reached the oldest unchecked record
    }
    if (at + total > size_) {
      wanted_ = true;
      cv_.notify_all();
      return fail(Errc::busy, "delivery journal full until the next checkpoint");
    }
    t.first = next_seq_;
    t.last = next_seq_ + messages.size() - 1;
    pos = 0;
    for (std::size_t i = 0; i < messages.size(); ++i) {
      store::journal::seal_record(buf.data() + pos, next_seq_ + i, payload_crcs[i]);
      pos += lens[i];
    }
    // Written under the lock, in sequence order: an fdatasync started after
    // this covers every earlier record too.
    if (auto st = pwrite_all(fd_, buf.data(), buf.size(), at, file_); !st) {
      broken_ = true;
      return unexpected(st.error());
    }
    next_seq_ += messages.size();
    head_ = at + total;
    if (wrap_now) ++wrap_;
    inflight_.push_back(
        Inflight{t.first, t.last, head_, wrap_, std::move(dirs), std::move(names), false});
  }
  {
    std::lock_guard fl(flush_mu_);
    int rc = ::fdatasync(fd_);
    int e = errno;
    std::lock_guard lk(mu_);
    if (rc != 0) {
      broken_ = true;
      return fail_errno("fdatasync " + file_.string(), e);
    }
    // Another flush may have taken the write-back error of our records.
    if (broken_) return fail(Errc::io, "delivery journal " + file_.string() + " failed earlier");
  }
  return t;
}

void DeliveryJournal::applied(Ticket t) noexcept {
  {
    std::lock_guard lk(mu_);
    for (auto& f : inflight_)
      if (f.first == t.first) f.applied = true;
  }
  applied_cv_.notify_all();
}

Status DeliveryJournal::checkpoint() {
  std::lock_guard ck(checkpoint_mu_);
  std::uint64_t seq = 0, off = 0, lap = 0;
  std::size_t covered = 0;
  std::vector<fs::path> dirs;
  {
    std::lock_guard lk(mu_);
    for (const auto& f : inflight_) {
      if (!f.applied) break;
      seq = f.last;
      off = f.end;
      lap = f.lap;
      dirs.insert(dirs.end(), f.maildirs.begin(), f.maildirs.end());
      ++covered;
    }
  }
  if (covered == 0) return {};
  std::sort(dirs.begin(), dirs.end());
  dirs.erase(std::unique(dirs.begin(), dirs.end()), dirs.end());
  Status st = sync_filesystems(dirs);
  if (st) st = write_header(seq, off);
  // A failure keeps the records: a later checkpoint covers them (the
  // folders are synced again then). Nothing else may be reused meanwhile.
  if (!st) return st;
  std::lock_guard lk(mu_);
  // Still the front: only a checkpoint removes records, one at a time.
  inflight_.erase(inflight_.begin(), inflight_.begin() + static_cast<long>(covered));
  ckpt_seq_ = seq;
  ckpt_off_ = off;
  ckpt_lap_ = lap;
  return {};
}

Status DeliveryJournal::settle(std::uint64_t seq) {
  for (int round = 0;; ++round) {
    {
      std::unique_lock lk(mu_);
      if (ckpt_seq_ >= seq) return {};
      if (round == 2)  // a checkpoint succeeded twice without covering it: cannot happen
        return fail(Errc::internal, "delivery journal: record " + std::to_string(seq) +
                                        " not covered by a checkpoint");
      // Every record up to `seq` applied: each ticket's applied() comes
      // from the commit that wrote it, whatever happened there.
      applied_cv_.wait(lk, [&] {
        for (const auto& f : inflight_) {
          if (f.first > seq) break;
          if (!f.applied) return false;
        }
        return true;
      });
    }
    if (auto st = checkpoint(); !st) return st;
  }
}

Status DeliveryJournal::settle(std::span<const std::string> names) {
  std::uint64_t through = 0;
  {
    std::lock_guard lk(mu_);
    for (const auto& f : inflight_)
      for (const auto& n : f.names)
        if (std::find(names.begin(), names.end(), n) != names.end()) through = f.last;
  }
  return through == 0 ? Status{} : settle(through);
}

}  // namespace wizmail
