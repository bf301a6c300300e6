// What an embedder adds to a Server (docs/embedding.md): a log sink, the
// delivery callback's refusals, and its own user directory at RCPT —
// each over loopback, with the in-process line client and Python's smtplib.
#include "wizmail/server.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "loopback.hpp"
#include "server/log.hpp"
#include "temp_dir.hpp"
#include "util/fs.hpp"
#include "wizmail/account_store.hpp"
#include "wizmail/queue.hpp"
#include "wizmail/admin/submit.hpp"

namespace fs = std::filesystem;
using namespace wizmail;
using namespace std::chrono_literals;
using test::RunningServer;
using test::send_message;
using test::smtplib_send;

namespace {

struct Home {
  test::TempDir dir{"wizmail-embed"};
  Home() {
    REQUIRE(util::make_dirs(path() / "mailbox"));
    AccountStore store(path() / "mailbox");
    for (const char* a : {"alice", "bob", "postmaster"}) REQUIRE(store.create(a, "secret"));
  }
  const fs::path& path() const { return dir.path(); }
  std::size_t count_new(const std::string& account) const {
    std::size_t n = 0;
    for ([[maybe_unused]] auto& e : fs::directory_iterator(path() / "mailbox" / account / "new")) ++n;
    return n;
  }
  std::vector<std::string> messages(const std::string& account) const {
    std::vector<std::string> out;
    for (auto& e : fs::directory_iterator(path() / "mailbox" / account / "new"))
      out.push_back(util::read_file(e.path()).value());
    return out;
  }
  std::vector<std::string> queued() const {
    RelayQueue q(path() / "resendmail");
    std::vector<std::string> out;
    const auto ids = q.list().value();
    for (const auto& id : ids) out.push_back(util::read_file(q.message_path(id)).value());
    return out;
  }
  std::string log(const char* file) const {
    auto t = util::read_file(path() / "var" / "log" / file);
    return t ? *t : std::string();
  }
};

std::shared_ptr<Config> config_for(const fs::path& home) {
  auto c = std::make_shared<Config>();
  c->home = home;
  c->smtp.bind_address = {"127.0.0.1"};
  c->smtp.send_permits_only_smtp_auth = true;
  return c;
}

bool contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

}  // namespace

// ---------------------------------------------------------------------------
// ServerOptions::log_sink

TEST_CASE("log sink: every line as a record, on one log thread, one call at a time") {
  Home home;
  struct Seen {
    std::mutex mu;
    std::vector<LogRecord> records;
    std::set<std::thread::id> threads;
    std::atomic<int> inside{0};
    std::atomic<int> overlaps{0};
  } seen;
  ServerOptions opt;
  opt.io_threads = 2;  // sessions on two threads of their own
  opt.log_sink = [&seen](const LogRecord& r) {
    if (seen.inside.fetch_add(1) != 0) ++seen.overlaps;
    std::this_thread::sleep_for(50us);  // a slow sink makes overlaps visible
    {
      std::lock_guard lk(seen.mu);
      seen.records.push_back(r);
      seen.threads.insert(std::this_thread::get_id());
    }
    seen.inside.fetch_sub(1);
  };
  bool files = true;
  SUBCASE("with the files") {}
  SUBCASE("without the files") {
    opt.log_files = false;
    files = false;
  }
  RunningServer srv(config_for(home.path()), opt);
  std::vector<std::thread> clients;
  std::atomic<int> accepted{0};
  for (int i = 0; i < 4; ++i)
    clients.emplace_back([&, i] {
      for (int k = 0; k < 3; ++k)
        if (send_message(srv.port(), "sender" + std::to_string(i) + "@remote.example", {"alice@localhost"},
                         "Subject: m\r\n\r\nx")
                .starts_with("250"))
          ++accepted;
    });
  for (auto& t : clients) t.join();
  CHECK(accepted == 12);
  CHECK(send_message(srv.port(), "x@remote.example", {"nobody@localhost"}, "x").starts_with("RCPT refused: 550"));
  const auto io_thread = srv.thread.get_id();
  srv.finish();  // "stopped" reaches the sink before stop's done

  std::lock_guard lk(seen.mu);
  CHECK(seen.overlaps == 0);
  REQUIRE(seen.threads.size() == 1);
  CHECK(*seen.threads.begin() != std::this_thread::get_id());
  CHECK(*seen.threads.begin() != io_thread);
  auto find = [&](LogFacility f, std::string_view text) {
    return std::find_if(seen.records.begin(), seen.records.end(),
                        [&](const LogRecord& r) { return r.facility == f && contains(r.text, text); });
  };
  // Commands and replies of each session, with its id and peer, in order.
  auto mail = find(LogFacility::smtp, "MAIL FROM:<sender2@remote.example>");
  REQUIRE(mail != seen.records.end());
  CHECK_FALSE(mail->session.empty());
  CHECK(mail->peer.starts_with("127.0.0.1:"));
  CHECK(mail->time <= std::chrono::system_clock::now());
  auto rcpt = std::find_if(mail, seen.records.end(), [&](const LogRecord& r) {
    return r.session == mail->session && contains(r.text, "RCPT TO:<alice@localhost>");
  });
  CHECK(rcpt != seen.records.end());
  CHECK(std::count_if(seen.records.begin(), seen.records.end(), [](const LogRecord& r) {
          return r.facility == LogFacility::smtp && r.text.starts_with("MAIL FROM:");
        }) == 13);
  CHECK(find(LogFacility::server, "stopped") != seen.records.end());
  CHECK(to_string(LogFacility::error) == "error");

  // The files as before when kept; nothing under var/log otherwise.
  if (files) {
    CHECK(contains(home.log("smtp.log"), "MAIL FROM:<sender2@remote.example>"));
    CHECK(contains(home.log("server.log"), "stopped"));
  } else {
    CHECK_FALSE(fs::exists(home.path() / "var" / "log" / "smtp.log"));
  }
}

