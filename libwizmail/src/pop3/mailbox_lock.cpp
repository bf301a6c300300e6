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

#include "util/fs.hpp"

namespace wizmail::pop3 {

namespace fs = std::filesystem;

namespace {

struct Fd {
  int fd;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

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
  Fd f(::open(path, O_RDONLY | O_CLOEXEC));
  if (f.fd < 0) return 0;
  char buf[1024];
  ssize_t n = ::read(f.fd, buf, sizeof buf - 1);
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
    : path_(std::move(o.path_)), fd_(o.fd_), content_(std::move(o.content_)), dev_(o.dev_),
      ino_(o.ino_) {
  o.path_.clear();
  o.fd_ = -1;
}

MailboxLock& MailboxLock::operator=(MailboxLock&& o) noexcept {
  if (this != &o) {
    release();
    path_ = std::move(o.path_);
    fd_ = o.fd_;
    content_ = std::move(o.content_);
    dev_ = o.dev_;
    ino_ = o.ino_;
    o.path_.clear();
    o.fd_ = -1;
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

}  // namespace

Result<MailboxLock> MailboxLock::acquire(const fs::path& account_dir, const Options& opt) {
  const std::string host = opt.host.empty() ? util::maildir_hostname() : opt.host;
  const fs::path path = account_dir / lock_file_name;
  const long my_pid = static_cast<long>(::getpid());
  const std::string content = host + " " + std::to_string(my_pid) + " " +
                              std::to_string(process_start_time(::getpid())) + " " +
                              util::unique_name_part() + "\n";
  constexpr int open_flags = O_RDWR | O_CLOEXEC | O_NOFOLLOW;

  for (int attempt = 0; attempt < 8; ++attempt) {
    bool created = true;
    Fd fd(::open(path.c_str(), open_flags | O_CREAT | O_EXCL, 0600));
    if (fd.fd < 0) {
      if (errno != EEXIST) return fail_errno("create " + path.string(), errno);
      created = false;
      fd.fd = ::open(path.c_str(), open_flags);
      if (fd.fd < 0) {
        if (errno == ENOENT) continue;  // released meanwhile
        return fail_errno("open " + path.string(), errno);
      }
    }
    // A file we just created can only be flocked meanwhile by an acquirer
    // judging it (empty and fresh: busy), which lets go at once: wait for
    // it rather than leave an empty lock file behind.
    int rc;
    do rc = ::flock(fd.fd, created ? LOCK_EX : LOCK_EX | LOCK_NB);
    while (rc != 0 && errno == EINTR);
    if (rc != 0) {
      if (errno != EWOULDBLOCK) return fail_errno("flock " + path.string(), errno);
      // A live holder (it may not have written its name yet).
      return fail(Errc::busy,
                  "mailbox locked by " + read_holder(fd.fd).who() + " (" + path.string() + ")");
    }
    // We hold the flock of the file we opened; make sure it is still the
    // lock file and not one its holder removed after we opened it.
    struct stat mine {}, at_path {};
    if (::fstat(fd.fd, &mine) != 0) return fail_errno("stat " + path.string(), errno);
    if (::stat(path.c_str(), &at_path) != 0) {
      if (errno == ENOENT) continue;
      return fail_errno("stat " + path.string(), errno);
    }
    if (mine.st_ino != at_path.st_ino || mine.st_dev != at_path.st_dev) continue;

    if (!created) {
      // The previous holder left it without removing it (died, or lives on
      // another host, or does not flock): judge its content.
      const Holder h = read_holder(fd.fd);
      const auto age = std::chrono::seconds(std::time(nullptr) - mine.st_mtim.tv_sec);
      bool stale;
      if (h.parsed && h.host == host)
        // This process always holds the flock of its own locks: its pid in
        // an unlocked file is a leftover. Another live pid may not flock.
        stale = h.pid == my_pid || !process_alive(h.pid, h.start);
      else
        stale = age > opt.foreign_stale_age;
      if (!stale)
        return fail(Errc::busy, "mailbox locked by " + h.who() + " (" + path.string() + ")");
      if (::ftruncate(fd.fd, 0) != 0) return fail_errno("truncate " + path.string(), errno);
    }
    if (::pwrite(fd.fd, content.data(), content.size(), 0) !=
        static_cast<ssize_t>(content.size())) {
      int e = errno;
      if (created) ::unlink(path.c_str());  // still ours: we hold its flock
      return fail_errno("write " + path.string(), e);
    }
    MailboxLock lock;
    lock.path_ = path;
    lock.content_ = content;
    lock.dev_ = mine.st_dev;
    lock.ino_ = mine.st_ino;
    lock.fd_ = fd.fd;
    fd.fd = -1;
    return lock;
  }
  return fail(Errc::busy, "mailbox lock contended (" + path.string() + ")");
}

Status MailboxLock::refresh() {
  if (path_.empty()) return {};
  if (::futimens(fd_, nullptr) != 0) return fail_errno("touch " + path_.string(), errno);
  return {};
}

void MailboxLock::release() noexcept {
  if (path_.empty()) return;
  // Still holding the flock: nobody on this host can take the file over
  // meanwhile. Remove it only when the path is still our file with our
  // content (a foreign host may have taken over a lock it judged stale).
  struct stat st {};
  if (::stat(path_.c_str(), &st) == 0 && st.st_ino == ino_ && st.st_dev == dev_) {
    char buf[512];
    ssize_t n = ::pread(fd_, buf, sizeof buf, 0);
    if (n > 0 && std::string_view(buf, static_cast<std::size_t>(n)) == content_)
      ::unlink(path_.c_str());
  }
  ::close(fd_);  // drops the flock
  fd_ = -1;
  path_.clear();
}

}  // namespace wizmail::pop3
