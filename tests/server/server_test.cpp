#include "wizmail/server.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <functional>
#include <future>
#include <string>
#include <stdexcept>
#include <thread>
#include <vector>

#include "line_client.hpp"
#include "running_server.hpp"
#include "wait_until.hpp"
#include "server/log.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"
#include "wizmail/account_store.hpp"
#include "wizmail/mailbox.hpp"
#include "wizmail/queue.hpp"

namespace fs = std::filesystem;
using namespace wizmail;
using namespace std::chrono_literals;

namespace {

using test::code;
using test::connect_refused;
using test::wait_until;
using Client = test::SmtpClient;
using Running = test::RunningServer;

struct TempHome : test::MailHome {
  TempHome() : MailHome("wizmail-server", {{"alice", "secret"}, {"bob", "hunter2"}, {"postmaster", "pm"}}) {}
  std::string only_message(const std::string& account) const {
    auto all = messages(account);
    return all.empty() ? std::string() : all.front();
  }
};

}  // namespace

TEST_CASE("a message to a local account is durable in new/ before the 250") {
  TempHome home;
  ServerOptions opt;
  SUBCASE("sessions on the given io_context: commit threads") {}
  SUBCASE("session threads: the commit runs on the session's thread") { opt.io_threads = 2; }
  Running srv(test::loopback_config(home.path), opt);
  Client c(srv.port());
  CHECK(code(c.reply()) == "220");
  CHECK(c.cmd("EHLO client.example").find("250-PIPELINING") != std::string::npos);
  CHECK(code(c.cmd("MAIL FROM:<sender@localhost>")) == "250");
  CHECK(code(c.cmd("RCPT TO:<Alice@LOCALHOST>")) == "250");
  CHECK(code(c.cmd("RCPT TO:<bob@localhost>")) == "250");
  CHECK(code(c.cmd("DATA")) == "354");
  c.send("Subject: test\r\n\r\nhello\r\n..dot\r\n.\r\n");
  auto r = c.reply();
  CHECK(code(r) == "250");
  // Refusals are counted from the session's typed events.
  CHECK(code(c.cmd("MAIL FROM:<sender@localhost>")) == "250");
  CHECK(code(c.cmd("RCPT TO:<x@remote.example>")) == "554");
  CHECK(code(c.cmd("RSET")) == "250");
  // The 250 means it is already there, for both recipients.
  REQUIRE(home.count_new("alice") == 1);
  REQUIRE(home.count_new("bob") == 1);
  // Final delivery records the envelope (Postfix local/virtual, Dovecot
  // LDA): each copy names its own recipient, so the two are two files.
  auto msg = home.only_message("alice");
  CHECK(msg.rfind("Return-Path: <sender@localhost>\r\nDelivered-To: Alice@localhost\r\nReceived: ", 0) == 0);
  CHECK(msg.find("Subject: test\r\n\r\nhello\r\n.dot\r\n") != std::string::npos);
  auto bob = home.only_message("bob");
  CHECK(bob.rfind("Return-Path: <sender@localhost>\r\nDelivered-To: bob@localhost\r\nReceived: ", 0) == 0);
  CHECK(bob.substr(bob.find("Received: ")) == msg.substr(msg.find("Received: ")));
  CHECK(code(c.cmd("QUIT")) == "221");
  CHECK(c.eof());
  auto st = srv.server->stats();
  CHECK(st.messages_received == 1);
  CHECK(st.messages_delivered == 2);
  CHECK(st.smtp_relay_denied == 1);
  CHECK(st.smtp_refusals_permanent == 1);
  CHECK(st.smtp_refusals_temporary == 0);
  srv.finish();
  // smtp.log holds one line per command and reply, with the session id.
  auto log = util::read_file(home.path / "var" / "log" / "smtp.log").value();
  CHECK(log.find("RCPT TO:<Alice@LOCALHOST>") != std::string::npos);
  CHECK(log.find(" 127.0.0.1:") != std::string::npos);
  CHECK(log.find("221") != std::string::npos);
  CHECK(fs::is_empty(home.path / "mailbox" / "alice" / "tmp"));
}

TEST_CASE("the POP3 listener is served by the same server") {
  TempHome home;
  Running srv(test::loopback_config(home.path));
  REQUIRE(srv.server->port(Protocol::pop3) != 0);
  Client c(srv.server->port(Protocol::pop3));
  auto greeting = c.reply();
  CHECK(greeting.rfind("+OK", 0) == 0);
  CHECK(srv.server->stats().sessions_pop3 == 1);
}

