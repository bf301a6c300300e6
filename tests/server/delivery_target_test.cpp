// The commit pipeline's delivery contract on its own (server/delivery_target.hpp):
// commit_targets() over fake targets that record every phase, and the real
// Maildir and queue targets over a temporary home.
#include "server/delivery_target.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "temp_dir.hpp"
#include "store/maildir_delivery.hpp"
#include "wizmail/queue.hpp"

using namespace wizmail;
using server::commit_targets;
using server::DeliveryTarget;
namespace fs = std::filesystem;
using test::TempDir;

namespace {

// Everything that happened, in order, as "who:what".
using Log = std::vector<std::string>;

// A target that stages every message as one file of its own (a real file,
// so the syncer really syncs it) and one folder; publish fails for the
// messages in `fail_publish`.
class FakeTarget final : public DeliveryTarget {
 public:
  FakeTarget(std::string name, Log& log, const fs::path& root, std::size_t messages,
             std::set<std::size_t> fail_publish = {})
      : name_(std::move(name)), log_(log), dir_(root / name_), fail_(std::move(fail_publish)),
        published_(messages, false) {
    fs::create_directories(dir_);
    for (std::size_t m = 0; m < messages; ++m) {
      auto p = dir_ / std::string("m").append(std::to_string(m));
      int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      REQUIRE(fd >= 0);
      REQUIRE(::write(fd, "x", 1) == 1);
      files_.push_back({fd, p});
      log_.push_back(name_ + ":stage " + std::to_string(m));
    }
  }
  ~FakeTarget() override {
    for (auto& f : files_) ::close(f.first);
  }
  std::string_view name() const noexcept override { return name_; }
  void files_to_sync(BatchSyncer& sync, std::span<const Status> result) override {
    log_.push_back(name_ + ":files");
    for (std::size_t m = 0; m < files_.size(); ++m)
      if (result[m]) sync.add_file(files_[m].first, files_[m].second);
  }
  void publish(const Status& files, std::span<Status> result) override {
    for (std::size_t m = 0; m < files_.size(); ++m) {
      if (!result[m]) continue;
      if (!files) {
        result[m] = files;
        continue;
      }
      if (fail_.count(m)) {
        log_.push_back(name_ + ":publish failed " + std::to_string(m));
        result[m] = fail(Errc::io, name_ + ": cannot publish");
        continue;
      }
      log_.push_back(name_ + ":publish " + std::to_string(m));
      published_[m] = true;
    }
  }
  void dirs_to_sync(BatchSyncer& sync, std::vector<bool>& depends) override {
    log_.push_back(name_ + ":dirs");
    for (std::size_t m = 0; m < published_.size(); ++m)
      if (published_[m]) {
        sync.add_dir(missing_dir_ ? dir_ / "gone" : dir_);
        depends[m] = true;
      }
  }
  Status withdraw(std::span<const std::size_t> messages) override {
    std::string line = name_ + ":withdraw";
    for (auto m : messages) {
      line.append(" ").append(std::to_string(m));
      if (m < published_.size()) published_[m] = false;
    }
    log_.push_back(line);
    return {};
  }
  bool published(std::size_t m) const { return published_[m]; }
  void lose_dir() { missing_dir_ = true; }

 private:
  std::string name_;
  Log& log_;
  fs::path dir_;
  std::set<std::size_t> fail_;
  std::vector<std::pair<int, fs::path>> files_;
  std::vector<bool> published_;
  bool missing_dir_ = false;
};

// A syncer whose every step goes into the log too.
BatchSyncer logging_syncer(Log& log) {
  BatchSyncer s;
  s.set_observer([&log](const DurabilityEvent& ev) -> Status {
    switch (ev.kind) {
      case DurabilityEvent::Kind::file_fsync: log.push_back("sync:file " + ev.path.filename().string()); break;
      case DurabilityEvent::Kind::dir_fsync: log.push_back("sync:dir " + ev.path.filename().string()); break;
      default: log.push_back("sync:other"); break;
    }
    return {};
  });
  return s;
}

std::size_t first(const Log& log, std::string_view prefix) {
  for (std::size_t i = 0; i < log.size(); ++i)
    if (log[i].find(prefix) != std::string::npos) return i;
  return log.size();
}
std::size_t last(const Log& log, std::string_view prefix) {
  std::size_t at = log.size();
  for (std::size_t i = 0; i < log.size(); ++i)
    if (log[i].find(prefix) != std::string::npos) at = i;
  return at;
}
std::size_t count(const Log& log, std::string_view prefix) {
  return static_cast<std::size_t>(
      std::count_if(log.begin(), log.end(), [&](const std::string& l) { return l.find(prefix) != std::string::npos; }));
}

}  // namespace