TEST_CASE("log sink: the logger's records are clean lines with their fields; before start on the caller") {
  test::TempDir dir("wizmail-log");
  std::vector<LogRecord> records;
  std::vector<std::thread::id> threads;
  std::mutex mu;
  server::Logger log(dir.path() / "logs", 0, false, false, [&](const LogRecord& r) {
    std::lock_guard lk(mu);
    records.push_back(r);
    threads.push_back(std::this_thread::get_id());
  });
  log.log(server::LogFile::error, "s0", "192.0.2.9:25", "", "before start");
  {
    std::lock_guard lk(mu);
    REQUIRE(records.size() == 1);  // at once, on this thread
    CHECK(threads[0] == std::this_thread::get_id());
  }
  REQUIRE(log.start());
  log.log(server::LogFile::smtp, "s1", "192.0.2.1:25", "alice", "MAIL FROM:<x>\r\nforged 250 line\x7f\xff");
  log.flush();  // the sink has had it when flush() returns
  log.stop();
  CHECK_FALSE(fs::exists(dir.path() / "logs"));  // files off
  std::lock_guard lk(mu);
  REQUIRE(records.size() == 2);
  CHECK(records[0].facility == LogFacility::error);
  CHECK(records[0].text == "before start");
  const auto& r = records[1];
  CHECK(r.facility == LogFacility::smtp);
  CHECK(r.session == "s1");
  CHECK(r.peer == "192.0.2.1:25");
  CHECK(r.account == "alice");
  CHECK(r.text == "MAIL FROM:<x>\\x0D\\x0Aforged 250 line\\x7F\\xFF");
  CHECK(threads[1] != std::this_thread::get_id());
}

// ---------------------------------------------------------------------------
// DeliveryDecision::reject

