#include "pop3/mailbox_lock.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <sstream>
#include <utility>

#include "util/fd.hpp"
#include "util/fs.hpp"

namespace wizmail::pop3 {

namespace fs = std::filesystem;

namespace {

// Whether the process `pid` started at `start` (0: unknown) still runs here.
bool process_alive(long pid, unsigned long long start) {
  if (pid <= 0) return false;
  if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) return false;
  if (start == 0) return true;
  unsigned long long now = process_start_time(static_cast<pid_t>(pid));
  return now == 0 || now == start;  // unreadable /proc: assume alive
}

}  // namespace

unsigned long long process_start_time(pid_t pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%ld/stat", static_cast<long>(pid));
  util::UniqueFd f(::open(path, O_RDONLY | O_CLOEXEC));
  if (f.get() < 0) return 0;
  char buf[1024];
  ssize_t n = ::read(f.get(), buf, sizeof buf - 1);
  if (n <= 0) return 0;
  buf[n] = '\0';
  // The command name (field 2) is in parentheses and may contain spaces.
  const char* p = std::strrchr(buf, ')');
  if (!p) return 0;
  ++p;
  // Fields 3..21 precede the start time.
  for (int field = 3; field <= 22; ++field) {
    while (*p == ' ') ++p;
    if (field == 22) return std::strtoull(p, nullptr, 10);
    while (*p && *p != ' ') ++p;
    if (!*p) return 0;
  }
  return 0;
}

MailboxLock::MailboxLock(MailboxLock&& o) noexcept
    : dir_fd_(std::exchange(o.dir_fd_, -1)), path_(std::move(o.path_)),
      fd_(std::exchange(o.fd_, -1)), content_(std::move(o.content_)),
      note_(std::move(o.note_)), dev_(o.dev_), ino_(o.ino_) {
  o.path_.clear();
}

MailboxLock& MailboxLock::operator=(MailboxLock&& o) noexcept {
  if (this != &o) {
    release();
    dir_fd_ = std::exchange(o.dir_fd_, -1);
    path_ = std::move(o.path_);
    fd_ = std::exchange(o.fd_, -1);
    content_ = std::move(o.content_);
    note_ = std::move(o.note_);
    dev_ = o.dev_;
    ino_ = o.ino_;
    o.path_.clear();
  }
  return *this;
}

namespace {

struct Holder {
  bool parsed = false;
  std::string host;
  long pid = 0;
  unsigned long long start = 0;
  std::string who() const {
    return parsed ? host + " pid " + std::to_string(pid) : std::string("unknown holder");
  }
};

Holder read_holder(int fd) {
  char buf[512];
  ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  std::istringstream in(std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0));
  Holder h;
  h.parsed = static_cast<bool>(in >> h.host >> h.pid >> h.start);
  return h;
}

bool no_room(int err) { return err == ENOSPC || err == EDQUOT; }

std::string locked_by(const fs::path& path, const Holder& h) {
  return "mailbox locked by " + h.who() + " (" + path.string() + ")";
}

}  // namespace

