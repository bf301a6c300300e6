// Review fixes of Mailbox and AccountStore: the dustbox move across
// filesystems, list() from names, crash leftovers of account create/remove.
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "temp_dir.hpp"
#include "unix_time.hpp"
#include "util/fs.hpp"
#include "wizmail/account_store.hpp"
#include "wizmail/mailbox.hpp"
#include "store/maildir_delivery.hpp"

using namespace wizmail;
namespace fs = std::filesystem;
using test::count_files;
using test::TempDir;

namespace {

using test::ShmDir;

struct Box {
  TempDir tmp;
  fs::path mailbox = tmp.path() / "mailbox";
  AccountStore store{mailbox};
  Box() {
    fs::create_directory(mailbox);
    REQUIRE(store.create("a", "pw"));
  }
  fs::path a() const { return mailbox / "a"; }
  std::string put(std::string_view content) {
    const fs::path dirs[] = {a()};
    auto r = deliver(dirs, content);
    REQUIRE(r.at(0));
    return r[0]->filename().string();
  }
};

std::vector<std::string> hidden_entries(const fs::path& dir) {
  std::vector<std::string> out;
  for (auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().front() == '.') out.push_back(e.path().filename().string());
  return out;
}

void touch(const fs::path& p, std::string_view content = {}) {
  REQUIRE(util::write_file_atomic(p, content, 0600));
}

}  // namespace

TEST_CASE("dustbox on another filesystem: moved whole, never a partial file under the final name") {
  Box b;
  ShmDir shm;
  const fs::path dust_root = shm.path() / "dustbox";
  const fs::path dust = dust_root / "a";
  Mailbox mb(b.a());
  const std::string big(200000, 'm');

  SUBCASE("plain move") {
    const std::string u = b.put("hello\r\n");
    REQUIRE(mb.remove(u, dust_root));
    CHECK(util::read_file(dust / u).value() == "hello\r\n");
    CHECK_FALSE(mb.find(u));
    CHECK(hidden_entries(dust).empty());
    CHECK(mb.counters().value().deleted == 1);
  }
  SUBCASE("a partial copy left by an older version is replaced") {
    const std::string u = b.put(big);
    REQUIRE(util::make_dirs(dust, 0700));
    touch(dust / u, big.substr(0, 1000));
    REQUIRE(mb.remove(u, dust_root));
    CHECK(util::read_file(dust / u).value() == big);
    CHECK_FALSE(mb.find(u));
    CHECK(hidden_entries(dust).empty());
  }
  SUBCASE("a complete copy whose source survived (lost unlink) only drops the source") {
    const std::string u = b.put(big);
    REQUIRE(util::make_dirs(dust, 0700));
    touch(dust / u, big);
    REQUIRE(mb.remove(u, dust_root));
    CHECK(util::read_file(dust / u).value() == big);
    CHECK_FALSE(mb.find(u));
  }
  SUBCASE("a failed copy leaves nothing in the dustbox, the message in place, and a retry works") {
    const std::string u = b.put(big);
    const std::string keep = b.put("second\r\n");
    // The child may write files of at most 4 KiB: the copy fails with EFBIG
    // half-way (RLIMIT_FSIZE binds root too).
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::signal(SIGXFSZ, SIG_IGN);
      struct rlimit rl {4096, 4096};
      if (::setrlimit(RLIMIT_FSIZE, &rl) != 0) ::_exit(3);
      const std::string uids[] = {u, keep};
      auto st = Mailbox(b.a()).remove(std::span<const std::string>(uids), dust_root);
      ::_exit(st ? 1 : (st.error().message.find("File too large") != std::string::npos ? 0 : 2));
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK_FALSE(fs::exists(dust / u));
    CHECK(count_files(dust) == 0);  // no partial file, no hidden temporary
    CHECK(mb.read(u).value() == big);
    CHECK(mb.find(keep));  // stopped at the first failure
    // Every later QUIT works again.
    const std::string uids[] = {u, keep};
    REQUIRE(mb.remove(std::span<const std::string>(uids), dust_root));
    CHECK(util::read_file(dust / u).value() == big);
    CHECK(util::read_file(dust / keep).value() == "second\r\n");
    CHECK(mb.list().value().empty());
    CHECK(hidden_entries(dust).empty());
  }
}