TEST_CASE("delivery callback refusals: the DATA reply, or 250 and a failure notice") {
  Home home;
  auto cfg = config_for(home.path());
  cfg->smtp.address_permits_relay = {"127.0.0.0/8"};  // a remote recipient in the mix
  RunningServer srv(cfg);
  // Subject "refuse <account> <code>": that account's copy is refused.
  srv.server->add_delivery_callback([](const Delivery& d) {
    for (const auto& [k, v] : d.headers) {
      if (k != "Subject") continue;
      const std::string mine = "refuse-" + d.account + " ";
      for (const std::string& key : {std::string("refuse-all "), mine}) {
        auto at = v.find(key);
        if (at == std::string::npos) continue;
        const int code = std::stoi(v.substr(at + key.size(), 3));
        if (code == 200) return DeliveryDecision::reject(200, "2.0.0", "not a refusal");
        return DeliveryDecision::reject(code, code < 500 ? "4.2.0" : "5.7.1",
                                        "no mail for " + d.account + "\r\nforged: line");
      }
    }
    return DeliveryDecision::accept();
  });

  SUBCASE("one recipient, permanent: the DATA reply carries the refusal") {
    auto r = send_message(srv.port(), "x@remote.example", {"alice@localhost"}, "Subject: refuse-alice 550\r\n\r\nx");
    CHECK(r == "550 5.7.1 no mail for alice??forged: line");
    CHECK(home.count_new("alice") == 0);
    CHECK(home.queued().empty());
  }
  SUBCASE("one recipient, temporary") {
    auto r = send_message(srv.port(), "x@remote.example", {"alice@localhost"}, "Subject: refuse-alice 451\r\n\r\nx");
    CHECK(r.starts_with("451 4.2.0 no mail for alice"));
    CHECK(home.count_new("alice") == 0);
  }
  SUBCASE("every recipient refused: nothing delivered, no notice") {
    auto out = smtplib_send(srv.port(), "x@remote.example", {"alice@localhost", "bob@localhost"},
                            "Subject: refuse-all 554\n\nx");
    CHECK_MESSAGE(contains(out, "DATA 554 5.7.1 no mail for alice"), out);
    CHECK(home.count_new("alice") == 0);
    CHECK(home.count_new("bob") == 0);
    CHECK(home.queued().empty());
  }
  SUBCASE("a temporary refusal among accepted recipients refuses the whole message") {
    auto out = smtplib_send(srv.port(), "x@remote.example", {"alice@localhost", "bob@localhost", "far@remote.example"},
                            "Subject: refuse-bob 450\n\nx");
    CHECK_MESSAGE(contains(out, "DATA 450 4.2.0 no mail for bob"), out);
    CHECK(home.count_new("alice") == 0);
    CHECK(home.count_new("bob") == 0);
    CHECK(home.queued().empty());  // not relayed either: the client retries all
  }
  SUBCASE("a permanent refusal among accepted recipients: 250, and the sender is told") {
    auto out = smtplib_send(srv.port(), "x@remote.example", {"alice@localhost", "bob@localhost"},
                            "Subject: refuse-bob 550\nMessage-ID: <m1@remote.example>\n\nx");
    CHECK_MESSAGE(contains(out, "DATA 250 "), out);
    CHECK(home.count_new("alice") == 1);
    CHECK(home.count_new("bob") == 0);
    auto q = home.queued();  // the notice to the remote sender
    REQUIRE(q.size() == 1);
    CHECK(contains(q[0], "multipart/report"));
    CHECK(contains(q[0], "Action: failed"));
    CHECK(contains(q[0], "Final-Recipient: rfc822; bob@localhost"));
    CHECK(contains(q[0], "Status: 5.7.1"));
    CHECK(contains(q[0], "Diagnostic-Code: smtp; 550 5.7.1 no mail for bob"));
    CHECK(contains(q[0], "Message-ID: <m1@remote.example>"));  // the original headers
    CHECK_FALSE(contains(q[0], "alice@localhost"));
    CHECK(srv.server->stats().messages_bounced == 1);
  }
  SUBCASE("the null sender is never sent a notice") {
    auto r = send_message(srv.port(), "", {"alice@localhost", "bob@localhost"}, "Subject: refuse-bob 550\r\n\r\nx");
    CHECK(r.starts_with("250"));
    CHECK(home.count_new("alice") == 1);
    CHECK(home.queued().empty());
  }
  SUBCASE("NOTIFY=NEVER is honoured") {
    test::SmtpClient c(srv.port());
    c.reply();
    c.cmd("EHLO x");
    c.cmd("MAIL FROM:<x@remote.example>");
    CHECK(c.cmd("RCPT TO:<alice@localhost>").starts_with("250"));
    CHECK(c.cmd("RCPT TO:<bob@localhost> NOTIFY=NEVER").starts_with("250"));
    c.cmd("DATA");
    c.send("Subject: refuse-bob 550\r\n\r\nx\r\n.\r\n");
    CHECK(c.reply().starts_with("250"));
    CHECK(home.queued().empty());
  }
  SUBCASE("a refusal that is no refusal is a temporary failure") {
    auto r = send_message(srv.port(), "x@remote.example", {"alice@localhost"}, "Subject: refuse-alice 200\r\n\r\nx");
    CHECK(r.starts_with("451 4.3.0"));
    CHECK(home.count_new("alice") == 0);
    srv.finish();
    CHECK(contains(home.log("server.log"), "invalid reply code 200"));
  }
  srv.finish();
  CHECK(contains(home.log("error.log"), "delivery callback refused <"));
}

// ---------------------------------------------------------------------------
// ServerOptions::recipient_callback

