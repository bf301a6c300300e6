#include "store/maildir_delivery.hpp"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "temp_dir.hpp"
#include "util/fs.hpp"
#include "wizmail/account_store.hpp"
#include "wizmail/mailbox.hpp"

using namespace wizmail;
namespace fs = std::filesystem;
using test::count_files;
using test::TempDir;

namespace {

struct Store {
  TempDir tmp;
  fs::path mailbox = tmp.path() / "mailbox";
  AccountStore store{mailbox};
  explicit Store(std::initializer_list<const char*> names) {
    fs::create_directory(mailbox);
    for (auto n : names) REQUIRE(store.create(n, "pw"));
  }
  fs::path dir(const char* n) const { return mailbox / n; }
};

struct stat stat_of(const fs::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st;
}

std::string message(std::size_t n, char fill = 'x') {
  std::string m = "Subject: test\r\n\r\n";
  while (m.size() + 2 < n) m += fill;
  m += "\r\n";
  return m;
}

}  // namespace

TEST_CASE("deliver shares one file by hard link between three mailboxes") {
  Store s{"a", "b", "c"};
  const fs::path dirs[] = {s.dir("a"), s.dir("b"), s.dir("c")};
  const std::string m = message(500);
  auto r = deliver(dirs, m);
  REQUIRE(r.size() == 3);
  for (auto& x : r) REQUIRE(x);
  const auto st0 = stat_of(*r[0]);
  for (std::size_t i = 0; i < 3; ++i) {
    CAPTURE(i);
    CHECK(r[i]->parent_path() == dirs[i] / "new");
    const auto st = stat_of(*r[i]);
    CHECK(st.st_ino == st0.st_ino);
    CHECK(st.st_nlink == 3);  // the tmp/ name is gone
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(util::read_file(*r[i]).value() == m);
    CHECK(count_files(dirs[i] / "tmp") == 0);
    CHECK(Mailbox(dirs[i]).counters().value().received == 1);
  }
  const std::string name = r[0]->filename().string();
  CHECK(name.ends_with("," "S=" + std::to_string(m.size())));
  CHECK(name.find(util::maildir_hostname()) != std::string::npos);
}

TEST_CASE("deliver: one recipient listed twice gets one copy; a missing one fails alone") {
  Store s{"a", "b"};
  const fs::path dirs[] = {s.dir("a"), s.mailbox / "ghost", s.dir("a"), s.dir("b")};
  auto r = deliver(dirs, "hi\r\n");
  REQUIRE(r.size() == 4);
  REQUIRE(r[0]);
  CHECK(!r[1]);
  REQUIRE(r[2]);
  CHECK(*r[2] == *r[0]);
  REQUIRE(r[3]);
  CHECK(count_files(s.dir("a") / "new") == 1);
  CHECK(Mailbox(s.dir("a")).counters().value().received == 1);
  CHECK(!fs::exists(s.mailbox / "ghost"));
}

TEST_CASE("deliver stages in the first recipient that can take it") {
  Store s{"b"};
  const fs::path dirs[] = {s.mailbox / "ghost", s.dir("b")};
  auto r = deliver(dirs, "hi\r\n");
  REQUIRE(r.size() == 2);
  CHECK(!r[0]);
  CHECK(r[1]);
  const fs::path none[] = {s.mailbox / "x", s.mailbox / "y"};
  auto f = deliver(none, "hi\r\n");
  REQUIRE(f.size() == 2);
  CHECK(!f[0]);
  CHECK(!f[1]);
  CHECK(deliver({}, "x").empty());
}

