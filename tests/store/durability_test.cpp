// Review fixes of the delivery path: syncfs per filesystem, the order of the
// durability steps, the ",W=" POP3 size, rename without replacing.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "mime/dot_stuffer.hpp"
#include "pop3/store_backend.hpp"
#include "store/store_util.hpp"
#include "temp_dir.hpp"
#include "util/fs.hpp"
#include "wizmail/account_store.hpp"
#include "wizmail/mailbox.hpp"
#include "store/maildir_delivery.hpp"

using namespace wizmail;
namespace fs = std::filesystem;
using test::count_files;
using test::TempDir;
using Kind = DurabilityEvent::Kind;

namespace {

std::uint64_t device_of(const fs::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return static_cast<std::uint64_t>(st.st_dev);
}

using test::ShmDir;

// Accounts "a" (test temp folder) and "b" (/dev/shm), on two filesystems.
struct TwoFs {
  TempDir tmp;
  ShmDir shm;
  fs::path local_box = tmp.path() / "mailbox";
  fs::path shm_box = shm.path() / "mailbox";
  TwoFs() {
    fs::create_directory(local_box);
    fs::create_directory(shm_box);
    REQUIRE(AccountStore(local_box).create("a", "pw"));
    REQUIRE(AccountStore(shm_box).create("b", "pw"));
    REQUIRE_MESSAGE(device_of(local_box) != device_of(shm_box),
                    "the temp folder must not be on /dev/shm's filesystem (set TMPDIR)");
  }
  fs::path a() const { return local_box / "a"; }
  fs::path b() const { return shm_box / "b"; }
};

StagedMessage stage(const fs::path& maildir, std::string_view data) {
  auto m = StagedMessage::create(maildir / "tmp");
  REQUIRE(m);
  REQUIRE(m->write(data));
  REQUIRE(m->finish());
  return std::move(*m);
}

struct Recorder {
  std::vector<DurabilityEvent> events;
  // Fail the first event of this kind (on this device, when not 0).
  std::optional<Kind> fail_kind;
  std::uint64_t fail_device = 0;
  DurabilityObserver observer() {
    return [this](const DurabilityEvent& ev) -> Status {
      events.push_back(ev);
      if (fail_kind && ev.kind == *fail_kind && (fail_device == 0 || ev.device == fail_device)) {
        fail_kind.reset();
        return fail(Errc::io, "injected failure");
      }
      return {};
    };
  }
  std::multiset<std::uint64_t> devices(Kind k) const {
    std::multiset<std::uint64_t> out;
    for (const auto& e : events)
      if (e.kind == k) out.insert(e.device);
    return out;
  }
  std::size_t count(Kind k) const {
    return static_cast<std::size_t>(
        std::count_if(events.begin(), events.end(), [&](const auto& e) { return e.kind == k; }));
  }
};

std::size_t messages_in(const fs::path& maildir) {
  return count_files(maildir / "new") + count_files(maildir / "cur");
}

int phase(Kind k) {
  switch (k) {
    case Kind::file_fsync:
    case Kind::data_syncfs: return 0;
    case Kind::publish: return 1;
    case Kind::dir_fsync:
    case Kind::dir_syncfs: return 2;
  }
  return -1;
}

}  // namespace

TEST_CASE("syncfs mode syncs every filesystem of a batch once (data and folders)") {
  TwoFs t;
  const std::uint64_t dev_local = device_of(t.local_box), dev_shm = device_of(t.shm_box);
  DeliveryBatch batch(SyncMode::syncfs);
  Recorder rec;
  batch.set_observer(rec.observer());
  // Staged on both filesystems; one message also crosses them (copy path).
  batch.add(stage(t.a(), "one\r\n"), {t.a()});
  batch.add(stage(t.b(), "two\r\n"), {t.b()});
  batch.add(stage(t.a(), "three\r\n"), {t.a(), t.b()});
  REQUIRE(batch.commit());
  for (std::size_t i = 0; i < batch.size(); ++i)
    for (const auto& r : batch.results(i)) CHECK(r);
  CHECK(rec.devices(Kind::data_syncfs) == std::multiset<std::uint64_t>{dev_local, dev_shm});
  CHECK(rec.devices(Kind::dir_syncfs) == std::multiset<std::uint64_t>{dev_local, dev_shm});
  CHECK(rec.count(Kind::file_fsync) == 0);
  CHECK(rec.count(Kind::dir_fsync) == 0);
  CHECK(messages_in(t.a()) == 2);
  CHECK(messages_in(t.b()) == 2);
  CHECK(count_files(t.a() / "tmp") == 0);
  CHECK(count_files(t.b() / "tmp") == 0);
}