Result<MailboxLock> MailboxLock::acquire(const fs::path& account_dir, const Options& opt) {
  const std::string host = opt.host.empty() ? util::maildir_hostname() : opt.host;
  const fs::path path = account_dir / lock_file_name;
  const long my_pid = static_cast<long>(::getpid());
  const std::string content = host + " " + std::to_string(my_pid) + " " +
                              std::to_string(process_start_time(::getpid())) + " " +
                              util::unique_name_part() + "\n";
  constexpr int open_flags = O_RDWR | O_CLOEXEC | O_NOFOLLOW;

  // This host first: the cur/ flock needs no disk space.
  const fs::path cur = account_dir / "cur";
  util::UniqueFd dir(::open(cur.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() < 0) return fail_errno("open " + cur.string(), errno);
  int rc;
  do rc = ::flock(dir.get(), LOCK_EX | LOCK_NB);
  while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    if (errno == EWOULDBLOCK) {
      Holder h;
      if (util::UniqueFd f(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW)); f.get() >= 0)
        h = read_holder(f.get());
      return fail(Errc::busy, h.parsed ? locked_by(path, h)
                                       : "mailbox locked by another session on this host (" +
                                             cur.string() + ")");
    }
    dir.reset();  // no flock on directories here (NFS): the lock file alone
  }

  for (int attempt = 0; attempt < 8; ++attempt) {
    bool created = true;
    util::UniqueFd fd(::open(path.c_str(), open_flags | O_CREAT | O_EXCL, 0600));
    if (fd.get() < 0) {
      if (no_room(errno) && dir.get() >= 0) {
        // Not even an empty file fits (no inode left): the cur/ flock alone.
        MailboxLock lock;
        lock.note_ = "no lock file (" + std::string(std::strerror(errno)) + " in " +
                     account_dir.string() + "): locked on this host only";
        lock.dir_fd_ = dir.release();
        return lock;
      }
      if (errno != EEXIST) return fail_errno("create " + path.string(), errno);
      created = false;
      fd.reset(::open(path.c_str(), open_flags));
      if (fd.get() < 0) {
        if (errno == ENOENT) continue;  // released meanwhile
        return fail_errno("open " + path.string(), errno);
      }
    }
    // A file we just created can only be flocked meanwhile by an acquirer
    // judging it (empty and fresh: busy), which lets go at once: wait for
    // it rather than leave an empty lock file behind.
    do rc = ::flock(fd.get(), created ? LOCK_EX : LOCK_EX | LOCK_NB);
    while (rc != 0 && errno == EINTR);
    if (rc != 0) {
      if (errno != EWOULDBLOCK) return fail_errno("flock " + path.string(), errno);
      // A live holder (it may not have written its name yet).
      return fail(Errc::busy, locked_by(path, read_holder(fd.get())));
    }
    // We hold the flock of the file we opened; make sure it is still the
    // lock file and not one its holder removed after we opened it.
    struct stat mine {}, at_path {};
    if (::fstat(fd.get(), &mine) != 0) return fail_errno("stat " + path.string(), errno);
    if (::stat(path.c_str(), &at_path) != 0) {
      if (errno == ENOENT) continue;
      return fail_errno("stat " + path.string(), errno);
    }
    if (mine.st_ino != at_path.st_ino || mine.st_dev != at_path.st_dev) continue;

    if (!created) {
      // The previous holder left it without removing it (died, or lives on
      // another host, or does not flock): judge its content.
      const Holder h = read_holder(fd.get());
      const auto age = std::chrono::seconds(std::time(nullptr) - mine.st_mtim.tv_sec);
      bool stale;
      if (h.parsed && h.host == host)
        // This process always holds the flock of its own locks: its pid in
        // an unlocked file is a leftover. Another live pid may not flock.
        stale = h.pid == my_pid || !process_alive(h.pid, h.start);
      else
        stale = age > opt.foreign_stale_age;
      if (!stale) return fail(Errc::busy, locked_by(path, h));
      if (::ftruncate(fd.get(), 0) != 0) return fail_errno("truncate " + path.string(), errno);
    }
    MailboxLock lock;
    lock.content_ = content;
    errno = 0;
    if (::pwrite(fd.get(), content.data(), content.size(), 0) !=
        static_cast<ssize_t>(content.size())) {
      // No room for the name (a full disk; any write error): the lock
      // holds all the same, with an empty file, as Dovecot's dotlocks do;
      // a partial write is undone (a torn name would read as another holder).
      const int e = errno ? errno : ENOSPC;
      if (::ftruncate(fd.get(), 0) != 0) {
        if (created) ::unlink(path.c_str());  // still ours: we hold its flock
        return fail_errno("write " + path.string(), e);
      }
      lock.content_.clear();
      lock.note_ = "lock file " + path.string() + " left empty (" + std::strerror(e) +
                   "): other hosts see an anonymous lock";
    }
    lock.dir_fd_ = dir.release();
    lock.path_ = path;
    lock.dev_ = mine.st_dev;
    lock.ino_ = mine.st_ino;
    lock.fd_ = fd.release();
    return lock;
  }
  return fail(Errc::busy, "mailbox lock contended (" + path.string() + ")");
}

Status MailboxLock::refresh() {
  if (fd_ < 0) return {};
  if (::futimens(fd_, nullptr) != 0) return fail_errno("touch " + path_.string(), errno);
  return {};
}

void MailboxLock::release() noexcept {
  if (fd_ >= 0) {
    // Still holding the flock: nobody on this host can take the file over
    // meanwhile. Remove it only when the path is still our file with our
    // content (a foreign host may have taken over a lock it judged stale).
    struct stat st {};
    if (::stat(path_.c_str(), &st) == 0 && st.st_ino == ino_ && st.st_dev == dev_) {
      char buf[512];
      ssize_t n = ::pread(fd_, buf, sizeof buf, 0);
      if (n >= 0 && std::string_view(buf, static_cast<std::size_t>(n)) == content_)
        ::unlink(path_.c_str());
    }
    ::close(fd_);  // drops the flock
    fd_ = -1;
  }
  if (dir_fd_ >= 0) ::close(dir_fd_);
  dir_fd_ = -1;
  path_.clear();
  note_.clear();
}

}  // namespace wizmail::pop3