TEST_CASE("staged writes in any chunk size give the same file") {
  Store s{"a"};
  std::string big;
  for (int i = 0; big.size() < 300000; ++i) big += "line " + std::to_string(i) + "\r\n";
  for (std::size_t chunk : {1u, 7u, 4096u, 65535u, 65536u, 65537u, 200000u}) {
    CAPTURE(chunk);
    auto m = StagedMessage::create(s.dir("a") / "tmp");
    REQUIRE(m);
    bool all_ok = true;
    for (std::size_t off = 0; off < big.size(); off += chunk)
      all_ok = m->write(std::string_view(big).substr(off, chunk)).has_value() && all_ok;
    REQUIRE(all_ok);
    REQUIRE(m->finish());
    CHECK(m->size() == big.size());
    REQUIRE(m->sync());
    auto p = m->publish(s.dir("a"));
    REQUIRE(p);
    CHECK(util::read_file(*p).value() == big);
  }
  CHECK(count_files(s.dir("a") / "tmp") == 0);  // destructors dropped the tmp names
}

TEST_CASE("a staged message refuses misuse") {
  Store s{"a"};
  auto m = StagedMessage::create(s.dir("a") / "tmp");
  REQUIRE(m);
  auto early = m->publish(s.dir("a"));
  REQUIRE(!early);
  CHECK(count_files(s.dir("a") / "new") == 0);
  REQUIRE(m->write("abc"));
  REQUIRE(m->finish());
  REQUIRE(m->finish());
  CHECK(!m->write("more"));
  CHECK(m->size() == 3);
  m->discard();
  CHECK(count_files(s.dir("a") / "tmp") == 0);
  CHECK(!m->sync());
  CHECK(!m->finish());
  CHECK(!StagedMessage::create(s.mailbox / "ghost" / "tmp"));
}

TEST_CASE("phased group commit: many messages, one flush") {
  for (SyncMode mode : {SyncMode::fsync_each, SyncMode::syncfs}) {
    CAPTURE(static_cast<int>(mode));
    Store s{"a", "b", "c"};
    DeliveryBatch batch(mode);
    std::vector<std::string> bodies;
    for (int i = 0; i < 20; ++i) {
      auto m = StagedMessage::create(s.dir("a") / "tmp");
      REQUIRE(m);
      bodies.push_back(message(100 + static_cast<std::size_t>(i), static_cast<char>('a' + i)));
      REQUIRE(m->write(bodies.back()));
      REQUIRE(m->finish());
      std::vector<fs::path> rcpts{s.dir("a")};
      if (i % 2) rcpts.push_back(s.dir("b"));
      if (i % 3 == 0) rcpts.push_back(s.dir("c"));
      CHECK(batch.add(std::move(*m), rcpts) == static_cast<std::size_t>(i));
    }
    // One message that never finished staging: it fails alone.
    auto broken = StagedMessage::create(s.dir("a") / "tmp");
    REQUIRE(broken);
    REQUIRE(broken->write("half a mess"));
    const auto bi = batch.add(std::move(*broken), {s.dir("b")});
    // Nothing is visible before the commit.
    CHECK(count_files(s.dir("a") / "new") == 0);
    REQUIRE(batch.commit());
    CHECK(!batch.commit());
    for (std::size_t i = 0; i < 20; ++i) {
      for (auto& r : batch.results(i)) {
        REQUIRE(r);
        CHECK(util::read_file(*r).value() == bodies[i]);
      }
    }
    REQUIRE(batch.results(bi).size() == 1);
    CHECK(!batch.results(bi)[0]);
    CHECK(batch.results(999).empty());
    CHECK(count_files(s.dir("a") / "new") == 20);
    CHECK(count_files(s.dir("b") / "new") == 10);
    CHECK(count_files(s.dir("c") / "new") == 7);
    CHECK(count_files(s.dir("a") / "tmp") == 0);
    CHECK(Mailbox(s.dir("a")).counters().value().received == 20);
    CHECK(Mailbox(s.dir("b")).counters().value().received == 10);
  }
}

TEST_CASE("BatchSyncer syncs each folder once and reports bad ones") {
  Store s{"a"};
  BatchSyncer ok;
  ok.add_dir(s.dir("a") / "new");
  ok.add_dir(s.dir("a") / "new");
  ok.add_dir(s.dir("a") / "cur");
  CHECK(ok.dir_count() == 3);
  REQUIRE(ok.sync_dirs());
  CHECK(ok.dir_count() == 0);
  BatchSyncer bad;
  bad.add_dir(s.mailbox / "ghost");
  CHECK(!bad.sync_dirs());
  BatchSyncer badfd;
  badfd.add_file(-1);
  CHECK(!badfd.sync_files());
}

