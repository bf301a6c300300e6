#include "pop3/session.hpp"

#include <doctest/doctest.h>

#include <string>

#include "fake_store.hpp"
#include "mime/dot_stuffer.hpp"

using namespace wizmail;
using namespace wizmail::pop3;

namespace {

const std::string ts = "<123.456.1@pop.example>";

fake::World make_world() {
  fake::World w;
  w.accounts["alice"] = {"secret", false,
                         {{"1000.M1P1.host", "Subject: one\r\n\r\nhello\r\n"},
                          {"1001.M2P1.host", "Subject: two\r\n\r\n.dot\r\nline2\r\nline3\r\n"},
                          {"1002.M3P1.host", "Subject: three\n\nbare lf\n"}}};
  w.accounts["bob"] = {"bobpw", true, {}};
  return w;
}

SessionOptions options() {
  SessionOptions o;
  o.host = "pop.example";
  o.peer_ip = "192.0.2.7";
  o.apop_timestamp = ts;
  o.local_domains = {"example.com"};
  o.failure_delay = std::chrono::milliseconds(100);
  return o;
}

// Render actions as the connection would perform them.
void render(Output& out, std::string& text) {
  for (auto& a : out.actions) {
    switch (a.kind) {
      case Action::Kind::send: text += a.text; break;
      case Action::Kind::stream: {
        mime::DotStuffer d(a.body_lines);
        char buf[7];
        for (;;) {
          auto n = a.reader->read(buf, sizeof buf);
          REQUIRE(n);
          if (*n == 0 || !d.feed(std::string_view(buf, *n), text)) break;
        }
        d.finish(text);
        break;
      }
      case Action::Kind::delay: text += "<delay " + std::to_string(a.delay.count()) + ">"; break;
      case Action::Kind::start_tls: text += "<starttls>"; break;
      case Action::Kind::close: text += "<close>"; break;
    }
  }
  out.clear();
}

struct Run {
  std::string text;
  fake::World world;
};

Run run(const std::string& script, std::size_t chunk, SessionOptions o = options(),
        fake::World w = make_world()) {
  Run r{{}, std::move(w)};
  fake::Backend backend(r.world);
  Session s(o, backend);
  Output out;
  s.greeting(out);
  render(out, r.text);
  for (std::size_t off = 0; off < script.size(); off += chunk) {
    s.feed(std::string_view(script).substr(off, chunk), out);
    render(out, r.text);
    while (s.has_backlog()) {
      s.resume(out);
      render(out, r.text);
    }
  }
  return r;
}

// The transcript must be the same at every chunk size.
std::string transcript(const std::string& script, SessionOptions o = options(),
                       fake::World w = make_world()) {
  std::string first = run(script, script.size() + 1, o, w).text;
  for (std::size_t chunk : {1, 2, 3, 4, 8, 16, 32, 64, 128, 256, 512}) {
    CAPTURE(chunk);
    CHECK(run(script, chunk, o, w).text == first);
  }
  return first;
}

const std::string hello = "+OK wizmail POP3 server ready " + ts + "\r\n";
const std::string login_ok = "+OK send PASS\r\n+OK logged in; 3 messages (86 octets)\r\n";

}  // namespace

TEST_CASE("sizes are CRLF octets") {
  auto w = make_world();
  CHECK(mime::transmitted_size(w.accounts["alice"].messages[0].second) == 23);
  CHECK(mime::transmitted_size(w.accounts["alice"].messages[1].second) == 36);
  CHECK(mime::transmitted_size(w.accounts["alice"].messages[2].second) == 27);
}

TEST_CASE("USER/PASS, STAT, LIST, UIDL, RETR, TOP, QUIT") {
  std::string t = transcript(
      "USER alice\r\nPASS secret\r\nSTAT\r\nLIST\r\nLIST 2\r\nUIDL\r\nUIDL 3\r\n"
      "RETR 2\r\nRETR 3\r\nTOP 2 1\r\nTOP 1 0\r\nNOOP\r\nQUIT\r\n");
  CHECK(t == hello + login_ok +
                 "+OK 3 86\r\n"
                 "+OK 3 messages (86 octets)\r\n1 23\r\n2 36\r\n3 27\r\n.\r\n"
                 "+OK 2 36\r\n"
                 "+OK unique-id listing follows\r\n1 1000.M1P1.host\r\n2 1001.M2P1.host\r\n"
                 "3 1002.M3P1.host\r\n.\r\n"
                 "+OK 3 1002.M3P1.host\r\n"
                 "+OK 36 octets\r\nSubject: two\r\n\r\n..dot\r\nline2\r\nline3\r\n.\r\n"
                 "+OK 27 octets\r\nSubject: three\r\n\r\nbare lf\r\n.\r\n"
                 "+OK top of message follows\r\nSubject: two\r\n\r\n..dot\r\n.\r\n"
                 "+OK top of message follows\r\nSubject: one\r\n\r\n.\r\n"
                 "+OK\r\n"
                 "+OK wizmail POP3 server signing off (0 messages deleted)\r\n<close>");
}

