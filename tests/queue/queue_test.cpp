#include "wizmail/queue.hpp"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

#include "temp_dir.hpp"
#include "util/fs.hpp"

namespace fs = std::filesystem;
using namespace wizmail;

namespace {
using test::TempDir;

std::size_t count(const fs::path& d) {
  std::size_t n = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator(d, ec); !ec && it != fs::directory_iterator(); ++it) ++n;
  return n;
}

// Ids sort as strings (list()'s order), not always in the order made.
std::vector<std::string> sorted(std::vector<std::string> ids) {
  std::sort(ids.begin(), ids.end());
  return ids;
}

QueueEnvelope env2() {
  QueueEnvelope e;
  e.sender = "alice@example.org";
  e.recipients = {"bob@remote.example", "\"odd user\"@remote.example"};
  e.client_ip = "192.0.2.7";
  e.auth_user = "alice";
  return e;
}
}  // namespace

TEST_CASE("enqueue is durable and loads back exactly") {
  TempDir t;
  RelayQueue q(t.path() / "resendmail");
  REQUIRE(q.init());
  auto id = q.enqueue(env2(), std::string_view("Subject: hi\r\n\r\nbody\r\n"));
  REQUIRE(id);
  auto e = q.load(*id);
  REQUIRE(e);
  CHECK(e->id == *id);
  CHECK(e->state == QueueState::incoming);
  CHECK(e->sender == "alice@example.org");
  REQUIRE(e->recipients.size() == 2);
  CHECK(e->recipients[1].address == "\"odd user\"@remote.example");
  CHECK(e->recipients[0].state == RecipientState::pending);
  CHECK(e->size == 21);
  CHECK(e->client_ip == "192.0.2.7");
  CHECK(e->auth_user == "alice");
  CHECK(e->created > 0);
  CHECK(util::read_file(q.message_path(*id)).value() == "Subject: hi\r\n\r\nbody\r\n");
  CHECK(count(t.path() / "resendmail" / "tmp") == 0);
  auto ids = q.list();
  REQUIRE(ids);
  CHECK(ids->size() == 1);
}

TEST_CASE("recipient results, attempts, states and removal") {
  TempDir t;
  RelayQueue q(t.path() / "q");
  REQUIRE(q.init());
  auto id = q.enqueue(env2(), std::string_view("x\r\n")).value();
  REQUIRE(q.update_recipient(id, "bob@remote.example", RecipientState::delivered, "250 ok"));
  auto e = q.load(id).value();
  CHECK(e.recipients[0].state == RecipientState::delivered);
  CHECK(e.recipients[0].attempts == 1);
  CHECK(e.recipients[0].last_reply == "250 ok");
  CHECK(e.attempts.size() == 1);
  CHECK_FALSE(e.finished());
  // Never deliver twice after a recorded 250.
  CHECK_FALSE(q.update_recipient(id, "bob@remote.example", RecipientState::failed, "x"));
  CHECK(q.update_recipient(id, "nobody@x", RecipientState::failed, "x").error().code == Errc::not_found);
  REQUIRE(q.move(id, QueueState::deferred));
  e = q.load(id).value();
  CHECK(e.state == QueueState::deferred);
  e.next_attempt = 4000000000;
  REQUIRE(q.save(e));
  CHECK(q.due(1000).value().empty());
  CHECK(q.due(4000000000).value().size() == 1);
  CHECK(q.next_due().value().value() == 4000000000);
  REQUIRE(q.update_recipient(id, "\"odd user\"@remote.example", RecipientState::failed, "550 no"));
  CHECK(q.load(id).value().finished());
  REQUIRE(q.remove(id));
  CHECK(q.list().value().empty());
  CHECK_FALSE(fs::exists(q.message_path(id)));
  CHECK(q.load(id).error().code == Errc::not_found);
}