TEST_CASE("concurrent deliveries from threads lose and duplicate nothing") {
  Store s{"a", "b"};
  constexpr int kThreads = 8, kPerThread = 60;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const fs::path dirs[] = {t % 2 ? s.dir("a") : s.dir("b"), t % 2 ? s.dir("b") : s.dir("a")};
        auto r = deliver(dirs, "thread " + std::to_string(t) + " msg " + std::to_string(i) + "\r\n");
        for (auto& x : r)
          if (!x) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(failures == 0);
  std::set<std::string> expected;
  for (int t = 0; t < kThreads; ++t)
    for (int i = 0; i < kPerThread; ++i)
      expected.insert("thread " + std::to_string(t) + " msg " + std::to_string(i) + "\r\n");
  for (const char* n : {"a", "b"}) {
    CAPTURE(n);
    Mailbox box(s.dir(n));
    auto l = box.list();
    REQUIRE(l);
    CHECK(l->size() == expected.size());
    std::set<std::string> got, uids;
    for (auto& m : *l) {
      got.insert(box.read(m.uid).value());
      uids.insert(m.uid);
    }
    CHECK(got == expected);
    CHECK(uids.size() == expected.size());
    CHECK(count_files(s.dir(n) / "tmp") == 0);
    CHECK(box.counters().value().received == expected.size());
  }
}

TEST_CASE("simulated crash: a half-written message is never visible, and is cleaned at start") {
  Store s{"a"};
  // A child process stages part of a message and dies without any cleanup
  // (no destructors run), as a crash or kill -9 would.
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    auto m = StagedMessage::create(s.dir("a") / "tmp");
    if (!m) ::_exit(1);
    if (!m->write(std::string(100000, 'p'))) ::_exit(2);
    ::_exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);

  Mailbox box(s.dir("a"));
  CHECK(count_files(s.dir("a") / "tmp") == 1);
  CHECK(box.list().value().empty());
  CHECK(count_files(s.dir("a") / "new") == 0);
  CHECK(count_files(s.dir("a") / "cur") == 0);
  // A young file of a live writer would stay; this writer is dead.
  CHECK(box.cleanup_tmp(std::chrono::hours(36), false).value() == 0);
  CHECK(box.cleanup_tmp(std::chrono::hours(36), true).value() == 1);
  CHECK(count_files(s.dir("a") / "tmp") == 0);
  // The store works as before.
  const fs::path d[] = {s.dir("a")};
  REQUIRE(deliver(d, "after\r\n")[0]);
  CHECK(box.list().value().size() == 1);
}

TEST_CASE("one failing recipient does not fail the batch") {
  Store s{"a"};
  DeliveryBatch batch;
  auto m = StagedMessage::create(s.dir("a") / "tmp");
  REQUIRE(m);
  REQUIRE(m->write("x\r\n"));
  REQUIRE(m->finish());
  batch.add(std::move(*m), {s.dir("a"), s.mailbox / "ghost"});
  REQUIRE(batch.commit());  // the ghost fails alone
  CHECK(batch.results(0)[0]);
  CHECK(!batch.results(0)[1]);
}

TEST_CASE("delivery across filesystems copies instead of linking") {
  Store s{"a"};
  test::ShmDir shm;
  const fs::path other = shm.path() / "mailbox";
  fs::create_directory(other);
  AccountStore far(other);
  REQUIRE(far.create("z", "pw"));
  REQUIRE(stat_of(other).st_dev != stat_of(s.mailbox).st_dev);
  const fs::path dirs[] = {s.dir("a"), other / "z"};
  auto r = deliver(dirs, "far away\r\n");
  REQUIRE(r.size() == 2);
  REQUIRE(r[0]);
  REQUIRE(r[1]);
  CHECK(util::read_file(*r[1]).value() == "far away\r\n");
  CHECK(r[0]->filename() == r[1]->filename());
  CHECK(stat_of(*r[1]).st_nlink == 1);
  CHECK(count_files(other / "z" / "tmp") == 0);
  CHECK(count_files(s.dir("a") / "tmp") == 0);
}