TEST_CASE("syncfs mode: a batch on one filesystem is one syncfs per phase") {
  TwoFs t;
  DeliveryBatch batch(SyncMode::syncfs);
  Recorder rec;
  batch.set_observer(rec.observer());
  for (int i = 0; i < 5; ++i) batch.add(stage(t.a(), "x\r\n"), {t.a()});
  REQUIRE(batch.commit());
  CHECK(rec.devices(Kind::data_syncfs) == std::multiset<std::uint64_t>{device_of(t.local_box)});
  CHECK(rec.devices(Kind::dir_syncfs) == std::multiset<std::uint64_t>{device_of(t.local_box)});
}

TEST_CASE("syncfs mode follows a symlinked account folder to its filesystem") {
  TwoFs t;
  // Account "c" of the local mailbox folder lives on /dev/shm.
  REQUIRE(AccountStore(t.shm_box).create("c", "pw"));
  fs::create_directory_symlink(t.shm_box / "c", t.local_box / "c");
  DeliveryBatch batch(SyncMode::syncfs);
  Recorder rec;
  batch.set_observer(rec.observer());
  batch.add(stage(t.a(), "x\r\n"), {t.a(), t.local_box / "c"});
  REQUIRE(batch.commit());
  CHECK(batch.results(0)[1]);
  CHECK(rec.devices(Kind::data_syncfs) == std::multiset<std::uint64_t>{device_of(t.local_box)});
  CHECK(rec.devices(Kind::dir_syncfs) ==
        std::multiset<std::uint64_t>{device_of(t.local_box), device_of(t.shm_box)});
  CHECK(count_files(t.shm_box / "c" / "new") == 1);
}

TEST_CASE("a failed syncfs of the second filesystem fails the whole batch, nothing visible") {
  TwoFs t;
  const std::uint64_t dev_shm = device_of(t.shm_box);
  for (Kind k : {Kind::data_syncfs, Kind::dir_syncfs}) {
    CAPTURE(static_cast<int>(k));
    DeliveryBatch batch(SyncMode::syncfs);
    Recorder rec;
    rec.fail_kind = k;
    rec.fail_device = dev_shm;
    batch.set_observer(rec.observer());
    batch.add(stage(t.a(), "one\r\n"), {t.a()});
    batch.add(stage(t.b(), "two\r\n"), {t.b(), t.a()});
    auto st = batch.commit();
    REQUIRE_FALSE(st);
    CHECK(st.error().message.find("injected failure") != std::string::npos);
    CHECK_FALSE(rec.fail_kind);  // the shm device was reached
    for (std::size_t i = 0; i < batch.size(); ++i)
      for (const auto& r : batch.results(i)) CHECK_FALSE(r);
    CHECK(messages_in(t.a()) == 0);
    CHECK(messages_in(t.b()) == 0);
    CHECK(count_files(t.a() / "tmp") == 0);
    CHECK(count_files(t.b() / "tmp") == 0);
  }
}