TEST_CASE("retire takes an entry out at once; purge deletes its files; recover cleans a retired one a crash left") {
  TempDir t;
  RelayQueue q(t.path() / "q");
  REQUIRE(q.init());
  auto id = q.enqueue(env2(), std::string_view("x\r\n")).value();
  REQUIRE(q.move(id, QueueState::active, RelayQueue::Sync::later));
  CHECK(q.load(id).value().state == QueueState::active);
  REQUIRE(q.retire(id));
  // Gone for every reader (and for recover: not in active/ any more)...
  CHECK(q.load(id).error().code == Errc::not_found);
  CHECK(q.list().value().empty());
  CHECK(q.due(4000000000).value().empty());
  CHECK_FALSE(q.retire(id));
  // ...its files still there until purged.
  CHECK(fs::exists(q.message_path(id)));
  CHECK(count(t.path() / "q" / "tmp") == 1);
  REQUIRE(q.purge_retired(id));
  CHECK_FALSE(fs::exists(q.message_path(id)));
  CHECK(count(t.path() / "q" / "tmp") == 0);
  CHECK(q.purge_retired(id));  // again: nothing left to do
  for (auto bad : {"../x", "", "a/b"}) CHECK_FALSE(q.purge_retired(bad));
  // A crash between retire and purge: recover deletes both files and
  // brings nothing back.
  auto id2 = q.enqueue(env2(), std::string_view("y\r\n")).value();
  REQUIRE(q.move(id2, QueueState::active));
  REQUIRE(q.retire(id2));
  auto r = q.recover().value();
  CHECK(r.tmp_removed == 1);
  CHECK(r.orphans_removed == 1);
  CHECK(r.reactivated == 0);
  CHECK(q.list().value().empty());
  CHECK_FALSE(fs::exists(q.message_path(id2)));
}

TEST_CASE("staging from memory: the data file is the message, synced with the envelope, published whole") {
  TempDir t;
  RelayQueue q(t.path() / "q");
  REQUIRE(q.init());
  const std::string msg = "Subject: s\r\n\r\nbody\r\n";
  std::vector<RelayQueue::Staged> staged;
  for (int i = 0; i < 3; ++i) {
    auto s = q.stage(env2(), std::string_view(msg));
    REQUIRE(s);
    CHECK(s->files_to_sync().size() == 2);  // envelope and data
    staged.push_back(std::move(*s));
  }
  CHECK(q.list().value().empty());  // nothing visible before publish
  for (auto& s : staged) {
    for (int fd : s.files_to_sync()) CHECK(::fsync(fd) == 0);
    REQUIRE(s.publish());
  }
  auto ids = q.list().value();
  REQUIRE(ids.size() == 3);
  for (const auto& id : ids) {
    auto e = q.load(id).value();
    CHECK(e.size == msg.size());
    CHECK(e.state == QueueState::incoming);
    CHECK(util::read_file(q.message_path(id)).value() == msg);
  }
  CHECK(count(t.path() / "q" / "tmp") == 0);
  // Dropped before publish: its tmp files go.
  { auto s = q.stage(env2(), std::string_view(msg)); REQUIRE(s); }
  CHECK(count(t.path() / "q" / "tmp") == 0);
  CHECK_FALSE(q.stage(QueueEnvelope{}, std::string_view(msg)));  // no recipients
}

TEST_CASE("bad ids never reach the file system") {
  TempDir t;
  RelayQueue q(t.path() / "q");
  REQUIRE(q.init());
  for (auto id : {"../x", "", ".hidden", "a/b", "x y"}) {
    CHECK_FALSE(q.load(id));
    CHECK_FALSE(q.remove(id));
  }
}

TEST_CASE("envelope parser refuses incomplete and malformed files") {
  QueueEntry e;
  e.id = "123.M1P2Q3";
  e.sender = "";
  e.recipients = {{"a@b", RecipientState::pending, 0, "451 4.3.0 try again later"}};
  e.attempts = {{5, "mx: timeout\r\ninjected"}};
  e.size = 10;
  auto text = serialize_queue_entry(e);
  auto back = parse_queue_entry(text);
  REQUIRE(back);
  CHECK(back->sender.empty());
  CHECK(back->attempts[0].text == "mx: timeout\r\ninjected");
  CHECK(back->recipients[0].last_reply == "451 4.3.0 try again later");
  // Every truncation is refused: only the complete file with `end` is mail.
  for (std::size_t n = 0; n < text.size(); ++n) CHECK_FALSE(parse_queue_entry(text.substr(0, n)));
  CHECK_FALSE(parse_queue_entry(text + "rcpt pending 0 x@y -\n"));
  std::string bad = text;
  bad.replace(bad.find("rcpt pending"), 12, "rcpt flying!");
  CHECK_FALSE(parse_queue_entry(bad));
  CHECK_FALSE(parse_queue_entry("wizmail-queue 1\nid x\nsize 1\nend\n"));  // no recipients
  CHECK_FALSE(parse_queue_entry("something else\n"));
  CHECK_FALSE(parse_queue_entry(std::string("wizmail-queue 1\nid a%2\nend\n")));
}

