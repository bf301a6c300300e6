#include "pop3/mailbox_lock.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <new>
#include <string>
#include <vector>

#include "small_fs.hpp"
#include "util/fs.hpp"

namespace fs = std::filesystem;
using namespace wizmail;
using namespace wizmail::pop3;

namespace {

// An account folder: the lock flocks its cur/.
struct TempDir {
  test::TempDir tmp{"wizmail-pop3-lock"};
  fs::path path = tmp.path();
  TempDir() { fs::create_directory(path / "cur"); }
};

// A child process that takes the lock of `dir`, says whether it got it,
// and holds it until die(): then it exits without releasing (as a crash).
class LockHoldingChild {
 public:
  explicit LockHoldingChild(const fs::path& dir) {
    REQUIRE(::pipe(to_parent_) == 0);
    REQUIRE(::pipe(to_child_) == 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      auto l = MailboxLock::acquire(dir);
      char c = l ? 'y' : 'n';
      (void)!::write(to_parent_[1], &c, 1);
      (void)!::read(to_child_[0], &c, 1);  // wait for the parent's word
      ::_exit(0);                           // dies without releasing
    }
  }
  LockHoldingChild(const LockHoldingChild&) = delete;
  LockHoldingChild& operator=(const LockHoldingChild&) = delete;
  ~LockHoldingChild() {
    for (int fd : {to_parent_[0], to_parent_[1], to_child_[0], to_child_[1]}) ::close(fd);
  }
  pid_t pid() const { return pid_; }
  // Whether the child got the lock (its answer).
  bool holds() {
    char c = 0;
    REQUIRE(::read(to_parent_[0], &c, 1) == 1);
    return c == 'y';
  }
  // Tell the child to exit, and reap it.
  void die() {
    (void)!::write(to_child_[1], "x", 1);
    int status = 0;
    REQUIRE(::waitpid(pid_, &status, 0) == pid_);
  }

 private:
  int to_parent_[2] = {-1, -1}, to_child_[2] = {-1, -1};
  pid_t pid_ = -1;
};

void write_lock(const fs::path& dir, const std::string& content, long age_seconds = 0) {
  std::ofstream(dir / lock_file_name) << content;
  if (age_seconds) {
    struct timespec ts[2];
    ts[0].tv_sec = ts[1].tv_sec = std::time(nullptr) - age_seconds;
    ts[0].tv_nsec = ts[1].tv_nsec = 0;
    REQUIRE(::utimensat(AT_FDCWD, (dir / lock_file_name).c_str(), ts, 0) == 0);
  }
}

std::string me() { return util::maildir_hostname(); }

}  // namespace

TEST_CASE("acquire, busy for a second holder, release") {
  TempDir d;
  auto a = MailboxLock::acquire(d.path);
  REQUIRE(a);
  CHECK(fs::exists(d.path / lock_file_name));
  auto b = MailboxLock::acquire(d.path);
  REQUIRE_FALSE(b);
  CHECK(b.error().code == Errc::busy);
  a->release();
  CHECK_FALSE(fs::exists(d.path / lock_file_name));
  auto c = MailboxLock::acquire(d.path);
  CHECK(c);
}

TEST_CASE("lock content names host, pid and start time") {
  TempDir d;
  auto a = MailboxLock::acquire(d.path);
  REQUIRE(a);
  auto text = util::read_file(d.path / lock_file_name);
  REQUIRE(text);
  std::string head = me() + " " + std::to_string(::getpid()) + " " +
                     std::to_string(process_start_time(::getpid())) + " ";
  CHECK(text->substr(0, head.size()) == head);
  CHECK(text->size() > head.size() + 1);
  CHECK(text->back() == '\n');
  CHECK(process_start_time(::getpid()) > 0);
}

