#include "pop3/mailbox_lock.hpp"

#include <fcntl.h>
#include <signal.h>
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
    : path_(std::move(o.path_)), content_(std::move(o.content_)), dev_(o.dev_), ino_(o.ino_) {
  o.path_.clear();
}

MailboxLock& MailboxLock::operator=(MailboxLock&& o) noexcept {
  if (this != &o) {
    release();
    path_ = std::move(o.path_);
    content_ = std::move(o.content_);
    dev_ = o.dev_;
    ino_ = o.ino_;
    o.path_.clear();
  }
  return *this;
}

Result<MailboxLock> MailboxLock::acquire(const fs::path& account_dir, const Options& opt) {
  const std::string host = opt.host.empty() ? util::maildir_hostname() : opt.host;
  const fs::path path = account_dir / lock_file_name;
  const long my_pid = static_cast<long>(::getpid());
  const std::string content = host + " " + std::to_string(my_pid) + " " +
                              std::to_string(process_start_time(::getpid())) + " " +
                              util::unique_name_part() + "\n";

  for (int attempt = 0; attempt < 4; ++attempt) {
    Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (fd.fd >= 0) {
      struct stat st {};
      if (::write(fd.fd, content.data(), content.size()) != static_cast<ssize_t>(content.size()) ||
          ::fstat(fd.fd, &st) != 0) {
        int e = errno;
        ::unlink(path.c_str());
        return fail_errno("write " + path.string(), e);
      }
      MailboxLock lock;
      lock.path_ = path;
      lock.content_ = content;
      lock.dev_ = st.st_dev;
      lock.ino_ = st.st_ino;
      return lock;
    }
    if (errno != EEXIST) return fail_errno("create " + path.string(), errno);

    // Somebody holds it, or held it and died. Judge the file we can open.
    Fd old(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (old.fd < 0) {
      if (errno == ENOENT) continue;  // released meanwhile
      return fail_errno("open " + path.string(), errno);
    }
    struct stat st {};
    if (::fstat(old.fd, &st) != 0) return fail_errno("stat " + path.string(), errno);
    char buf[512];
    ssize_t n = ::read(old.fd, buf, sizeof buf - 1);
    std::string text(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
    std::istringstream in(text);
    std::string holder_host;
    long pid = 0;
    unsigned long long start = 0;
    bool parsed = static_cast<bool>(in >> holder_host >> pid >> start);
    const auto age = std::chrono::seconds(std::time(nullptr) - st.st_mtim.tv_sec);

    bool stale;
    if (parsed && holder_host == host) stale = !process_alive(pid, start);
    else stale = age > opt.foreign_stale_age;
    if (!stale) {
      std::string who = parsed ? holder_host + " pid " + std::to_string(pid) : "unknown holder";
      return fail(Errc::busy, "mailbox locked by " + who + " (" + path.string() + ")");
    }

    // Break it: move it aside, then make sure we moved the file we judged.
    const fs::path aside =
        account_dir / (std::string(lock_file_name) + ".stale." + util::unique_name_part());
    if (::rename(path.c_str(), aside.c_str()) != 0) {
      if (errno == ENOENT) continue;
      return fail_errno("break stale lock " + path.string(), errno);
    }
    struct stat moved {};
    if (::stat(aside.c_str(), &moved) == 0 &&
        (moved.st_ino != st.st_ino || moved.st_dev != st.st_dev)) {
      // Another process broke the stale lock and took a fresh one first.
      if (::link(aside.c_str(), path.c_str()) != 0 && errno != EEXIST) {
        int e = errno;
        ::unlink(aside.c_str());
        return fail_errno("restore lock " + path.string(), e);
      }
      ::unlink(aside.c_str());
      return fail(Errc::busy, "mailbox locked by another session (" + path.string() + ")");
    }
    ::unlink(aside.c_str());
  }
  return fail(Errc::busy, "mailbox lock contended (" + path.string() + ")");
}

Status MailboxLock::refresh() {
  if (path_.empty()) return {};
  if (::utimensat(AT_FDCWD, path_.c_str(), nullptr, 0) != 0)
    return fail_errno("touch " + path_.string(), errno);
  return {};
}

void MailboxLock::release() noexcept {
  if (path_.empty()) return;
  Fd f(::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  struct stat st {};
  if (f.fd >= 0 && ::fstat(f.fd, &st) == 0 && st.st_ino == ino_ && st.st_dev == dev_) {
    char buf[512];
    ssize_t n = ::read(f.fd, buf, sizeof buf);
    if (n > 0 && std::string_view(buf, static_cast<std::size_t>(n)) == content_)
      ::unlink(path_.c_str());
  }
  path_.clear();
}

}  // namespace wizmail::pop3