TEST_CASE("DELE is applied only at QUIT; RSET undoes; deleted messages vanish from listings") {
  auto r = run("USER alice\r\nPASS secret\r\nDELE 1\r\nDELE 1\r\nRETR 1\r\nSTAT\r\nLIST\r\n"
               "RSET\r\nSTAT\r\nDELE 3\r\nDELE 2\r\nUIDL\r\nLIST 2\r\nQUIT\r\n",
               5);
  CHECK(r.text == hello + login_ok +
                      "+OK message 1 deleted\r\n"
                      "-ERR message 1 is deleted\r\n"
                      "-ERR message 1 is deleted\r\n"
                      "+OK 2 63\r\n"
                      "+OK 2 messages (63 octets)\r\n2 36\r\n3 27\r\n.\r\n"
                      "+OK maildrop has 3 messages (86 octets)\r\n"
                      "+OK 3 86\r\n"
                      "+OK message 3 deleted\r\n+OK message 2 deleted\r\n"
                      "+OK unique-id listing follows\r\n1 1000.M1P1.host\r\n.\r\n"
                      "-ERR message 2 is deleted\r\n"
                      "+OK wizmail POP3 server signing off (2 messages deleted)\r\n<close>");
  REQUIRE(r.world.commits.size() == 1);
  CHECK(r.world.commits[0] == std::vector<std::size_t>{1, 2});
  CHECK(r.world.accounts["alice"].messages.size() == 1);
  CHECK(r.world.open_drops == 0);
}

TEST_CASE("QUIT lets go of the cross-node lock (Maildrop::release) before its answer; a dropped connection does not call it") {
  // With and without deletions.
  for (const char* script : {"USER alice\r\nPASS secret\r\nQUIT\r\n",
                             "USER alice\r\nPASS secret\r\nDELE 1\r\nQUIT\r\n"}) {
    fake::World w = make_world();
    fake::Backend b(w);
    Session s(options(), b);
    Output out;
    s.feed(script, out);
    CHECK(w.releases == 1);
    CHECK(w.open_drops == 0);
  }
  // A dropped connection: the Maildrop goes (its lease with it, later, by
  // the keeper's thread), release() is QUIT's alone.
  fake::World w = make_world();
  fake::Backend b(w);
  Session s(options(), b);
  Output out;
  s.feed("USER alice\r\nPASS secret\r\n", out);
  s.connection_lost();
  CHECK(w.releases == 0);
  CHECK(w.open_drops == 0);
}

TEST_CASE("a dropped connection deletes nothing and releases the lock") {
  for (std::size_t chunk : {1, 7, 512}) {
    auto r = run("USER alice\r\nPASS secret\r\nDELE 1\r\nDELE 2\r\n", chunk);
    CHECK(r.world.commits.empty());
    CHECK(r.world.accounts["alice"].messages.size() == 3);
    CHECK(r.world.open_drops == 0);
  }
  // explicit connection_lost() (timeout) with the session still alive
  fake::World w = make_world();
  fake::Backend b(w);
  Session s(options(), b);
  Output out;
  s.feed("USER alice\r\nPASS secret\r\nDELE 1\r\n", out);
  CHECK(w.open_drops == 1);
  s.connection_lost();
  CHECK(w.open_drops == 0);
  CHECK(w.commits.empty());
  CHECK(s.closed());
  out.clear();
  s.feed("QUIT\r\n", out);
  CHECK(out.actions.empty());
}

TEST_CASE("UPDATE failure is reported") {
  auto w = make_world();
  w.fail_commit = true;
  auto r = run("USER alice\r\nPASS secret\r\nDELE 1\r\nQUIT\r\n", 512, options(), w);
  CHECK(r.text == hello + login_ok + "+OK message 1 deleted\r\n"
                      "-ERR [SYS/TEMP] some deleted messages were not removed\r\n<close>");
}