TEST_CASE("unknown user, relay denied, quota: refused and logged") {
  TempHome home;
  auto cfg = test::loopback_config(home.path);
  cfg->server.mailbox_capacity_mail_count = 1;
  {
    Running srv(cfg);
    Client c(srv.port());
    c.reply();
    c.cmd("EHLO x");
    c.cmd("MAIL FROM:<someone@example.org>");
    CHECK(c.cmd("RCPT TO:<nobody@localhost>").substr(0, 9) == "550 5.1.1");
    CHECK(c.cmd("RCPT TO:<victim@remote.example>").substr(0, 9) == "554 5.7.1");
    CHECK(c.cmd("RCPT TO:<user%remote.example@localhost>").substr(0, 1) == "5");
    CHECK(code(c.cmd("RCPT TO:<alice@localhost>")) == "250");
    c.cmd("DATA");
    c.send("Subject: one\r\n\r\nx\r\n.\r\n");
    CHECK(code(c.reply()) == "250");
    c.cmd("MAIL FROM:<someone@example.org>");
    CHECK(c.cmd("RCPT TO:<alice@localhost>").substr(0, 9) == "452 4.2.2");
    c.cmd("QUIT");
  }
  CHECK(home.count_new("alice") == 1);
  auto err = util::read_file(home.path / "var" / "log" / "error.log").value();
  CHECK(err.find("remote.example") != std::string::npos);
  CHECK(fs::is_empty(home.path / "resendmail" / "incoming"));
}

TEST_CASE("accepted remote recipients go durably into the relay queue") {
  TempHome home;
  auto cfg = test::loopback_config(home.path);
  cfg->smtp.address_permits_relay = {"127.0.0.0/8"};
  Running srv(cfg);
  Client c(srv.port());
  c.reply();
  c.cmd("EHLO x");
  c.cmd("MAIL FROM:<alice@localhost>");
  CHECK(code(c.cmd("RCPT TO:<far@remote.example>")) == "250");
  CHECK(code(c.cmd("RCPT TO:<bob@localhost>")) == "250");
  c.cmd("DATA");
  c.send("Subject: relay\r\n\r\nbody\r\n.\r\n");
  REQUIRE(code(c.reply()) == "250");
  RelayQueue q(home.path / "resendmail");
  auto ids = q.list().value();
  REQUIRE(ids.size() == 1);
  auto e = q.load(ids[0]).value();
  CHECK(e.sender == "alice@localhost");
  REQUIRE(e.recipients.size() == 1);
  CHECK(e.recipients[0].address == "far@remote.example");
  CHECK(e.client_ip == "127.0.0.1");
  // The relayed copy is the message as received; the local one starts with
  // its final headers, then the same octets.
  auto data = util::read_file(q.message_path(ids[0])).value();
  CHECK(data.rfind("Received: ", 0) == 0);
  CHECK(home.only_message("bob") == "Return-Path: <alice@localhost>\r\nDelivered-To: bob@localhost\r\n" + data);
  CHECK(srv.server->stats().messages_relayed == 1);
}

TEST_CASE("multiprocessing cap: the next peer gets 421 4.7.0; exempt peers do not count") {
  TempHome home;
  auto cfg = test::loopback_config(home.path);
  cfg->smtp.multiprocessing = 1;
  cfg->smtp.multiprocessing_exempt = {"192.0.2.0/24"};
  Running srv(cfg);
  Client a(srv.port());
  CHECK(code(a.reply()) == "220");
  Client b(srv.port());
  CHECK(b.reply().substr(0, 9) == "421 4.7.0");
  CHECK(b.eof());
  CHECK(srv.server->stats().refused_busy == 1);
  a.cmd("QUIT");
  CHECK(a.eof());
  // The slot is free again once the first session ended.
  REQUIRE(wait_until([&] { return srv.server->stats().sessions_smtp == 0; }));
  Client c(srv.port());
  CHECK(code(c.reply()) == "220");
}

TEST_CASE("multiprocessing_exempt peers are never refused") {
  TempHome home;
  auto cfg = test::loopback_config(home.path);
  cfg->smtp.multiprocessing = 1;  // loopback is exempt by default
  Running srv(cfg);
  Client a(srv.port()), b(srv.port()), c(srv.port());
  CHECK(code(a.reply()) == "220");
  CHECK(code(b.reply()) == "220");
  CHECK(code(c.reply()) == "220");
}

TEST_CASE("a silent client gets 421 after session_timeout") {
  TempHome home;
  auto cfg = test::loopback_config(home.path);
  cfg->smtp.session_timeout = 1;
  Running srv(cfg);
  Client c(srv.port());
  c.reply();
  auto t0 = std::chrono::steady_clock::now();
  auto r = c.reply();
  auto waited = std::chrono::steady_clock::now() - t0;
  // The timeout's own reply (not the shutdown's, not the client's receive
  // timeout, which would give ""), then the close.
  CHECK(r.substr(0, 9) == "421 4.4.2");
  CHECK(r.find("timeout exceeded") != std::string::npos);
  CHECK(waited >= 900ms);
  CHECK(c.eof());
}

