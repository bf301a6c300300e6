#include "wizmail/admin/maintenance.hpp"

#include <doctest/doctest.h>

#include <algorithm>

#include "helpers.hpp"
#include "wizmail/queue.hpp"

using namespace wizmail;
using wizmail::test::TempHome;
namespace fs = std::filesystem;
constexpr std::int64_t day = 86400;

namespace {

bool listed(const MaintenanceReport& r, const fs::path& p) {
  return std::any_of(r.items.begin(), r.items.end(), [&](const MaintenanceItem& i) { return i.path == p; });
}

bool warned(const MaintenanceReport& r, std::string_view text) {
  return std::any_of(r.warnings.begin(), r.warnings.end(),
                     [&](const std::string& w) { return w.find(text) != std::string::npos; });
}

// Age a queue entry by rewriting its `created` record.
void age_entry(const RelayQueue& q, const std::string& id, std::int64_t created) {
  auto e = q.load(id);
  REQUIRE(e);
  e->created = created;
  REQUIRE(q.save(*e));
}

}  // namespace

TEST_CASE("maintenance: dustbox by the later of mtime and ctime, links never followed") {
  TempHome h;
  TempHome outside;
  auto cfg = h.config("", "dustbox_keep_days=7\n");
  REQUIRE(cfg);
  const auto d = h.path() / "dustbox" / "alice";
  test::write(d / "old", std::string(100, 'x'));
  test::write(d / "young", "y");
  test::write(d / "delivered-long-ago", "z");
  test::write(outside.path() / "victim", "must survive");
  fs::create_symlink(outside.path() / "victim", d / "link");
  fs::create_directories(h.path() / "dustbox" / "bob");

  const std::int64_t real = test::unix_now();
  MaintenanceOptions o;
  // ctime is "now" for every file here (utimensat sets it), so the run is
  // placed 30 days ahead: the ctime is then 30 days old for all of them.
  o.now = real + 30 * day;
  test::set_mtime(d / "old", real - 40 * day);
  test::set_mtime(d / "young", o.now - 1 * day);  // moved in yesterday (mtime wins: later)
  test::set_mtime(outside.path() / "victim", real - 400 * day);

  SUBCASE("dry run removes nothing and lists the same") {
    o.dry_run = true;
    auto r = run_maintenance(*cfg, o);
    REQUIRE(r);
    CHECK(listed(*r, d / "old"));
    CHECK(listed(*r, d / "delivered-long-ago"));
    CHECK_FALSE(listed(*r, d / "young"));
    CHECK(fs::exists(d / "old"));
    CHECK(r->count(MaintenanceItem::Kind::dustbox) == 2);
    CHECK(r->bytes == 101);
  }
  SUBCASE("real run") {
    auto r = run_maintenance(*cfg, o);
    REQUIRE(r);
    CHECK_FALSE(fs::exists(d / "old"));
    CHECK_FALSE(fs::exists(d / "delivered-long-ago"));
    CHECK(fs::exists(d / "young"));
    CHECK(fs::is_symlink(d / "link"));
    CHECK(fs::exists(outside.path() / "victim"));
    CHECK(warned(*r, "symbolic link"));
    // Account folders stay even when empty (the store may be moving mail in).
    CHECK(fs::is_directory(h.path() / "dustbox" / "bob"));
    CHECK(r->count(MaintenanceItem::Kind::dustbox) == 2);
  }
  SUBCASE("mail delivered long ago but deleted just now is kept") {
    o.now = real + 1 * day;
    auto r = run_maintenance(*cfg, o);
    REQUIRE(r);
    CHECK(fs::exists(d / "old"));
    CHECK(r->items.empty());
  }
  SUBCASE("--dustbox-keep-days overrides the configuration") {
    o.dustbox_keep_days = 60;
    auto r = run_maintenance(*cfg, o);
    REQUIRE(r);
    CHECK(r->count(MaintenanceItem::Kind::dustbox) == 0);
  }
}

TEST_CASE("maintenance: a dustbox folder that is a link is refused") {
  TempHome h;
  TempHome outside;
  auto cfg = h.config("", "dustbox_keep_days=0\n");
  REQUIRE(cfg);
  test::write(outside.path() / "acc" / "mail", "keep me");
  fs::create_symlink(outside.path(), h.path() / "dustbox");
  fs::create_symlink(outside.path(), h.path() / "deadmail");
  MaintenanceOptions o;
  o.now = test::unix_now() + 100 * day;
  auto r = run_maintenance(*cfg, o);
  REQUIRE(r);
  CHECK(r->items.empty());
  CHECK(fs::exists(outside.path() / "acc" / "mail"));
  CHECK(warned(*r, "symbolic link"));
}

TEST_CASE("maintenance: dead mail, nested folders emptied") {
  TempHome h;
  auto cfg = h.config("", "dustbox_keep_days=3\n");
  REQUIRE(cfg);
  const auto dead = h.path() / "deadmail";
  test::write(dead / "a", "1");
  test::write(dead / "sub" / "b", "22");
  test::write(dead / "sub2" / "c", "333");
  MaintenanceOptions o;
  o.now = test::unix_now() + 10 * day;
  test::set_mtime(dead / "sub2" / "c", o.now - 1 * day);
  SUBCASE("keep days from the dustbox") {
    auto r = run_maintenance(*cfg, o);
    REQUIRE(r);
    CHECK(r->count(MaintenanceItem::Kind::dead) == 2);
    CHECK_FALSE(fs::exists(dead / "a"));
    CHECK_FALSE(fs::exists(dead / "sub"));
    CHECK(fs::exists(dead / "sub2" / "c"));
    CHECK(fs::is_directory(dead));
  }
  SUBCASE("--dead-keep-days") {
    o.dead_keep_days = 20;
    auto r = run_maintenance(*cfg, o);
    REQUIRE(r);
    CHECK(r->count(MaintenanceItem::Kind::dead) == 0);
  }
}

