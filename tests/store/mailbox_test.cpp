#include "wizmail/mailbox.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <string>

#include "temp_dir.hpp"
#include "util/fs.hpp"
#include "wizmail/account_store.hpp"
#include "store/maildir_delivery.hpp"

using namespace wizmail;
namespace fs = std::filesystem;
using test::TempDir;

namespace {

struct Box {
  TempDir tmp;
  fs::path mailbox = tmp.path() / "mailbox";
  fs::path dustbox = tmp.path() / "dustbox";
  AccountStore store{mailbox};
  fs::path dir;
  Mailbox box{fs::path()};
  Box() {
    fs::create_directory(mailbox);
    REQUIRE(store.create("alice", "pw"));
    dir = mailbox / "alice";
    box = Mailbox(dir);
  }
  // Deliver and return the uid.
  std::string put(const std::string& data) {
    const fs::path d[] = {dir};
    auto r = deliver(d, data);
    REQUIRE(r.size() == 1);
    REQUIRE(r[0]);
    return r[0]->filename().string();
  }
};

void spit(const fs::path& p, const std::string& s) {
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f << s;
}

void set_mtime(const fs::path& p, std::int64_t t) {
  struct timespec ts[2] = {{static_cast<time_t>(t), 0}, {static_cast<time_t>(t), 0}};
  REQUIRE(::utimensat(AT_FDCWD, p.c_str(), ts, 0) == 0);
}

// The pid of a process that existed and is gone now.
pid_t dead_pid() {
  pid_t p = ::fork();
  REQUIRE(p >= 0);
  if (p == 0) ::_exit(0);
  int status = 0;
  ::waitpid(p, &status, 0);
  return p;
}

}  // namespace

TEST_CASE("validate_uid") {
  CHECK(Mailbox::validate_uid("1700000000.M1P2Q3.host,S=10"));
  for (std::string u : std::vector<std::string>{std::string(), std::string("../x"), std::string("a/b"),
                        std::string(".x"), std::string("a:2,S"), std::string("a\0b", 3),
                        std::string(256, 'u'), std::string("a\nb")}) {
    CAPTURE(u);
    CHECK(Mailbox::validate_uid(u).error().code == Errc::invalid_argument);
  }
}

TEST_CASE("list, find, read, open") {
  Box b;
  CHECK(b.box.list().value().empty());
  const std::string m1 = "Subject: one\r\n\r\nbody one\r\n";
  const std::string m2 = "Subject: two\r\n\r\nbody two, longer\r\n";
  auto u1 = b.put(m1);
  auto u2 = b.put(m2);
  // list() takes the time from our names, not from the file: a changed
  // mtime changes nothing.
  set_mtime(b.dir / "new" / u1, 2000);
  set_mtime(b.dir / "new" / u2, 1000);

  auto l = b.box.list();
  REQUIRE(l);
  REQUIRE(l->size() == 2);
  CHECK((*l)[0].uid == u1);
  CHECK((*l)[0].size == m1.size());
  CHECK((*l)[0].is_new);
  CHECK((*l)[0].mtime == std::stoll(u1.substr(0, u1.find('.'))));
  CHECK((*l)[0].path == b.dir / "new" / u1);
  CHECK((*l)[1].uid == u2);
  CHECK(u1.find(",S=" + std::to_string(m1.size())) != std::string::npos);

  CHECK(b.box.read(u1).value() == m1);
  auto f = b.box.open(u2);
  REQUIRE(f);
  CHECK(f->size() == m2.size());
  std::string got;
  char buf[5];
  while (true) {
    auto n = f->read(buf);
    REQUIRE(n);
    if (*n == 0) break;
    got.append(buf, *n);
  }
  CHECK(got == m2);

  CHECK(b.box.find("nope").error().code == Errc::not_found);
  CHECK(b.box.read("../../password").error().code == Errc::invalid_argument);
  CHECK(b.box.open("").error().code == Errc::invalid_argument);
}

TEST_CASE("move to cur keeps the uid; flags set by others are found") {
  Box b;
  auto u1 = b.put("a\r\n");
  auto u2 = b.put("b\r\n");
  auto u3 = b.put("c\r\n");
  REQUIRE(b.box.move_to_cur(u1));
  CHECK(fs::exists(b.dir / "cur" / (u1 + ":2,")));
  CHECK(b.box.move_to_cur(u1));  // already there: fine
  auto m = b.box.find(u1);
  REQUIRE(m);
  CHECK(!m->is_new);
  CHECK(m->uid == u1);

  CHECK(b.box.move_all_to_cur().value() == 2);
  CHECK(b.box.move_all_to_cur().value() == 0);
  auto all = b.box.list().value();
  for (auto& msg : all) CHECK(!msg.is_new);

  // An IMAP server marked u2 seen.
  fs::rename(b.dir / "cur" / (u2 + ":2,"), b.dir / "cur" / (u2 + ":2,S"));
  CHECK(b.box.read(u2).value() == "b\r\n");
  auto l = b.box.list().value();
  CHECK(std::count_if(l.begin(), l.end(), [&](auto& x) { return x.uid == u2; }) == 1);

  CHECK(b.box.move_to_cur("ghost").error().code == Errc::not_found);
  CHECK(b.box.move_to_cur("a/b").error().code == Errc::invalid_argument);
  (void)u3;
}