TEST_CASE("graceful stop: idle sessions get 421, a transaction may finish") {
  TempHome home;
  Running srv(test::loopback_config(home.path));
  Client idle(srv.port()), busy(srv.port());
  idle.reply();
  busy.reply();
  busy.cmd("EHLO x");
  busy.cmd("MAIL FROM:<a@localhost>");
  busy.cmd("RCPT TO:<alice@localhost>");
  CHECK(code(busy.cmd("DATA")) == "354");
  std::promise<void> stopped;
  srv.server->stop(5000ms, [&] { stopped.set_value(); });
  CHECK(code(idle.reply()) == "421");
  CHECK(idle.eof());
  // New connections are not accepted any more.
  CHECK(wait_until([&] { return connect_refused(srv.port()); }));
  busy.send("Subject: late\r\n\r\nstill in time\r\n.\r\n");
  CHECK(code(busy.reply()) == "250");
  CHECK(code(busy.reply()) == "421");  // then the session is closed
  CHECK(stopped.get_future().wait_for(5s) == std::future_status::ready);
  srv.thread.join();
  CHECK(home.count_new("alice") == 1);
}

TEST_CASE("graceful stop closes a transaction that outlives the grace time") {
  TempHome home;
  Running srv(test::loopback_config(home.path));
  Client busy(srv.port());
  busy.reply();
  busy.cmd("EHLO x");
  busy.cmd("MAIL FROM:<a@localhost>");
  auto t0 = std::chrono::steady_clock::now();
  srv.server->stop(300ms);
  // 421 or EOF at the deadline; a session left open would give "" only at
  // the client's receive timeout, and then no EOF.
  auto r = busy.reply();
  CHECK((r.empty() || code(r) == "421"));
  CHECK(busy.eof());
  CHECK(std::chrono::steady_clock::now() - t0 >= 300ms);  // not before the grace time
  srv.thread.join();
  CHECK(srv.server->stopped());
}

TEST_CASE("reload: a good config is taken, a bad one keeps the old") {
  TempHome home;
  REQUIRE(util::make_dirs(home.path / "def"));
  REQUIRE(util::write_file_atomic(home.path / "def" / "smtpenv.dat", "bind_address=127.0.0.1\nmax_recipients=5\n"));
  asio::io_context io;
  ServerOptions opts;
  opts.ephemeral_ports = true;
  auto s = Server::create(io, home.path, opts);
  REQUIRE(s);
  auto& server = **s;
  REQUIRE(server.start());
  CHECK(server.config()->smtp.max_recipients == 5);
  REQUIRE(util::write_file_atomic(home.path / "def" / "smtpenv.dat", "bind_address=127.0.0.1\nmax_recipients=7\n"));
  REQUIRE(server.reload());
  CHECK(server.config()->smtp.max_recipients == 7);
  REQUIRE(util::write_file_atomic(home.path / "def" / "smtpenv.dat", "max_recipients=seven\n"));
  auto bad = server.reload();
  CHECK_FALSE(bad);
  CHECK(server.config()->smtp.max_recipients == 7);
  server.stop(100ms);
  io.run();
  auto log = util::read_file(home.path / "var" / "log" / "server.log").value();
  CHECK(log.find("reload failed") != std::string::npos);
  CHECK(log.find("max_recipients") != std::string::npos);
}

TEST_CASE("a port in use is an error value") {
  TempHome home;
  Running first(test::loopback_config(home.path));
  auto cfg = test::loopback_config(home.path);
  cfg->smtp.port = first.port();
  asio::io_context io;
  auto s = Server::create(io, cfg);
  REQUIRE(s);
  auto st = (*s)->start();
  REQUIRE_FALSE(st);
  CHECK(st.error().code == Errc::busy);
}