TEST_CASE("across processes: a live child holds it, its death frees it") {
  TempDir d;
  LockHoldingChild child(d.path);
  REQUIRE(child.holds());
  auto busy = MailboxLock::acquire(d.path);
  REQUIRE_FALSE(busy);
  CHECK(busy.error().code == Errc::busy);
  CHECK(busy.error().message.find("pid " + std::to_string(child.pid())) != std::string::npos);
  child.die();
  CHECK(fs::exists(d.path / lock_file_name));  // left behind by _exit
  auto mine = MailboxLock::acquire(d.path);    // stale: the pid is gone
  CHECK(mine);
}

TEST_CASE("same host: a reused pid (other start time) is stale") {
  TempDir d;
  write_lock(d.path, me() + " " + std::to_string(::getpid()) + " 1\n");
  CHECK(MailboxLock::acquire(d.path));
  // while the right start time means a live process (that may not flock)
  TempDir d2;
  const pid_t parent = ::getppid();
  write_lock(d2.path, me() + " " + std::to_string(parent) + " " +
                          std::to_string(process_start_time(parent)) + "\n");
  auto r = MailboxLock::acquire(d2.path);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == Errc::busy);
  // Our own pid in a file nobody flocks is a leftover: this process holds
  // the flock of every lock it owns.
  TempDir d3;
  write_lock(d3.path, me() + " " + std::to_string(::getpid()) + " " +
                          std::to_string(process_start_time(::getpid())) + "\n");
  CHECK(MailboxLock::acquire(d3.path));
}

TEST_CASE("same host: pid 1 alive (init) keeps the lock; a dead pid does not") {
  TempDir d;
  write_lock(d.path, me() + " 1 " + std::to_string(process_start_time(1)) + "\n");
  CHECK_FALSE(MailboxLock::acquire(d.path));
  TempDir d2;
  write_lock(d2.path, me() + " 2147483646 0\n");
  CHECK(MailboxLock::acquire(d2.path));
}

TEST_CASE("another host: stale only after the age") {
  TempDir d;
  write_lock(d.path, "otherhost 1 1\n", 30);
  auto r = MailboxLock::acquire(d.path);
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find("otherhost") != std::string::npos);
  write_lock(d.path, "otherhost 1 1\n", 601);
  CHECK(MailboxLock::acquire(d.path));
  // a shorter configured age
  TempDir d2;
  write_lock(d2.path, "otherhost 1 1\n", 30);
  MailboxLock::Options o;
  o.foreign_stale_age = std::chrono::seconds(10);
  CHECK(MailboxLock::acquire(d2.path, o));
}

TEST_CASE("garbage content: busy while fresh, broken when old") {
  TempDir d;
  write_lock(d.path, "");
  CHECK_FALSE(MailboxLock::acquire(d.path));
  write_lock(d.path, "not a lock\n", 3600);
  CHECK(MailboxLock::acquire(d.path));
}

TEST_CASE("refresh touches; release leaves a lock that is no longer ours") {
  TempDir d;
  auto a = MailboxLock::acquire(d.path);
  REQUIRE(a);
  struct timespec ts[2] = {{1000, 0}, {1000, 0}};
  REQUIRE(::utimensat(AT_FDCWD, (d.path / lock_file_name).c_str(), ts, 0) == 0);
  REQUIRE(a->refresh());
  struct stat st {};
  REQUIRE(::stat((d.path / lock_file_name).c_str(), &st) == 0);
  CHECK(st.st_mtim.tv_sec > 1000);
  // Someone broke it and took a new one: our release must not remove theirs.
  fs::remove(d.path / lock_file_name);
  write_lock(d.path, "otherhost 1 1\n");
  a->release();
  CHECK(fs::exists(d.path / lock_file_name));
}

TEST_CASE("moved lock keeps ownership; missing folder is an error") {
  TempDir d;
  auto a = MailboxLock::acquire(d.path);
  REQUIRE(a);
  MailboxLock b = std::move(*a);
  CHECK_FALSE(a->held());
  CHECK(b.held());
  b = MailboxLock{};
  CHECK_FALSE(fs::exists(d.path / lock_file_name));
  auto r = MailboxLock::acquire(d.path / "nope");
  REQUIRE_FALSE(r);
  CHECK(r.error().code == Errc::not_found);
}