TEST_CASE("envelope parser: an attempt count an int cannot hold is refused") {
  // Found by the queue_entry fuzzer: 4444444444440 became a negative count
  // when the entry was written back, and the entry then read as corrupt.
  std::string head = "wizmail-queue 1\nid 1.M1\nsize 5\nrcpt pending ";
  auto entry = [&](std::string n) { return head + n + " a@b -\nend\n"; };
  auto max = parse_queue_entry(entry("2147483647"));
  REQUIRE(max);
  CHECK(max->recipients[0].attempts == 2147483647);
  CHECK(parse_queue_entry(serialize_queue_entry(*max)));
  CHECK_FALSE(parse_queue_entry(entry("2147483648")));
  CHECK_FALSE(parse_queue_entry(entry("4444444444440")));
}

TEST_CASE("recover cleans crash leftovers and keeps whole entries") {
  TempDir t;
  RelayQueue q(t.path() / "q");
  REQUIRE(q.init());
  auto good = q.enqueue(env2(), std::string_view("good\r\n")).value();
  auto claimed = q.enqueue(env2(), std::string_view("claimed\r\n")).value();
  REQUIRE(q.move(claimed, QueueState::active));
  // A crash while staging: files in tmp/.
  REQUIRE(util::write_file_atomic(t.path() / "q" / "tmp" / "1.M1P1Q1.env", "half"));
  REQUIRE(util::write_file_atomic(t.path() / "q" / "tmp" / "1.M1P1Q1.data", "half"));
  // A crash between the two renames: data without an envelope.
  REQUIRE(util::write_file_atomic(t.path() / "q" / "data" / "2.M1P1Q1", "orphan"));
  // A truncated envelope (no end record) must never be taken for mail.
  auto truncated = q.enqueue(env2(), std::string_view("t\r\n")).value();
  {
    auto p = t.path() / "q" / "incoming" / truncated;
    auto text = util::read_file(p).value();
    REQUIRE(util::write_file_atomic(p, text.substr(0, text.size() - 4)));
  }
  // An envelope whose data size does not match.
  auto shortdata = q.enqueue(env2(), std::string_view("0123456789")).value();
  REQUIRE(util::write_file_atomic(q.message_path(shortdata), "01234"));

  auto r = q.recover();
  REQUIRE(r);
  CHECK(r->tmp_removed == 2);
  CHECK(r->orphans_removed == 1);
  CHECK(r->reactivated == 1);
  CHECK(r->corrupt == 2);
  auto ids = q.list().value();
  CHECK(ids.size() == 2);
  CHECK(q.load(good));
  CHECK(q.load(claimed).value().state == QueueState::incoming);
  CHECK_FALSE(q.load(truncated));
  CHECK(count(t.path() / "q" / "tmp") == 0);
  CHECK(count(t.path() / "q" / "corrupt") == 2);
  // A second recovery finds nothing more to do.
  auto again = q.recover().value();
  CHECK(again.tmp_removed + again.orphans_removed + again.reactivated + again.corrupt == 0);
}