TEST_CASE("delivery callbacks: discard, redirect, rewrite, then removal") {
  TempHome home;
  Running srv(test::loopback_config(home.path));
  std::atomic<int> calls{0};
  std::string seen_subject;
  auto id = srv.server->add_delivery_callback([&](const Delivery& d) {
    ++calls;
    for (const auto& [k, v] : d.headers)
      if (k == "Subject") seen_subject = v;
    if (seen_subject == "drop me") return DeliveryDecision::discard();
    if (seen_subject == "to bob") return DeliveryDecision::redirect("bob");
    if (seen_subject == "rewrite")
      return DeliveryDecision::rewrite("Subject: rewritten\r\n\r\nnew body\r\n");
    return DeliveryDecision::accept();
  });
  auto send = [&](const std::string& subject) {
    Client c(srv.port());
    c.reply();
    c.cmd("EHLO x");
    c.cmd("MAIL FROM:<a@localhost>");
    c.cmd("RCPT TO:<alice@localhost>");
    c.cmd("DATA");
    c.send("Subject: " + subject + "\r\n\r\nbody\r\n.\r\n");
    CHECK(code(c.reply()) == "250");
  };
  send("drop me");
  CHECK(home.count_new("alice") == 0);
  send("to bob");
  CHECK(home.count_new("alice") == 0);
  CHECK(home.count_new("bob") == 1);
  send("rewrite");
  REQUIRE(home.count_new("alice") == 1);
  CHECK(home.only_message("alice") ==
        "Return-Path: <a@localhost>\r\nDelivered-To: alice@localhost\r\nSubject: rewritten\r\n\r\nnew body\r\n");
  CHECK(calls == 3);
  srv.server->remove_delivery_callback(id);
  send("drop me");
  CHECK(home.count_new("alice") == 2);
  CHECK(calls == 3);
}

TEST_CASE("logger rotates to .1 over log_size_max and never lets a client forge lines") {
  TempHome home;
  server::Logger log(home.path / "logs", 200, false);
  REQUIRE(log.start());
  log.log(server::LogFile::smtp, "s1", "192.0.2.1:25", "alice", "MAIL FROM:<x>\r\nforged 250 line");
  log.flush();
  auto text = util::read_file(home.path / "logs" / "smtp.log").value();
  CHECK(text.find("\\x0D\\x0Aforged") != std::string::npos);
  CHECK(std::count(text.begin(), text.end(), '\n') == 1);
  for (int i = 0; i < 10; ++i) log.log(server::LogFile::error, "s1", "p", "", std::string(50, 'x'));
  log.flush();
  log.stop();
  CHECK(fs::exists(home.path / "logs" / "error.log.1"));
  CHECK(fs::file_size(home.path / "logs" / "error.log") <= 200 + 120);
}

namespace {

// One message over a fresh connection; the reply to the final dot.
std::string send_message(std::uint16_t port, const std::string& from,
                         const std::vector<std::string>& to, const std::string& body) {
  Client c(port);
  c.reply();
  c.cmd("EHLO x");
  if (code(c.cmd("MAIL FROM:<" + from + ">")) != "250") return "MAIL refused";
  for (const auto& r : to)
    if (code(c.cmd("RCPT TO:<" + r + ">")) != "250") return "RCPT refused: " + r;
  if (code(c.cmd("DATA")) != "354") return "DATA refused";
  c.send(body + "\r\n.\r\n");
  auto r = c.reply();
  c.cmd("QUIT");
  return r;
}

std::size_t queue_entries(const fs::path& home) {
  RelayQueue q(home / "resendmail");
  auto ids = q.list();
  return ids ? ids->size() : 0;
}

}  // namespace

TEST_CASE("a callback discarding the local copy leaves the relayed copy intact") {
  TempHome home;
  auto cfg = test::loopback_config(home.path);
  cfg->smtp.address_permits_relay = {"127.0.0.0/8"};
  Running srv(cfg);
  srv.server->add_delivery_callback([](const Delivery&) { return DeliveryDecision::discard(); });
  auto r = send_message(srv.port(), "alice@localhost", {"bob@localhost", "far@remote.example"},
                        "Subject: keep the relay\r\n\r\nrelayed body");
  REQUIRE(code(r) == "250");
  CHECK(home.count_new("bob") == 0);
  RelayQueue q(home.path / "resendmail");
  auto ids = q.list().value();
  REQUIRE(ids.size() == 1);
  auto data = util::read_file(q.message_path(ids[0])).value();
  CHECK(data.find("Subject: keep the relay\r\n\r\nrelayed body\r\n") != std::string::npos);
  CHECK(data.rfind("Received: ", 0) == 0);
  CHECK(fs::is_empty(home.path / "mailbox" / "bob" / "tmp"));
}