TEST_CASE("list() takes size and time from our names, stats foreign ones") {
  Box b;
  const fs::path nd = b.a() / "new", cd = b.a() / "cur";
  // The content disagrees with S= on purpose: the size must come from the name.
  touch(nd / "1700000002.M1P1Q1.host,S=50", "abc");
  touch(cd / "1700000001.M1P1Q2.host,S=60,W=62:2,S", "abc");
  // Foreign names: no S=, or no leading seconds.
  touch(nd / "foreign", "12345");
  touch(cd / "x.M1P1.host,S=70:2,", "1234567");
  // A symbolic link with an S= name is stat()ed (and followed).
  touch(b.a() / "target", "0123456789");
  fs::create_symlink(b.a() / "target", nd / "1700000003.M1P1Q3.host,S=80");
  // Not messages: a folder, a dangling link, a hidden file.
  fs::create_directory(nd / "1700000004.M1P1Q4.host,S=90");
  fs::create_symlink(b.a() / "missing", nd / "1700000005.M1P1Q5.host,S=91");
  touch(nd / ".hidden,S=5", "x");
  auto set_mtime = [](const fs::path& p, time_t t) {
    struct timeval tv[2] = {{t, 0}, {t, 0}};
    REQUIRE(::utimes(p.c_str(), tv) == 0);
  };
  set_mtime(nd / "foreign", 1600000000);
  set_mtime(b.a() / "target", 1700000010);
  set_mtime(cd / "x.M1P1.host,S=70:2,", 1700000020);

  auto l = Mailbox(b.a()).list();
  REQUIRE(l);
  std::vector<std::string> uids;
  for (const auto& m : *l) uids.push_back(m.uid);
  CHECK(uids == std::vector<std::string>{"foreign", "1700000001.M1P1Q2.host,S=60,W=62",
                                         "1700000002.M1P1Q1.host,S=50",
                                         "1700000003.M1P1Q3.host,S=80", "x.M1P1.host,S=70"});
  auto by = [&](std::string_view uid) {
    return *std::find_if(l->begin(), l->end(), [&](const auto& m) { return m.uid == uid; });
  };
  CHECK(by("foreign").size == 5);
  CHECK(by("foreign").mtime == 1600000000);
  CHECK(by("1700000001.M1P1Q2.host,S=60,W=62").size == 60);
  CHECK(by("1700000001.M1P1Q2.host,S=60,W=62").mtime == 1700000001);
  CHECK_FALSE(by("1700000001.M1P1Q2.host,S=60,W=62").is_new);
  CHECK(by("1700000002.M1P1Q1.host,S=50").size == 50);
  CHECK(by("1700000002.M1P1Q1.host,S=50").mtime == 1700000002);
  CHECK(by("1700000002.M1P1Q1.host,S=50").is_new);
  CHECK(by("1700000003.M1P1Q3.host,S=80").size == 80);
  CHECK(by("1700000003.M1P1Q3.host,S=80").mtime == 1700000010);  // stat()ed
  CHECK(by("x.M1P1.host,S=70").size == 70);
  CHECK(by("x.M1P1.host,S=70").mtime == 1700000020);
}

TEST_CASE("list(): one second's messages in delivery order (numbers in names compare as numbers)") {
  Box b;
  const fs::path nd = b.a() / "new";
  const std::vector<std::string> names = {
      "1700000000.M99999P7Q9.h,S=1", "1700000000.M100005P7Q10.h,S=1",
      "1700000000.M100005P7Q11.h,S=1", "1700000000.M100005P10Q1.h,S=1",
      "1700000001.M5P7Q12.h,S=1"};
  for (auto it = names.rbegin(); it != names.rend(); ++it) touch(nd / *it, "x");
  auto l = Mailbox(b.a()).list();
  REQUIRE(l);
  std::vector<std::string> uids;
  for (const auto& m : *l) uids.push_back(m.uid);
  CHECK(uids == names);
}