TEST_CASE("every phase runs over every target in order, files synced before any publish") {
  TempDir tmp;
  Log log;
  constexpr std::size_t n = 4;
  FakeTarget a("a", log, tmp.path(), n), b("b", log, tmp.path(), n);
  std::vector<DeliveryTarget*> targets{&a, &b};
  std::vector<Status> result(n);
  auto sync = logging_syncer(log);
  auto problems = commit_targets(targets, sync, result);
  CHECK(problems.empty());
  for (const auto& r : result) CHECK(r);
  // Phases in order, each over a then b.
  CHECK(first(log, "a:files") < first(log, "b:files"));
  CHECK(last(log, "b:files") < first(log, "sync:file"));
  CHECK(count(log, "sync:file") == 2 * n);  // every file once, one round
  CHECK(last(log, "sync:file") < first(log, ":publish"));
  CHECK(last(log, "a:publish") < first(log, "b:publish"));
  CHECK(last(log, ":publish") < first(log, "a:dirs"));
  CHECK(first(log, "a:dirs") < first(log, "b:dirs"));
  CHECK(last(log, ":dirs") < first(log, "sync:dir"));
  CHECK(count(log, "sync:dir") == 2);  // one per distinct folder
  CHECK(count(log, ":withdraw") == 0);
  for (std::size_t m = 0; m < n; ++m) CHECK((a.published(m) && b.published(m)));
}

TEST_CASE("a target failing at publish fails that message only, and every target withdraws it") {
  TempDir tmp;
  Log log;
  constexpr std::size_t n = 3;
  FakeTarget a("a", log, tmp.path(), n), b("b", log, tmp.path(), n, {1});
  std::vector<DeliveryTarget*> targets{&a, &b};
  std::vector<Status> result(n);
  auto sync = logging_syncer(log);
  CHECK(commit_targets(targets, sync, result).empty());
  CHECK(result[0]);
  REQUIRE_FALSE(result[1]);
  CHECK(result[2]);
  // No SMTP code of its own: the session answers it 451 4.3.0.
  CHECK(result[1].error().smtp_code == 0);
  CHECK(result[1].error().temporary());
  // a published it before b failed; both are asked to take it back, after
  // the folder sync and only for message 1.
  CHECK(count(log, "a:publish 1") == 1);
  CHECK(count(log, "a:withdraw 1") == 1);
  CHECK(count(log, "b:withdraw 1") == 1);
  CHECK(count(log, ":withdraw") == 2);
  CHECK(last(log, "sync:dir") < first(log, ":withdraw"));
  CHECK_FALSE(a.published(1));
  CHECK((a.published(0) && b.published(0) && a.published(2) && b.published(2)));
}

TEST_CASE("a message failed before the phases is neither synced nor published, and is withdrawn") {
  TempDir tmp;
  Log log;
  FakeTarget a("a", log, tmp.path(), 2);
  std::vector<DeliveryTarget*> targets{&a};
  std::vector<Status> result(2);
  result[0] = fail(Errc::internal, "staging failed");
  auto sync = logging_syncer(log);
  commit_targets(targets, sync, result);
  CHECK_FALSE(result[0]);
  CHECK(result[1]);
  CHECK(count(log, "sync:file m0") == 0);
  CHECK(count(log, "sync:file m1") == 1);
  CHECK(count(log, "a:publish 0") == 0);
  CHECK(count(log, "a:withdraw 0") == 1);
}