TEST_CASE("a throwing delivery callback gives 451; the server keeps serving") {
  TempHome home;
  auto cfg = test::loopback_config(home.path);
  cfg->smtp.address_permits_relay = {"127.0.0.0/8"};
  ServerOptions opt;
  SUBCASE("sessions on the given io_context: commit threads") {}
  // A lone client on its session thread commits there (commit_here).
  SUBCASE("session threads: the commit runs on the session's thread") { opt.io_threads = 2; }
  Running srv(cfg, opt);
  srv.server->add_delivery_callback([](const Delivery& d) -> DeliveryDecision {
    for (const auto& [k, v] : d.headers)
      if (k == "Subject" && v == "boom") throw std::runtime_error("callback exploded");
    return DeliveryDecision::accept();
  });
  auto r = send_message(srv.port(), "alice@localhost", {"bob@localhost", "far@remote.example"},
                        "Subject: boom\r\n\r\nx");
  CHECK(r.substr(0, 3) == "451");
  CHECK(home.count_new("bob") == 0);
  CHECK(queue_entries(home.path) == 0);  // no relay either: the client will retry
  r = send_message(srv.port(), "alice@localhost", {"bob@localhost"}, "Subject: fine\r\n\r\ny");
  CHECK(code(r) == "250");
  CHECK(home.count_new("bob") == 1);
  srv.finish();
  auto err = util::read_file(home.path / "var" / "log" / "error.log").value();
  CHECK(err.find("callback exploded") != std::string::npos);
}

TEST_CASE("a failed local copy publishes no queue entry") {
  TempHome home;
  auto cfg = test::loopback_config(home.path);
  cfg->smtp.address_permits_relay = {"127.0.0.0/8"};
  Running srv(cfg);
  // bob's new/ is gone: his copy cannot be published (link and copy fail).
  fs::remove_all(home.path / "mailbox" / "bob" / "new");
  auto r = send_message(srv.port(), "alice@localhost", {"bob@localhost", "far@remote.example"},
                        "Subject: half\r\n\r\nx");
  CHECK(r.substr(0, 1) == "4");
  CHECK(queue_entries(home.path) == 0);
  CHECK(srv.server->stats().messages_relayed == 0);
  // Without the local recipient the relay goes through.
  r = send_message(srv.port(), "alice@localhost", {"far@remote.example"}, "Subject: whole\r\n\r\nx");
  CHECK(code(r) == "250");
  CHECK(queue_entries(home.path) == 1);
}

TEST_CASE("quota is checked against the real size when no SIZE was declared") {
  TempHome home;
  auto cfg = test::loopback_config(home.path);
  cfg->server.mailbox_capacity_mail_size = 600;
  Running srv(cfg);
  // Small enough: delivered.
  CHECK(code(send_message(srv.port(), "x@localhost", {"alice@localhost"}, "Subject: s\r\n\r\nsmall")) ==
        "250");
  REQUIRE(home.count_new("alice") == 1);
  // RCPT passes (no SIZE), the data does not fit: 452 4.2.2, nothing stored
  // for anyone (bob has room, but the whole message is refused).
  auto r = send_message(srv.port(), "x@localhost", {"bob@localhost", "alice@localhost"},
                        "Subject: big\r\n\r\n" + std::string(700, 'b'));
  CHECK(r.substr(0, 9) == "452 4.2.2");
  CHECK(home.count_new("alice") == 1);
  CHECK(home.count_new("bob") == 0);
  CHECK(fs::is_empty(home.path / "mailbox" / "alice" / "tmp"));
  CHECK(fs::is_empty(home.path / "mailbox" / "bob" / "tmp"));
  // A declared SIZE over the quota is still refused at RCPT.
  Client c(srv.port());
  c.reply();
  c.cmd("EHLO x");
  c.cmd("MAIL FROM:<x@localhost> SIZE=5000");
  CHECK(c.cmd("RCPT TO:<alice@localhost>").substr(0, 9) == "452 4.2.2");
}

TEST_CASE("send counters are kept for existing accounts only") {
  TempHome home;
  auto cfg = test::loopback_config(home.path);
  cfg->smtp.address_permits_relay = {"127.0.0.0/8"};
  Running srv(cfg);
  CHECK(code(send_message(srv.port(), "ghost@localhost", {"far@remote.example"}, "Subject: g\r\n\r\nx")) ==
        "250");
  CHECK(code(send_message(srv.port(), "alice@localhost", {"far@remote.example"}, "Subject: a\r\n\r\nx")) ==
        "250");
  CHECK_FALSE(fs::exists(home.path / "var" / "sendcount" / "ghost"));
  auto alice = util::read_file(home.path / "var" / "sendcount" / "alice");
  REQUIRE(alice);
  CHECK(alice->find(" 1\n") != std::string::npos);
}

