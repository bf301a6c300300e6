// Hostile-client limits of the SMTP session (issue 13, item 4): talking
// before the greeting, DATA with the message pipelined behind it, junk
// commands without end, BDAT.
#include "smtp/session.hpp"

#include <doctest/doctest.h>

#include <string>

#include "harness.hpp"

using namespace wizmail;
using namespace wizmail::smtp;
using namespace wizmail::smtp::test;

namespace {

using Rig = SessionRig;

bool has_event(const Output& out, LogEvent::Kind k, std::string_view text) {
  for (const auto& e : out.events)
    if (e.kind == k && e.text.find(text) != std::string::npos) return true;
  return false;
}

constexpr std::string_view kTxn =
    "EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<alice@example.org>\r\n";

}  // namespace

TEST_CASE("pregreet: bytes before the greeting get 554 and close, no 220") {
  for (std::string_view early : {std::string_view("EHLO spambot\r\n"), std::string_view("E"),
                                 std::string_view("QUIT\r\n")}) {
    CAPTURE(early);
    Rig r;
    auto& s = r.make();
    auto rep = r.feed_raw(early);
    CHECK(rep == "554 5.5.1 Error: SMTP protocol synchronization: talked before the greeting\r\n");
    CHECK(r.out.close);
    CHECK(s.state() == State::closed);
    CHECK(has_event(r.out, LogEvent::Kind::error, "pregreet"));
    // Nothing more: no greeting afterwards, no command processed.
    r.out.clear();
    s.start(r.out);
    CHECK(r.out.replies.empty());
    CHECK(r.feed_raw("NOOP\r\n").empty());
  }
}

TEST_CASE("pregreet: nothing before the greeting is the normal session") {
  Rig r;
  auto& s = r.make();
  CHECK(r.feed_raw("").empty());  // a wake-up without bytes is no talk
  CHECK_FALSE(r.out.close);
  r.out.clear();
  s.start(r.out);
  CHECK(r.out.replies == "220 mx.example.org ESMTP wizmail\r\n");
  r.out.clear();
  s.start(r.out);  // one greeting only
  CHECK(r.out.replies.empty());
  CHECK(r.feed_raw("NOOP\r\n") == "250 2.0.0 Ok\r\n");
}

TEST_CASE("DATA with the message pipelined behind it: 554 5.5.0, close, nothing stored") {
  Rig r;
  auto& s = r.start();
  auto rep = r.feed_raw(std::string(kTxn) + "DATA\r\nSubject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n");
  CHECK(rep ==
        "250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 52428800\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n"
        "250-AUTH PLAIN LOGIN CRAM-MD5\r\n250 ENHANCEDSTATUSCODES\r\n250 2.1.0 Ok\r\n"
        "250 2.1.5 Ok\r\n554 5.5.0 Error: SMTP protocol synchronization\r\n");
  CHECK(r.out.close);
  CHECK_FALSE(r.out.commit);
  CHECK(s.state() == State::closed);
  CHECK(r.sink.begins == 0);  // no 354: no message was opened
  CHECK(r.sink.data.empty());
  CHECK(has_event(r.out, LogEvent::Kind::error, "improper command pipelining after DATA"));
}

TEST_CASE("DATA followed by a single byte, or by bytes the connection holds, is refused") {
  SUBCASE("one byte in the same read") {
    Rig r;
    r.start();
    r.feed_raw(kTxn);
    CHECK(r.feed_raw("DATA\r\nS") == "554 5.5.0 Error: SMTP protocol synchronization\r\n");
    CHECK(r.out.close);
  }
  SUBCASE("more bytes already received (more_pending)") {
    Rig r;
    r.start();
    r.feed_raw(kTxn);
    CHECK(r.feed_raw("DATA\r\n", true) == "554 5.5.0 Error: SMTP protocol synchronization\r\n");
    CHECK(r.out.close);
    CHECK(r.sink.begins == 0);
  }
  SUBCASE("lower case, and DATA refused for lack of recipients: closed all the same") {
    Rig r;
    r.start();
    r.feed_raw("EHLO c\r\nMAIL FROM:<a@example.com>\r\n");
    CHECK(r.feed_raw("data\r\nMAIL FROM:<evil@example.com>\r\n") ==
          "554 5.5.0 Error: SMTP protocol synchronization\r\n");
    CHECK(r.out.close);
  }
  SUBCASE("after a stashed commit: the next group's DATA with its message behind it") {
    Rig r;
    auto& s = r.start();
    r.feed_raw(kTxn);
    CHECK(r.feed_raw("DATA\r\n") == "354 End data with <CR><LF>.<CR><LF>\r\n");
    r.feed_raw(std::string("hi\r\n.\r\n") + std::string(kTxn.substr(8)) + "DATA\r\nsmuggled\r\n.\r\n");
    REQUIRE(r.out.commit);
    r.out.clear();
    s.on_commit(std::string("Q1"), r.out);
    CHECK(r.out.replies ==
          "250 2.0.0 Ok: queued as Q1\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
          "554 5.5.0 Error: SMTP protocol synchronization\r\n");
    CHECK(r.out.close);
  }
}