TEST_CASE("staged entries appear only after publish and vanish when dropped") {
  TempDir t;
  RelayQueue q(t.path() / "q");
  REQUIRE(q.init());
  auto msg = t.path() / "msg";
  REQUIRE(util::write_file_atomic(msg, "hello\r\n"));
  {
    auto s = q.stage(env2(), msg, 7);
    REQUIRE(s);
    CHECK(q.list().value().empty());
    CHECK(count(t.path() / "q" / "tmp") == 2);
  }
  CHECK(count(t.path() / "q" / "tmp") == 0);  // dropped before publish
  auto s = q.stage(env2(), msg, 7);
  REQUIRE(s);
  for (int fd : s->files_to_sync()) CHECK(::fsync(fd) == 0);
  REQUIRE(s->publish());
  for (const auto& d : s->dirs_to_sync()) CHECK(util::fsync_dir(d));
  CHECK(q.list().value().size() == 1);
  CHECK(util::read_file(q.message_path(s->id())).value() == "hello\r\n");
  CHECK_FALSE(s->publish());
  CHECK_FALSE(q.stage(QueueEnvelope{}, msg, 7));  // no recipients
}

TEST_CASE("queue envelope: an entry written before DSN and SMTPUTF8 existed reads as it did") {
  // Byte for byte what the previous format wrote.
  const std::string old = "wizmail-queue 1\nid 1700000000.M1P2Q3\ncreated 1700000000\nnext 1700000300\nsize 42\n"
                          "sender alice@example.org\nclient 192.0.2.7\nauth alice\n"
                          "rcpt pending 1 bob@remote.example 451%204.3.0%20later\n"
                          "attempt 1700000001 mx:%20451\nend\n";
  auto e = parse_queue_entry(old);
  REQUIRE(e);
  CHECK(e->ret == DsnRet::unspecified);
  CHECK(e->envid.empty());
  CHECK_FALSE(e->smtputf8);
  CHECK(e->delay_notified == 0);
  REQUIRE(e->recipients.size() == 1);
  CHECK(e->recipients[0].dsn.empty());
  CHECK(e->recipients[0].last_reply == "451 4.3.0 later");
  // And an entry without DSN data is written exactly so.
  CHECK(serialize_queue_entry(*e) == old);
}

TEST_CASE("queue envelope: DSN requests, SMTPUTF8 and the delay notice survive a round trip") {
  TempDir t;
  RelayQueue q(t.path() / "q");
  REQUIRE(q.init());
  QueueEnvelope env = env2();
  env.recipients.push_back("j\xc3\xb6rg@b\xc3\xbcro.example");
  env.ret = DsnRet::hdrs;
  env.envid = "QQ 1+x";
  env.smtputf8 = true;
  env.dsn = {{dsn_notify::success | dsn_notify::delay, "rfc822;Bob+List@remote.example"},
             {dsn_notify::never, ""},
             {0, "utf-8;j\\x{F6}rg@example.org"}};
  auto id = q.enqueue(env, std::string_view("Subject: x\r\n\r\nbody\r\n"));
  REQUIRE(id);
  auto e = q.load(*id);
  REQUIRE(e);
  CHECK(e->ret == DsnRet::hdrs);
  CHECK(e->envid == "QQ 1+x");
  CHECK(e->smtputf8);
  REQUIRE(e->recipients.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) CHECK(e->recipients[i].dsn == env.dsn[i]);
  CHECK(e->recipients[2].address == "j\xc3\xb6rg@b\xc3\xbcro.example");
  e->delay_notified = 1700000999;
  REQUIRE(q.save(*e));
  auto again = q.load(*id);
  REQUIRE(again);
  CHECK(again->delay_notified == 1700000999);
  CHECK(serialize_queue_entry(*again) == serialize_queue_entry(*e));
  // A DSN list that does not match the recipients is refused before anything is written.
  env.dsn.pop_back();
  CHECK_FALSE(q.enqueue(env, std::string_view("x\r\n")));
  CHECK(count(t.path() / "q" / "tmp") == 0);
}

TEST_CASE("queue envelope: malformed DSN records make the entry unreadable, never half-read") {
  const std::string head = "wizmail-queue 1\nid a.b\ncreated 1\nnext 1\nsize 1\nsender \nclient \nauth \n";
  const std::string rcpt = "rcpt pending 0 b@c -\n";
  for (const std::string& bad : {head + "ret BODY\n" + rcpt, head + "ret \n" + rcpt, head + "envid \n" + rcpt,
                                 head + "smtputf8 yes\n" + rcpt, head + "delay-notified -5\n" + rcpt,
                                 head + "dsn NEVER\n" + rcpt,                   // before any rcpt
                                 head + rcpt + "dsn NEVER\ndsn NEVER\n",        // twice
                                 head + rcpt + "dsn SOMETIMES\n", head + rcpt + "dsn -\n",
                                 head + rcpt + "dsn - no-semicolon\n", head + rcpt + "dsn NEVER,SUCCESS\n"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_queue_entry(bad + "end\n"));
  }
  auto ok = parse_queue_entry(head + rcpt + "dsn - rfc822;x%40y\nend\n");
  REQUIRE(ok);
  CHECK(ok->recipients[0].dsn.orcpt == "rfc822;x@y");
}