TEST_CASE("a second stop with a shorter grace brings the hard close forward") {
  TempHome home;
  Running srv(test::loopback_config(home.path));
  Client busy(srv.port());
  busy.reply();
  busy.cmd("EHLO x");
  CHECK(code(busy.cmd("MAIL FROM:<a@localhost>")) == "250");  // in a transaction: not idle
  std::promise<void> stopped;
  srv.server->stop(60s, [&] { stopped.set_value(); });
  REQUIRE(wait_until([&] { return home.log().find("stopping: 1 sessions") != std::string::npos; }));
  srv.server->stop(200ms);
  // The server took the sooner deadline ...
  CHECK(wait_until([&] { return home.log().find("stopping sooner: 1 sessions") != std::string::npos; }));
  // ... and kept it: 421 or EOF, where the first deadline (60 s) would have
  // left the session open past the client's receive timeout (reply "",
  // then no EOF).
  auto r = busy.reply();
  CHECK((r.empty() || code(r) == "421"));
  CHECK(busy.eof());
  CHECK(stopped.get_future().wait_for(5s) == std::future_status::ready);
  srv.thread.join();
  CHECK(srv.server->stopped());
}

TEST_CASE("concurrent stop() calls close the listeners once, from any thread") {
  TempHome home;
  Running srv(test::loopback_config(home.path));
  auto port = srv.port();
  std::vector<std::thread> ts;
  for (int i = 0; i < 4; ++i) ts.emplace_back([&] { srv.server->stop(500ms); });
  for (auto& t : ts) t.join();
  srv.thread.join();
  CHECK(srv.server->stopped());
  // The port is closed: a connect is refused.
  CHECK(connect_refused(port));
}

// ServerOptions::io_threads: sessions on the server's own threads, one
// io_context each (the daemon's mode).

namespace {
ServerOptions pooled(unsigned n) {
  ServerOptions o;
  o.io_threads = n;
  return o;
}

// One whole SMTP transaction; the reply codes joined ("220 250 ...").
std::string send_one(std::uint16_t port, const std::string& rcpt, int n) {
  Client c(port);
  std::string codes = code(c.reply());
  codes += util::cat(" ", code(c.cmd("EHLO pool.example")));
  codes += util::cat(" ", code(c.cmd(util::cat("MAIL FROM:<s", std::to_string(n), "@localhost>"))));
  codes += util::cat(" ", code(c.cmd(util::cat("RCPT TO:<", rcpt, ">"))));
  codes += util::cat(" ", code(c.cmd("DATA")));
  c.send(util::cat("Subject: m", std::to_string(n), "\r\n\r\nbody ", std::to_string(n), "\r\n.\r\n"));
  codes += util::cat(" ", code(c.reply()));
  codes += util::cat(" ", code(c.cmd("QUIT")));
  return codes;
}
}  // namespace

TEST_CASE("session threads: concurrent SMTP and POP3 sessions are all served, each message durable before its 250") {
  TempHome home;
  Running srv(test::loopback_config(home.path), pooled(3));
  const int clients = 12, each = 5;
  std::vector<std::future<std::vector<std::string>>> results;
  for (int t = 0; t < clients; ++t)
    results.push_back(std::async(std::launch::async, [&, t] {
      std::vector<std::string> out;
      for (int i = 0; i < each; ++i) out.push_back(send_one(srv.port(), t % 2 ? "alice@localhost" : "bob@localhost", t * 100 + i));
      return out;
    }));
  // POP3 sessions at the same time, on the same threads.
  for (int i = 0; i < 6; ++i) {
    Client p(srv.server->port(Protocol::pop3));
    CHECK(p.reply().rfind("+OK", 0) == 0);
    CHECK(p.cmd("USER alice").rfind("+OK", 0) == 0);
    CHECK(p.cmd("PASS secret").rfind("+OK", 0) == 0);
    CHECK(p.cmd("QUIT").rfind("+OK", 0) == 0);
  }
  for (auto& f : results)
    for (const auto& codes : f.get()) CHECK(codes == "220 250 250 250 354 250 221");
  // Every 250 was durable when sent: all are in new/ or (POP3 logins move
  // them) cur/ now, without waiting.
  auto count = [&](const std::string& a) {
    std::size_t n = 0;
    for (const char* d : {"new", "cur"})
      for ([[maybe_unused]] auto& e : fs::directory_iterator(home.path / "mailbox" / a / d)) ++n;
    return n;
  };
  CHECK(count("alice") == clients / 2 * each);
  CHECK(count("bob") == clients / 2 * each);
  CHECK(srv.server->stats().messages_received == clients * each);
  srv.finish();
  CHECK(srv.server->stopped());
  auto log = util::read_file(home.path / "var" / "log" / "server.log").value();
  CHECK(log.find("stopped") != std::string::npos);
  CHECK(log.find("abandoned") == std::string::npos);  // the threads drained by themselves
}