TEST_CASE("BatchSyncer alone: syncfs per device for fds and folders, fsync_each per item") {
  TwoFs t;
  auto m1 = stage(t.a(), "x");
  auto m2 = stage(t.b(), "y");
  auto m3 = stage(t.a(), "z");
  {
    BatchSyncer s(SyncMode::syncfs);
    Recorder rec;
    s.set_observer(rec.observer());
    s.add_file(m1.fd());  // no name: still grouped by its device
    s.add_file(m2.fd(), m2.tmp_path());
    s.add_file(m3.fd(), m3.tmp_path());
    s.add_dir(t.a() / "new");
    s.add_dir(t.b() / "new");
    s.add_dir(t.a() / "cur");
    s.add_dir(t.a() / "new");
    REQUIRE(s.sync_files());
    REQUIRE(s.sync_dirs());
    CHECK(rec.devices(Kind::data_syncfs) ==
          std::multiset<std::uint64_t>{device_of(t.local_box), device_of(t.shm_box)});
    CHECK(rec.devices(Kind::dir_syncfs) ==
          std::multiset<std::uint64_t>{device_of(t.local_box), device_of(t.shm_box)});
    CHECK(rec.events.size() == 4);
    CHECK(s.dir_count() == 0);
  }
  {
    BatchSyncer s(SyncMode::fsync_each);
    Recorder rec;
    s.set_observer(rec.observer());
    s.add_file(m1.fd(), m1.tmp_path());
    s.add_file(m2.fd(), m2.tmp_path());
    s.add_dir(t.a() / "new");
    s.add_dir(t.a() / "new");
    s.add_dir(t.b() / "new");
    REQUIRE(s.sync_files());
    REQUIRE(s.sync_dirs());
    REQUIRE(rec.events.size() == 4);
    CHECK(rec.events[0].kind == Kind::file_fsync);
    CHECK(rec.events[0].path == m1.tmp_path());
    CHECK(rec.events[1].path == m2.tmp_path());
    CHECK(rec.count(Kind::dir_fsync) == 2);  // the duplicate once
  }
  {
    // A closed fd is an error, not a silent success.
    BatchSyncer s(SyncMode::syncfs);
    s.add_file(-1, "gone");
    auto st = s.sync_files();
    REQUIRE_FALSE(st);
    CHECK(st.error().message.find("gone") != std::string::npos);
  }
  {
    BatchSyncer s(SyncMode::syncfs);
    s.add_dir(t.a() / "no-such-folder");
    CHECK_FALSE(s.sync_dirs());
  }
}

TEST_CASE("durability order: data synced, then published, then folders synced (both modes)") {
  for (SyncMode mode : {SyncMode::fsync_each, SyncMode::syncfs}) {
    CAPTURE(mode == SyncMode::syncfs);
    TwoFs t;
    DeliveryBatch batch(mode);
    Recorder rec;
    batch.set_observer(rec.observer());
    auto m1 = stage(t.a(), "one\r\n");
    auto m2 = stage(t.a(), "two\r\n");
    const fs::path tmp1 = m1.tmp_path(), tmp2 = m2.tmp_path();
    // The observer also checks the files on disk at each step: nothing is in
    // new/ before the data phase ended.
    std::size_t visible_during_data = 0;
    batch.set_observer([&](const DurabilityEvent& ev) -> Status {
      if (phase(ev.kind) == 0) visible_during_data += messages_in(t.a()) + messages_in(t.b());
      return rec.observer()(ev);
    });
    batch.add(std::move(m1), {t.a(), t.b()});
    batch.add(std::move(m2), {t.a()});
    REQUIRE(batch.commit());
    CHECK(visible_during_data == 0);
    REQUIRE_FALSE(rec.events.empty());
    for (std::size_t i = 1; i < rec.events.size(); ++i)
      CHECK(phase(rec.events[i - 1].kind) <= phase(rec.events[i].kind));
    CHECK(rec.count(Kind::publish) == 3);
    std::set<fs::path> published;
    for (const auto& e : rec.events)
      if (e.kind == Kind::publish) published.insert(e.path);
    for (std::size_t i = 0; i < 2; ++i)
      for (const auto& r : batch.results(i)) CHECK(published.count(r.value()) == 1);
    if (mode == SyncMode::fsync_each) {
      CHECK(rec.count(Kind::file_fsync) == 2);
      std::set<fs::path> synced;
      for (const auto& e : rec.events)
        if (e.kind == Kind::file_fsync) synced.insert(e.path);
      CHECK(synced == std::set<fs::path>{tmp1, tmp2});
      std::set<fs::path> dirs;
      for (const auto& e : rec.events)
        if (e.kind == Kind::dir_fsync) dirs.insert(e.path);
      CHECK(dirs == std::set<fs::path>{t.a() / "new", t.b() / "new"});
      CHECK(rec.count(Kind::dir_fsync) == 2);
    } else {
      CHECK(rec.count(Kind::data_syncfs) == 1);
      CHECK(rec.count(Kind::dir_syncfs) == 2);
    }
    CHECK(rec.events.front().kind ==
          (mode == SyncMode::syncfs ? Kind::data_syncfs : Kind::file_fsync));
    CHECK(phase(rec.events.back().kind) == 2);
  }
}

