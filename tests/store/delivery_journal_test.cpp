#include "store/delivery_journal.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "small_fs.hpp"
#include "temp_dir.hpp"
#include "util/fs.hpp"
#include "wizmail/mailbox.hpp"
#include "store/maildir_delivery.hpp"

using namespace wizmail;
namespace fs = std::filesystem;
using test::count_files;
using test::TempDir;

namespace {

fs::path make_maildir(const fs::path& root, const std::string& name) {
  fs::path d = root / name;
  for (const char* sub : {"new", "cur", "tmp"}) fs::create_directories(d / sub);
  return d;
}

std::string body(int i, std::size_t size = 300) {
  std::string s = "Subject: message " + std::to_string(i) + "\r\n\r\n";
  while (s.size() + 2 < size) s += static_cast<char>('a' + (i + s.size()) % 26);
  return s + "\r\n";
}

std::string slurp(const fs::path& p) {
  auto r = util::read_file(p);
  REQUIRE(r);
  return *r;
}

// Stage `data` in maildirs[0]/tmp and add it to the batch.
std::size_t stage(DeliveryBatch& b, const std::vector<fs::path>& maildirs, const std::string& data,
                  bool shared = false) {
  auto m = StagedMessage::create(maildirs[0] / "tmp");
  REQUIRE(m);
  REQUIRE(m->write(data));
  REQUIRE(m->finish());
  return b.add(std::move(*m), maildirs, shared);
}

// The only file of a folder.
std::vector<fs::path> files_in(const fs::path& dir) {
  std::vector<fs::path> out;
  for (auto& e : fs::directory_iterator(dir)) out.push_back(e.path());
  return out;
}

// A journal the child never closes (leaked): its destructor would make a
// checkpoint, which a crash does not. Null when it cannot be opened.
DeliveryJournal* leaked_journal(const fs::path& file) {
  auto j = DeliveryJournal::open(file);
  return j ? j->release() : nullptr;
}

int run_child(auto&& fn) {
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int rc = 1;
    try {
      rc = fn();
    } catch (...) {
    }
    ::_exit(rc);  // no destructor runs: as if killed
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  return WEXITSTATUS(status);
}

}  // namespace

TEST_CASE("journal: a batch is recorded, published, checkpointed; a clean reopen replays nothing") {
  TempDir t;
  auto a = make_maildir(t.path(), "a"), b = make_maildir(t.path(), "b");
  const fs::path jf = t.path() / "var" / "journal";
  {
    auto j = DeliveryJournal::open(jf);
    REQUIRE(j);
    DeliveryBatch batch;
    batch.set_journal(j->get());
    std::vector<DurabilityEvent::Kind> kinds;
    batch.set_observer([&](const DurabilityEvent& e) {
      kinds.push_back(e.kind);
      return Status{};
    });
    auto i0 = stage(batch, {a, b}, body(0));
    auto i1 = stage(batch, {a}, body(1), /*shared=*/true);  // must be synced the classic way
    REQUIRE(batch.commit());
    CHECK(batch.results(i0).size() == 2);
    for (auto& r : batch.results(i0)) CHECK(r);
    for (auto& r : batch.results(i1)) CHECK(r);
    // The shared one alone was fsynced (and its folder); the journaled one only published.
    CHECK(std::count(kinds.begin(), kinds.end(), DurabilityEvent::Kind::file_fsync) == 1);
    CHECK(std::count(kinds.begin(), kinds.end(), DurabilityEvent::Kind::publish) == 3);
    CHECK(std::count(kinds.begin(), kinds.end(), DurabilityEvent::Kind::dir_fsync) == 1);
    CHECK(count_files(a / "new") == 2);
    CHECK(count_files(b / "new") == 1);
    CHECK(count_files(a / "tmp") == 0);
    CHECK((*j)->pending() == 1);
    REQUIRE((*j)->checkpoint());
    CHECK((*j)->pending() == 0);
  }
  DeliveryJournal::RecoveryReport rep;
  auto j = DeliveryJournal::open(jf, {}, &rep);
  REQUIRE(j);
  CHECK(rep.records == 0);
  CHECK(count_files(a / "new") == 2);
}