TEST_CASE("session threads: graceful stop reaches sessions on every thread") {
  TempHome home;
  Running srv(test::loopback_config(home.path), pooled(2));
  // Four idle sessions (spread over both threads) and one in DATA.
  std::vector<std::unique_ptr<Client>> idle;
  for (int i = 0; i < 4; ++i) {
    idle.push_back(std::make_unique<Client>(srv.port()));
    CHECK(code(idle.back()->reply()) == "220");
  }
  Client busy(srv.port());
  busy.reply();
  busy.cmd("EHLO x");
  busy.cmd("MAIL FROM:<a@localhost>");
  busy.cmd("RCPT TO:<alice@localhost>");
  CHECK(code(busy.cmd("DATA")) == "354");
  CHECK(srv.server->sessions().size() == 5);
  std::promise<void> stopped;
  srv.server->stop(5000ms, [&] { stopped.set_value(); });
  for (auto& c : idle) {
    CHECK(code(c->reply()) == "421");
    CHECK(c->eof());
  }
  busy.send("Subject: late\r\n\r\nstill in time\r\n.\r\n");
  CHECK(code(busy.reply()) == "250");
  CHECK(code(busy.reply()) == "421");
  CHECK(stopped.get_future().wait_for(5s) == std::future_status::ready);
  srv.thread.join();
  CHECK(home.count_new("alice") == 1);
  auto log = util::read_file(home.path / "var" / "log" / "server.log").value();
  CHECK(log.find("abandoned") == std::string::npos);
}

TEST_CASE("session threads: destroying a server with live sessions abandons them cleanly") {
  TempHome home;
  auto io = std::make_unique<asio::io_context>();
  auto s = Server::create(*io, test::loopback_config(home.path), [] {
    auto o = pooled(2);
    o.ephemeral_ports = true;
    return o;
  }());
  REQUIRE(s);
  REQUIRE((*s)->start());
  std::thread t([&] { io->run(); });
  std::vector<std::unique_ptr<Client>> live;
  for (int i = 0; i < 4; ++i) {
    live.push_back(std::make_unique<Client>((*s)->port(Protocol::smtp)));
    CHECK(code(live.back()->reply()) == "220");
    live.back()->cmd("EHLO x");
  }
  // No stop(): the destructor tears the session threads down first (ASan
  // builds catch any use of a session after its server).
  s->reset();
  for (auto& c : live) CHECK(c->eof());
  io->stop();
  t.join();
}

TEST_CASE("failed logins are penalised per client network, across connections and protocols") {
  TempHome home;
  Running srv(test::loopback_config(home.path), pooled(2));
  auto timed = [](auto&& f) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    return std::chrono::steady_clock::now() - t0;
  };
  // AUTH PLAIN alice/wrong: the network has no failures yet, no wait.
  {
    Client c(srv.port());
    c.reply();
    c.cmd("EHLO x");
    CHECK(code(c.cmd("AUTH PLAIN AGFsaWNlAHdyb25n")) == "535");
  }
  // A new connection, another protocol: the network failed once, so every
  // attempt waits before it is checked — 1 s, then 2 s.
  {
    Client p(srv.server->port(Protocol::pop3));
    p.reply();
    CHECK(p.cmd("USER alice").rfind("+OK", 0) == 0);
    auto d = timed([&] { CHECK(p.cmd("PASS wrong").rfind("-ERR [AUTH]", 0) == 0); });
    CHECK(d >= 1000ms);
    // The right password waits as long as a wrong one would, then logs in.
    CHECK(p.cmd("USER alice").rfind("+OK", 0) == 0);
    d = timed([&] { CHECK(p.cmd("PASS secret").rfind("+OK", 0) == 0); });
    CHECK(d >= 2000ms);
  }
}

TEST_CASE("POP-before-SMTP: a POP3 login lets its address relay at once") {
  TempHome home;
  auto cfg = test::loopback_config(home.path);
  cfg->smtp.send_permits_only_smtp_auth = false;
  cfg->smtp.pop_before_smtp = true;
  cfg->smtp.pop_befor_smtp_time_to_live = 10;
  Running srv(cfg, pooled(2));
  Client c(srv.port());
  c.reply();
  c.cmd("EHLO x");
  CHECK(code(c.cmd("MAIL FROM:<alice@localhost>")) == "250");
  // No POP3 login yet: relaying is refused.
  CHECK(c.cmd("RCPT TO:<far@remote.example>").substr(0, 9) == "554 5.7.1");
  {
    Client p(srv.server->port(Protocol::pop3));
    p.reply();
    CHECK(p.cmd("USER alice").rfind("+OK", 0) == 0);
    CHECK(p.cmd("PASS secret").rfind("+OK", 0) == 0);
    CHECK(p.cmd("QUIT").rfind("+OK", 0) == 0);
  }
  // Right after the +OK, in a new transaction of the same session.
  c.cmd("RSET");
  CHECK(code(c.cmd("MAIL FROM:<alice@localhost>")) == "250");
  CHECK(code(c.cmd("RCPT TO:<far@remote.example>")) == "250");
  // The manual's ip file is still written.
  auto login = AccountStore(home.path / "mailbox").read_pop_login("alice");
  REQUIRE(login);
  CHECK(login->ip == "127.0.0.1");
}