TEST_CASE("a message without S= is sized by stat; hidden and odd entries are skipped") {
  Box b;
  spit(b.dir / "new" / "foreign.msg", "12345");
  spit(b.dir / "new" / ".hidden", "x");
  fs::create_directory(b.dir / "cur" / "subdir");
  auto l = b.box.list().value();
  REQUIRE(l.size() == 1);
  CHECK(l[0].uid == "foreign.msg");
  CHECK(l[0].size == 5);
  auto t = b.box.totals().value();
  CHECK(t.messages == 1);
  CHECK(t.bytes == 5);
}

TEST_CASE("list_entries: the listing of list(), compact, flags and foreign names included") {
  Box b;
  auto u1 = b.put("a\r\n");
  auto u2 = b.put("bb\r\n");
  auto u3 = b.put("ccc\r\n");
  REQUIRE(b.box.move_to_cur(u2));
  fs::rename(b.dir / "cur" / (u2 + ":2,"), b.dir / "cur" / (u2 + ":2,S"));  // an IMAP flag
  spit(b.dir / "cur" / "foreign.msg:2,", "12345");
  set_mtime(b.dir / "cur" / "foreign.msg:2,", 1);  // oldest
  auto full = b.box.list().value();
  auto compact = b.box.list_entries().value();
  REQUIRE(compact.size() == 4);
  REQUIRE(full.size() == compact.size());
  for (std::size_t i = 0; i < full.size(); ++i) {
    CAPTURE(i);
    CHECK(compact[i].uid() == full[i].uid);
    CHECK(compact[i].size == full[i].size);
    CHECK(compact[i].mtime == full[i].mtime);
    CHECK(compact[i].is_new == full[i].is_new);
    CHECK(b.box.path_of(compact[i]) == full[i].path);
    CHECK(fs::exists(b.box.path_of(compact[i])));
  }
  CHECK(compact[0].uid() == "foreign.msg");
  CHECK(compact[0].name == "foreign.msg:2,");
  CHECK(compact[0].size == 5);
  auto flagged = std::find_if(compact.begin(), compact.end(), [&](auto& e) { return e.uid() == u2; });
  REQUIRE(flagged != compact.end());
  CHECK(flagged->name == u2 + ":2,S");
  CHECK(!flagged->is_new);
  (void)u1;
  (void)u3;
}

TEST_CASE("remove: unlink or dustbox, counted, batched") {
  Box b;
  auto u1 = b.put("one\r\n");
  auto u2 = b.put("two\r\n");
  auto u3 = b.put("three\r\n");
  REQUIRE(b.box.move_to_cur(u2));

  REQUIRE(b.box.remove(u1));
  CHECK(b.box.find(u1).error().code == Errc::not_found);
  CHECK(b.box.counters().value().deleted == 1);

  const std::string two[] = {u2, u3};
  REQUIRE(b.box.remove(two, b.dustbox));
  CHECK(b.box.list().value().empty());
  CHECK(fs::exists(b.dustbox / "alice" / (u2 + ":2,")));
  CHECK(fs::exists(b.dustbox / "alice" / u3));
  CHECK(b.box.counters().value().deleted == 3);

  CHECK(b.box.remove("ghost").error().code == Errc::not_found);
  CHECK(b.box.remove("../x").error().code == Errc::invalid_argument);
  CHECK(b.box.counters().value().deleted == 3);

  // A batch stops at the first missing uid; what went before is removed and counted.
  auto u4 = b.put("four\r\n");
  const std::string mixed[] = {u4, "ghost"};
  CHECK(b.box.remove(mixed).error().code == Errc::not_found);
  CHECK(b.box.find(u4).error().code == Errc::not_found);
  CHECK(b.box.counters().value().deleted == 4);
  // A bad uid anywhere in the batch: nothing is removed.
  auto u5 = b.put("five\r\n");
  const std::string bad[] = {u5, "../x"};
  CHECK(b.box.remove(bad).error().code == Errc::invalid_argument);
  CHECK(b.box.find(u5));
}

TEST_CASE("dustbox on another filesystem") {
  Box b;
  if (!fs::is_directory("/dev/shm")) return;
  struct stat a {}, c {};
  REQUIRE(::stat(b.dir.c_str(), &a) == 0);
  REQUIRE(::stat("/dev/shm", &c) == 0);
  REQUIRE(a.st_dev != c.st_dev);  // the test machine has tmpfs on /dev/shm
  test::ShmDir dust("wizmail-dust");
  auto u = b.put("moved across\r\n");
  REQUIRE(b.box.remove(u, dust.path()));
  CHECK(util::read_file(dust.path() / "alice" / u).value() == "moved across\r\n");
  CHECK(b.box.list().value().empty());
}

