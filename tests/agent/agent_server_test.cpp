// The delivery agent inside a running Server: lists with local and remote
// members, hooks with a recording program, permission, timeouts, rewrites,
// forwarding and auto-reply loops. Mail goes in over real SMTP on loopback.
#include "wizmail/server.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "argv_file.hpp"
#include "line_client.hpp"
#include "mime/message_head.hpp"
#include "running_server.hpp"
#include "util/fs.hpp"
#include "wait_until.hpp"
#include "wizmail/account_store.hpp"
#include "mime/header_codec.hpp"
#include "wizmail/queue.hpp"

namespace fs = std::filesystem;
using namespace wizmail;
using namespace std::chrono_literals;

namespace {

std::string helper() { return std::string(std::getenv("WIZMAIL_BUILD_DIR")) + "/tests/agent/hook_helper"; }
std::string fake_sendmail() {
  return std::string(std::getenv("WIZMAIL_SOURCE_DIR")) + "/tests/agent/fake_sendmail.py";
}

using test::wait_until;

struct TempHome : test::MailHome {
  TempHome()
      : MailHome("wizmail-agent", {{"alice", "pw"}, {"bob", "pw"}, {"carol", "pw"}, {"postmaster", "pw"}}) {
    REQUIRE(store.create_mailing_list("ml", "pw", "admin@localhost"));
    REQUIRE(store.add_member("ml", "alice@localhost"));
    REQUIRE(store.add_member("ml", "Bob@LOCALHOST"));
    REQUIRE(store.add_member("ml", "remote@remote.example"));
    REQUIRE(util::make_dirs(path / "rec"));
  }
  void write(const std::string& account, const std::string& file, const std::string& text) const {
    REQUIRE(util::write_file_atomic(dir(account) / file, text));
  }
  std::size_t count(const std::string& account) const { return messages(account).size(); }
  std::vector<QueueEntry> relay_entries() const {
    RelayQueue q(path / "resendmail");
    std::vector<QueueEntry> out;
    if (auto ids = q.list())
      for (auto& id : *ids)
        if (auto e = q.load(id)) out.push_back(*e);
    return out;
  }
  // The argv of each run of the recording hook (NUL-separated .argv files).
  std::vector<std::vector<std::string>> recorded() const {
    std::vector<std::vector<std::string>> out;
    for (auto& e : fs::directory_iterator(path / "rec")) {
      if (e.path().extension() != ".argv") continue;
      out.push_back(test::read_argv_file(e.path()));
    }
    return out;
  }
};

std::shared_ptr<Config> base_config(const fs::path& home) {
  auto c = test::loopback_config(home);
  c->server.alias = {"alias.example"};
  return c;
}

// The server, with its SMTP port in WIZTEST_SMTP_PORT for the hooks.
struct Running : test::RunningServer {
  explicit Running(std::shared_ptr<const Config> cfg) : RunningServer(std::move(cfg)) {
    ::setenv("WIZTEST_SMTP_PORT", std::to_string(port()).c_str(), 1);
  }
};

// One SMTP transaction; returns the reply to the final dot.
std::string smtp_send(std::uint16_t port, const std::string& from, const std::vector<std::string>& rcpts,
                      const std::string& data) {
  test::SmtpClient c(port);
  c.reply();
  c.cmd("EHLO test");
  CHECK(c.cmd("MAIL FROM:<" + from + ">").substr(0, 3) == "250");
  for (auto& r : rcpts) CHECK(c.cmd("RCPT TO:<" + r + ">").substr(0, 3) == "250");
  CHECK(c.cmd("DATA").substr(0, 3) == "354");
  c.send(data + ".\r\n");
  auto r = c.reply();
  c.cmd("QUIT");
  return r;
}

std::string field(const std::string& msg, std::string_view name) { return mime::MessageHead(msg).get(name); }

bool spool_empty(const TempHome& h) {
  RelayQueue q(h.path / "var" / "spool" / "agent");
  auto ids = q.list();
  return ids && ids->empty();
}

// The exits of hooks the child runner reaped, as server.log has them so far
// ("hook alice/exec.def[123]: exit 0", "…: killed by signal 15 (timeout)").
std::size_t hook_exits(const TempHome& h) {
  std::size_t n = 0;
  auto text = h.log();
  for (const char* what : {"]: exit ", "]: killed by signal ", "]: status "})
    for (auto pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
  return n;
}

// Nothing more can happen in the agent: its spool is empty and every hook it
// started (hook_runs counts them before the spawn) has been reaped — so no
// hook is left to submit mail — with no hook started in between. A hook's
// own submission got its 250 before it exited, so it is in the spool (or a
// Maildir) by the time its exit is logged.
bool agent_quiet(const Running& srv, const TempHome& h) {
  const auto runs = srv.server->stats().hook_runs;
  return spool_empty(h) && hook_exits(h) == runs && spool_empty(h) && srv.server->stats().hook_runs == runs;
}

const std::string kPost = "From: Bob <bob@localhost>\r\nTo: ml@localhost\r\nSubject: hello\r\nX-Mailer: t\r\n\r\nbody\r\n";

}  // namespace

TEST_CASE("a list post reaches local members' Maildirs and queues the remote one") {
  TempHome h;
  Running srv(base_config(h.path));
  CHECK(smtp_send(srv.port(), "bob@localhost", {"ml@localhost"}, kPost).substr(0, 3) == "250");
  REQUIRE(wait_until([&] { return h.count("alice") == 1 && h.count("bob") == 1 && spool_empty(h); }));
  CHECK(h.count("ml") == 0);
  CHECK(h.count("carol") == 0);
  auto a = h.messages("alice").front();
  CHECK(field(a, "Return-Path") == "<admin@localhost>");
  CHECK(field(a, "Subject") == "[ml0001]hello");
  CHECK(field(a, "To") == "alice@localhost");
  CHECK(field(a, "Reply-To") == "ml@localhost");
  CHECK(field(a, "List-Id") == "<ml.localhost>");
  CHECK(field(a, "List-Post") == "<mailto:ml@localhost>");
  CHECK(field(a, "Precedence") == "list");
  CHECK(!mime::MessageHead(a).has("X-Mailer"));
  CHECK(field(h.messages("bob").front(), "To") == "Bob@LOCALHOST");
  auto q = h.relay_entries();
  REQUIRE(q.size() == 1);
  CHECK(q[0].sender == "admin@localhost");
  REQUIRE(q[0].recipients.size() == 1);
  CHECK(q[0].recipients[0].address == "remote@remote.example");
  auto data = util::read_file(h.path / "resendmail" / "data" / q[0].id).value();
  CHECK(field(data, "To") == "remote@remote.example");
  CHECK(!mime::MessageHead(data).has("Return-Path"));
  CHECK(load_ml_def(h.dir("ml") / "ml.def")->count == 1);
  // A second post: count 2; a copy that comes back (own List-Id) is dropped.
  CHECK(smtp_send(srv.port(), "bob@localhost", {"ml@localhost"}, kPost).substr(0, 3) == "250");
  REQUIRE(wait_until([&] { return h.count("alice") == 2 && spool_empty(h); }));
  CHECK(smtp_send(srv.port(), "x@remote.example", {"ml@localhost"}, a).substr(0, 3) == "250");
  REQUIRE(wait_until([&] { return spool_empty(h) && h.log().find("(loop)") != std::string::npos; }));
  CHECK(h.count("alice") == 2);
  CHECK(load_ml_def(h.dir("ml") / "ml.def")->count == 2);
}

TEST_CASE("config.def overrides: to_kind, from_kind, X- headers, subject modes, public level, filter") {
  struct Case {
    std::string config_def;
    std::string sender;
    std::function<void(TempHome&)> check;
  };
  std::vector<Case> cases = {
      {"mailing_list_to_kind=1\nmailing_list_from_kind=1\nmailing_list_mail_header_x_element=1\n", "bob@localhost",
       [](TempHome& h) {
         auto a = h.messages("alice").at(0);
         CHECK(field(a, "To") == "ml@localhost");
         CHECK(field(a, "From") == "ml@localhost");
         CHECK(field(a, "X-Mailer") == "t");
         auto q = h.relay_entries();
         REQUIRE(q.size() == 1);
         CHECK(field(util::read_file(h.path / "resendmail" / "data" / q[0].id).value(), "To") == "ml@localhost");
       }},
      {"mailing_list_from_kind=2\nmailing_list_subject_header=0\n", "bob@localhost",
       [](TempHome& h) {
         auto a = h.messages("alice").at(0);
         CHECK(field(a, "Reply-To") == "Bob <bob@localhost>");
         CHECK(field(a, "From") == "Bob <bob@localhost>");
         CHECK(field(a, "Subject") == "hello");
       }},
      {"mailing_list_public_level=0\n", "stranger@remote.example",
       [](TempHome& h) {
         CHECK(h.count("alice") == 0);
         // No list copy went out; the poster is told (RFC 3464, null sender).
         auto q = h.relay_entries();
         REQUIRE(q.size() == 1);
         CHECK(q[0].sender.empty());
         REQUIRE(q[0].recipients.size() == 1);
         CHECK(q[0].recipients[0].address == "stranger@remote.example");
         auto dsn = util::read_file(h.path / "resendmail" / "data" / q[0].id).value();
         CHECK(dsn.find("report-type=delivery-status") != std::string::npos);
         CHECK(dsn.find("Final-Recipient: rfc822; ml@localhost\r\n") != std::string::npos);
         CHECK(dsn.find("Status: 5.7.1\r\n") != std::string::npos);
         CHECK(wait_until([&] { return h.log().find("not permitted") != std::string::npos; }));  // the log is written by its own thread
       }},
      {"mailing_list_public_level=0\n", "alice@localhost", [](TempHome& h) { CHECK(h.count("alice") == 1); }},
      {"mailing_list_public_level=-1\n", "alice@localhost",
       [](TempHome& h) {
         // No list copy; alice only has the notice that her post was refused.
         REQUIRE(h.count("alice") == 1);
         auto n = h.messages("alice").front();
         CHECK(field(n, "List-Id").empty());
         CHECK(field(n, "Return-Path") == "<>");
         CHECK(field(n, "Delivered-To") == "alice@localhost");
         CHECK(n.find("Final-Recipient: rfc822; ml@localhost\r\n") != std::string::npos);
       }},
      {"mailing_list_public_level=-1\n", "ml@alias.example", [](TempHome& h) { CHECK(h.count("alice") == 1); }},
      {"mailing_list_filter_string=spam, hell\n", "bob@localhost",
       [](TempHome& h) {
         CHECK(h.count("alice") == 0);
         CHECK(wait_until([&] { return h.log().find("filtered") != std::string::npos; }));  // the log is written by its own thread
       }},
  };
  for (auto& c : cases) {
    CAPTURE(c.config_def);
    CAPTURE(c.sender);
    TempHome h;
    h.write("ml", "config.def", c.config_def);
    Running srv(base_config(h.path));
    // From: says who posts too (public level 0 accepts a member in either).
    std::string post = kPost;
    post.replace(post.find("bob@localhost"), 13, c.sender);
    CHECK(smtp_send(srv.port(), c.sender, {"ml@localhost"}, post).substr(0, 3) == "250");
    REQUIRE(wait_until([&] { return spool_empty(h); }));
    srv.finish();
    c.check(h);
  }
}

TEST_CASE("ISO-2022-JP subjects round-trip through a list, mode 2") {
  TempHome h;
  h.write("ml", "config.def", "mailing_list_subject_header=2\n");
  MailingListSettings ml = load_ml_def(h.dir("ml") / "ml.def").value();
  ml.name = "サンプルメール:";
  ml.count = 6;
  REQUIRE(save_ml_def(h.dir("ml") / "ml.def", ml));
  Running srv(base_config(h.path));
  std::string subject = mime::encode_header("Re: [サンプルメール:0006]会議の件", "ISO-2022-JP");
  REQUIRE(subject.find("=?ISO-2022-JP?B?") == 0);
  std::string msg = "From: bob@localhost\r\nSubject: " + subject +
                    "\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=ISO-2022-JP\r\n\r\n\x1b$B%F%9%H\x1b(B\r\n";
  CHECK(smtp_send(srv.port(), "bob@localhost", {"ml@localhost"}, msg).substr(0, 3) == "250");
  REQUIRE(wait_until([&] { return h.count("alice") == 1 && spool_empty(h); }));
  auto a = h.messages("alice").front();
  auto s = field(a, "Subject");
  CHECK(s.find("=?ISO-2022-JP?B?") == 0);
  CHECK(mime::decode_header(s).utf8 == "[サンプルメール:0007]Re: 会議の件");
  CHECK(a.find("\r\n\r\n\x1b$B%F%9%H\x1b(B\r\n") != std::string::npos);  // body untouched
}

TEST_CASE("exec hooks: argv verbatim (no shell), stdin, order, permission filter") {
  TempHome h;
  const std::string rec = (h.path / "rec").string();
  h.write("alice", "exec.def",
          "bin=" + helper() + " record " + rec + "\nparam1=FROM_ADDRESS\nparam2=TO_ADDRESS\nparam3=SUBJECT\n"
          "param4=MAILFILE_PATH\nparam5=exec1\nstdin=1\n");
  h.write("alice", "exec2.def", "bin=" + helper() + " record " + rec + "\nparam1=exec2\n");
  h.write("alice", "exec4.def", "bin=" + helper() + " record " + rec + "\nparam1=exec4-never\n");
  h.write("bob", "exec.def",
          "bin=" + helper() + " record " + rec + "\nparam1=bob\npermission_mailaddress=friend@remote.example, localhost\n");
  Running srv(base_config(h.path));
  const std::string sender = "it's$HOME|x&y*{z}~`id`@remote.example";
  const std::string subject = "$(touch /tmp/wizmail-pwned); `id` | 日本語 > x";
  std::string msg = "From: <" + sender + ">\r\nSubject: " + mime::encode_header(subject) + "\r\n\r\nhi\r\n";
  CHECK(smtp_send(srv.port(), sender, {"Alice@alias.example", "bob@localhost"}, msg).substr(0, 3) == "250");
  REQUIRE(wait_until([&] { return h.recorded().size() == 2 && spool_empty(h); }));
  // Quiet: the message is done and every hook started has exited, so a
  // third one (bob's, exec4.def after the gap) would have been counted.
  REQUIRE(wait_until([&] { return agent_quiet(srv, h); }));
  CHECK(srv.server->stats().hook_runs == 2);
  auto r = h.recorded();
  REQUIRE(r.size() == 2);  // alice's exec.def and exec2.def; bob's refused; exec4 after the gap
  std::sort(r.begin(), r.end(), [](auto& x, auto& y) { return x.back() < y.back(); });
  REQUIRE(r[0].size() == 5);
  CHECK(r[0][0] == sender);
  CHECK(r[0][1] == "Alice@alias.example");
  CHECK(r[0][2] == subject);
  CHECK(r[0][4] == "exec1");
  CHECK(r[1] == std::vector<std::string>{"exec2"});
  CHECK(!fs::exists("/tmp/wizmail-pwned"));
  CHECK(h.count("alice") == 1);
  CHECK(h.count("bob") == 1);
  auto stored = h.messages("alice").front();
  CHECK(field(stored, "Delivered-To") == "Alice@alias.example");
  // The log names why bob's hook did not run, and what alice's printed.
  CHECK(wait_until([&] { return h.log().find("not in permission_mailaddress") != std::string::npos; }));  // the log is written by its own thread
  CHECK(wait_until([&] { return h.log().find("recorded 5 args") != std::string::npos; }));  // the log is written by its own thread
  auto st = srv.server->stats();
  CHECK(st.hook_runs == 2);
  CHECK(st.hook_failures == 0);
  // From a permitted domain bob's hook runs.
  CHECK(smtp_send(srv.port(), "someone@localhost", {"bob@localhost"}, "Subject: x\r\n\r\nx\r\n").substr(0, 3) ==
        "250");
  REQUIRE(wait_until([&] { return h.recorded().size() == 3; }));
}

TEST_CASE("wait mode: a rewritten file is delivered, a removed one is not, a hung hook is killed") {
  TempHome h;
  auto cfg = base_config(h.path);
  cfg->server.application_cooperation_wait_for_apl_end = true;
  cfg->server.application_cooperation_timeout = 1;
  h.write("alice", "exec.def", "bin=" + helper() + " rewrite\nparam1=MAILFILE_PATH\n");
  h.write("bob", "exec.def", "bin=" + helper() + " delete\nparam1=MAILFILE_PATH\n");
  h.write("carol", "exec.def", "bin=" + helper() + " sleep 30\n");
  // A list whose hook rewrites the post before distribution.
  h.write("ml", "exec.def", "bin=" + helper() + " rewrite\nparam1=MAILFILE_PATH\n");
  Running srv(cfg);
  CHECK(smtp_send(srv.port(), "x@remote.example", {"alice@localhost", "bob@localhost", "carol@localhost"},
                  "Subject: w\r\n\r\nbody\r\n")
            .substr(0, 3) == "250");
  REQUIRE(wait_until([&] { return h.count("alice") == 1 && h.count("carol") == 1 && spool_empty(h); }));
  // carol's copy was stored because her hook (sleep 30) was killed at the
  // timeout (1 s), not because it ran out: its exit says so.
  CHECK(wait_until([&] {
    auto log = h.log();
    auto at = log.find("hook carol/exec.def[");
    return at != std::string::npos && log.find("]: killed by signal 15 (timeout)", at) != std::string::npos;
  }));
  CHECK(field(h.messages("alice").front(), "Comments") == "rewritten by hook");
  CHECK(h.count("bob") == 0);
  CHECK(wait_until([&] { return h.log().find("the hooks removed the message") != std::string::npos; }));  // the log is written by its own thread
  CHECK(wait_until([&] { return h.log().find("timeout, SIGTERM sent") != std::string::npos; }));  // the log is written by its own thread
  CHECK(wait_until([&] { return srv.server->stats().hook_failures == 1; }));
  CHECK(smtp_send(srv.port(), "bob@localhost", {"ml@localhost"}, kPost).substr(0, 3) == "250");
  REQUIRE(wait_until([&] { return h.count("alice") == 2 && spool_empty(h); }));
  bool rewritten = false;
  for (auto& m : h.messages("alice"))
    if (field(m, "List-Id") == "<ml.localhost>") rewritten = field(m, "Comments") == "rewritten by hook";
  CHECK(rewritten);
}

TEST_CASE("forward.def loops between two accounts end") {
  TempHome h;
  for (auto [from, to] : {std::pair{"alice", "bob"}, std::pair{"bob", "alice"}})
    h.write(from, "forward.def",
            "bin=/usr/bin/python3 " + fake_sendmail() + "\nparam1=FROM_ADDRESS\nparam2=" + std::string(to) +
                "@localhost\nparam3=-mf\nparam4=MAILFILE_PATH\n");
  Running srv(base_config(h.path));
  CHECK(smtp_send(srv.port(), "x@remote.example", {"alice@localhost"}, "Subject: fw\r\n\r\nbody\r\n").substr(0, 3) ==
        "250");
  // alice → bob → alice, where the Delivered-To of alice stops it.
  REQUIRE(wait_until([&] { return h.count("alice") == 2 && h.count("bob") == 1; }, 20s));
  REQUIRE(wait_until([&] { return h.log().find("(loop)") != std::string::npos; }));
  // Quiet (spool empty, both forward hooks reaped): no third copy can come.
  REQUIRE(wait_until([&] { return agent_quiet(srv, h); }, 20s));
  CHECK(h.count("alice") == 2);
  CHECK(h.count("bob") == 1);
  auto st = srv.server->stats();
  CHECK(st.hook_runs == 2);
  CHECK(st.hook_failures == 0);
  CHECK(wait_until([&] { return h.log().find("sent -mf from x@remote.example to bob@localhost") != std::string::npos; }));  // the log is written by its own thread
}

TEST_CASE("reply.def: RFC 3834 and auto-reply loops between two accounts end") {
  TempHome h;
  for (const char* a : {"alice", "bob"}) {
    h.write(a, "reply.sab", std::string("Away: ") + a + "\nI am away.\n");
    h.write(a, "reply.def",
            "bin=/usr/bin/python3 " + fake_sendmail() + "\nparam1=TO_ADDRESS\nparam2=FROM_ADDRESS\nparam3=-sb\n"
            "param4=" + (h.dir(a) / "reply.sab").string() + "\n");
  }
  Running srv(base_config(h.path));
  // List mail, bulk mail, mail from MAILER-DAEMON and the null sender get no reply.
  CHECK(smtp_send(srv.port(), "carol@localhost", {"alice@localhost"}, "Precedence: bulk\r\n\r\nx\r\n").substr(0, 3) == "250");
  CHECK(smtp_send(srv.port(), "MAILER-DAEMON@localhost", {"alice@localhost"}, "Subject: x\r\n\r\nx\r\n").substr(0, 3) == "250");
  CHECK(smtp_send(srv.port(), "", {"alice@localhost"}, "Subject: bounce\r\n\r\nx\r\n").substr(0, 3) == "250");
  CHECK(smtp_send(srv.port(), "carol@localhost", {"alice@localhost"}, "Auto-Submitted: auto-generated\r\n\r\nx\r\n").substr(0, 3) == "250");
  REQUIRE(wait_until([&] { return h.count("alice") == 4 && agent_quiet(srv, h); }));
  // All four are done and no reply hook was started for any of them.
  CHECK(srv.server->stats().hook_runs == 0);
  CHECK(h.count("carol") == 0);
  CHECK(wait_until([&] { return h.log().find("RFC 3834") != std::string::npos; }));  // the log is written by its own thread
  // bob → alice: alice replies to bob, bob replies to alice, alice had
  // replied to bob already: the loop ends (the fake tool adds no header).
  CHECK(smtp_send(srv.port(), "bob@localhost", {"alice@localhost"}, "Subject: hi\r\n\r\nx\r\n").substr(0, 3) == "250");
  REQUIRE(wait_until([&] { return h.count("alice") == 6 && h.count("bob") == 1; }, 20s));
  REQUIRE(wait_until([&] { return h.log().find("had an auto-reply recently") != std::string::npos; }));
  // Quiet (spool empty, both reply hooks reaped): no further reply can come.
  REQUIRE(wait_until([&] { return agent_quiet(srv, h); }, 20s));
  CHECK(srv.server->stats().hook_runs == 2);
  CHECK(h.count("alice") == 6);
  CHECK(h.count("bob") == 1);
  CHECK(field(h.messages("bob").front(), "Subject") == "Away: alice");
}

TEST_CASE("a list post to hundreds of members: copies are written in rounds, each member gets one, a broken Maildir fails alone") {
  TempHome h;
  // More members of each kind than one round (128) holds, so the post
  // takes several rounds of local copies and of queue entries.
  constexpr int kLocal = 300, kRemote = 300;
  REQUIRE(h.store.create_mailing_list("big", "pw", "admin@localhost"));
  auto name = [](const char* prefix, int i) {
    std::string n = prefix;
    n += std::to_string(1000 + i).substr(1);
    return n;
  };
  for (int i = 0; i < kLocal; ++i) {
    REQUIRE(h.store.create(name("m", i), "pw"));
    REQUIRE(h.store.add_member("big", name("m", i) + "@localhost"));
  }
  for (int i = 0; i < kRemote; ++i) REQUIRE(h.store.add_member("big", name("r", i) + "@remote.example"));
  // One member's Maildir cannot take a file: its tmp/ is a plain file.
  const std::string broken = name("m", 150);
  fs::remove_all(h.dir(broken) / "tmp");
  REQUIRE(util::write_file_atomic(h.dir(broken) / "tmp", "not a folder\n"));
  Running srv(base_config(h.path));
  const std::string post = "From: Bob <bob@localhost>\r\nTo: big@localhost\r\nSubject: many\r\n\r\nbody\r\n";
  CHECK(smtp_send(srv.port(), "bob@localhost", {"big@localhost"}, post).substr(0, 3) == "250");
  REQUIRE(wait_until([&] { return spool_empty(h) && h.log().find("mailing list big: post 1") != std::string::npos; },
                     60s));
  for (int i = 0; i < kLocal; ++i) {
    const auto n = name("m", i);
    if (n == broken) {
      CHECK(h.count_new(n) == 0);
      continue;
    }
    auto msgs = h.messages(n);
    REQUIRE_MESSAGE(msgs.size() == 1, n);
    CHECK(field(msgs[0], "Delivered-To") == n + "@localhost");
    CHECK(field(msgs[0], "To") == n + "@localhost");
    CHECK(field(msgs[0], "Subject") == "[big0001]many");
  }
  // One queue entry per remote member (to_kind 0), each with its own To:.
  std::set<std::string> remote;
  for (const auto& e : h.relay_entries()) {
    REQUIRE(e.recipients.size() == 1);
    CHECK(remote.insert(e.recipients[0].address).second);
    auto data = util::read_file(h.path / "resendmail" / "data" / e.id).value();
    CHECK(field(data, "To") == e.recipients[0].address);
  }
  CHECK(remote.size() == kRemote);
  // Nothing staged is left behind in the queue's tmp/.
  CHECK(test::count_files(h.path / "resendmail" / "tmp") == 0);
  const auto log = h.log();
  CHECK(log.find("mailing list big: " + broken + "@localhost: ") != std::string::npos);
  CHECK(log.find("to " + std::to_string(kLocal - 1 + kRemote) + " members, 1 failed") != std::string::npos);
}