TEST_CASE("journal: a crash after the reply: missing, truncated, moved copies are completed") {
  TempDir t;
  auto a = make_maildir(t.path(), "a"), b = make_maildir(t.path(), "b");
  auto gone = make_maildir(t.path(), "gone");
  const fs::path jf = t.path() / "journal";
  // The child delivers four messages through the journal and "crashes"
  // before any checkpoint; then the names and data it left are damaged the
  // way a power loss could (or a POP3 login moved one to cur/).
  int rc = run_child([&] {
    auto j = DeliveryJournal::open(jf);
    if (!j) return 2;
    // Leaked: its destructor would make a checkpoint, which a crash does not.
    DeliveryJournal* jr = j->release();
    DeliveryBatch batch;
    batch.set_journal(jr);
    for (int i = 0; i < 4; ++i) stage(batch, {a, b}, body(i, 700));
    stage(batch, {gone}, body(9));
    if (!batch.commit()) return 3;
    if (jr->pending() != 5) return 4;
    return 0;
  });
  REQUIRE(rc == 0);
  REQUIRE(count_files(a / "new") == 4);
  fs::remove_all(gone);  // account removed before the restart
  std::vector<fs::path> in_a = files_in(a / "new");
  std::sort(in_a.begin(), in_a.end());
  std::map<std::string, std::string> want;  // name -> content
  for (auto& p : in_a) want[p.filename().string()] = slurp(p);
  fs::remove(in_a[0]);                                          // name lost
  fs::resize_file(in_a[1], 100);                                // data lost
  fs::rename(in_a[2], a / "cur" / (in_a[2].filename().string() + ":2,S"));  // POP3 login
  fs::remove(b / "new" / in_a[3].filename());                   // lost in b only

  DeliveryJournal::RecoveryReport rep;
  {
    auto j = DeliveryJournal::open(jf, {}, &rep);
    REQUIRE(j);
    CHECK((*j)->pending() == 0);
  }
  CHECK(rep.records == 5);
  CHECK(rep.restored == 2);
  CHECK(rep.repaired == 2);  // one inode, linked in a and b
  CHECK(rep.present == 4);   // a: moved + whole; b: two whole
  CHECK(rep.skipped == 1);
  CHECK(!fs::exists(gone));
  for (auto& [name, content] : want) {
    fs::path p = a / "new" / name;
    if (!fs::exists(p)) p = a / "cur" / (name + ":2,S");
    CHECK(slurp(p) == content);
    CHECK(slurp(b / "new" / name) == content);
  }
  CHECK(count_files(a / "new") + count_files(a / "cur") == 4);
  CHECK(count_files(a / "tmp") == 0);
  CHECK(count_files(b / "tmp") == 0);
  // Recovery advanced the checkpoint: a second start has nothing to do.
  DeliveryJournal::RecoveryReport again;
  REQUIRE(DeliveryJournal::open(jf, {}, &again));
  CHECK(again.records == 0);
}

TEST_CASE("journal: the ring wraps; records after a wrap are replayed; full means busy") {
  TempDir t;
  auto a = make_maildir(t.path(), "a");
  const fs::path jf = t.path() / "journal";
  DeliveryJournal::Options small;
  small.size = 1 << 20;  // the minimum: max_message() is about 127 KiB
  std::size_t sent = 0;
  int rc = run_child([&] {
    auto jo = DeliveryJournal::open(jf, small);
    if (!jo) return 2;
    DeliveryJournal* j = jo->release();  // leaked: no checkpoint at the end
    if (j->max_message() < 100000 || j->max_message() > 140000) return 3;
    // 100 KiB messages: ten fill the ring; checkpoint after each but the last
    // three, which then sit across the wrap.
    for (int i = 0; i < 25; ++i) {
      DeliveryBatch batch;
      batch.set_journal(j);
      stage(batch, {a}, body(i, 100000));
      auto before = files_in(a / "new");
      if (!batch.commit()) return 4;
      if (i < 22 && !j->checkpoint()) return 5;
      if (i >= 22) {
        // The names of the three after the last checkpoint, for the parent
        // (their modification times may be equal: the clock is coarse).
        std::ofstream out(t.path() / "uncheckpointed", std::ios::app);
        for (const auto& f : files_in(a / "new"))
          if (std::find(before.begin(), before.end(), f) == before.end()) out << f.string() << "\n";
      }
    }
    if (j->pending() != 3) return 6;
    // Without checkpoints the ring runs full: busy, nothing recorded.
    std::string big = body(99, 100000);
    auto m = StagedMessage::create(a / "tmp");
    if (!m || !m->write(big) || !m->finish()) return 7;
    std::string name = m->new_name();
    std::vector<fs::path> dirs{a};
    for (int k = 0; k < 20; ++k) {
      DeliveryJournal::Message msg{m->fd(), m->size(), name, dirs};
      auto tk = j->append(std::span(&msg, 1));
      if (!tk) return tk.error().code == Errc::busy && k >= 5 ? 0 : 8;
    }
    return 9;
  });
  REQUIRE(rc == 0);
  sent = count_files(a / "new");
  REQUIRE(sent == 25);
  // Damage the last three (their data never reached the disk).
  std::vector<fs::path> last;
  {
    std::ifstream in(t.path() / "uncheckpointed");
    for (std::string line; std::getline(in, line);) last.emplace_back(line);
  }
  REQUIRE(last.size() == 3);
  for (const auto& f : last) REQUIRE(fs::remove(f));
  DeliveryJournal::RecoveryReport rep;
  REQUIRE(DeliveryJournal::open(jf, small, &rep));
  CHECK(rep.records >= 3);  // the three, plus the unapplied appends of the busy loop
  CHECK(rep.restored >= 3);
  CHECK(count_files(a / "new") >= 25);
}