TEST_CASE("bad input in TRANSACTION: numbers, arguments, unknown commands") {
  std::string t = transcript(
      "USER alice\r\nPASS secret\r\n"
      "RETR 0\r\nRETR -1\r\nRETR 99\r\nRETR abc\r\nRETR\r\nRETR 1 2\r\n"
      "LIST 0\r\nLIST 4\r\nLIST x\r\nLIST 1 2\r\n"
      "DELE 0\r\nDELE 99\r\nDELE\r\nDELE -1\r\n"
      "TOP 1\r\nTOP 1 -1\r\nTOP 1 x\r\nTOP 99 1\r\nTOP 1 2 3\r\n"
      "UIDL 0\r\nUIDL 99\r\nUIDL 1 2\r\n"
      "STAT 1\r\nNOOP x\r\nRSET x\r\nQUIT x\r\n"
      "XYZZY\r\n\r\nUSER bob\r\nPASS x\r\nAPOP a b\r\nSTLS\r\n"
      + std::string(10000, 'R') + "\r\n"
      "RETR 4294967297\r\n"
      "QUIT\r\n");
  CHECK(t == hello + login_ok +
                 "-ERR invalid message number: 0\r\n"
                 "-ERR invalid message number: -1\r\n"
                 "-ERR no such message: 99 (maildrop has 3)\r\n"
                 "-ERR invalid message number: abc\r\n"
                 "-ERR RETR: missing argument\r\n"
                 "-ERR RETR: too many arguments\r\n"
                 "-ERR invalid message number: 0\r\n"
                 "-ERR no such message: 4 (maildrop has 3)\r\n"
                 "-ERR invalid message number: x\r\n"
                 "-ERR LIST: too many arguments\r\n"
                 "-ERR invalid message number: 0\r\n"
                 "-ERR no such message: 99 (maildrop has 3)\r\n"
                 "-ERR DELE: missing argument\r\n"
                 "-ERR invalid message number: -1\r\n"
                 "-ERR TOP: missing argument\r\n"
                 "-ERR invalid line count: -1\r\n"
                 "-ERR invalid line count: x\r\n"
                 "-ERR no such message: 99 (maildrop has 3)\r\n"
                 "-ERR TOP: too many arguments\r\n"
                 "-ERR invalid message number: 0\r\n"
                 "-ERR no such message: 99 (maildrop has 3)\r\n"
                 "-ERR UIDL: too many arguments\r\n"
                 "-ERR STAT: too many arguments\r\n"
                 "-ERR NOOP: too many arguments\r\n"
                 "-ERR RSET: too many arguments\r\n"
                 "-ERR QUIT: too many arguments\r\n"
                 "-ERR unknown command\r\n"
                 "-ERR empty command\r\n"
                 "-ERR USER is not allowed after login\r\n"
                 "-ERR PASS is not allowed after login\r\n"
                 "-ERR APOP is not allowed after login\r\n"
                 "-ERR STLS is only allowed before login\r\n"
                 "-ERR line too long (at most 512 octets)\r\n"
                 "-ERR invalid message number: 4294967297\r\n"
                 "+OK wizmail POP3 server signing off (0 messages deleted)\r\n<close>");
}

TEST_CASE("commands before login") {
  std::string t = transcript(
      "STAT\r\nLIST\r\nRETR 1\r\nDELE 1\r\nTOP 1 1\r\nUIDL\r\nRSET\r\nNOOP\r\n"
      "PASS secret\r\nUSER\r\nUSER a b\r\nAPOP alice\r\nAUTH PLAIN\r\nfoo\r\n"
      + std::string(10000, 'x') + "\r\nQUIT\r\n");
  CHECK(t == hello +
                 "-ERR STAT is not allowed before login\r\n"
                 "-ERR LIST is not allowed before login\r\n"
                 "-ERR RETR is not allowed before login\r\n"
                 "-ERR DELE is not allowed before login\r\n"
                 "-ERR TOP is not allowed before login\r\n"
                 "-ERR UIDL is not allowed before login\r\n"
                 "-ERR RSET is not allowed before login\r\n"
                 "-ERR NOOP is not allowed before login\r\n"
                 "-ERR send USER first\r\n"
                 "-ERR USER: missing argument\r\n"
                 "-ERR USER: too many arguments\r\n"
                 "-ERR APOP: missing argument\r\n"
                 "-ERR AUTH (SASL) is not offered; use USER/PASS or APOP\r\n"
                 "-ERR unknown command\r\n"
                 "-ERR line too long (at most 512 octets)\r\n"
                 "+OK wizmail POP3 server signing off\r\n<close>");
}

TEST_CASE("a 10,000-octet line that hides a command is never executed") {
  auto r = run("USER alice\r\nPASS secret\r\nDELE 1\r\n" + std::string(9990, 'A') +
                   "QUIT\r\nRSET\r\nQUIT\r\n",
               1);
  // The QUIT inside the long line's tail must not have run: RSET then QUIT.
  CHECK(r.world.commits.empty());
  CHECK(r.text.find("-ERR line too long") != std::string::npos);
  auto r2 = run("USER alice\r\nPASS secret\r\nDELE 1\r\n" + std::string(9000, 'A') +
                    "QUIT\r\nQUIT\r\n",
                64);
  REQUIRE(r2.world.commits.size() == 1);
  CHECK(r2.world.commits[0] == std::vector<std::size_t>{0});
}