TEST_CASE("recipient callback: the embedder's directory accepts and refuses at RCPT") {
  Home home;
  std::mutex mu;
  std::vector<RecipientQuery> queries;
  std::set<std::thread::id> threads;
  ServerOptions opt;
  opt.recipient_callback = [&](const RecipientQuery& q) {
    {
      std::lock_guard lk(mu);
      queries.push_back(q);
      threads.insert(std::this_thread::get_id());
    }
    if (q.address == "sales@partner.example") return RecipientDecision::accept("Bob");
    if (q.address == "alice@localhost") return RecipientDecision::reject(550, "5.7.1", "alice is away");
    if (q.address == "ghost@localhost") return RecipientDecision::accept("nobody");
    if (q.address == "bad@localhost") return RecipientDecision::accept("../bob");
    if (q.address == "busy@localhost") return RecipientDecision::reject(450, "", "");
    if (q.address == "boom@localhost") throw std::runtime_error("directory down");
    return RecipientDecision::defer();
  };
  RunningServer srv(config_for(home.path()), opt);

  auto out = smtplib_send(srv.port(), "someone@remote.example",
                          {"sales@partner.example", "alice@localhost", "bob@localhost", "ghost@localhost",
                           "bad@localhost", "busy@localhost", "boom@localhost", "else@partner.example"},
                          "Subject: via the directory\n\nx");
  // A non-local address the directory knows: accepted without relaying.
  CHECK_MESSAGE(contains(out, "RCPT sales@partner.example 250 "), out);
  CHECK_MESSAGE(contains(out, "RCPT alice@localhost 550 5.7.1 alice is away"), out);
  CHECK_MESSAGE(contains(out, "RCPT bob@localhost 250 "), out);  // deferred to the accounts
  // An account that does not exist, or no account name: the embedder's
  // mistake, a temporary refusal.
  CHECK_MESSAGE(contains(out, "RCPT ghost@localhost 451 4.3.0"), out);
  CHECK_MESSAGE(contains(out, "RCPT bad@localhost 451 4.3.0"), out);
  CHECK_MESSAGE(contains(out, "RCPT busy@localhost 450 4.7.1 Error: recipient address rejected"), out);
  CHECK_MESSAGE(contains(out, "RCPT boom@localhost 451 4.3.0"), out);
  // Deferred: the built-in relay rules still refuse.
  CHECK_MESSAGE(contains(out, "RCPT else@partner.example 554 5.7.1"), out);
  CHECK_MESSAGE(contains(out, "DATA 250 "), out);

  // sales@partner.example went into bob's mailbox, as itself (bob@localhost
  // is the same account: one copy per account and message).
  auto bob = home.messages("bob");
  REQUIRE(bob.size() == 1);
  CHECK(contains(bob[0], "Delivered-To: sales@partner.example\r\n"));
  CHECK(contains(bob[0], "Subject: via the directory"));
  CHECK(home.count_new("alice") == 0);
  CHECK(home.queued().empty());

  // The session's facts, asked on the server's blocking pool, never on the
  // session's thread (here: the one running the io_context).
  {
    test::SmtpClient c(srv.port());
    c.reply();
    c.cmd("EHLO helo.example");
    CHECK(c.cmd("AUTH PLAIN AGFsaWNlAHNlY3JldA==").starts_with("235"));
    c.cmd("MAIL FROM:<alice@localhost>");
    CHECK(c.cmd("RCPT TO:<sales@partner.example>").starts_with("250"));
    c.cmd("QUIT");
  }
  {
    std::lock_guard lk(mu);
    REQUIRE_FALSE(queries.empty());
    const auto& q = queries.back();
    CHECK(q.address == "sales@partner.example");
    CHECK(q.sender == "alice@localhost");
    CHECK(q.auth_user == "alice");
    CHECK(q.client_ip == "127.0.0.1");
    CHECK(q.helo == "helo.example");
    CHECK(q.protocol == Protocol::smtp);
    CHECK(queries.front().auth_user.empty());
    CHECK_FALSE(threads.contains(srv.thread.get_id()));
  }
  srv.finish();
  auto err = home.log("error.log");
  CHECK(contains(err, "refused by the embedder's directory: 550 5.7.1 alice is away"));
  CHECK(contains(err, "directory down"));
  CHECK(contains(err, "into account nobody: no such account"));
}