TEST_CASE("cleanup_tmp: old files, and files of dead writers of this host") {
  Box b;
  const fs::path tmp = b.dir / "tmp";
  const std::string host = util::maildir_hostname();
  const auto now = static_cast<std::int64_t>(::time(nullptr));
  const pid_t dead = dead_pid();
  const std::string old_file = "1.M1P1Q1.otherhost";
  const std::string dead_file = "2.M2P" + std::to_string(dead) + "Q1." + host;
  const std::string dead_copy = "2.M2P" + std::to_string(dead) + "Q2." + host + ",S=10";
  const std::string live_file = "3.M3P" + std::to_string(::getppid()) + "Q1." + host;
  const std::string own_file = "4.M4P" + std::to_string(::getpid()) + "Q1." + host;
  const std::string other_host = "5.M5P" + std::to_string(dead) + "Q1.elsewhere";
  const std::string foreign = "not-a-maildir-name";
  for (auto& n : {old_file, dead_file, dead_copy, live_file, own_file, other_host, foreign})
    spit(tmp / n, "partial");
  set_mtime(tmp / old_file, now - 37 * 3600);

  CHECK(b.box.cleanup_tmp().value() == 1);
  CHECK(!fs::exists(tmp / old_file));
  CHECK(fs::exists(tmp / dead_file));

  CHECK(b.box.cleanup_tmp(std::chrono::hours(36), true).value() == 2);
  CHECK(!fs::exists(tmp / dead_file));
  CHECK(!fs::exists(tmp / dead_copy));
  for (auto& n : {live_file, own_file, other_host, foreign}) {
    CAPTURE(n);
    CHECK(fs::exists(tmp / n));
  }
  CHECK(b.box.cleanup_tmp(std::chrono::seconds(-1)).value() == 4);
  CHECK(test::count_files(tmp) == 0);

  Mailbox missing(b.mailbox / "ghost");
  CHECK(!missing.cleanup_tmp());
}

TEST_CASE("quota: count and bytes including the incoming message") {
  Box b;
  b.put(std::string(100, 'x'));
  b.put(std::string(50, 'y'));
  CHECK(b.box.check_quota(-1, -1, 1000000));
  CHECK(b.box.check_quota(3, -1, 10));
  CHECK(b.box.check_quota(-1, 200, 50));

  auto by_count = b.box.check_quota(2, -1, 1);
  REQUIRE(!by_count);
  CHECK(by_count.error().smtp_code == 452);
  CHECK(by_count.error().enhanced == "4.2.2");
  CHECK(by_count.error().temporary());

  auto by_size = b.box.check_quota(-1, 200, 51);
  REQUIRE(!by_size);
  CHECK(by_size.error().smtp_code == 452);
  CHECK(by_size.error().enhanced == "4.2.2");
  CHECK(by_size.error().message.find("alice") != std::string::npos);

  CHECK(b.box.check_quota(0, -1, 0).error().smtp_code == 452);
  Mailbox missing(b.mailbox / "ghost");
  CHECK(!missing.check_quota(5, 5, 1));
  CHECK(missing.check_quota(-1, -1, 1));
}

TEST_CASE("counters survive a new Mailbox object and repair a bad file") {
  Box b;
  CHECK(b.box.counters().value().received == 0);
  b.put("m\r\n");
  b.put("n\r\n");
  REQUIRE(b.box.add_counters({0, 5, 0}));
  Mailbox again(b.dir);
  auto c = again.counters().value();
  CHECK(c.received == 2);
  CHECK(c.sent == 5);
  CHECK(c.deleted == 0);

  auto s = again.stats().value();
  CHECK(s.messages == 2);
  CHECK(s.new_count == 2);
  CHECK(s.cur_count == 0);
  CHECK(s.bytes == 6);
  CHECK(s.counters.sent == 5);

  spit(b.dir / "counters", "received=oops\nsent=7\ngarbage line that is long enough to matter\n"
                            "more garbage more garbage more garbage more garbage\n");
  CHECK(again.counters().value().sent == 7);
  CHECK(again.counters().value().received == 0);
  REQUIRE(add_mailbox_counters(b.dir, {1, 0, 0}));
  CHECK(util::read_file(b.dir / "counters").value() ==
        "received=00000000000000000001\nsent=00000000000000000007\n"
        "deleted=00000000000000000000\n");
  CHECK(add_mailbox_counters(b.mailbox / "ghost", {1, 0, 0}).error().code == Errc::not_found);
  CHECK(Mailbox(b.mailbox / "ghost").counters().value().received == 0);
  CHECK(!Mailbox(b.mailbox / "ghost").stats());
}

TEST_CASE("a Mailbox over a missing folder reports errors") {
  TempDir t;
  Mailbox m(t.path() / "nope");
  CHECK(!m.list());
  CHECK(!m.totals());
  CHECK(!m.move_all_to_cur());
  CHECK(m.find("x").error().code == Errc::not_found);
  CHECK(m.account() == "nope");
}