TEST_CASE("every PASS from a network with failures waits before it is checked, right or wrong") {
  fake::World w = make_world();
  w.network_failures = 4;  // four failures from 192.0.2.x before this session
  fake::Backend b(w);
  Session s(options(), b);
  Output out;
  std::string t;
  s.feed("USER alice\r\nPASS wrong\r\nUSER alice\r\nPASS secret\r\n", out);
  render(out, t);
  // Nothing checked yet: a wait of 100 ms × 2^3, then the check.
  CHECK(t == "+OK send PASS\r\n<delay 800>");
  CHECK(w.checks == 0);
  CHECK(w.in_progress == 1);
  CHECK(s.has_backlog());
  s.resume(out);
  render(out, t);
  // Wrong, answered at once; the right password waits as long (longer:
  // the network has one failure more) before it is checked.
  CHECK(t == "+OK send PASS\r\n<delay 800>-ERR [AUTH] authentication failed\r\n"
             "+OK send PASS\r\n<delay 1600>");
  CHECK(w.network_failures == 5);
  CHECK(w.checks == 1);
  REQUIRE(s.has_backlog());
  s.resume(out);
  render(out, t);
  CHECK(t.ends_with("<delay 1600>+OK logged in; 3 messages (86 octets)\r\n"));
  CHECK(w.network_failures == 0);
  CHECK(w.in_progress == 0);
  CHECK_FALSE(s.has_backlog());
  CHECK(w.penalty_calls == std::vector<std::string>{"failed 192.0.2.7", "succeeded 192.0.2.7"});
}

TEST_CASE("a login attempt abandoned during its wait is never checked") {
  for (std::string line : {std::string("PASS secret"), "APOP alice " + md5_hex(ts + "secret")}) {
    CAPTURE(line);
    fake::World w = make_world();
    w.network_failures = 2;
    fake::Backend b(w);
    {
      Session s(options(), b);
      Output out;
      s.feed("USER alice\r\n" + line + "\r\n", out);
      CHECK(w.in_progress == 1);
      s.connection_lost();  // the client hung up during the wait
      CHECK(w.in_progress == 0);
      CHECK_FALSE(s.has_backlog());
    }
    CHECK(w.checks == 0);
    CHECK(w.logins.empty());  // no login, no POP-before-SMTP record
    CHECK(w.network_failures == 2);
    CHECK(w.penalty_calls.empty());
    // The same when the session is simply destroyed.
    {
      Session s(options(), b);
      Output out;
      s.feed("USER alice\r\n" + line + "\r\n", out);
      CHECK(w.in_progress == 1);
    }
    CHECK(w.in_progress == 0);
    CHECK(w.checks == 0);
  }
}

TEST_CASE("a blocked network: USER, PASS and APOP get -ERR [SYS/TEMP] and the connection closes") {
  for (std::string script : {std::string("USER alice\r\nPASS secret\r\nSTAT\r\n"),
                             "APOP alice " + md5_hex(ts + "secret") + "\r\nSTAT\r\n"}) {
    CAPTURE(script);
    fake::World w = make_world();
    w.network_blocked = true;
    auto t = transcript(script, options(), w);
    CHECK(t == hello + "-ERR [SYS/TEMP] too many failed logins from your network, try later\r\n<close>");
  }
  // Blocked between USER and PASS: PASS is refused the same way, unchecked.
  fake::World w = make_world();
  fake::Backend b(w);
  Session s(options(), b);
  Output out;
  std::string t;
  s.feed("USER alice\r\n", out);
  w.network_blocked = true;
  s.feed("PASS secret\r\nSTAT\r\n", out);
  render(out, t);
  CHECK(t == "+OK send PASS\r\n-ERR [SYS/TEMP] too many failed logins from your network, try later\r\n<close>");
  CHECK(w.checks == 0);
  CHECK(s.closed());
}

TEST_CASE("too many logins of the network in progress: -ERR [SYS/TEMP], unchecked, session goes on") {
  fake::World w = make_world();
  w.network_busy = true;
  fake::Backend b(w);
  Session s(options(), b);
  Output out;
  std::string t;
  s.feed("USER alice\r\nPASS secret\r\n", out);
  render(out, t);
  CHECK(t == "+OK send PASS\r\n-ERR [SYS/TEMP] too many logins from your network in progress, try later\r\n");
  CHECK(w.checks == 0);
  w.network_busy = false;
  t.clear();
  s.feed("USER alice\r\nPASS secret\r\n", out);
  render(out, t);
  CHECK(t.find("+OK logged in") != std::string::npos);
}