TEST_CASE("recipient callback: an accepted account's own checks still apply; without a callback the rules alone") {
  Home home;
  auto cfg = config_for(home.path());
  cfg->server.mailbox_capacity_mail_count = 0;  // every mailbox is full
  ServerOptions opt;
  opt.recipient_callback = [](const RecipientQuery& q) {
    return q.address == "sales@partner.example" ? RecipientDecision::accept("bob") : RecipientDecision::defer();
  };
  {
    RunningServer srv(cfg, opt);
    auto out = smtplib_send(srv.port(), "someone@remote.example", {"sales@partner.example"}, "x");
    CHECK_MESSAGE(contains(out, "RCPT sales@partner.example 452 4.2.2"), out);
  }
  RunningServer plain(config_for(home.path()));
  auto out = smtplib_send(plain.port(), "someone@remote.example", {"sales@partner.example"}, "x");
  CHECK_MESSAGE(contains(out, "RCPT sales@partner.example 554 5.7.1"), out);
}

TEST_CASE("recipient callback: the local submit socket asks it too") {
  Home home;
  std::mutex mu;
  std::vector<RecipientQuery> queries;
  ServerOptions opt;
  opt.local_sockets = true;
  opt.recipient_callback = [&](const RecipientQuery& q) {
    {
      std::lock_guard lk(mu);
      queries.push_back(q);
    }
    if (q.address == "sales@partner.example") return RecipientDecision::accept("bob");
    if (q.address == "alice@localhost") return RecipientDecision::reject(550, "5.7.1", "alice is away");
    return RecipientDecision::defer();
  };
  RunningServer srv(config_for(home.path()), opt);
  const auto sock = home.path() / "var" / "run" / "submit.sock";
  REQUIRE(submit::send(sock, {"cron@localhost", {"sales@partner.example"}}, "Subject: local\r\n\r\nx\r\n"));
  auto refused = submit::send(sock, {"cron@localhost", {"alice@localhost"}}, "Subject: local\r\n\r\nx\r\n");
  REQUIRE_FALSE(refused);
  CHECK(refused.error().smtp_code == 550);
  CHECK(refused.error().enhanced == "5.7.1");
  CHECK(home.count_new("bob") == 1);
  CHECK(home.count_new("alice") == 0);
  std::lock_guard lk(mu);
  REQUIRE(queries.size() == 2);
  CHECK(queries[0].protocol == Protocol::local_submit);
  CHECK(queries[0].client_ip == "127.0.0.1");  // as the session has it
  CHECK(queries[0].sender == "cron@localhost");
}

TEST_CASE("recipient callback: a slow answer stalls its own session only, not the others on its thread") {
  // Check, then proceed: the policy of a RCPT runs on the blocking pool.
  // One session thread; session A's RCPT waits in the callback until
  // session B, on the same thread, has had a whole message accepted. Were
  // the callback on the session thread, B could not move and A's wait
  // would end in a refusal after 20 s.
  Home home;
  std::promise<void> b_done;
  auto b_done_f = b_done.get_future().share();
  std::atomic<bool> waited_ok{false};
  ServerOptions opt;
  opt.io_threads = 1;
  opt.recipient_callback = [&](const RecipientQuery& q) {
    if (q.address != "slow@localhost") return RecipientDecision::defer();
    if (b_done_f.wait_for(20s) != std::future_status::ready)
      return RecipientDecision::reject(451, "4.3.0", "the other session never moved");
    waited_ok = true;
    return RecipientDecision::accept("alice");
  };
  RunningServer srv(config_for(home.path()), opt);
  test::SmtpClient a(srv.port());
  a.reply();
  a.cmd("EHLO a.example");
  CHECK(a.cmd("MAIL FROM:<a@remote.example>").starts_with("250"));
  test::SmtpClient b(srv.port());
  b.reply();
  b.cmd("EHLO b.example");
  a.send("RCPT TO:<slow@localhost>\r\n");  // its answer waits for b
  CHECK(b.cmd("MAIL FROM:<b@remote.example>").starts_with("250"));
  CHECK(b.cmd("RCPT TO:<bob@localhost>").starts_with("250"));
  CHECK(b.cmd("DATA").starts_with("354"));
  CHECK(b.cmd("Subject: b\r\n\r\nfrom b\r\n.").starts_with("250"));
  b_done.set_value();
  CHECK(a.reply().starts_with("250"));
  CHECK(waited_ok);
  a.cmd("QUIT");
  b.cmd("QUIT");
  srv.finish();
  CHECK(home.count_new("bob") == 1);
}