TEST_CASE("a failed folder sync fails every message that depends on it") {
  TempDir tmp;
  Log log;
  FakeTarget a("a", log, tmp.path(), 2);
  a.lose_dir();
  std::vector<DeliveryTarget*> targets{&a};
  std::vector<Status> result(2);
  BatchSyncer sync;
  commit_targets(targets, sync, result);
  CHECK_FALSE(result[0]);
  CHECK_FALSE(result[1]);
  CHECK(count(log, "a:withdraw 0 1") == 1);
}

namespace {

fs::path make_maildir(const fs::path& root, const std::string& name) {
  fs::path d = root / name;
  for (const char* sub : {"new", "cur", "tmp"}) fs::create_directories(d / sub);
  return d;
}

StagedMessage staged(const fs::path& maildir, const std::string& data) {
  auto m = StagedMessage::create(maildir / "tmp");
  REQUIRE(m);
  REQUIRE(m->write(data));
  REQUIRE(m->finish());
  return std::move(*m);
}

std::size_t files_in(const fs::path& dir) {
  std::size_t n = 0;
  for ([[maybe_unused]] auto& e : fs::directory_iterator(dir)) ++n;
  return n;
}

}  // namespace

TEST_CASE("Maildir and queue targets: a queue entry that cannot be published takes its local copy back") {
  TempDir tmp;
  auto box = make_maildir(tmp.path(), "alice");
  RelayQueue queue(tmp.path() / "resendmail");
  REQUIRE(queue.init());
  constexpr std::size_t n = 3;
  server::MaildirTarget maildir(SyncMode::fsync_each, nullptr, n);
  server::QueueTarget relay("queue", queue, n);
  // Each message: one local copy (the staged file itself) and, for 1 and
  // 2, a queue entry linking a copy of the message as received.
  std::vector<StagedMessage> plain;
  QueueEnvelope env;
  env.sender = "s@example.org";
  env.recipients = {"r@example.net"};
  for (std::size_t m = 0; m < n; ++m) plain.push_back(staged(box, "Subject: " + std::to_string(m) + "\r\n\r\nbody\r\n"));
  for (std::size_t m = 1; m < n; ++m) REQUIRE(relay.stage(m, env, plain[m], true));
  for (std::size_t m = 0; m < n; ++m)
    maildir.stage(m, staged(box, "Delivered-To: a\r\nSubject: " + std::to_string(m) + "\r\n\r\nbody\r\n"), box, true);
  // Message 2's entry cannot be renamed into data/.
  REQUIRE(::unlink((queue.dir() / "tmp" / (relay.id(2) + ".data")).c_str()) == 0);

  std::vector<DeliveryTarget*> targets{&maildir, &relay};
  std::vector<Status> result(n);
  BatchSyncer sync;
  CHECK(commit_targets(targets, sync, result).empty());
  CHECK(result[0]);
  CHECK(result[1]);
  REQUIRE_FALSE(result[2]);
  CHECK(result[2].error().smtp_code == 0);  // 451
  CHECK(relay.published(1));
  CHECK_FALSE(relay.published(2));
  CHECK(maildir.copies(0) == 1);
  REQUIRE(maildir.first_copy(0));
  CHECK(fs::exists(*maildir.first_copy(0)));
  CHECK_FALSE(maildir.first_copy(2));  // withdrawn
  CHECK(files_in(box / "new") == 2);   // messages 0 and 1, not 2
  CHECK(files_in(queue.dir() / "incoming") == 1);
  auto ids = queue.list();
  REQUIRE(ids);
  CHECK(*ids == std::vector<std::string>{relay.id(1)});
  maildir.tidy();
  plain.clear();
  CHECK(files_in(box / "tmp") == 0);
  CHECK(files_in(queue.dir() / "tmp") == 0);
}