TEST_CASE("the penalty's shared state unreachable: -ERR [SYS/TEMP], unchecked, no attempt left open") {
  fake::World w = make_world();
  w.penalty_unavailable = true;
  fake::Backend b(w);
  Session s(options(), b);
  Output out;
  std::string t;
  s.feed("USER alice\r\nPASS secret\r\n", out);
  render(out, t);
  CHECK(t == "+OK send PASS\r\n-ERR [SYS/TEMP] cannot check the login now\r\n");
  CHECK(w.checks == 0);
  CHECK(w.in_progress == 0);
  CHECK_FALSE(s.closed());
  w.penalty_unavailable = false;  // Redis back
  t.clear();
  s.feed("USER alice\r\nPASS secret\r\n", out);
  render(out, t);
  CHECK(t.find("+OK logged in") != std::string::npos);
}

TEST_CASE("a command line in progress is visible to the connection (command deadline)") {
  fake::World w = make_world();
  fake::Backend b(w);
  Session s(options(), b);
  Output out;
  CHECK_FALSE(s.mid_command());
  s.feed("CA", out);
  CHECK(s.mid_command());
  s.feed("PA\r\nNO", out);
  CHECK(s.mid_command());
  s.feed("OP\r\n", out);
  CHECK_FALSE(s.mid_command());
}

TEST_CASE("login failures: [AUTH], growing delay before each later attempt, error.log, close after five") {
  std::string t = transcript(
      "USER alice\r\nPASS wrong\r\nUSER nobody\r\nPASS x\r\nUSER ../etc\r\nPASS x\r\n"
      "APOP alice 00000000000000000000000000000000\r\nUSER alice\r\nPASS bad\r\nNOOP\r\n");
  CHECK(t == hello +
                 "+OK send PASS\r\n-ERR [AUTH] authentication failed\r\n"
                 "+OK send PASS\r\n<delay 100>-ERR [AUTH] authentication failed\r\n"
                 "+OK send PASS\r\n<delay 200>-ERR [AUTH] authentication failed\r\n"
                 "<delay 400>-ERR [AUTH] authentication failed\r\n"
                 "+OK send PASS\r\n<delay 800>"
                 "-ERR [AUTH] authentication failed; too many failures, closing\r\n<close>");
  fake::World w = make_world();
  fake::Backend b(w);
  Session s(options(), b);
  Output out;
  s.feed("USER alice\r\nPASS hunter2\r\n", out);
  bool logged = false;
  int typed = 0;
  for (auto& l : out.logs) {
    if (l.channel == LogEvent::Channel::error &&
        l.text.find("login failed for 'alice' from 192.0.2.7") != std::string::npos)
      logged = true;
    // The metrics count this typed event, never the text.
    if (l.what == LogEvent::What::auth_failure) ++typed;
  }
  CHECK(logged);
  CHECK(typed == 1);
  for (auto& l : out.logs) CHECK(l.text.find("hunter2") == std::string::npos);  // no password
}

TEST_CASE("USER accepts name@local-domain, case-insensitive; not foreign domains") {
  CHECK(account_from_login("Alice@Example.COM", {"example.com"}) == "alice");
  CHECK(account_from_login("alice@evil.org", {"example.com"}).empty());
  CHECK(account_from_login("ALICE", {}) == "alice");
  CHECK(account_from_login(".hidden", {}).empty());
  CHECK(account_from_login("a/b", {}).empty());
  CHECK(account_from_login("", {}).empty());
  CHECK(account_from_login(std::string(65, 'a'), {}).empty());
  std::string t = transcript("USER Alice@example.com\r\nPASS secret\r\nQUIT\r\n");
  CHECK(t == hello + login_ok + "+OK wizmail POP3 server signing off (0 messages deleted)\r\n<close>");
}

TEST_CASE("PASS takes the rest of the line (spaces allowed)") {
  auto w = make_world();
  w.accounts["carol"] = {"two words ", false, {}};
  std::string t = transcript("USER carol\r\nPASS two words \r\nQUIT\r\n", options(), w);
  CHECK(t == hello + "+OK send PASS\r\n+OK logged in; 0 messages (0 octets)\r\n"
                 "+OK wizmail POP3 server signing off (0 messages deleted)\r\n<close>");
}

TEST_CASE("APOP: MD5 of timestamp and secret; hashed accounts refused") {
  CHECK(md5_hex("") == "d41d8cd98f00b204e9800998ecf8427e");
  // RFC 1939 §7 example
  CHECK(md5_hex("<1896.697170952@dbc.mtview.ca.us>tanstaaf") ==
        "c4c9334bac560ecc979e58001b3e22fb");
  std::string digest = md5_hex(ts + "secret");
  std::string t = transcript("APOP alice " + digest + "\r\nSTAT\r\nQUIT\r\n");
  CHECK(t == hello + "+OK logged in; 3 messages (86 octets)\r\n+OK 3 86\r\n"
                 "+OK wizmail POP3 server signing off (0 messages deleted)\r\n<close>");
  // upper-case hex is accepted
  std::string upper = digest;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  CHECK(transcript("APOP alice " + upper + "\r\n").find("+OK logged in") != std::string::npos);
  // bob has a hashed password: APOP cannot work even with the right digest
  t = transcript("APOP bob " + md5_hex(ts + "bobpw") + "\r\n");
  CHECK(t == hello + "-ERR [AUTH] authentication failed\r\n");
  t = transcript("APOP alice 123\r\nAPOP alice zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz\r\n");
  CHECK(t == hello + "-ERR APOP digest must be 32 hexadecimal digits\r\n"
                 "-ERR APOP digest must be 32 hexadecimal digits\r\n");
}