TEST_CASE("POP-before-SMTP: logins in the ip files survive a restart, within the TTL only") {
  TempHome home;
  AccountStore store(home.path / "mailbox");
  const auto now = static_cast<std::int64_t>(std::time(nullptr));
  SUBCASE("recent") { REQUIRE(store.write_pop_login("alice", "127.0.0.1", now - 60)); }
  SUBCASE("older than pop_befor_smtp_time_to_live") {
    REQUIRE(store.write_pop_login("alice", "127.0.0.1", now - 11 * 60));
  }
  const bool recent = store.read_pop_login("alice")->time >= now - 60;
  auto cfg = test::loopback_config(home.path);
  cfg->smtp.send_permits_only_smtp_auth = false;
  cfg->smtp.pop_before_smtp = true;
  cfg->smtp.pop_befor_smtp_time_to_live = 10;
  Running srv(cfg);
  Client c(srv.port());
  c.reply();
  c.cmd("EHLO x");
  c.cmd("MAIL FROM:<alice@localhost>");
  CHECK(code(c.cmd("RCPT TO:<far@remote.example>")) == (recent ? "250" : "554"));
}

TEST_CASE("an account the store cannot read is a temporary failure everywhere") {
  TempHome home;
  // A loop of symbolic links where carol's folder should be: stat() fails
  // with ELOOP, even for root.
  fs::create_symlink(home.path / "mailbox" / "carol", home.path / "mailbox" / "carol");
  Running srv(test::loopback_config(home.path));
  Client c(srv.port());
  c.reply();
  c.cmd("EHLO x");
  c.cmd("MAIL FROM:<someone@example.org>");
  CHECK(c.cmd("RCPT TO:<carol@localhost>").substr(0, 9) == "451 4.3.0");
  CHECK(c.cmd("RCPT TO:<nobody@localhost>").substr(0, 9) == "550 5.1.1");
  CHECK(code(c.cmd("RCPT TO:<alice@localhost>")) == "250");
  c.cmd("RSET");
  // AUTH as carol: a temporary failure, not "wrong password".
  CHECK(c.cmd("AUTH PLAIN AGNhcm9sAHB3").substr(0, 9) == "454 4.7.0");  // carol / pw
  Client p(srv.server->port(Protocol::pop3));
  p.reply();
  CHECK(p.cmd("USER carol").rfind("+OK", 0) == 0);
  CHECK(p.cmd("PASS pw").rfind("-ERR [SYS/TEMP]", 0) == 0);
  srv.finish();
  auto err = util::read_file(home.path / "var" / "log" / "error.log").value();
  CHECK(err.find("carol") != std::string::npos);
}

TEST_CASE("the sent counter counts submissions and relayed mail of the account") {
  TempHome home;
  auto cfg = test::loopback_config(home.path);
  cfg->smtp.address_permits_relay = {"127.0.0.0/8"};
  Running srv(cfg);
  auto sent = [&](const char* account) {
    auto c = Mailbox(home.path / "mailbox" / account).counters();
    REQUIRE(c);
    return c->sent;
  };
  // Inbound mail from another MTA to a local account is not alice's sending.
  CHECK(code(send_message(srv.port(), "alice@localhost", {"bob@localhost"}, "Subject: in\r\n\r\nx")) == "250");
  CHECK(sent("alice") == 0);
  // Relayed with alice as the sender: as send_max_during_a_day counts it.
  CHECK(code(send_message(srv.port(), "alice@localhost", {"far@remote.example"}, "Subject: r\r\n\r\nx")) ==
        "250");
  CHECK(sent("alice") == 1);
  // Authenticated: every message counts, local or remote, for the AUTH user.
  Client c(srv.port());
  c.reply();
  c.cmd("EHLO x");
  CHECK(code(c.cmd("AUTH PLAIN AGFsaWNlAHNlY3JldA==")) == "235");
  for (const char* rcpt : {"bob@localhost", "far@remote.example"}) {
    c.cmd("MAIL FROM:<other@example.org>");
    CHECK(code(c.cmd(std::string("RCPT TO:<") + rcpt + ">")) == "250");
    c.cmd("DATA");
    c.send("Subject: s\r\n\r\nx\r\n.\r\n");
    CHECK(code(c.reply()) == "250");
  }
  CHECK(sent("alice") == 3);
  CHECK(sent("bob") == 0);
}
