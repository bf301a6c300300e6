#include "pop3/mailbox_lock.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "util/fs.hpp"

namespace fs = std::filesystem;
using namespace wizmail;
using namespace wizmail::pop3;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    char t[] = "/tmp/wizmail-pop3-lock-XXXXXX";
    REQUIRE(::mkdtemp(t));
    path = t;
  }
  ~TempDir() { fs::remove_all(path); }
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
  int to_parent[2], to_child[2];
  REQUIRE(::pipe(to_parent) == 0);
  REQUIRE(::pipe(to_child) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    auto l = MailboxLock::acquire(d.path);
    char c = l ? 'y' : 'n';
    (void)!::write(to_parent[1], &c, 1);
    (void)!::read(to_child[0], &c, 1);  // wait for the parent's word
    ::_exit(0);                          // dies without releasing
  }
  char c = 0;
  REQUIRE(::read(to_parent[0], &c, 1) == 1);
  REQUIRE(c == 'y');
  auto busy = MailboxLock::acquire(d.path);
  REQUIRE_FALSE(busy);
  CHECK(busy.error().code == Errc::busy);
  CHECK(busy.error().message.find("pid " + std::to_string(pid)) != std::string::npos);
  (void)!::write(to_child[1], "x", 1);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(fs::exists(d.path / lock_file_name));  // left behind by _exit
  auto mine = MailboxLock::acquire(d.path);    // stale: the pid is gone
  CHECK(mine);
  for (int fd : {to_parent[0], to_parent[1], to_child[0], to_child[1]}) ::close(fd);
}

TEST_CASE("same host: a reused pid (other start time) is stale") {
  TempDir d;
  write_lock(d.path, me() + " " + std::to_string(::getpid()) + " 1\n");
  CHECK(MailboxLock::acquire(d.path));
  // while the right start time means it is ours and alive
  TempDir d2;
  write_lock(d2.path, me() + " " + std::to_string(::getpid()) + " " +
                          std::to_string(process_start_time(::getpid())) + "\n");
  auto r = MailboxLock::acquire(d2.path);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == Errc::busy);
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