TEST_CASE("banner timestamps are unique") {
  auto a = make_apop_timestamp("h");
  auto b = make_apop_timestamp("h");
  CHECK(a != b);
  CHECK(a.front() == '<');
  CHECK(a.substr(a.size() - 3) == "@h>");
}

TEST_CASE("mailbox in use: [IN-USE], session stays in AUTHORIZATION") {
  auto w = make_world();
  w.locked.insert("alice");
  std::string t = transcript("USER alice\r\nPASS secret\r\nSTAT\r\nQUIT\r\n", options(), w);
  CHECK(t == hello + "+OK send PASS\r\n-ERR [IN-USE] mailbox is locked by another POP3 session\r\n"
                 "-ERR STAT is not allowed before login\r\n"
                 "+OK wizmail POP3 server signing off\r\n<close>");
}

TEST_CASE("storage errors are -ERR [SYS/TEMP] and logged") {
  auto w = make_world();
  w.fail_verify = true;
  CHECK(transcript("USER alice\r\nPASS secret\r\n", options(), w) ==
        hello + "+OK send PASS\r\n-ERR [SYS/TEMP] cannot check the password now\r\n");
  w = make_world();
  w.fail_open_message = true;
  CHECK(transcript("USER alice\r\nPASS secret\r\nRETR 1\r\nTOP 1 1\r\n", options(), w) ==
        hello + login_ok + "-ERR [SYS/TEMP] cannot read message 1\r\n"
                           "-ERR [SYS/TEMP] cannot read message 1\r\n");
}

TEST_CASE("CAPA and STLS") {
  auto o = options();
  std::string t = transcript("CAPA\r\nSTLS\r\n", o);
  CHECK(t == hello + "+OK capability list follows\r\nTOP\r\nUIDL\r\nUSER\r\nRESP-CODES\r\n"
                 "PIPELINING\r\nAUTH-RESP-CODE\r\nIMPLEMENTATION wizmail\r\n.\r\n"
                 "-ERR STLS is not available (no certificate configured)\r\n");
  o.tls_available = true;
  o.auth_requires_tls = true;
  // Plaintext pipelined after STLS is discarded, never executed.
  auto r = run("CAPA\r\nUSER alice\r\nSTLS\r\nUSER alice\r\nPASS secret\r\n", 512, o);
  CHECK(r.text == hello + "+OK capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\n"
                      "PIPELINING\r\nAUTH-RESP-CODE\r\nSTLS\r\nIMPLEMENTATION wizmail\r\n.\r\n"
                      "-ERR [AUTH] Plaintext authentication disallowed before STLS\r\n"
                      "+OK begin TLS negotiation\r\n<starttls>");
  CHECK(r.world.logins.empty());

  fake::World w = make_world();
  fake::Backend b(w);
  Session s(o, b);
  Output out;
  s.feed("STLS\r\nQUIT\r\n", out);
  REQUIRE(out.actions.size() == 2);
  CHECK(out.actions[1].kind == Action::Kind::start_tls);
  out.clear();
  s.feed("QUIT\r\n", out);  // still plaintext: ignored
  CHECK(out.actions.empty());
  s.tls_started();
  CHECK(s.tls_active());
  std::string text;
  s.feed("CAPA\r\nSTLS\r\nUSER alice\r\nPASS secret\r\nCAPA\r\n", out);
  render(out, text);
  CHECK(text == "+OK capability list follows\r\nTOP\r\nUIDL\r\nUSER\r\nRESP-CODES\r\n"
                "PIPELINING\r\nAUTH-RESP-CODE\r\nIMPLEMENTATION wizmail\r\n.\r\n"
                "-ERR TLS is already active\r\n" + login_ok +
                "+OK capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\n"
                "PIPELINING\r\nAUTH-RESP-CODE\r\nIMPLEMENTATION wizmail\r\n.\r\n");
}