TEST_CASE("a publish refused for one recipient leaves the others delivered") {
  TwoFs t;
  DeliveryBatch batch;
  Recorder rec;
  rec.fail_kind = Kind::publish;  // the first publish: recipient a
  batch.set_observer(rec.observer());
  batch.add(stage(t.a(), "x\r\n"), {t.a(), t.b()});
  REQUIRE(batch.commit());
  auto r = batch.results(0);
  REQUIRE(r.size() == 2);
  CHECK_FALSE(r[0]);
  CHECK(r[1]);
  CHECK(messages_in(t.a()) == 0);
  CHECK(messages_in(t.b()) == 1);
  // Only b/new was synced.
  std::set<fs::path> dirs;
  for (const auto& e : rec.events)
    if (e.kind == Kind::dir_fsync) dirs.insert(e.path);
  CHECK(dirs == std::set<fs::path>{t.b() / "new"});
}

TEST_CASE("W= carries the CRLF size when the content has bare LF line ends") {
  TempDir tmp;
  fs::path box = tmp.path() / "mailbox";
  fs::create_directory(box);
  REQUIRE(AccountStore(box).create("a", "pw"));
  const fs::path a = box / "a";
  const fs::path dirs[] = {a};
  struct Case {
    std::string content;
    std::uint64_t wire;
  };
  const Case cases[] = {
      {"Subject: x\r\n\r\nbody\r\n", 20},   // CRLF already: no W=
      {"Subject: x\n\nbody\n", 20},          // 3 bare LF
      {"a\nb\r\nc\n", 9},                    // mixed
      {"\n", 2},                             // a leading LF
      {"no line end", 11},
      {"bare CR\r stays\r\n", 16},           // a CR alone costs nothing
      {"", 0},
  };
  for (const auto& c : cases) {
    CAPTURE(c.content);
    REQUIRE(c.wire == mime::transmitted_size(c.content));
    auto r = deliver(dirs, c.content);
    REQUIRE(r.at(0));
    const std::string name = r[0]->filename().string();
    const std::string s_field = ",S=" + std::to_string(c.content.size());
    if (c.wire == c.content.size()) {
      CHECK(name.ends_with(s_field));
    } else {
      CHECK(name.ends_with(s_field + ",W=" + std::to_string(c.wire)));
    }
    // The uid is the whole base name; it stays a valid uid, Mailbox reads the
    // raw size from S=, POP3 the wire size from W=.
    CHECK(Mailbox::validate_uid(name));
    Mailbox mb(a);
    auto f = mb.find(name);
    REQUIRE(f);
    CHECK(f->size == c.content.size());
    CHECK(mb.read(name).value() == c.content);
    CHECK(pop3::pop3_size_from_name(name, 999999) ==
          (c.wire == c.content.size() ? 999999 : c.wire));
    auto l = mb.list();
    REQUIRE(l);
    auto it = std::find_if(l->begin(), l->end(), [&](const auto& m) { return m.uid == name; });
    REQUIRE(it != l->end());
    CHECK(it->size == c.content.size());
    // After the move to cur/ (":2," appended) the uid and sizes stay.
    REQUIRE(mb.move_to_cur(name));
    auto f2 = mb.find(name);
    REQUIRE(f2);
    CHECK(f2->path.filename().string() == name + ":2,");
    CHECK(f2->size == c.content.size());
    REQUIRE(mb.remove(name));
  }
}

