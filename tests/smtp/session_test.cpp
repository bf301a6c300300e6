#include "smtp/session.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>

#include "harness.hpp"
#include "smtp/parser.hpp"
#include "util/strings.hpp"
#include "util/utf8.hpp"
#include "wizmail/aliases.hpp"

using namespace wizmail;
using namespace wizmail::smtp;
using namespace wizmail::smtp::test;

namespace {

using Rig = SessionRig;

bool any_event_contains(const std::vector<LogEvent>& ev, LogEvent::Kind k, std::string_view text) {
  for (const auto& e : ev)
    if (e.kind == k && e.text.find(text) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("the 250 to DATA comes only from on_commit; input waits meanwhile") {
  Rig r;
  auto& s = r.start();
  r.feed("EHLO client.example\r\nMAIL FROM:<a@example.com> SIZE=20 BODY=8BITMIME\r\n"
         "RCPT TO:<alice@example.org>\r\nRCPT TO:<Bob@Remote.Example>\r\n");
  // Relay is allowed here because the sender... is not local: expect a denial.
  CHECK(r.out.replies.find("554 5.7.1 <Bob@remote.example>: Relay access denied") != std::string::npos);
  auto rep = r.feed("DATA\r\nhello\r\n.\r\nNOOP\r\n");
  CHECK(rep == "354 End data with <CR><LF>.<CR><LF>\r\n");
  CHECK(r.out.commit);
  CHECK(s.awaiting());
  CHECK(s.state() == State::awaiting_commit);
  const auto& t = s.transaction();
  CHECK(t.reverse_path == "a@example.com");
  REQUIRE(t.recipients.size() == 1);
  CHECK(t.recipients[0].account == "alice");
  CHECK(t.declared_size == 20);
  CHECK(t.body == BodyType::eight_bit_mime);
  // More input while the commit runs is kept, not processed.
  CHECK(r.feed("RSET\r\n").empty());
  r.out.clear();
  s.on_commit(std::string("ABC123"), r.out);
  CHECK(r.out.replies == "250 2.0.0 Ok: queued as ABC123\r\n250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n");
  CHECK_FALSE(s.awaiting());
  CHECK(s.state() == State::ready);
  CHECK_FALSE(s.transaction().active);
}

TEST_CASE("the stored message starts with our Received: header") {
  Rig r;
  r.env.accounts["alice"] = FakeAccount{};
  auto& s = r.start();
  r.feed("EHLO client.example\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<alice@example.org>\r\n"
         "DATA\r\nSubject: s\r\n\r\nbody\r\n.\r\n");
  REQUIRE(r.out.commit);
  CHECK(r.sink.data ==
        "Received: from client.example ([198.51.100.7])\r\n"
        "\tby mx.example.org (wizmail) with ESMTP id S1\r\n"
        "\tfor <alice@example.org>; Tue, 4 Feb 1992 02:35:52 +0000\r\n"
        "Subject: s\r\n\r\nbody\r\n");
  CHECK(s.message_size() == static_cast<std::int64_t>(r.sink.data.size()));
}

TEST_CASE("Received: says ESMTPSA after STARTTLS and AUTH; IPv6 literal") {
  Rig r(Listener::smtp, true);
  r.opt.client_ip = "2001:db8::7";
  auto& s = r.start();
  r.feed("EHLO c\r\nSTARTTLS\r\n");
  REQUIRE(r.out.start_tls);
  r.out.clear();
  s.on_tls_started(r.out);
  CHECK(s.tls_active());
  std::string plain = base64_encode(std::string("\0alice\0secret", 13));
  r.feed("EHLO c\r\nAUTH PLAIN " + plain + "\r\nMAIL FROM:<alice@example.org>\r\n"
         "RCPT TO:<x@remote.example>\r\nRCPT TO:<y@remote.example>\r\nDATA\r\n.\r\n");
  REQUIRE(r.out.commit);
  CHECK(r.sink.data.starts_with("Received: from c ([IPv6:2001:db8::7])\r\n"
                                "\tby mx.example.org (wizmail) with ESMTPSA id S1\r\n"
                                "\tTue, 4 Feb 1992"));
  CHECK(s.account() == "alice");
  CHECK(s.transaction().has_remote());
  r.out.clear();
  s.on_commit(std::string("Q"), r.out);
  CHECK(r.env.sends_recorded == std::vector<std::string>{"alice relayed"});
}

TEST_CASE("Received: names the negotiated TLS as Postfix does (STARTTLS and implicit TLS)") {
  {
    Rig r(Listener::smtp, true);
    auto& s = r.start();
    r.feed("EHLO c\r\nSTARTTLS\r\n");
    REQUIRE(r.out.start_tls);
    r.out.clear();
    s.on_tls_started(r.out, "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)");
    r.feed("EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n.\r\n");
    REQUIRE(r.out.commit);
    CHECK(r.sink.data.starts_with("Received: from c ([198.51.100.7])\r\n"
                                  "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n"
                                  "\tby mx.example.org (wizmail) with ESMTPS id S1\r\n"));
  }
  {
    Rig r;  // as a TLS-from-the-first-byte session hands it over
    r.opt.tls_active = true;
    r.opt.tls_cipher = "TLSv1.2 with cipher ECDHE-RSA-AES128-GCM-SHA256 (128/128 bits)";
    r.start();
    r.feed("EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n.\r\n");
    REQUIRE(r.out.commit);
    CHECK(r.sink.data.find("\t(using TLSv1.2 with cipher ECDHE-RSA-AES128-GCM-SHA256 (128/128 bits))\r\n"
                           "\tby mx.example.org (wizmail) with ESMTPS") != std::string::npos);
  }
  {
    Rig r;  // no TLS: no "using" line
    r.opt.tls_cipher = "TLSv1.3 with cipher X (1/1 bits)";
    r.start();
    r.feed("EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n.\r\n");
    REQUIRE(r.out.commit);
    CHECK(r.sink.data.find("using") == std::string::npos);
  }
}

TEST_CASE("daily counter: only committed messages with remote recipients count") {
  Rig r;
  r.env.config->smtp.relay = true;
  auto& s = r.start();
  r.feed("EHLO c\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n.\r\n");
  REQUIRE(r.out.commit);
  r.out.clear();
  s.on_commit(std::string("Q1"), r.out);
  CHECK(r.env.sends_recorded.empty());
  r.feed("MAIL FROM:<alice@example.org>\r\nRCPT TO:<x@remote.example>\r\nDATA\r\n.\r\n");
  REQUIRE(r.out.commit);
  r.out.clear();
  auto e = Error::smtp(451, "4.3.0", "queue unavailable");
  s.on_commit(unexpected<Error>(e), r.out);
  CHECK(r.out.replies == "451 4.3.0 queue unavailable\r\n");
  CHECK(r.env.sends_recorded.empty());  // a failed commit is not a send
  r.feed("MAIL FROM:<alice@example.org>\r\nRCPT TO:<x@remote.example>\r\nDATA\r\n.\r\n");
  r.out.clear();
  s.on_commit(std::string("Q3"), r.out);
  CHECK(r.env.sends_recorded == std::vector<std::string>{"alice relayed"});
}

TEST_CASE("a commit error without an SMTP code becomes 451 4.3.0") {
  Rig r;
  auto& s = r.start();
  r.feed("EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n.\r\n");
  REQUIRE(r.out.commit);
  r.out.clear();
  s.on_commit(fail(Errc::io, "fsync: EIO"), r.out);
  CHECK(r.out.replies == "451 4.3.0 Error: queue file write error\r\n");
  CHECK(any_event_contains(r.out.events, LogEvent::Kind::error, "fsync: EIO"));
}

TEST_CASE("relay denials, rejects and auth failures are error events; secrets never logged") {
  Rig r;
  r.env.config->smtp.reject_mailaddress = {"bad@example.net"};
  r.start();
  std::string pass_b64 = base64_encode(std::string("\0alice\0hunter2", 14));
  r.feed("EHLO c\r\nAUTH PLAIN " + pass_b64 + "\r\n");
  CHECK(r.out.delay.count() == 0);  // a clean network's first attempt does not wait
  CHECK(any_event_contains(r.out.events, LogEvent::Kind::error,
                           "PLAIN authentication failed for user \"alice\""));
  auto events = r.out.events;
  r.out.clear();
  r.s->resume(r.out);
  r.feed("AUTH LOGIN\r\n" + base64_encode("alice") + "\r\n" + base64_encode("hunter2") + "\r\n");
  for (const auto& e : r.out.events) events.push_back(e);
  r.out.clear();
  r.s->resume(r.out);
  r.feed("MAIL FROM:<bad@example.net>\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<x@remote.example>\r\n");
  for (const auto& e : r.out.events) events.push_back(e);
  CHECK(any_event_contains(events, LogEvent::Kind::error, "sender rejected"));
  CHECK(any_event_contains(events, LogEvent::Kind::error,
                           "relay denied: <a@example.com> -> <x@remote.example>"));
  CHECK(any_event_contains(events, LogEvent::Kind::command, "AUTH PLAIN"));
  CHECK(any_event_contains(events, LogEvent::Kind::reply, "535 5.7.8"));
  // The metrics count typed events, never the text: each failed AUTH is
  // one, and nothing else is (not the sender rejected, not the relay denied).
  const auto typed = std::count_if(events.begin(), events.end(), [](const LogEvent& e) {
    return e.what == LogEvent::What::auth_failure;
  });
  const auto said = std::count_if(events.begin(), events.end(), [](const LogEvent& e) {
    return e.kind == LogEvent::Kind::error && e.text.find("authentication failed for user") != std::string::npos;
  });
  CHECK(typed >= 1);
  CHECK(typed == said);
  for (const auto& e : events) {
    CAPTURE(e.text);
    CHECK(e.text.find(pass_b64) == std::string::npos);
    CHECK(e.text.find("hunter2") == std::string::npos);
    CHECK(e.text.find(base64_encode("hunter2")) == std::string::npos);
  }
}

TEST_CASE("an attempt from a penalised network waits before it is checked, right or wrong") {
  for (std::string pass : {"no", "secret"}) {
    CAPTURE(pass);
    Rig r;
    r.env.network_failures = 1;
    auto& s = r.start();
    auto rep = r.feed("EHLO c\r\nAUTH PLAIN " + base64_encode(std::string("\0alice\0", 7) + pass) +
                      "\r\nNOOP\r\n");
    // Nothing checked yet, no answer: the session waits 1 s first.
    CHECK(rep.ends_with("250 ENHANCEDSTATUSCODES\r\n"));
    CHECK(r.out.delay.count() == 1000);
    CHECK(s.awaiting());
    CHECK(std::find(r.env.calls.begin(), r.env.calls.end(), "auth alice") == r.env.calls.end());
    CHECK(r.env.auth_in_progress == 1);
    CHECK(r.feed("NOOP\r\n").empty());
    r.out.clear();
    s.resume(r.out);
    // Now checked, answered at once, then the pipelined commands.
    CHECK(r.out.delay.count() == 0);
    CHECK(r.out.replies == (pass == "secret" ? "235 2.7.0 Authentication successful\r\n"
                                             : "535 5.7.8 Error: authentication failed\r\n") +
                               std::string("250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n"));
    CHECK(r.env.auth_in_progress == 0);
    auto begin = std::find(r.env.calls.begin(), r.env.calls.end(), "auth_begin 198.51.100.7");
    auto check = std::find(r.env.calls.begin(), r.env.calls.end(), "auth alice");
    auto end = std::find(r.env.calls.begin(), r.env.calls.end(), "auth_end 198.51.100.7");
    CHECK(begin < check);
    CHECK(check < end);
    CHECK(end != r.env.calls.end());
  }
}

TEST_CASE("an attempt abandoned during its wait is never checked, and its place is given back") {
  Rig r;
  r.env.network_failures = 3;
  r.start();
  r.feed("EHLO c\r\nAUTH LOGIN\r\n" + base64_encode("alice") + "\r\n" + base64_encode("secret") +
         "\r\n");
  CHECK(r.out.delay.count() == 4000);
  CHECK(r.env.auth_in_progress == 1);
  r.s.reset();  // the client left; the connection drops the session
  CHECK(r.env.auth_in_progress == 0);
  CHECK(std::find(r.env.calls.begin(), r.env.calls.end(), "auth alice") == r.env.calls.end());
  CHECK(std::find(r.env.calls.begin(), r.env.calls.end(), "auth_succeeded 198.51.100.7") ==
        r.env.calls.end());
  CHECK(r.env.network_failures == 3);
}

TEST_CASE("the wait grows with the session's own failures when the network has none recorded") {
  Rig r;
  r.opt.max_auth_failures = 10;
  r.opt.auth_max_delay = std::chrono::milliseconds(3000);
  auto& s = r.start();
  r.feed("EHLO c\r\n");
  std::vector<long> waits;
  for (int i = 0; i < 4; ++i) {
    r.env.network_failures = 0;  // as if the shared table had forgotten
    auto rep = r.feed("AUTH PLAIN " + base64_encode(std::string("\0alice\0no", 9)) + "\r\n");
    waits.push_back(static_cast<long>(r.out.delay.count()));
    r.out.clear();
    s.resume(r.out);
    CHECK(rep + r.out.replies == "535 5.7.8 Error: authentication failed\r\n");
  }
  CHECK(waits == std::vector<long>{0, 1000, 2000, 3000});
}

TEST_CASE("a command line in progress is visible to the connection (command deadline)") {
  Rig r;
  auto& s = r.start();
  CHECK_FALSE(s.mid_command());
  r.feed("EH");
  CHECK(s.mid_command());
  r.feed("LO c\r\n");
  CHECK_FALSE(s.mid_command());
  r.feed("NOOP\r\nNO");
  CHECK(s.mid_command());
  r.feed("OP\r\n");
  CHECK_FALSE(s.mid_command());
  // A line too long is being skipped: still mid-command until its LF.
  r.feed(std::string(600, 'x'));
  CHECK(s.mid_command());
  r.feed("\r\n");
  CHECK_FALSE(s.mid_command());
}

TEST_CASE("STARTTLS discards what was pipelined behind it and resets the session") {
  Rig r(Listener::smtp, true);
  auto& s = r.start();
  auto rep = r.feed("EHLO c\r\nMAIL FROM:<a@example.com>\r\nRSET\r\nSTARTTLS\r\nNOOP\r\nMAIL FROM:<x@y.z>\r\nNO");
  CHECK(rep.ends_with("250 2.0.0 Ok\r\n220 2.0.0 Ready to start TLS\r\n"));
  CHECK(r.out.start_tls);
  CHECK(s.state() == State::tls_pending);
  CHECK(r.feed("OP\r\n").empty());  // still before the handshake: discarded
  r.out.clear();
  s.on_tls_started(r.out);
  CHECK(r.out.replies.empty());
  CHECK(s.state() == State::initial);
  CHECK(s.helo().empty());
  CHECK(r.feed("NOOP\r\n") == "250 2.0.0 Ok\r\n");
  CHECK(r.feed("MAIL FROM:<a@example.com>\r\n") == "503 5.5.1 Error: send HELO/EHLO first\r\n");
  auto ehlo = r.feed("EHLO c\r\n");
  CHECK(ehlo.find("STARTTLS") == std::string::npos);
}

TEST_CASE("destroying a session mid-DATA never touches the sink") {
  Rig r;
  r.start();
  r.feed("EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\npartial body\r\n");
  CHECK(r.s->state() == State::data);
  int writes = r.sink.writes;
  r.s.reset();
  CHECK(r.sink.aborts == 0);
  CHECK(r.sink.writes == writes);
}

TEST_CASE("refused messages are aborted, never committed") {
  Rig r;
  r.start();
  r.feed("EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\nbare\nlf\r\n.\r\n");
  CHECK_FALSE(r.out.commit);
  CHECK(r.out.replies.ends_with("550 5.5.2 Error: bare <CR> or <LF> received in message data; use <CR><LF>\r\n"));
  CHECK(r.sink.aborts == 1);
  CHECK(r.sink.begins == 1);
}

TEST_CASE("POP-before-SMTP passes the configured TTL; daily limit asks for the account") {
  Rig r;
  r.env.config->smtp.pop_before_smtp = true;
  r.env.config->smtp.pop_befor_smtp_time_to_live = 17;
  r.env.pop_logins["198.51.100.7"] = "alice";
  r.env.accounts["alice"].settings.send_max_during_a_day = 3;
  r.env.accounts["alice"].sent = 3;
  r.start();
  auto rep = r.feed("EHLO c\r\nMAIL FROM:<bob@example.org>\r\nRCPT TO:<x@remote.example>\r\n");
  CHECK(std::find(r.env.calls.begin(), r.env.calls.end(), std::string("pop 198.51.100.7 17")) != r.env.calls.end());
  // Relay allowed (local sender + POP login) but alice, the POP user, is at her limit.
  CHECK(rep.ends_with("450 4.7.1 Error: daily sending limit reached, try again tomorrow\r\n"));
}

TEST_CASE("quota is asked with the declared size") {
  Rig r;
  r.start();
  r.feed("EHLO c\r\nMAIL FROM:<> SIZE=4096\r\nRCPT TO:<alice@example.org>\r\n");
  CHECK(std::find(r.env.calls.begin(), r.env.calls.end(), std::string("quota alice 4096")) != r.env.calls.end());
}

TEST_CASE("flooding input while a commit is pending closes the session") {
  Rig r;
  auto& s = r.start();
  r.feed("EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n.\r\n");
  REQUIRE(s.awaiting());
  std::string junk(600 * 1024, 'j');
  CHECK(r.feed(junk).empty());
  auto rep = r.feed(junk);
  CHECK(rep.starts_with("421 4.7.0"));
  CHECK(r.out.close);
  CHECK(s.state() == State::closed);
}

TEST_CASE("421 texts for the connection") {
  Rig r;
  auto& s = r.start();
  CHECK(s.timeout_reply() == "421 4.4.2 mx.example.org Error: timeout exceeded\r\n");
  CHECK(s.shutdown_reply() == "421 4.3.2 mx.example.org Service shutting down\r\n");
}

TEST_CASE("transcripts give the same events at every chunk size") {
  const char* script =
      "@account alice pass=secret\n"
      "C: EHLO c\n"
      "C: MAIL FROM:<a@example.com>\n"
      "C: RCPT TO:<x@remote.example>\n"
      "C: RCPT TO:<alice@example.org>\n"
      "C: DATA\n"
      "C: hi\n"
      "C: .\n"
      "C: QUIT\n";
  auto ref = run_script(script, 1 << 20);
  for (auto c : chunk_sizes()) {
    auto got = run_script(script, c);
    REQUIRE(got.events.size() == ref.events.size());
    for (std::size_t i = 0; i < got.events.size(); ++i) CHECK(got.events[i].text == ref.events[i].text);
    CHECK(got.messages == ref.messages);
  }
}

namespace {
std::string escape_script_bytes(std::string_view b) {
  static constexpr char hexd[] = "0123456789abcdef";
  std::string s;
  for (char ch : b) {
    auto c = static_cast<unsigned char>(ch);
    if (c == '\\') {
      s += "\\\\";
    } else if (c >= 0x20 && c < 0x7f) {
      s += ch;
    } else {
      s += "\\x";
      s += hexd[c >> 4];
      s += hexd[c & 15];
    }
  }
  return s;
}
}  // namespace

TEST_CASE("random garbage and command soup: same output at every chunk size") {
  const std::vector<std::string> tokens{
      "EHLO c\r\n", "HELO c\r\n", "MAIL FROM:<a@example.com>\r\n", "MAIL FROM:<>\r\n",
      "RCPT TO:<alice@example.org>\r\n", "RCPT TO:<x@remote.example>\r\n", "DATA\r\n",
      "RSET\r\n", "NOOP\r\n", "VRFY x\r\n", "AUTH PLAIN\r\n", "AUTH LOGIN\r\n",
      "AUTH CRAM-MD5\r\n", "*\r\n", "AGFsaWNlAHNlY3JldA==\r\n", "STARTTLS\r\n", "\r\n.\r\n",
      ".\r\n", "\n.\n", "\r", "\n", ".", "..", std::string(1, '\0'), "\xff", "Received: x\r\n", "\r\n",
      std::string(700, 'L'), std::string(1200, 'M'), "AUTH PLAIN " + std::string(300, 'A')};
  std::uint64_t seed = 0x9e3779b97f4a7c15ull;
  auto next = [&] {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
  };
  for (int round = 0; round < 60; ++round) {
    std::string bytes;
    int n = 5 + static_cast<int>(next() % 60);
    for (int i = 0; i < n; ++i) bytes += tokens[next() % tokens.size()];
    std::string script = "@account alice pass=secret\n@option max_errors=1000\n"
                         "@option max_auth_failures=1000\nc: " +
                         escape_script_bytes(bytes) + "\n";
    CAPTURE(round);
    auto ref = run_script(script, 1 << 20);
    for (std::size_t c : {1, 2, 3, 7, 64, 512}) {
      CAPTURE(c);
      auto got = run_script(script, c);
      CHECK(got.output == ref.output);
      CHECK(got.messages == ref.messages);
    }
  }
}

TEST_CASE("SMTPUTF8: Received says UTF8SMTP (RFC 6531 §4.3); plain ESMTP otherwise") {
  Rig r;
  auto& s = r.start();
  r.feed("EHLO c\r\nMAIL FROM:<j\xc3\xb6rg@example.com> SMTPUTF8\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n"
         "Subject: x\r\n\r\n.\r\n");
  REQUIRE(r.out.commit);
  CHECK(r.sink.data.find("with UTF8SMTP id S1") != std::string::npos);
  CHECK(s.transaction().smtputf8);
  Output o;
  s.on_commit(std::string("Q1"), o);
  r.feed("MAIL FROM:<a@example.com>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\nSubject: y\r\n\r\n.\r\n");
  REQUIRE(r.out.commit);
  CHECK(r.sink.data.find("with ESMTP id S1") != std::string::npos);
  CHECK_FALSE(s.transaction().smtputf8);
}

TEST_CASE("aliases: unknown targets and run-time loops are error events, never silent") {
  Rig r;
  r.env.config->server.alias = {"example.net"};
  std::vector<ConfigDiagnostic> diags;
  auto map = AliasMap::parse("team@example.org ghost, alice\n@example.net a@example.net\na@example.net b@example.net\n",
                             "aliases.def", r.env.config->local_domains(), "example.org", diags);
  REQUIRE(diags.empty());
  r.env.config->aliases = std::make_shared<const AliasMap>(std::move(map));
  r.start();
  auto rep = r.feed("EHLO c\r\nMAIL FROM:<x@elsewhere.example>\r\nRCPT TO:<team@example.org>\r\n");
  CHECK(rep.find("250 2.1.5 Ok") != std::string::npos);
  CHECK(any_event_contains(r.out.events, LogEvent::Kind::error, "target <ghost@example.org> names no account"));
  // b@example.net has no account: the catch-all sends it to a, whose alias
  // sends it to b again.
  rep = r.feed("RCPT TO:<b@example.net>\r\n");
  CHECK(rep == "451 4.3.0 Error: temporary local problem\r\n");
  CHECK(any_event_contains(r.out.events, LogEvent::Kind::error, "alias loop at"));
}

TEST_CASE("a remote alias target is not relayed mail: the daily counter ignores it") {
  Rig r;
  std::vector<ConfigDiagnostic> diags;
  auto map = AliasMap::parse("fwd@example.org partner@remote.example\n", "aliases.def",
                             r.env.config->local_domains(), "example.org", diags);
  REQUIRE(diags.empty());
  r.env.config->aliases = std::make_shared<const AliasMap>(std::move(map));
  r.env.config->smtp.send_max_during_a_day = 0;  // any relaying would be over the limit
  r.env.accounts["alice"].settings.send_max_during_a_day = 0;
  auto& s = r.start();
  r.feed("EHLO c\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<fwd@example.org>\r\nDATA\r\nSubject: x\r\n\r\n.\r\n");
  REQUIRE(r.out.commit);
  CHECK(s.transaction().has_remote());
  CHECK_FALSE(s.transaction().has_relayed());
  Output o;
  s.on_commit(std::string("Q1"), o);
  CHECK(r.env.sends_recorded.empty());
}

TEST_CASE("SRS: a bounce to an SRS address goes to the sender it stands for; forged and expired ones are refused") {
  constexpr std::int64_t when = 1577836860;  // PostSRSd's test time and secret
  Rig r;
  srs::Options o;
  o.secrets = {"tops3cr3t"};
  r.env.srs_rewriter = *srs::Rewriter::make(o);
  r.env.srs_domain = "example.org";
  r.env.now_seconds = when;
  const std::string made = *r.env.srs_rewriter->forward("test@otherdomain.com", "example.org", when);
  auto& s = r.start();
  r.feed("EHLO bouncer.test\r\nMAIL FROM:<>\r\n");
  CHECK(r.feed("RCPT TO:<" + made + ">\r\n") == "250 2.1.5 Ok\r\n");
  // Any case (the hash compares without it), no relay permission needed.
  std::string upper = made;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  CHECK(r.feed("RCPT TO:<" + upper + ">\r\n") == "250 2.1.5 Ok\r\n");
  const auto& rc = s.transaction().recipients;
  REQUIRE(rc.size() == 1);  // the same address twice: kept once
  CHECK(rc[0].address == "test@otherdomain.com");
  CHECK_FALSE(rc[0].local());
  CHECK(rc[0].via_alias);
  CHECK(rc[0].original == made);
  CHECK(rc[0].dsn.orcpt == "rfc822;" + made);
  CHECK(s.transaction().has_remote());
  CHECK_FALSE(s.transaction().has_relayed());
  // Forged, expired (22 days later), malformed: 550 with the reason in the error log.
  std::string forged = made;
  forged.replace(5, 4, forged.substr(5, 4) == "AAAA" ? "BBBB" : "AAAA");
  CHECK(r.feed("RCPT TO:<" + forged + ">\r\n").starts_with("550 5.7.1 <" + forged + ">: Invalid SRS address"));
  r.env.now_seconds = when + 22 * 86400;
  CHECK(r.feed("RCPT TO:<" + made + ">\r\n").starts_with("550 5.1.1 <" + made + ">: SRS address expired"));
  r.env.now_seconds = when;
  CHECK(r.feed("RCPT TO:<SRS0=abcd=2W@example.org>\r\n").starts_with("550 5.1.1 "));
  const bool logged = std::any_of(r.out.events.begin(), r.out.events.end(),
                                  [](const LogEvent& e) { return e.text.find("no host") != std::string::npos; });
  CHECK(logged);
  // Not at the SRS domain: the usual rules (a foreign domain is relaying).
  CHECK(r.feed("RCPT TO:<" + made.substr(0, made.find('@')) + "@elsewhere.example>\r\n").starts_with("554 5.7.1"));
  CHECK(r.feed("RCPT TO:<alice@example.org>\r\n") == "250 2.1.5 Ok\r\n");
  CHECK(s.transaction().recipients.size() == 2);
}

TEST_CASE("SRS off: an SRS local part at a local domain is no account") {
  Rig r;
  r.start();
  r.feed("EHLO bouncer.test\r\nMAIL FROM:<>\r\n");
  CHECK(r.feed("RCPT TO:<SRS0=vmyz=2W=otherdomain.com=test@example.org>\r\n").starts_with("550 5.1.1"));
}

TEST_CASE("SMTPUTF8: our Received: header stays ASCII (A-label domain, no 'for' with a UTF-8 local part)") {
  Rig r;
  r.env.config->server.domain = "xn--mnchen-3ya.example";
  r.env.config->smtp.relay = true;
  auto& s = r.start();
  r.feed("EHLO c\r\nMAIL FROM:<j\xc3\xb6rg@example.com> SMTPUTF8\r\nRCPT TO:<alice@M\xc3\x9cNCHEN.example>\r\nDATA\r\n"
         "Subject: x\r\n\r\n.\r\n");
  REQUIRE(r.out.commit);
  auto received = r.sink.data.substr(0, r.sink.data.find("\r\nSubject:"));
  CHECK(received.find("for <alice@xn--mnchen-3ya.example>;") != std::string::npos);
  CHECK(util::is_ascii(received));
  Output o;
  s.on_commit(std::string("Q1"), o);
  r.feed("MAIL FROM:<a@example.com> SMTPUTF8\r\nRCPT TO:<\xe7\x94\xb0\xe4\xb8\xad@b\xc3\xbcro.example>\r\nDATA\r\n"
         "Subject: y\r\n\r\n.\r\n");
  REQUIRE(r.out.commit);
  received = r.sink.data.substr(0, r.sink.data.find("\r\nSubject:"));
  CHECK(received.find("with UTF8SMTP id S1") != std::string::npos);
  CHECK(received.find(" for <") == std::string::npos);
  CHECK(util::is_ascii(received));
  s.on_commit(std::string("Q2"), o);
  r.feed("MAIL FROM:<a@example.com> SMTPUTF8\r\nRCPT TO:<bob@b\xc3\xbcro.example>\r\nDATA\r\nSubject: z\r\n\r\n.\r\n");
  REQUIRE(r.out.commit);
  received = r.sink.data.substr(0, r.sink.data.find("\r\nSubject:"));
  CHECK(received.find("for <bob@xn--bro-hoa.example>;") != std::string::npos);
  CHECK(util::is_ascii(received));
}

// Check, then proceed (SessionOptions::defer_lookups, as the server runs
// it): a command's checks answer at once; its policy lookups wait for
// proceed(), which the connection runs off its I/O thread.
TEST_CASE("deferred lookups: RCPT's policy waits for proceed(), one trip serves a pipelined group") {
  Rig r;
  r.opt.defer_lookups = true;
  r.env.deferred = true;  // a lookup outside proceed() throws
  r.env.accounts["bob"] = FakeAccount{};
  auto& s = r.start();
  auto rep = r.feed("EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<alice@example.org>\r\n"
                    "RCPT TO:<bob@example.org>\r\nRCPT TO:<nobody@example.org>\r\n");
  CHECK(rep.find("250 2.1.0 Ok\r\n") != std::string::npos);  // MAIL needs no lookup
  CHECK(rep.find("2.1.5") == std::string::npos);            // no RCPT answered yet
  CHECK(r.out.lookup);
  CHECK(s.awaiting());
  CHECK(std::none_of(r.env.calls.begin(), r.env.calls.end(),
                     [](const std::string& c) { return c.starts_with("lookup "); }));
  // Input meanwhile is kept, not processed.
  r.feed_raw("NOOP\r\n");
  CHECK(r.out.replies.empty());
  r.out.lookup = true;
  r.env.in_proceed = true;
  s.proceed(r.out);
  r.env.in_proceed = false;
  CHECK_FALSE(r.out.lookup);
  CHECK(r.out.replies ==
        "250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
        "550 5.1.1 <nobody@example.org>: Recipient address rejected: no such user\r\n250 2.0.0 Ok\r\n");
  CHECK_FALSE(s.awaiting());
  CHECK(s.transaction().recipients.size() == 2);
  // A second proceed() has nothing to do.
  r.out.clear();
  s.proceed(r.out);
  CHECK(r.out.replies.empty());
}

TEST_CASE("deferred lookups: a RCPT refused by its checks is answered without the trip") {
  Rig r;
  r.opt.defer_lookups = true;
  r.env.deferred = true;
  r.start();
  r.feed("EHLO c\r\nMAIL FROM:<a@example.com>\r\n");
  CHECK(r.feed("RCPT TO:<alice@example.org\r\n") == "501 5.1.3 Bad recipient address syntax\r\n");
  CHECK_FALSE(r.out.lookup);
  CHECK(r.feed("RCPT TO:<alice@example.org> FOO=1\r\n") == "555 5.5.4 Error: unsupported RCPT parameter\r\n");
  CHECK_FALSE(r.out.lookup);
  CHECK(r.feed("RCPT TO:<alice@example.org>\r\n").empty());
  CHECK(r.out.lookup);
}

TEST_CASE("deferred lookups: the AUTH password check and a submission's send count wait for proceed()") {
  Rig r(Listener::submission);
  r.opt.defer_lookups = true;
  r.env.deferred = true;
  auto& s = r.start();
  std::string b64 = base64_encode(std::string("\0alice\0secret", 13));
  CHECK(r.feed("EHLO c\r\nAUTH PLAIN " + b64 + "\r\n").find("235") == std::string::npos);
  REQUIRE(r.out.lookup);
  r.env.in_proceed = true;
  s.proceed(r.out);
  r.env.in_proceed = false;
  CHECK(r.out.replies.ends_with("235 2.7.0 Authentication successful\r\n"));
  CHECK(s.account() == "alice");
  r.feed("MAIL FROM:<alice@example.org>\r\nRCPT TO:<alice@example.org>\r\n");
  r.env.in_proceed = true;
  s.proceed(r.out);
  r.env.in_proceed = false;
  r.feed("DATA\r\n");
  r.feed("Subject: x\r\n\r\nhi\r\n.\r\n");
  REQUIRE(r.out.commit);
  r.out.clear();
  s.on_commit(std::string("Q9"), r.out);
  CHECK(r.out.replies.empty());  // the 250 follows the send count, in proceed()
  REQUIRE(r.out.lookup);
  r.env.in_proceed = true;
  s.proceed(r.out);
  r.env.in_proceed = false;
  CHECK(r.out.replies == "250 2.0.0 Ok: queued as Q9\r\n");
  CHECK(r.env.sends_recorded == std::vector<std::string>{"alice submitted"});
  CHECK(s.state() == State::ready);
}

// The penalty may live in the cluster's shared state (Redis): the AUTH
// command's block check, the admission, the failure and the success are
// asked in proceed() only (the fake throws otherwise); the penalty's wait
// is still Output::delay, after which the check takes another trip.
TEST_CASE("deferred lookups: AUTH's penalty is asked in proceed(), its wait comes after") {
  Rig r(Listener::submission);
  r.opt.defer_lookups = true;
  r.opt.auth_fail_delay = std::chrono::milliseconds(100);
  r.env.deferred = true;
  r.env.network_failures = 2;
  auto& s = r.start();
  std::string b64 = base64_encode(std::string("\0alice\0secret", 13));
  CHECK(r.feed("EHLO c\r\nAUTH PLAIN " + b64 + "\r\n").find("235") == std::string::npos);
  REQUIRE(r.out.lookup);
  CHECK(std::none_of(r.env.calls.begin(), r.env.calls.end(),
                     [](const std::string& c) { return c.starts_with("auth_begin"); }));
  r.out.clear();
  r.out.lookup = true;
  r.env.in_proceed = true;
  s.proceed(r.out);
  r.env.in_proceed = false;
  CHECK(r.out.replies.empty());
  CHECK(r.out.delay == std::chrono::milliseconds(200));  // 100 ms × 2^(2−1)
  CHECK(r.env.auth_in_progress == 1);
  r.out.clear();
  s.resume(r.out);
  REQUIRE(r.out.lookup);  // the password check waits for proceed() again
  r.env.in_proceed = true;
  s.proceed(r.out);
  r.env.in_proceed = false;
  CHECK(r.out.replies == "235 2.7.0 Authentication successful\r\n");
  CHECK(r.env.auth_in_progress == 0);
  CHECK(r.env.network_failures == 0);  // auth_succeeded, in proceed()
}

TEST_CASE("deferred lookups: an AUTH left while its admission waits for proceed() ends nothing") {
  Rig r(Listener::submission);
  r.opt.defer_lookups = true;
  r.env.deferred = true;
  {
    auto& s = r.start();
    std::string b64 = base64_encode(std::string("\0alice\0secret", 13));
    r.feed("EHLO c\r\nAUTH PLAIN " + b64 + "\r\n");
    REQUIRE(r.out.lookup);
    (void)s;
  }
  r.s.reset();  // the client left before proceed(): never admitted
  CHECK(r.env.auth_in_progress == 0);
  CHECK(std::none_of(r.env.calls.begin(), r.env.calls.end(),
                     [](const std::string& c) { return c.starts_with("auth_end"); }));
}

TEST_CASE("typed events: accepted, refusal and relay_denied carry what metrics count") {
  Rig r;
  auto& s = r.start();
  r.feed("EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<x@remote.example>\r\nRCPT TO:<alice@example.org>\r\n");
  auto events = r.out.events;
  auto has = [&](LogEvent::Kind k, LogEvent::What w, std::string_view prefix) {
    return std::any_of(events.begin(), events.end(), [&](const LogEvent& e) {
      return e.kind == k && e.what == w && e.text.starts_with(prefix);
    });
  };
  CHECK(has(LogEvent::Kind::error, LogEvent::What::relay_denied, "relay denied:"));
  CHECK(has(LogEvent::Kind::fact, LogEvent::What::refusal, "554 5.7.1"));
  r.feed("DATA\r\n");
  r.feed("x\r\n.\r\n");
  REQUIRE(r.out.commit);
  r.out.clear();
  s.on_commit(std::string("Q1"), r.out);
  events = r.out.events;
  CHECK(has(LogEvent::Kind::fact, LogEvent::What::accepted, "Q1"));
  r.feed("FOO\r\n");
  events = r.out.events;
  CHECK(has(LogEvent::Kind::fact, LogEvent::What::refusal, "500 5.5.2"));
  // A refused commit is a 4xx refusal, not an accepted message.
  r.feed("MAIL FROM:<a@example.com>\r\nRCPT TO:<alice@example.org>\r\n");
  r.feed("DATA\r\n");
  r.feed("x\r\n.\r\n");
  r.out.clear();
  s.on_commit(unexpected(Error::smtp(452, "4.2.2", "Error: mailbox full")), r.out);
  events = r.out.events;
  CHECK(has(LogEvent::Kind::fact, LogEvent::What::refusal, "452 4.2.2"));
  CHECK_FALSE(has(LogEvent::Kind::fact, LogEvent::What::accepted, ""));
}

// Milters (docs/milter.md): HELO, MAIL, each RCPT that passed the session's
// own checks, and DATA go to Environment::filter_*, in proceed() only.
namespace {
std::string proceed_all(Rig& r) {
  std::string all = r.out.replies;
  while (r.out.lookup) {
    r.env.in_proceed = true;
    r.s->proceed(r.out);
    r.env.in_proceed = false;
    all = r.out.replies;
  }
  return all;
}
std::string step(Rig& r, std::string_view line) {
  r.feed(line);
  return proceed_all(r);
}
}  // namespace

TEST_CASE("milter hooks run in proceed(), after the session's checks, and their refusals are replies") {
  Rig r;
  r.opt.defer_lookups = true;
  r.env.deferred = true;  // a filter call outside proceed() throws
  r.env.filters = true;
  r.env.accounts["bob"] = FakeAccount{};
  r.env.filter_replies["rcpt bob@example.org"] = "550 5.7.1 Command rejected";
  r.start();
  r.feed("EHLO c\r\n");
  CHECK(r.out.replies.empty());  // HELO waits for the milters
  CHECK(r.out.lookup);
  CHECK(proceed_all(r).starts_with("250-mx.example.org\r\n"));
  CHECK(step(r, "MAIL FROM:<a@example.com> SIZE=100\r\n") == "250 2.1.0 Ok\r\n");
  CHECK(step(r, "RCPT TO:<bob@example.org>\r\n") == "550 5.7.1 Command rejected\r\n");
  CHECK(step(r, "RCPT TO:<alice@example.org>\r\n") == "250 2.1.5 Ok\r\n");
  // A recipient the session refuses itself never reaches the milters.
  CHECK(step(r, "RCPT TO:<nobody@example.org>\r\n").starts_with("550 5.1.1"));
  CHECK(step(r, "DATA\r\n").starts_with("354 "));
  const std::vector<std::string> want{"filter helo c", "filter mail a@example.com SIZE=100 auth=",
                                      "filter rcpt bob@example.org ", "filter rcpt alice@example.org ",
                                      "filter data"};
  std::vector<std::string> got;
  for (const auto& c : r.env.calls)
    if (c.starts_with("filter ")) got.push_back(c);
  CHECK(got == want);
  CHECK(r.s->transaction().recipients.size() == 1);
}

TEST_CASE("milter refusals at HELO, MAIL and DATA; a 421 closes the session") {
  Rig r;
  r.opt.defer_lookups = true;
  r.env.deferred = true;
  r.env.filters = true;
  r.env.filter_replies["mail"] = "451 4.7.1 Service unavailable - try again later";
  r.env.filter_replies["data"] = "554-5.7.1 not\r\n554 5.7.1 today";
  r.start();
  CHECK(step(r, "EHLO c\r\n").starts_with("250-"));
  CHECK(step(r, "MAIL FROM:<a@example.com>\r\n") == "451 4.7.1 Service unavailable - try again later\r\n");
  CHECK(r.s->state() == State::ready);
  CHECK_FALSE(r.s->transaction().active);
  r.env.filter_replies.erase("mail");
  CHECK(step(r, "MAIL FROM:<a@example.com>\r\n") == "250 2.1.0 Ok\r\n");
  CHECK(step(r, "RCPT TO:<alice@example.org>\r\n") == "250 2.1.5 Ok\r\n");
  CHECK(step(r, "DATA\r\n") == "554-5.7.1 not\r\n554 5.7.1 today\r\n");
  CHECK(r.sink.begins == 0);  // no message opened
  CHECK(r.s->state() == State::rcpt);
  r.env.filter_replies["helo"] = "421 4.7.0 go away";
  CHECK(step(r, "HELO again\r\n") == "421 4.7.0 go away\r\n");
  CHECK(r.out.close);
  CHECK(r.s->state() == State::closed);
}

TEST_CASE("without milters nothing is deferred for HELO, MAIL and DATA") {
  Rig r;
  r.opt.defer_lookups = true;
  r.env.deferred = true;
  r.start();
  CHECK(r.feed("EHLO c\r\n").starts_with("250-"));
  CHECK(r.feed("MAIL FROM:<a@example.com>\r\n") == "250 2.1.0 Ok\r\n");
  CHECK_FALSE(r.out.lookup);
}

// DNS block lists (docs/dnsbl.md): asked once, at the first RCPT, in
// proceed(); port 25 and unauthenticated clients only.
namespace {
Environment::ClientVerdict blocked_verdict() {
  return {.refusal = "554 5.7.1 Service unavailable; client [198.51.100.7] blocked using zen.example",
          .reason = "client [198.51.100.7] blocked using zen.example (score 2: zen.example*2)",
          .notes = {"DNS block list look-up failed (counted as not listed): bl.example: time-out"}};
}
int checks_of(const Rig& r) {
  int n = 0;
  for (const auto& c : r.env.calls) n += c.starts_with("check_client ");
  return n;
}
}  // namespace

TEST_CASE("DNS block lists: a listed client's every RCPT is refused with the verdict's reply; asked once") {
  Rig r;
  r.opt.defer_lookups = true;
  r.env.deferred = true;  // check_client outside proceed() throws
  r.env.accounts["bob"] = FakeAccount{};
  r.env.client_verdict = blocked_verdict();
  r.start();
  CHECK(step(r, "EHLO c\r\n").starts_with("250-"));
  CHECK(step(r, "MAIL FROM:<a@example.com>\r\n") == "250 2.1.0 Ok\r\n");
  CHECK(checks_of(r) == 0);  // not before RCPT
  std::vector<LogEvent> events;
  auto keep = [&] { events.insert(events.end(), r.out.events.begin(), r.out.events.end()); };
  CHECK(step(r, "RCPT TO:<alice@example.org>\r\n") ==
        "554 5.7.1 Service unavailable; client [198.51.100.7] blocked using zen.example\r\n");
  keep();
  CHECK(step(r, "RCPT TO:<bob@example.org>\r\n") ==
        "554 5.7.1 Service unavailable; client [198.51.100.7] blocked using zen.example\r\n");
  keep();
  CHECK(step(r, "RCPT TO:<postmaster>\r\n").starts_with("554 5.7.1 Service unavailable;"));
  keep();
  CHECK(checks_of(r) == 1);
  CHECK(r.env.calls.end() != std::find(r.env.calls.begin(), r.env.calls.end(), "check_client 198.51.100.7"));
  CHECK(r.s->transaction().recipients.empty());
  int rejected = 0, notes = 0, refusals = 0;
  for (const auto& e : events) {
    if (e.what == LogEvent::What::dnsbl_rejected) {
      ++rejected;
      CHECK(e.kind == LogEvent::Kind::error);
      CHECK(e.text.starts_with("client [198.51.100.7] blocked using zen.example (score 2: zen.example*2): <a@example.com> -> <"));
    }
    notes += e.text.starts_with("DNS block list look-up failed");
    refusals += e.what == LogEvent::What::refusal;
  }
  CHECK(rejected == 3);
  CHECK(notes == 1);  // once a session
  CHECK(refusals == 3);
  CHECK(step(r, "DATA\r\n").starts_with("554 5.5.1"));  // no valid recipients
}

TEST_CASE("DNS block lists: a verdict without refusal lets RCPT through; nothing asked without sites") {
  Rig r;
  r.opt.defer_lookups = true;
  r.env.deferred = true;
  r.env.client_verdict = Environment::ClientVerdict{};
  r.start();
  CHECK(step(r, "EHLO c\r\n").starts_with("250-"));
  CHECK(step(r, "MAIL FROM:<a@example.com>\r\n") == "250 2.1.0 Ok\r\n");
  CHECK(step(r, "RCPT TO:<alice@example.org>\r\n") == "250 2.1.5 Ok\r\n");
  CHECK(checks_of(r) == 1);
  Rig off;
  off.env.client_verdict.reset();
  off.start();
  off.feed("EHLO c\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<alice@example.org>\r\n");
  CHECK(off.out.replies.ends_with("250 2.1.5 Ok\r\n"));
  CHECK(checks_of(off) == 0);
}

TEST_CASE("DNS block lists: never after AUTH, on the submission port or the local submit socket") {
  std::string plain = base64_encode(std::string("\0alice\0secret", 13));
  {
    Rig r;  // port 25, authenticated
    r.env.client_verdict = blocked_verdict();
    r.start();
    r.feed("EHLO c\r\nAUTH PLAIN " + plain + "\r\n");
    REQUIRE(r.s->account() == "alice");
    r.feed("MAIL FROM:<alice@example.org>\r\nRCPT TO:<x@remote.example>\r\n");
    CHECK(r.out.replies.ends_with("250 2.1.5 Ok\r\n"));
    CHECK(checks_of(r) == 0);
  }
  {
    Rig r(Listener::submission);
    r.env.client_verdict = blocked_verdict();
    r.start();
    r.feed("EHLO c\r\nAUTH PLAIN " + plain + "\r\n");
    r.feed("MAIL FROM:<alice@example.org>\r\nRCPT TO:<x@remote.example>\r\n");
    CHECK(r.out.replies.ends_with("250 2.1.5 Ok\r\n"));
    CHECK(checks_of(r) == 0);
  }
  {
    Rig r;
    r.opt.local_submit = true;
    r.env.config->smtp.relay = true;
    r.env.client_verdict = blocked_verdict();
    r.start();
    r.feed("EHLO c\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<alice@example.org>\r\n");
    CHECK(r.out.replies.ends_with("250 2.1.5 Ok\r\n"));
    CHECK(checks_of(r) == 0);
  }
}