namespace {

ino_t inode(const fs::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_ino;
}

}  // namespace

TEST_CASE("a live lock is never broken, even when its content looks stale") {
  // The race of the old rename-aside scheme, made deterministic: whatever a
  // contender concludes from the content (here: a dead pid of this host,
  // and an old mtime), the holder's flock keeps the file and its inode.
  TempDir d;
  auto holder = MailboxLock::acquire(d.path);
  REQUIRE(holder);
  const fs::path lock = d.path / lock_file_name;
  const ino_t ino = inode(lock);
  write_lock(d.path, me() + " 2147483646 0\n", 3600);  // in place: same inode
  REQUIRE(inode(lock) == ino);
  for (int i = 0; i < 3; ++i) {
    auto r = MailboxLock::acquire(d.path);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::busy);
    CHECK(r.error().message.find("pid 2147483646") != std::string::npos);
  }
  write_lock(d.path, "otherhost 1 1\n", 3600);  // a stale foreign-looking lock
  CHECK_FALSE(MailboxLock::acquire(d.path));
  CHECK(inode(lock) == ino);
  CHECK(holder->held());
  // The holder's own content is gone, so release leaves the file; with the
  // flock dropped the next acquirer takes it over in place.
  holder->release();
  auto next = MailboxLock::acquire(d.path);
  REQUIRE(next);
  CHECK(inode(lock) == ino);
  auto text = util::read_file(lock);
  REQUIRE(text);
  CHECK(text->starts_with(me() + " " + std::to_string(::getpid()) + " "));
}

TEST_CASE("across processes: a flocked lock with stale-looking content stays busy") {
  TempDir d;
  LockHoldingChild child(d.path);
  REQUIRE(child.holds());
  write_lock(d.path, me() + " 2147483646 0\n", 3600);
  CHECK_FALSE(MailboxLock::acquire(d.path));
  CHECK_FALSE(MailboxLock::acquire(d.path));
  child.die();
  CHECK(MailboxLock::acquire(d.path));  // the flock died with the child
}

TEST_CASE("two sessions of one process exclude each other (flock per open file)") {
  TempDir d;
  auto a = MailboxLock::acquire(d.path);
  REQUIRE(a);
  // Even a leftover-looking content (our own pid) does not let a second
  // session in while the first holds the flock.
  write_lock(d.path, me() + " " + std::to_string(::getpid()) + " 0\n");
  auto b = MailboxLock::acquire(d.path);
  REQUIRE_FALSE(b);
  CHECK(b.error().code == Errc::busy);
}