TEST_CASE("wire size is counted across write() boundaries at every chunk size") {
  TempDir tmp;
  fs::create_directories(tmp.path() / "tmp");
  std::string content;
  for (int i = 0; i < 300; ++i)
    content += (i % 3 == 0) ? "line\r\n" : (i % 3 == 1) ? "bare\n" : "cr\r.";
  content += std::string(70000, 'x') + "\n\r\n";  // a piece larger than the buffer
  const std::uint64_t expect = mime::transmitted_size(content);
  REQUIRE(expect > content.size());
  for (std::size_t chunk : {1u, 2u, 4u, 8u, 16u, 32u, 64u, 128u, 256u, 512u, 100000u}) {
    CAPTURE(chunk);
    auto m = StagedMessage::create(tmp.path() / "tmp");
    REQUIRE(m);
    for (std::size_t off = 0; off < content.size(); off += chunk)
      REQUIRE(m->write(std::string_view(content).substr(off, chunk)));
    REQUIRE(m->finish());
    CHECK(m->size() == content.size());
    CHECK(m->wire_size() == expect);
    CHECK(m->new_name().ends_with(",S=" + std::to_string(content.size()) +
                                  ",W=" + std::to_string(expect)));
  }
  // A CR LF split exactly between two writes is not a bare LF.
  auto m = StagedMessage::create(tmp.path() / "tmp");
  REQUIRE(m);
  REQUIRE(m->write("a\r"));
  REQUIRE(m->write("\nb\r"));
  REQUIRE(m->write("\n"));
  REQUIRE(m->finish());
  CHECK(m->wire_size() == m->size());
  CHECK(m->new_name().find(",W=") == std::string::npos);
}

TEST_CASE("rename_noreplace and its fallback never replace, for files and folders") {
  TempDir tmp;
  const fs::path d = tmp.path();
  using Fn = int (*)(const fs::path&, const fs::path&) noexcept;
  for (Fn fn : {static_cast<Fn>(&store::rename_noreplace),
                static_cast<Fn>(&store::rename_noreplace_fallback)}) {
    fs::remove_all(d / "x");
    fs::create_directory(d / "x");
    const fs::path x = d / "x";
    REQUIRE(util::write_file_atomic(x / "f", "new"));
    REQUIRE(util::write_file_atomic(x / "taken", "old"));
    // A file onto a free name: moved.
    CHECK(fn(x / "f", x / "g") == 0);
    CHECK_FALSE(fs::exists(x / "f"));
    CHECK(util::read_file(x / "g").value() == "new");
    // Onto an existing name: EEXIST, both untouched.
    CHECK(fn(x / "g", x / "taken") == EEXIST);
    CHECK(util::read_file(x / "g").value() == "new");
    CHECK(util::read_file(x / "taken").value() == "old");
    // A missing source.
    CHECK(fn(x / "none", x / "free") == ENOENT);
    CHECK_FALSE(fs::exists(x / "free"));
    // Folders: moved onto a free name; refused onto an existing (empty or not) one.
    fs::create_directory(x / "d1");
    REQUIRE(util::write_file_atomic(x / "d1" / "in", "1"));
    fs::create_directory(x / "empty");
    CHECK(fn(x / "d1", x / "d2") == 0);
    CHECK(util::read_file(x / "d2" / "in").value() == "1");
    CHECK(fn(x / "d2", x / "empty") == EEXIST);
    CHECK(fs::exists(x / "d2" / "in"));
    CHECK(fs::is_empty(x / "empty"));
  }
}