TEST_CASE("maintenance: expired queue entries, active ones left alone") {
  TempHome h;
  auto cfg = h.config("resend_timeout=60\n", "");
  REQUIRE(cfg);
  RelayQueue q(cfg->queue_dir());
  REQUIRE(q.init());
  QueueEnvelope env{"a@example.org", {"b@example.net"}, "127.0.0.1", ""};
  auto old_id = q.enqueue(env, std::string_view("Subject: x\r\n\r\nold\r\n"));
  auto young_id = q.enqueue(env, std::string_view("Subject: x\r\n\r\nyoung\r\n"));
  auto active_id = q.enqueue(env, std::string_view("Subject: x\r\n\r\nactive\r\n"));
  auto deferred_id = q.enqueue(env, std::string_view("Subject: x\r\n\r\ndeferred\r\n"));
  REQUIRE(old_id);
  REQUIRE(young_id);
  REQUIRE(active_id);
  REQUIRE(deferred_id);
  const std::int64_t now = test::unix_now();
  age_entry(q, *old_id, now - 2 * 3600);
  age_entry(q, *young_id, now - 30 * 60);
  age_entry(q, *active_id, now - 5 * 3600);
  REQUIRE(q.move(*active_id, QueueState::active));
  age_entry(q, *deferred_id, now - 3 * 3600);
  REQUIRE(q.move(*deferred_id, QueueState::deferred));
  MaintenanceOptions o;
  o.now = now;

  SUBCASE("dry run") {
    o.dry_run = true;
    auto r = run_maintenance(*cfg, o);
    REQUIRE(r);
    CHECK(r->count(MaintenanceItem::Kind::queue) == 2);
    auto ids = q.list();
    REQUIRE(ids);
    CHECK(ids->size() == 4);
  }
  SUBCASE("real run") {
    auto r = run_maintenance(*cfg, o);
    REQUIRE(r);
    CHECK(r->count(MaintenanceItem::Kind::queue) == 2);
    auto ids = q.list();
    REQUIRE(ids);
    std::vector<std::string> want{*young_id, *active_id};
    std::sort(want.begin(), want.end());
    CHECK(*ids == want);
    CHECK_FALSE(fs::exists(q.message_path(*old_id)));
    CHECK_FALSE(fs::exists(q.message_path(*deferred_id)));
    CHECK(fs::exists(q.message_path(*active_id)));
    CHECK(fs::is_empty(cfg->queue_dir() / "tmp"));
  }
  SUBCASE("a corrupt envelope is left for recovery") {
    test::write(cfg->queue_dir() / "incoming" / "123.M1P1Q1", "wizmail-queue 1\nid 123.M1P1Q1\n");
    auto r = run_maintenance(*cfg, o);
    REQUIRE(r);
    CHECK(fs::exists(cfg->queue_dir() / "incoming" / "123.M1P1Q1"));
    CHECK(warned(*r, "unreadable envelope"));
  }
}

TEST_CASE("maintenance: rotated logs by age and generation, live logs never") {
  TempHome h;
  auto cfg = h.config();
  REQUIRE(cfg);
  const auto log = h.path() / "var" / "log";
  const std::int64_t now = test::unix_now();
  for (auto n : {"smtp.log", "smtp.log.1", "pop.log.1", "error.log.12", "server.log.2.gz", "notes.txt",
                 "x.log.abc", ".log.1", "smtp.log.0"})
    test::write(log / n, "line\n");
  for (auto n : {"smtp.log", "smtp.log.1", "server.log.2.gz", "notes.txt", "x.log.abc", ".log.1", "smtp.log.0"})
    test::set_mtime(log / n, now - 90 * day);
  MaintenanceOptions o;
  o.now = now;
  auto r = run_maintenance(*cfg, o);
  REQUIRE(r);
  CHECK(r->count(MaintenanceItem::Kind::log) == 3);
  CHECK_FALSE(fs::exists(log / "smtp.log.1"));
  CHECK_FALSE(fs::exists(log / "error.log.12"));
  CHECK_FALSE(fs::exists(log / "server.log.2.gz"));
  for (auto n : {"smtp.log", "pop.log.1", "notes.txt", "x.log.abc", ".log.1", "smtp.log.0"}) CHECK(fs::exists(log / n));
}

TEST_CASE("maintenance: bad options and a missing home") {
  TempHome h;
  auto cfg = h.config();
  REQUIRE(cfg);
  MaintenanceOptions o;
  o.log_generations = 0;
  CHECK_FALSE(run_maintenance(*cfg, o));
  o.log_generations = 10;
  o.log_keep_days = -2;
  CHECK_FALSE(run_maintenance(*cfg, o));
  // A home with nothing in it is fine: nothing to do.
  auto r = run_maintenance(*cfg, MaintenanceOptions{});
  REQUIRE(r);
  CHECK(r->items.empty());
  CHECK(r->warnings.empty());
  auto gone = parse_config_texts(h.path() / "nope", {}).config;
  REQUIRE(gone);
  CHECK_FALSE(run_maintenance(*gone, MaintenanceOptions{}));
}