TEST_CASE("RFC 3461 parameter values") {
  CHECK(parse_dsn_notify("NEVER") == std::optional<std::uint8_t>(dsn_notify::never));
  CHECK(parse_dsn_notify("success,Failure,DELAY") ==
        std::optional<std::uint8_t>(dsn_notify::success | dsn_notify::failure | dsn_notify::delay));
  for (auto bad : {"", "NEVER,SUCCESS", "SUCCESS,NEVER", "SUCCESS,", ",SUCCESS", "SUCCESS,,DELAY",
                   "DELAY,DELAY", "ALWAYS", "SUCCESS FAILURE"})
    CHECK_FALSE(parse_dsn_notify(bad));
  CHECK(format_dsn_notify(dsn_notify::delay | dsn_notify::success) == "SUCCESS,DELAY");
  CHECK(format_dsn_notify(0).empty());
  CHECK(wants_failure_notice(0));
  CHECK(wants_failure_notice(dsn_notify::failure | dsn_notify::delay));
  CHECK_FALSE(wants_failure_notice(dsn_notify::never));
  CHECK_FALSE(wants_failure_notice(dsn_notify::success));
  CHECK_FALSE(wants_success_notice(0));
  CHECK_FALSE(wants_delay_notice(0));
  CHECK(parse_dsn_ret("hdrs") == std::optional<DsnRet>(DsnRet::hdrs));
  CHECK_FALSE(parse_dsn_ret("HEADERS"));
  CHECK(parse_dsn_envid("abc+2Bd") == std::optional<std::string>("abc+d"));
  CHECK_FALSE(parse_dsn_envid(std::string(101, 'x')));
  CHECK_FALSE(parse_dsn_envid("a+0Db"));  // decodes to a control character
  CHECK_FALSE(parse_dsn_envid(""));
  CHECK(parse_dsn_orcpt("rfc822;a+2Bb@c") == std::optional<std::string>("rfc822;a+b@c"));
  CHECK(format_dsn_orcpt("rfc822;a+b=c@d") == "rfc822;a+2Bb+3Dc@d");
  CHECK_FALSE(parse_dsn_orcpt("rfc822"));
  CHECK_FALSE(parse_dsn_orcpt(";a@b"));
  CHECK_FALSE(parse_dsn_orcpt("rfc 822;a@b"));
  CHECK_FALSE(parse_dsn_orcpt("rfc822;a+C3+B6@b"));  // not US-ASCII once decoded
  CHECK_FALSE(parse_dsn_orcpt("rfc822;" + std::string(500, 'a')));
  CHECK(dsn_orcpt_for("a@b") == "rfc822;a@b");
  CHECK(dsn_orcpt_for("j\xc3\xb6rg+x@b\xc3\xbcro.example") == "utf-8;j\\x{F6}rg\\x{2B}x@b\\x{FC}ro.example");
  CHECK(dsn_address_field("\xe7\x94\xb0@x") == "utf-8; \\x{7530}@x");
  CHECK(dsn_address_field("a\r\nb@x") == "rfc822; a??b@x");
}

// --- Nodes of a shared home (docs/cluster.md): claims, fencing, takeover.