TEST_CASE("contention: never two holders at once, stale takeovers included") {
  // Four processes take and drop the lock in a loop; a holder sometimes
  // rewrites the lock with a dead pid (so every contender judges it stale
  // by its content) and then leaves it behind. A shared counter in memory
  // checks that at most one process is inside at any time.
  TempDir d;
  auto* shared = static_cast<int*>(
      ::mmap(nullptr, 2 * sizeof(int), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  REQUIRE(shared != MAP_FAILED);
  auto* inside = reinterpret_cast<std::atomic<int>*>(&shared[0]);
  auto* violations = reinterpret_cast<std::atomic<int>*>(&shared[1]);
  new (inside) std::atomic<int>(0);
  new (violations) std::atomic<int>(0);
  std::vector<pid_t> kids;
  for (int k = 0; k < 4; ++k) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      int held = 0;
      // Until each child has held it 30 times. The bound is time, not a
      // count of attempts: under sanitizers on a loaded machine an attempt
      // can take far longer than the 100 us pause.
      auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(90);
      for (int i = 0; held < 30 && std::chrono::steady_clock::now() < give_up; ++i) {
        auto l = MailboxLock::acquire(d.path);
        if (!l) {
          ::usleep(100);
          continue;
        }
        ++held;
        if (inside->fetch_add(1) != 0) violations->fetch_add(1);
        if ((i + k) % 3 == 0) write_lock(d.path, me() + " 2147483646 0\n");
        ::usleep(50);
        inside->fetch_sub(1);
      }
      ::_exit(held == 30 ? 0 : 3);
    }
    kids.push_back(pid);
  }
  for (pid_t pid : kids) {
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  CHECK(violations->load() == 0);
  ::munmap(shared, 2 * sizeof(int));
}

namespace {

// Whether another process can take the lock now (it exits at once).
bool child_acquires(const fs::path& dir) {
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const bool got = MailboxLock::acquire(dir).has_value();  // and released
    ::_exit(got ? 0 : 1);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  return WEXITSTATUS(status) == 0;
}

}  // namespace

TEST_CASE("full disk: no room for the name, the lock holds with an empty file") {
  // Issue 13: the owner of a mailbox on a full file system could not log in
  // (the lock's content could not be written).
  test::SmallTmpfs tmp("size=64k");
  const fs::path acct = tmp.path() / "alice";
  fs::create_directories(acct / "cur");
  tmp.fill_blocks();
  auto a = MailboxLock::acquire(acct);
  REQUIRE(a);
  CHECK(a->held());
  CHECK(a->note().find("left empty") != std::string::npos);
  CHECK(fs::file_size(acct / lock_file_name) == 0);
  CHECK(a->refresh());  // needs no block either
  auto b = MailboxLock::acquire(acct);
  REQUIRE_FALSE(b);
  CHECK(b.error().code == Errc::busy);
  CHECK_FALSE(child_acquires(acct));
  // Its own empty file is removed at release, so the next login is not
  // kept out by an anonymous lock.
  a->release();
  CHECK_FALSE(fs::exists(acct / lock_file_name));
  CHECK(child_acquires(acct));
  // With room again the name is written.
  tmp.free_all();
  auto c = MailboxLock::acquire(acct);
  REQUIRE(c);
  CHECK(c->note().empty());
  CHECK(util::read_file(acct / lock_file_name).value().starts_with(me() + " "));
}

TEST_CASE("full disk: no inode for the lock file, cur/ alone locks on this host") {
  test::SmallTmpfs tmp("size=64k,nr_inodes=16");
  const fs::path acct = tmp.path() / "alice";
  fs::create_directories(acct / "cur");
  tmp.fill_blocks();
  tmp.fill_inodes();
  auto a = MailboxLock::acquire(acct);
  REQUIRE(a);
  CHECK(a->held());
  CHECK(a->path().empty());
  CHECK(a->note().find("no lock file") != std::string::npos);
  CHECK_FALSE(fs::exists(acct / lock_file_name));
  auto b = MailboxLock::acquire(acct);
  REQUIRE_FALSE(b);
  CHECK(b.error().code == Errc::busy);
  CHECK(b.error().message.find("another session on this host") != std::string::npos);
  CHECK_FALSE(child_acquires(acct));
  // Room again while it is held: another process still cannot get in
  // through a lock file it could now create.
  tmp.free_all();
  CHECK_FALSE(child_acquires(acct));
  a->release();
  CHECK(child_acquires(acct));
}

TEST_CASE("a holder that flocks only the lock file (an older wizmail) still excludes") {
  TempDir d;
  write_lock(d.path, me() + " 1 " + std::to_string(process_start_time(1)) + "\n");
  int fd = ::open((d.path / lock_file_name).c_str(), O_RDWR | O_CLOEXEC);
  REQUIRE(fd >= 0);
  REQUIRE(::flock(fd, LOCK_EX) == 0);
  write_lock(d.path, me() + " 2147483646 0\n");  // looks stale: only the flock keeps it
  auto r = MailboxLock::acquire(d.path);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == Errc::busy);
  ::close(fd);
  CHECK(MailboxLock::acquire(d.path));
}