TEST_CASE("auth_requires_tls: loopback exempt, APOP refused too") {
  auto o = options();
  o.auth_requires_tls = true;
  std::string t = transcript("USER alice\r\nPASS secret\r\nAPOP alice " + md5_hex(ts + "secret") + "\r\n", o);
  CHECK(t == hello + "-ERR [AUTH] Plaintext authentication disallowed before STLS\r\n"
                 "-ERR [AUTH] Plaintext authentication disallowed before STLS\r\n"
                 "-ERR [AUTH] Plaintext authentication disallowed before STLS\r\n");
  o.peer_loopback = true;
  CHECK(transcript("USER alice\r\nPASS secret\r\n", o) == hello + login_ok);
  o.peer_loopback = false;
  o.tls_active = true;  // implicit TLS
  CHECK(transcript("USER alice\r\nPASS secret\r\n", o) == hello + login_ok);
}

TEST_CASE("uidl_interval paces UIDL lines with delay actions") {
  auto o = options();
  o.uidl_interval_ms = 25;
  std::string t = transcript("USER alice\r\nPASS secret\r\nUIDL\r\n", o);
  CHECK(t == hello + login_ok + "+OK unique-id listing follows\r\n1 1000.M1P1.host\r\n<delay 25>"
                 "2 1001.M2P1.host\r\n<delay 25>3 1002.M3P1.host\r\n<delay 25>.\r\n");
}

TEST_CASE("pop.log events: one per command, secrets masked") {
  fake::World w = make_world();
  fake::Backend b(w);
  Session s(options(), b);
  Output out;
  s.feed("USER alice\r\nPASS secret\r\nRETR 1\r\nfoo\r\n", out);
  std::vector<std::string> pop;
  for (auto& l : out.logs)
    if (l.channel == LogEvent::Channel::pop) pop.push_back(l.text);
  CHECK(pop == std::vector<std::string>{"USER alice -> +OK send PASS",
                                        "login alice from 192.0.2.7",
                                        "PASS **** -> +OK logged in; 3 messages (86 octets)",
                                        "RETR 1 -> +OK 23 octets",
                                        "foo -> -ERR unknown command"});
}

TEST_CASE("NUL in a command is refused") {
  std::string script = "NO";
  script += '\0';
  script += "OP\r\nQUIT\r\n";
  CHECK(transcript(script) == hello + "-ERR invalid character in command\r\n"
                                   "+OK wizmail POP3 server signing off\r\n<close>");
}

TEST_CASE("control characters in a command are refused, never echoed") {
  // Found by the pop3_session fuzzer: "DELE \r7" was answered
  // "-ERR invalid message number: \r7", a bare CR in the response.
  std::string t = transcript("USER alice\r\nPASS secret\r\nDELE \r7\r\nTOP 1 \x1b[2J\r\n"
                             "LIST \x7f\r\nNOOP\tx\r\nQUIT\r\n");
  CHECK(t == hello + login_ok +
                 "-ERR invalid character in command\r\n"
                 "-ERR invalid character in command\r\n"
                 "-ERR invalid character in command\r\n"
                 "-ERR unknown command\r\n"  // a tab is a character, not a separator
                 "+OK wizmail POP3 server signing off (0 messages deleted)\r\n<close>");
}

TEST_CASE("pipelined RETRs are answered in bounded batches (open files stay bounded)") {
  std::string script = "USER alice\r\nPASS secret\r\n";
  for (int i = 0; i < 100; ++i) script += "RETR " + std::to_string(i % 3 + 1) + "\r\n";
  script += "QUIT\r\n";
  fake::World w = make_world();
  fake::Backend b(w);
  Session s(options(), b);
  Output out;
  s.feed(script, out);
  std::size_t streams = 0;
  for (auto& a : out.actions) streams += a.kind == Action::Kind::stream;
  CHECK(streams == Session::max_streams_per_batch);
  CHECK(s.has_backlog());
  std::string text;
  render(out, text);
  int batches = 1;
  while (s.has_backlog()) {
    s.resume(out);
    streams = 0;
    for (auto& a : out.actions) streams += a.kind == Action::Kind::stream;
    CHECK(streams <= Session::max_streams_per_batch);
    render(out, text);
    ++batches;
  }
  CHECK(batches == 4);
  CHECK(s.closed());
  // Same bytes as one-command-at-a-time.
  CHECK(text == transcript(script).substr(hello.size()));
}

TEST_CASE("uidl_of: a valid base name as is, anything else as a stable MD5") {
  const std::string n70(70, 'a'), n71(71, 'a');
  CHECK(uidl_of("1000.M1P1.host") == "1000.M1P1.host");
  CHECK(uidl_of(n70) == n70);
  CHECK(uidl_of("!~") == "!~");  // 0x21 and 0x7E are allowed
  CHECK(uidl_of(n71) == md5_hex(n71));
  CHECK(uidl_of("") == md5_hex(""));
  CHECK(uidl_of("has space") == md5_hex("has space"));
  CHECK(uidl_of("tab\there") == md5_hex("tab\there"));
  CHECK(uidl_of("del\x7f") == md5_hex("del\x7f"));
  CHECK(uidl_of("caf\xc3\xa9") == md5_hex("caf\xc3\xa9"));
  CHECK(uidl_of("cr\r\nlf") == md5_hex("cr\r\nlf"));
  // RFC 1321 test vector: the digest really is MD5 of the name.
  CHECK(uidl_of("message digest") == "f96b697d7cb7938d525a2f31aaf161d0");
  for (const std::string& bad : {n71, std::string("has space"), std::string("\x80")}) {
    CAPTURE(bad);
    auto u = uidl_of(bad);
    CHECK(u == uidl_of(bad));  // stable
    CHECK(u.size() == 32);
    CHECK(u.find_first_not_of("0123456789abcdef") == std::string::npos);
  }
  CHECK(uidl_of(n71) != uidl_of(std::string(72, 'a')));
}