TEST_CASE("DATA as the last pipelined command, the message after the 354: accepted") {
  Rig r;
  auto& s = r.start();
  auto rep = r.feed_raw(std::string(kTxn) + "DATA\r\n");
  CHECK(rep.ends_with("250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"));
  // The connection saw nothing more when it fed DATA: more_pending false.
  CHECK(r.feed_raw("Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n").empty());
  CHECK(r.out.commit);
  r.out.clear();
  s.on_commit(std::string("Q1"), r.out);
  CHECK(r.out.replies == "250 2.0.0 Ok: queued as Q1\r\n221 2.0.0 Bye\r\n");
  // A DATA line inside the message is data, not a command.
  Rig r2;
  r2.start();
  r2.feed_raw(std::string(kTxn) + "DATA\r\n");
  CHECK(r2.feed_raw("DATA\r\nmore\r\n.\r\n").empty());
  CHECK(r2.out.commit);
}

TEST_CASE("junk commands: the one after junk_command_limit gets 421 and closes") {
  Rig r;
  r.env.config->smtp.junk_command_limit = 5;
  auto& s = r.start();
  // HELO, EHLO, NOOP, RSET, VRFY, HELP all count; MAIL/RCPT do not.
  CHECK(r.feed_raw("HELO c\r\n") == "250 mx.example.org\r\n");
  r.feed_raw("EHLO c\r\nNOOP\r\nMAIL FROM:<a@example.com>\r\nRSET\r\n");
  CHECK_FALSE(r.out.close);
  CHECK(r.feed_raw("VRFY bob\r\n").starts_with("252 "));
  CHECK_FALSE(r.out.close);
  CHECK(r.feed_raw("HELP\r\nNOOP\r\n") == "421 4.7.0 mx.example.org Error: too many junk commands\r\n");
  CHECK(r.out.close);
  CHECK(s.state() == State::closed);
  CHECK(has_event(r.out, LogEvent::Kind::error, "too many junk commands"));
  CHECK(r.feed_raw("NOOP\r\n").empty());
}

TEST_CASE("junk commands: the default limit is 100, an accepted message resets the count") {
  Rig r;
  CHECK(r.env.config->smtp.junk_command_limit == 100);
  auto& s = r.start();
  std::string noops;
  for (int i = 0; i < 99; ++i) noops += "NOOP\r\n";
  r.feed_raw(noops);  // 99
  r.feed_raw(kTxn);   // EHLO: 100
  CHECK_FALSE(r.out.close);
  CHECK(r.feed_raw("DATA\r\n").starts_with("354"));
  r.feed_raw("x\r\n.\r\n");
  r.out.clear();
  s.on_commit(std::string("Q1"), r.out);
  CHECK(r.out.replies == "250 2.0.0 Ok: queued as Q1\r\n");
  r.feed_raw(noops + "NOOP\r\n");  // 100 after the message: still allowed
  CHECK_FALSE(r.out.close);
  CHECK(r.feed_raw("NOOP\r\n").starts_with("421 4.7.0"));
  CHECK(r.out.close);
}

TEST_CASE("junk commands: a refused message does not reset the count; 0 = no limit") {
  SUBCASE("refused") {
    Rig r;
    r.env.config->smtp.junk_command_limit = 2;
    auto& s = r.start();
    r.feed_raw(kTxn);  // EHLO: 1
    r.feed_raw("DATA\r\n");
    r.feed_raw("x\r\n.\r\n");
    r.out.clear();
    s.on_commit(unexpected(Error::smtp(451, "4.3.0", "no")), r.out);
    CHECK(r.feed_raw("NOOP\r\n") == "250 2.0.0 Ok\r\n");  // 2
    CHECK(r.feed_raw("NOOP\r\n").starts_with("421 4.7.0"));
  }
  SUBCASE("no limit") {
    Rig r;
    r.env.config->smtp.junk_command_limit = 0;
    r.start();
    std::string noops;
    for (int i = 0; i < 1000; ++i) noops += "NOOP\r\n";
    r.feed_raw(noops);
    CHECK_FALSE(r.out.close);
  }
}

TEST_CASE("BDAT: 502 5.5.1 command not implemented, counted as an error") {
  Rig r;
  r.opt.max_errors = 2;
  r.start();
  CHECK(r.feed_raw("BDAT 10 LAST\r\n") == "502 5.5.1 Error: command not implemented\r\n");
  CHECK(r.feed_raw("EHLO c\r\n").find("CHUNKING") == std::string::npos);
  CHECK(r.feed_raw("bdat 1\r\n") ==
        "502 5.5.1 Error: command not implemented\r\n"
        "421 4.7.0 mx.example.org Error: too many errors\r\n");
  CHECK(r.out.close);
}