TEST_CASE("nodes: a claim is a rename into the node's own claims/; no node takes another's") {
  TempDir t;
  const auto dir = t.path() / "q";
  RelayQueue a(dir, "A"), b(dir, "B");
  REQUIRE(a.init());
  REQUIRE(b.init());
  auto id = a.enqueue(env2(), std::string_view("x\r\n")).value();
  CHECK(id.ends_with(".A"));  // two nodes never make the same id
  CHECK(fs::exists(dir / "incoming" / id));
  CHECK(count(dir / "tmp" / "A") == 0);
  REQUIRE(b.move(id, QueueState::active, RelayQueue::Sync::later));
  CHECK(fs::exists(dir / "claims" / "B" / id));
  CHECK(b.holds(id));
  CHECK_FALSE(a.holds(id));
  // A cannot claim it, move it, save it, retire it or remove it...
  CHECK(a.move(id, QueueState::active).error().code == Errc::not_found);
  CHECK_FALSE(a.move(id, QueueState::deferred));
  auto e = a.load(id).value();  // ...but every node (and the admin) reads it
  CHECK(e.state == QueueState::active);
  CHECK_FALSE(a.save(e));
  CHECK_FALSE(a.retire(id));
  CHECK_FALSE(a.remove(id));
  CHECK(fs::exists(dir / "claims" / "B" / id));
  CHECK(a.list().value() == std::vector<std::string>{id});
  // B works it: saves, defers, claims again, retires.
  e.recipients[0].state = RecipientState::delivered;
  REQUIRE(b.save(e));
  REQUIRE(b.move(id, QueueState::deferred, RelayQueue::Sync::later));
  CHECK_FALSE(b.holds(id));
  REQUIRE(a.move(id, QueueState::active));
  CHECK(a.load(id).value().recipients[0].state == RecipientState::delivered);
  REQUIRE(a.retire(id));
  CHECK(fs::exists(dir / "tmp" / "A" / (id + ".done")));
  REQUIRE(a.purge_retired(id));
  CHECK(a.list().value().empty());
  CHECK(count(dir / "data") == 0);
  // A bad node name never becomes a path.
  RelayQueue bad(dir, "../x");
  CHECK(bad.node().empty());
}

TEST_CASE("nodes: adopt() takes a dead node's claims back and fences it out of them") {
  TempDir t;
  const auto dir = t.path() / "q";
  RelayQueue a(dir, "A"), b(dir, "B"), c(dir, "C");
  REQUIRE(a.init());
  auto id1 = a.enqueue(env2(), std::string_view("one\r\n")).value();
  auto id2 = a.enqueue(env2(), std::string_view("two\r\n")).value();
  auto id3 = a.enqueue(env2(), std::string_view("three\r\n")).value();
  REQUIRE(a.move(id1, QueueState::active));
  REQUIRE(a.move(id2, QueueState::active));
  auto held = a.load(id1).value();
  // A retired id3 (delivered) and was killed before purging it; it also
  // left a staged entry never published (never acknowledged).
  REQUIRE(a.move(id3, QueueState::active));
  REQUIRE(a.retire(id3));
  auto staged = a.stage(env2(), std::string_view("never\r\n")).value();
  const auto staged_id = staged.id();
  for (int fd : staged.files_to_sync()) ::fsync(fd);
  // (The staged object is dropped only after the adoption: a dead node
  // cleans nothing up.)
  auto got = b.adopt("A").value();
  CHECK(got.entries == 2);
  CHECK(got.tmp_removed == 3);  // id3.done, staged .env and .data
  CHECK(fs::exists(dir / "incoming" / id1));
  CHECK(fs::exists(dir / "incoming" / id2));
  CHECK_FALSE(fs::exists(dir / "claims" / "A"));
  CHECK_FALSE(fs::exists(dir / "tmp" / "A"));
  CHECK_FALSE(fs::exists(a.message_path(id3)));  // the retired entry's data
  CHECK(fs::exists(a.message_path(id1)));
  CHECK(count(dir / "adopted") == 0);
  // A, should it still run, cannot finish what it held: no save, no move,
  // no retire, and nothing comes back anywhere.
  CHECK_FALSE(a.holds(id1));
  held.recipients[0].state = RecipientState::delivered;
  CHECK_FALSE(a.save(held));
  CHECK_FALSE(a.retire(id1));
  CHECK(b.load(id1).value().recipients[0].state == RecipientState::pending);
  CHECK(b.load(id1).value().state == QueueState::incoming);
  CHECK(a.list().value() == sorted({id1, id2}));
  // Its staged entry cannot be published any more (its tmp/ is gone).
  CHECK_FALSE(staged.publish());
  // A second adopter, later or at once, gets nothing twice.
  auto again = c.adopt("A").value();
  CHECK(again.entries == 0);
  CHECK(again.tmp_removed == 0);
  // A alive again claims into a new claims/A, stages into a new tmp/A, and
  // retires what it delivers.
  REQUIRE(a.move(id1, QueueState::active));
  CHECK(a.holds(id1));
  REQUIRE(a.retire(id1));
  REQUIRE(a.purge_retired(id1));
  auto id4 = a.enqueue(env2(), std::string_view("four\r\n")).value();
  CHECK(a.list().value() == sorted({id2, id4}));
  // Nobody adopts itself, or a name that is no node's.
  CHECK_FALSE(a.adopt("A"));
  CHECK_FALSE(b.adopt("../A"));
  CHECK_FALSE(b.adopt(""));
  RelayQueue single(dir);
  CHECK_FALSE(single.adopt("A"));
}