TEST_CASE("UIDL never sends a unique-id longer than 70 octets or outside 0x21..0x7E") {
  const std::string long_name =
      "1700000000.M123456P7890Q12R0123456789abcdef.a-very-long-mail-host.example.com,S=123456";
  REQUIRE(long_name.size() > 70);
  fake::World w;
  w.accounts["alice"] = {"secret", false,
                         {{"1000.M1P1.host", "a\r\n"},
                          {long_name, "b\r\n"},
                          {"foreign name with spaces", "c\r\n"},
                          {std::string("bin\x01\xff"), "d\r\n"}}};
  std::string t = transcript(
      "USER alice\r\nPASS secret\r\nUIDL\r\nUIDL 2\r\nUIDL 3\r\nUIDL 4\r\nQUIT\r\n", options(), w);
  const std::string d2 = md5_hex(long_name), d3 = md5_hex("foreign name with spaces"),
                    d4 = md5_hex(std::string("bin\x01\xff"));
  CHECK(t == hello + "+OK send PASS\r\n+OK logged in; 4 messages (12 octets)\r\n"
                 "+OK unique-id listing follows\r\n1 1000.M1P1.host\r\n2 " + d2 + "\r\n3 " + d3 +
                 "\r\n4 " + d4 + "\r\n.\r\n+OK 2 " + d2 + "\r\n+OK 3 " + d3 + "\r\n+OK 4 " + d4 +
                 "\r\n+OK wizmail POP3 server signing off (0 messages deleted)\r\n<close>");
  // Every unique-id line of the listing obeys RFC 1939 §7.
  auto list_start = t.find("+OK unique-id listing follows\r\n");
  REQUIRE(list_start != std::string::npos);
  std::string_view rest = std::string_view(t).substr(list_start);
  rest.remove_prefix(rest.find("\r\n") + 2);
  int lines = 0;
  while (!rest.starts_with(".\r\n")) {
    auto eol = rest.find("\r\n");
    REQUIRE(eol != std::string_view::npos);
    std::string_view line = rest.substr(0, eol);
    std::string_view id = line.substr(line.find(' ') + 1);
    CHECK(id.size() >= 1);
    CHECK(id.size() <= 70);
    for (char c : id) {
      auto u = static_cast<unsigned char>(c);
      CHECK((u >= 0x21 && u <= 0x7E));
    }
    rest.remove_prefix(eol + 2);
    ++lines;
  }
  CHECK(lines == 4);
}

TEST_CASE("may_block: logins and QUIT's update go off the I/O thread, the rest stays") {
  fake::World w = make_world();
  fake::Backend b(w);
  Session s(options(), b);
  Output out;
  s.greeting(out);
  // Authorization: any line may complete a login.
  CHECK(s.may_block("USER alice\r\n"));
  CHECK(s.may_block("CAPA\r\n"));
  s.feed("USER alice\r\nPASS secret\r\n", out);
  out.clear();
  REQUIRE(s.state() == State::transaction);
  CHECK_FALSE(s.may_block("STAT\r\n"));
  CHECK_FALSE(s.may_block("RETR 1\r\nDELE 1\r\nLIST\r\n"));
  CHECK(s.may_block("NOOP\r\nquitting\r\n"));  // conservative: a QUIT-like line start
  CHECK(s.may_block("QUIT\r\n"));
  CHECK(s.may_block("quit\r\n"));
  CHECK(s.may_block("DELE 1\r\nQuIt\r\n"));
  CHECK_FALSE(s.may_block("NOOP X QUIT\r\n"));  // QUIT not at a line start
  // A command split across reads: "QU" waits in the parser, "IT\r\n" comes.
  s.feed("NOOP\r\nQU", out);
  out.clear();
  CHECK(s.may_block("IT\r\n"));
  CHECK_FALSE(s.may_block("I"));  // no complete line yet: feeding it runs nothing
  s.feed("IT\r\n", out);
  CHECK(s.state() != State::transaction);
  CHECK_FALSE(s.may_block("NOOP\r\n"));  // after QUIT nothing runs
}