TEST_CASE("a delivered message's list() time is its delivery second") {
  Box b;
  const auto before = test::unix_now();
  const std::string u = b.put("x\r\n");
  const auto after = test::unix_now();
  auto l = Mailbox(b.a()).list();
  REQUIRE(l);
  REQUIRE(l->size() == 1);
  CHECK(l->front().uid == u);
  CHECK(l->front().mtime >= before);
  CHECK(l->front().mtime <= after);
}

TEST_CASE("AccountStore::cleanup removes crash leftovers, never a live one") {
  Box b;
  const fs::path m = b.mailbox;
  // A pid that surely belongs to no process: a reaped child's.
  pid_t dead = ::fork();
  REQUIRE(dead >= 0);
  if (dead == 0) ::_exit(0);
  REQUIRE(::waitpid(dead, nullptr, 0) == dead);
  const auto now = static_cast<std::int64_t>(std::time(nullptr));
  const std::string d = std::to_string(dead), self = std::to_string(::getpid());
  auto leftover = [&](const std::string& nm) {
    fs::create_directories(m / nm / "new");
    touch(m / nm / "new" / "msg", "x");
    touch(m / nm / "password", "pw\n");
  };
  const std::string n = std::to_string(now);
  const std::string old = std::to_string(now - 7200);
  // Removed: a dead writer, or too old (even with a live writer).
  leftover(".creating-bob." + n + ".M1P" + d + "Q1");
  leftover(".deleted-carl.x." + n + ".M2P" + d + "Q7");  // a name with a dot
  leftover(".creating-dora." + old + ".M3P" + self + "Q2");
  leftover(".deleted-emil." + old + ".M4P" + self + "Q3");
  // Kept: a live writer, young (another process creating right now).
  leftover(".creating-fred." + n + ".M5P" + self + "Q4");
  leftover(".deleted-gina." + n + ".M6P" + self + "Q5");
  // Kept: other hidden things; an unparsable leftover name judged by mtime.
  leftover(".snapshot");
  leftover(".creating-odd");
  // Removed: an unparsable leftover name with an old mtime.
  leftover(".deleted-old");
  struct timeval tv[2] = {{now - 7200, 0}, {now - 7200, 0}};
  REQUIRE(::utimes((m / ".deleted-old").c_str(), tv) == 0);

  auto before = b.store.list();
  REQUIRE(before);
  CHECK(*before == std::vector<std::string>{"a"});  // never shows leftovers

  auto r = b.store.cleanup(std::chrono::hours(1));
  REQUIRE(r);
  CHECK(*r == 5);
  auto rest = hidden_entries(m);
  std::sort(rest.begin(), rest.end());
  CHECK(rest == std::vector<std::string>{".creating-fred." + n + ".M5P" + self + "Q4",
                                         ".creating-odd",
                                         ".deleted-gina." + n + ".M6P" + self + "Q5",
                                         ".snapshot"});
  CHECK(b.store.lookup("a").value() == AccountKind::mailbox);
  CHECK(Mailbox(b.a()).list());
  CHECK(b.store.list().value() == std::vector<std::string>{"a"});
  // Nothing left to do the second time.
  CHECK(b.store.cleanup(std::chrono::hours(1)).value() == 0);
  // A negative max_age takes every leftover, live or not.
  CHECK(b.store.cleanup(std::chrono::seconds(-1)).value() == 3);
  CHECK(hidden_entries(m) == std::vector<std::string>{".snapshot"});
}

TEST_CASE("AccountStore::cleanup: no mailbox folder is an error; a leftover link is only unlinked") {
  TempDir tmp;
  CHECK_FALSE(AccountStore(tmp.path() / "none").cleanup());
  const fs::path m = tmp.path() / "mailbox";
  fs::create_directory(m);
  fs::create_directory(tmp.path() / "outside");
  touch(tmp.path() / "outside" / "keep", "x");
  fs::create_directory_symlink(tmp.path() / "outside", m / ".deleted-zed.1.M1P1Q1");
  // pid 1 is alive, but the time (1970) is old.
  auto r = AccountStore(m).cleanup();
  REQUIRE(r);
  CHECK(*r == 1);
  CHECK_FALSE(fs::exists(fs::symlink_status(m / ".deleted-zed.1.M1P1Q1")));
  CHECK(fs::exists(tmp.path() / "outside" / "keep"));
}