TEST_CASE("nodes: a takeover cut short is finished by the next adopter or at the adopter's restart") {
  TempDir t;
  const auto dir = t.path() / "q";
  RelayQueue a(dir, "A"), b(dir, "B"), c(dir, "C");
  REQUIRE(a.init());
  auto id1 = a.enqueue(env2(), std::string_view("one\r\n")).value();
  auto id2 = a.enqueue(env2(), std::string_view("two\r\n")).value();
  REQUIRE(a.move(id1, QueueState::active));
  REQUIRE(a.move(id2, QueueState::active));
  // A was killed in the middle of a save (its temporary file is there);
  // B renamed A's claims away and died before draining them.
  std::ofstream(dir / "claims" / "A" / ("." + id1 + ".tmp.1.M1P1Q1")) << "half";
  const auto half = dir / "adopted" / "A@B@1.M1P1Q1";
  fs::create_directories(half);
  fs::rename(dir / "claims" / "A", half / "claims");
  SUBCASE("another node adopting the dead adopter finishes it") {
    auto got = c.adopt("B").value();
    CHECK(got.entries == 2);
  }
  SUBCASE("the adopter's own restart finishes it") {
    auto r = b.recover().value();
    CHECK(r.reactivated == 2);
  }
  SUBCASE("another node adopting A again finishes it too (B is dead or not)") {
    // Not while B lives: only B's own drain, or an adopter of B, touches it.
    auto got = c.adopt("A").value();
    CHECK(got.entries == 0);
    CHECK(fs::exists(half / "claims" / id1));
    return;
  }
  CHECK(fs::exists(dir / "incoming" / id1));
  CHECK(fs::exists(dir / "incoming" / id2));
  CHECK_FALSE(fs::exists(half));  // the temporary file went with it
  CHECK(count(dir / "incoming") == 2);
}

TEST_CASE("nodes: recover() at a node's start touches only its own") {
  TempDir t;
  const auto dir = t.path() / "q";
  RelayQueue a(dir, "A"), b(dir, "B");
  REQUIRE(a.init());
  REQUIRE(b.init());
  auto mine = a.enqueue(env2(), std::string_view("mine\r\n")).value();
  auto theirs = b.enqueue(env2(), std::string_view("theirs\r\n")).value();
  REQUIRE(a.move(mine, QueueState::active));
  REQUIRE(b.move(theirs, QueueState::active));
  auto b_staged = b.stage(env2(), std::string_view("in the making\r\n")).value();
  // A data file another node has just renamed into data/ (its envelope
  // comes next): young, so a node's recover keeps it.
  {
    std::ofstream(dir / "data" / "1.M2P3Q4.B") << "x";
  }
  auto r = a.recover().value();
  CHECK(r.reactivated == 1);
  CHECK(fs::exists(dir / "incoming" / mine));
  CHECK(fs::exists(dir / "claims" / "B" / theirs));
  CHECK(fs::exists(dir / "tmp" / "B" / (b_staged.id() + ".env")));
  CHECK(fs::exists(dir / "data" / "1.M2P3Q4.B"));
  CHECK(r.orphans_removed == 0);
  REQUIRE(b_staged.publish());
  CHECK(fs::exists(dir / "incoming" / b_staged.id()));
}