TEST_CASE("defer_tidy: commit publishes, tidy() counts and removes the tmp/ names") {
  Store s{"a", "b"};
  DeliveryBatch batch;
  batch.defer_tidy();
  for (int i = 0; i < 3; ++i) {
    auto m = StagedMessage::create(s.dir("a") / "tmp");
    REQUIRE(m);
    REQUIRE(m->write(message(100)));
    REQUIRE(m->finish());
    batch.add(std::move(*m), {s.dir("a"), s.dir("b")});
  }
  REQUIRE(batch.commit());
  // Delivered (results final, files in new/), not yet tidied.
  for (std::size_t i = 0; i < 3; ++i)
    for (const auto& r : batch.results(i)) CHECK(r);
  CHECK(count_files(s.dir("a") / "new") == 3);
  CHECK(count_files(s.dir("b") / "new") == 3);
  CHECK(count_files(s.dir("a") / "tmp") == 3);
  CHECK(Mailbox(s.dir("a")).counters().value().received == 0);
  batch.tidy();
  batch.tidy();  // once only
  CHECK(count_files(s.dir("a") / "tmp") == 0);
  CHECK(count_files(s.dir("a") / "new") == 3);
  CHECK(Mailbox(s.dir("a")).counters().value().received == 3);
  CHECK(Mailbox(s.dir("b")).counters().value().received == 3);
}

// ---- Final delivery: Return-Path / Delivered-To (RFC 5321 §4.4)

namespace {

// The filter over `msg` cut into chunks of `n` octets.
std::string filtered(std::string_view msg, std::size_t n) {
  ReturnPathFilter f;
  std::string out;
  auto append = [&](std::string_view s) -> Status {
    out += s;
    return {};
  };
  for (std::size_t i = 0; i < msg.size(); i += n) REQUIRE(f.feed(msg.substr(i, n), append));
  REQUIRE(f.finish(append));
  return out;
}

}  // namespace

TEST_CASE("ReturnPathFilter drops every Return-Path of the header section, at any chunk size") {
  struct Case {
    std::string in, out;
  };
  const std::vector<Case> cases = {
      {"Received: from x\r\n\tby y\r\nReturn-Path: <forged@example.org>\r\nSubject: s\r\n\r\nbody\r\n",
       "Received: from x\r\n\tby y\r\nSubject: s\r\n\r\nbody\r\n"},
      // Case-insensitive, white space before the colon (obsolete syntax),
      // folded continuation lines go with the field, several fields.
      {"return-path:<a@b>\r\nRETURN-PATH \t: <c@d>\r\n  (folded)\r\n\tmore\r\nFrom: a@b\r\nReturn-Path: <>\r\n\r\nx\r\n",
       "From: a@b\r\n\r\nx\r\n"},
      // Look-alikes stay.
      {"Return-Paths: x\r\nReturn-Path-X: y\r\nReturn: z\r\nX-Return-Path: w\r\nReturn-Path\r\n\r\nb\r\n",
       "Return-Paths: x\r\nReturn-Path-X: y\r\nReturn: z\r\nX-Return-Path: w\r\nReturn-Path\r\n\r\nb\r\n"},
      // The body is never touched, not even a Return-Path line in it.
      {"Subject: s\r\n\r\nReturn-Path: <body@example.org>\r\n \r\n", "Subject: s\r\n\r\nReturn-Path: <body@example.org>\r\n \r\n"},
      // A continuation of a kept field after a dropped one is kept.
      {"Return-Path: <x>\r\nTo: a,\r\n b\r\n\r\n", "To: a,\r\n b\r\n\r\n"},
      // No body, and a header cut short without a line end.
      {"Subject: s\r\nReturn-Path: <x>\r\n", "Subject: s\r\n"},
      {"Subject: s\r\nReturn-Pa", "Subject: s\r\nReturn-Pa"},
      {"Subject: s\r\nReturn-Path: <x>", "Subject: s\r\n"},
      // Bare LF line ends (a program's message) work the same.
      {"Return-Path: <x>\nFrom: a\n\nReturn-Path: <y>\n", "From: a\n\nReturn-Path: <y>\n"},
      // A message starting with its body.
      {"\r\nReturn-Path: <x>\r\n", "\r\nReturn-Path: <x>\r\n"},
      {"", ""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.in);
    for (std::size_t n = 1; n <= 512; n = n < 16 ? n + 1 : n * 2) {
      CAPTURE(n);
      CHECK(filtered(c.in, n) == c.out);
    }
    CHECK(without_return_path(c.in) == c.out);
  }
  // A long field name that starts like Return-Path but is not one.
  const std::string spaced = "Return-Path" + std::string(80, ' ') + "x: y\r\n\r\n";
  CHECK(filtered(spaced, 7) == spaced);
}