TEST_CASE("journal: unreadable headers: the file is kept aside and a new journal starts") {
  TempDir t;
  const fs::path jf = t.path() / "journal";
  REQUIRE(DeliveryJournal::open(jf));
  {
    std::fstream f(jf, std::ios::in | std::ios::out | std::ios::binary);
    std::string junk(1024, 'x');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  DeliveryJournal::RecoveryReport rep;
  auto j = DeliveryJournal::open(jf, {}, &rep);
  REQUIRE(j);
  CHECK(!rep.corrupt_kept.empty());
  CHECK(fs::exists(rep.corrupt_kept));
  CHECK(rep.records == 0);
}

TEST_CASE("journal: a torn record ends the replay") {
  TempDir t;
  auto a = make_maildir(t.path(), "a");
  const fs::path jf = t.path() / "journal";
  int rc = run_child([&] {
    auto jo = DeliveryJournal::open(jf);
    if (!jo) return 2;
    DeliveryJournal* j = jo->release();  // leaked: no checkpoint at the end
    for (int i = 0; i < 2; ++i) {
      DeliveryBatch batch;
      batch.set_journal(j);
      stage(batch, {a}, body(i, 1000));
      if (!batch.commit()) return 3;
    }
    return 0;
  });
  REQUIRE(rc == 0);
  for (auto& p : files_in(a / "new")) fs::remove(p);
  // The first record starts at 4096; flip an octet in its data: neither it
  // nor the one after it (found only through it) may be replayed.
  {
    int fd = ::open(jf.c_str(), O_RDWR);
    REQUIRE(fd >= 0);
    char c = 0;
    REQUIRE(::pread(fd, &c, 1, 4096 + 600) == 1);
    c = static_cast<char>(c ^ 0x55);
    REQUIRE(::pwrite(fd, &c, 1, 4096 + 600) == 1);
    ::close(fd);
  }
  DeliveryJournal::RecoveryReport rep;
  REQUIRE(DeliveryJournal::open(jf, {}, &rep));
  CHECK(rep.records == 0);
  CHECK(count_files(a / "new") == 0);
}

TEST_CASE("journal: settle() before a removal: a deleted fresh message is not brought back") {
  TempDir t;
  auto a = make_maildir(t.path(), "a");
  const fs::path jf = t.path() / "journal";
  // The child delivers three messages in two batches, then removes the
  // first of the first batch (as POP3 DELE+QUIT does) after settle(), and
  // "crashes" with the second batch still after the checkpoint.
  int rc = run_child([&] {
    DeliveryJournal* j = leaked_journal(jf);
    if (!j) return 2;
    std::vector<std::string> first;
    {
      DeliveryBatch batch;
      batch.set_journal(j);
      stage(batch, {a}, body(0));
      stage(batch, {a}, body(1));
      if (!batch.commit()) return 3;
      for (auto& p : files_in(a / "new")) first.push_back(p.filename().string());
    }
    DeliveryBatch later;
    later.set_journal(j);
    stage(later, {a}, body(2));
    if (!later.commit()) return 4;
    if (j->pending() != 3) return 5;
    // A name no record holds: nothing to do, nothing checkpointed.
    const std::string other = "1.M1P1Q1.elsewhere,S=1";
    if (!j->settle(std::span(&other, 1)) || j->pending() != 3) return 6;
    if (!j->settle(std::span(&first.front(), 1))) return 7;
    if (j->pending() != 0) return 8;  // through the record: the later batch came along
    fs::remove(a / "new" / first.front());
    return 0;
  });
  REQUIRE(rc == 0);
  REQUIRE(count_files(a / "new") == 2);
  DeliveryJournal::RecoveryReport rep;
  REQUIRE(DeliveryJournal::open(jf, {}, &rep));
  CHECK(rep.records == 0);
  CHECK(count_files(a / "new") == 2);  // the removed one stays removed
}

TEST_CASE("journal: a withdrawn entry (client told 4xx) is neither kept nor replayed") {
  TempDir t;
  auto a = make_maildir(t.path(), "a"), b = make_maildir(t.path(), "b");
  const fs::path jf = t.path() / "journal";
  // Message 0 goes to a and b; its link into b fails (as link(2) with EIO):
  // the caller refuses it and withdraws the copy a got. Message 1 is fine.
  int rc = run_child([&] {
    DeliveryJournal* j = leaked_journal(jf);
    if (!j) return 2;
    DeliveryBatch batch;
    batch.set_journal(j);
    batch.set_observer([&](const DurabilityEvent& e) -> Status {
      if (e.kind == DurabilityEvent::Kind::publish && e.path.parent_path() == b / "new")
        return fail(Errc::io, "link: Input/output error");
      return {};
    });
    auto i0 = stage(batch, {a, b}, body(0));
    auto i1 = stage(batch, {a}, body(1));
    (void)batch.commit();
    if (!batch.results(i0)[0] || batch.results(i0)[1]) return 3;
    if (!batch.results(i1)[0]) return 4;
    if (count_files(a / "new") != 2 || j->pending() != 2) return 5;
    const std::size_t refused[] = {i0};
    if (!batch.withdraw(refused)) return 6;
    if (batch.results(i0)[0] || !batch.results(i1)[0]) return 7;
    if (j->pending() != 0) return 8;  // checkpointed before the 4xx would leave
    batch.tidy();
    return 0;
  });
  REQUIRE(rc == 0);
  REQUIRE(count_files(a / "new") == 1);
  const auto kept = files_in(a / "new");
  DeliveryJournal::RecoveryReport rep;
  REQUIRE(DeliveryJournal::open(jf, {}, &rep));
  CHECK(rep.records == 0);
  CHECK(files_in(a / "new") == kept);  // message 1 only
  CHECK(count_files(b / "new") == 0);
}

TEST_CASE("delivery batch: withdrawing a classic entry removes its copies durably") {
  TempDir t;
  auto a = make_maildir(t.path(), "a"), b = make_maildir(t.path(), "b");
  DeliveryBatch batch;  // no journal
  batch.defer_tidy();
  std::vector<DurabilityEvent> events;
  batch.set_observer([&](const DurabilityEvent& e) {
    events.push_back(e);
    return Status{};
  });
  auto i0 = stage(batch, {a, b, a}, body(0));
  REQUIRE(batch.commit());
  REQUIRE(count_files(a / "new") == 1);
  REQUIRE(count_files(b / "new") == 1);
  events.clear();
  const std::size_t refused[] = {i0};
  REQUIRE(batch.withdraw(refused));
  CHECK(count_files(a / "new") == 0);
  CHECK(count_files(b / "new") == 0);
  for (auto& r : batch.results(i0)) CHECK(!r);
  // Both new/ folders synced after the unlinks, once each.
  std::vector<fs::path> synced;
  for (auto& e : events)
    if (e.kind == DurabilityEvent::Kind::dir_fsync) synced.push_back(e.path);
  std::sort(synced.begin(), synced.end());
  CHECK(synced == std::vector<fs::path>{a / "new", b / "new"});
  // A withdrawn copy is not counted as received.
  batch.tidy();
  auto counters = Mailbox(a).counters();
  CHECK((!counters || counters->received == 0));
}

TEST_CASE("journal: no room for a new one: no journal, nothing written, made once there is room") {
  // Issue 13: a home with less than 16 MiB free could not start.
  test::SmallTmpfs small("size=4m");
  const fs::path jf = small.path() / "var" / "journal" / "delivery";
  DeliveryJournal::RecoveryReport rep;
  auto j = DeliveryJournal::open(jf, {}, &rep);
  REQUIRE(j);
  CHECK(*j == nullptr);
  CHECK(rep.not_created.find("the journal needs") != std::string::npos);
  CHECK_FALSE(fs::exists(jf));
  CHECK_FALSE(fs::exists(jf.string() + ".new"));
  small.remount("size=40m");
  DeliveryJournal::RecoveryReport rep3;
  auto j3 = DeliveryJournal::open(jf, {}, &rep3);
  REQUIRE(j3);
  REQUIRE(*j3 != nullptr);
  CHECK(rep3.not_created.empty());
  CHECK(fs::file_size(jf) == 16ull << 20);
}