TEST_CASE("ReturnPathFilter passes the body in the caller's spans and stops on an error") {
  ReturnPathFilter f;
  std::vector<std::string> pieces;
  auto keep = [&](std::string_view s) -> Status {
    pieces.emplace_back(s);
    return {};
  };
  REQUIRE(f.feed("Subject: s\r\n\r\n", keep));
  CHECK(f.in_body());
  pieces.clear();
  const std::string body(100000, 'x');
  REQUIRE(f.feed(body, keep));
  REQUIRE(pieces.size() == 1);
  CHECK(pieces[0].size() == body.size());
  ReturnPathFilter g;
  auto broken = [](std::string_view) -> Status { return fail(Errc::io, "disk full"); };
  CHECK(!g.feed("Subject: s\r\n\r\nbody\r\n", broken));
}

TEST_CASE("final_headers: Return-Path and Delivered-To, null sender, no control characters") {
  CHECK(final_headers("a@example.org", "Bob@example.test") ==
        "Return-Path: <a@example.org>\r\nDelivered-To: Bob@example.test\r\n");
  CHECK(final_headers("", "bob@example.test") == "Return-Path: <>\r\nDelivered-To: bob@example.test\r\n");
  CHECK(final_headers("a\r\nBcc: x@y", "b\n@c\x7f") == "Return-Path: <aBcc: x@y>\r\nDelivered-To: b@c\r\n");
}

TEST_CASE("create_copy writes the prefix and the source from an offset, through a fixed buffer") {
  Store s{"alice", "bob"};
  auto src = StagedMessage::create(s.dir("alice") / "tmp");
  REQUIRE(src);
  std::string big;
  for (int i = 0; i < 20000; ++i) big += "line " + std::to_string(i) + "\r\n";
  REQUIRE(src->write("HEAD\r\n" + big));
  REQUIRE(src->finish());
  auto copy = StagedMessage::create_copy(s.dir("bob") / "tmp", "X: y\r\n", *src, 6);
  REQUIRE(copy);
  CHECK(copy->finished());
  CHECK(copy->size() == 6 + big.size());
  CHECK(util::read_file(copy->tmp_path()).value() == "X: y\r\n" + big);
  auto unfinished = StagedMessage::create(s.dir("alice") / "tmp");
  REQUIRE(unfinished);
  CHECK(!StagedMessage::create_copy(s.dir("bob") / "tmp", "", *unfinished));
  auto r = deliver_final(s.dir("bob"), "", "bob@example.test", "Return-Path: <x@y>\r\nSubject: n\r\n\r\nb\r\n");
  REQUIRE(r);
  CHECK(util::read_file(*r).value() == "Return-Path: <>\r\nDelivered-To: bob@example.test\r\nSubject: n\r\n\r\nb\r\n");
}
