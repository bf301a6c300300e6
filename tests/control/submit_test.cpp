// Local submission helpers (wizmail/admin/submit.hpp) and the systemd unit text
// (wizmail/admin/daemon.hpp).
#include "wizmail/admin/submit.hpp"

#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "smtp/parser.hpp"
#include "temp_dir.hpp"
#include "wizmail/admin/daemon.hpp"

using namespace wizmail;
using namespace wizmail::submit;
namespace fs = std::filesystem;

namespace {

std::string header(const std::string& msg, const std::string& name) {
  auto p = msg.find("\r\n" + name + ": ");
  if (msg.starts_with(name + ": ")) p = 0;
  else if (p == std::string::npos) return {};
  else p += 2;
  auto start = p + name.size() + 2;
  std::string out;
  for (auto q = start;;) {
    auto e = msg.find("\r\n", q);
    out += msg.substr(q, e - q);
    if (e + 2 < msg.size() && (msg[e + 2] == ' ' || msg[e + 2] == '\t')) {
      q = e + 2;
      continue;
    }
    return out;
  }
}

struct TempDir {
  test::TempDir tmp{"wizmail-submit"};
  fs::path path = tmp.path();
};

}  // namespace

TEST_CASE("subject-and-body files") {
  auto sb = parse_subject_body("\xEF\xBB\xBFHello there\r\nline 1\r\nline 2\r\n");
  REQUIRE(sb);
  CHECK(sb->subject == "Hello there");
  CHECK(sb->body == "line 1\r\nline 2\r\n");
  sb = parse_subject_body("only a subject");
  REQUIRE(sb);
  CHECK(sb->subject == "only a subject");
  CHECK(sb->body.empty());
  sb = parse_subject_body("");
  REQUIRE(sb);
  CHECK(sb->subject.empty());
  CHECK_FALSE(parse_subject_body("\x82\xa0 Shift_JIS\n"));  // not UTF-8
  CHECK_FALSE(parse_subject_body("a\rBcc: x@y\nbody"));      // CR inside the subject line
  CHECK_FALSE(parse_subject_body(std::string("a\nb\0c", 5)));
}

TEST_CASE("addresses") {
  for (const char* ok : {"a@b", "alice@example.com", "postmaster", "a.b+c@x-y.z"})
    CHECK(valid_address(ok));
  for (const char* bad : {"", "a b@c", "<a@b>", "a@b>", "a,b@c", "a@", "@b", "a@b@c", "a\r\n@b", "\"q\"@b",
                          "a;b@c"})
    CHECK_FALSE(valid_address(bad));
  CHECK_FALSE(valid_address(std::string(255, 'a')));
}

TEST_CASE("RFC 2047 subjects") {
  CHECK(encode_header_value("plain ascii", 9) == "plain ascii");
  std::string jp = "\xE8\x87\xAA\xE5\x8B\x95\xE8\xBF\x94\xE4\xBF\xA1";  // 自動返信
  auto enc = encode_header_value(jp, 9);
  CHECK(enc == "=?UTF-8?B?" + smtp::base64_encode(jp) + "?=");
  // A long subject: several words, each ≤ 75 octets, each whole UTF-8.
  std::string long_jp;
  for (int i = 0; i < 40; ++i) long_jp += jp;
  enc = encode_header_value(long_jp, 9);
  std::string decoded;
  std::size_t words = 0, pos = 0;
  while (pos < enc.size()) {
    auto end = enc.find("\r\n ", pos);
    auto word = enc.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    CHECK(word.size() <= 75);
    REQUIRE(word.starts_with("=?UTF-8?B?"));
    REQUIRE(word.ends_with("?="));
    auto part = smtp::base64_decode(word.substr(10, word.size() - 12));
    REQUIRE(part);
    CHECK(part->size() % 3 == 0);  // 3-byte characters never split
    decoded += *part;
    ++words;
    if (end == std::string::npos) break;
    pos = end + 3;
  }
  CHECK(words > 1);
  CHECK(decoded == long_jp);
  // Control characters are never written raw.
  CHECK(encode_header_value("a\x01z", 9).starts_with("=?UTF-8?B?"));
}

TEST_CASE("text messages") {
  TextMessage m;
  m.from = "alice@example.com";
  m.to = {"bob@example.com", "carol@example.org"};
  m.subject = "\xE8\x87\xAA\xE5\x8B\x95";
  m.body = "\xE3\x81\x93\xE3\x82\x93\xE3\x81\xAB\xE3\x81\xA1\xE3\x81\xAF\n.dot line\n";
  m.hostname = "example.com";
  auto msg = build_text_message(m);
  CHECK(header(msg, "From") == "alice@example.com");
  CHECK(header(msg, "To") == "bob@example.com, carol@example.org");
  CHECK(header(msg, "Subject").starts_with("=?UTF-8?B?"));
  CHECK(header(msg, "MIME-Version") == "1.0");
  CHECK(header(msg, "Content-Type") == "text/plain; charset=UTF-8");
  CHECK(header(msg, "Content-Transfer-Encoding") == "base64");
  auto mid = header(msg, "Message-ID");
  CHECK(mid.starts_with("<"));
  CHECK(mid.ends_with("@example.com>"));
  CHECK(header(msg, "Date").size() >= 29);
  auto body_at = msg.find("\r\n\r\n");
  REQUIRE(body_at != std::string::npos);
  std::string b64;
  for (char c : msg.substr(body_at + 4))
    if (c != '\r' && c != '\n') b64 += c;
  auto body = smtp::base64_decode(b64);
  REQUIRE(body);
  CHECK(*body == "\xE3\x81\x93\xE3\x82\x93\xE3\x81\xAB\xE3\x81\xA1\xE3\x81\xAF\r\n.dot line\r\n");
  // No bare LF anywhere.
  for (std::size_t i = 0; i < msg.size(); ++i)
    if (msg[i] == '\n') CHECK((i > 0 && msg[i - 1] == '\r'));

  m.subject = "hi";
  m.body = "plain\nascii";
  msg = build_text_message(m);
  CHECK(header(msg, "Content-Transfer-Encoding") == "7bit");
  CHECK(msg.ends_with("\r\n\r\nplain\r\nascii\r\n"));
  CHECK(new_message_id("h") != new_message_id("h"));
}

TEST_CASE("classic input: dots and line ends") {
  CHECK(read_message("Subject: x\n\nbody\n.\nafter\n", false) == "Subject: x\r\n\r\nbody\r\n");
  CHECK(read_message("Subject: x\n\nbody\n.\nafter\n", true) == "Subject: x\r\n\r\nbody\r\n.\r\nafter\r\n");
  CHECK(read_message("a\r\nb", true) == "a\r\nb\r\n");
  CHECK(read_message("..\n", false) == "..\r\n");  // only a lone dot ends it
  CHECK(read_message("", false).empty());
}

TEST_CASE("-t: recipients from To, Cc and Bcc; Bcc removed") {
  std::string msg =
      "From: me@x\r\n"
      "To: \"Bob, Jr.\" <bob@example.com>, carol@example.org (Carol)\r\n"
      "Cc: team: dave@example.net, erin@example.net;\r\n"
      "Bcc: secret@example.com,\r\n"
      "  hidden@example.com\r\n"
      "Subject: hi\r\n"
      "\r\n"
      "To: not-a-header@example.com\r\n";
  auto r = recipients_from_headers(msg);
  REQUIRE(r);
  CHECK(r->recipients == std::vector<std::string>{"bob@example.com", "carol@example.org", "dave@example.net",
                                                  "erin@example.net", "secret@example.com",
                                                  "hidden@example.com"});
  CHECK(r->message.find("Bcc") == std::string::npos);
  CHECK(r->message.find("hidden@") == std::string::npos);
  CHECK(r->message.find("Subject: hi\r\n\r\nTo: not-a-header@example.com") != std::string::npos);
  auto bad = recipients_from_headers("To: <a b@c>\r\n\r\n");
  CHECK_FALSE(bad);
  auto none = recipients_from_headers("Subject: x\r\n\r\nbody\r\n");
  REQUIRE(none);
  CHECK(none->recipients.empty());
}

TEST_CASE("missing headers are completed") {
  auto m = complete_headers("Subject: x\r\n\r\nbody\r\n", "me@example.com", "example.com");
  CHECK(m.find("From: me@example.com\r\n") != std::string::npos);
  CHECK(m.find("Date: ") == 0);
  CHECK(m.find("Message-ID: <") != std::string::npos);
  CHECK(m.ends_with("Subject: x\r\n\r\nbody\r\n"));
  auto kept = complete_headers("From: a@b\r\nDate: x\r\nMessage-ID: <1@b>\r\n\r\nbody\r\n", "me@x", "x");
  CHECK(kept == "From: a@b\r\nDate: x\r\nMessage-ID: <1@b>\r\n\r\nbody\r\n");
}

TEST_CASE("-onlyonce records pairs once") {
  TempDir d;
  auto f = d.path / "onlyonce.csv";
  CHECK_FALSE(*onlyonce_seen(f, "a@x", "b@y"));
  CHECK(onlyonce_record(f, "a@x", "b@y"));
  CHECK(*onlyonce_seen(f, "A@X", "b@Y"));
  CHECK_FALSE(*onlyonce_seen(f, "a@x", "c@y"));
  CHECK(onlyonce_record(f, "a@x", "b@y"));  // no duplicate line
  CHECK(onlyonce_record(f, "a@x", "c@y"));
  std::ifstream in(f);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(text == "a@x,b@y\na@x,c@y\n");
  CHECK_FALSE(onlyonce_record(f, "a,b@x", "c@y"));  // would corrupt the file
  CHECK((fs::status(f).permissions() & fs::perms::others_read) == fs::perms::none);
  // A symlink planted at the path is not followed.
  auto link = d.path / "link.csv";
  fs::create_symlink(d.path / "elsewhere", link);
  CHECK_FALSE(onlyonce_seen(link, "a@x", "b@y"));
  CHECK_FALSE(fs::exists(d.path / "elsewhere"));
}

TEST_CASE("send: the server not running is a clear error") {
  TempDir d;
  auto st = send(d.path / "submit.sock", {"a@x", {"b@y"}}, "Subject: x\r\n\r\nb\r\n");
  REQUIRE_FALSE(st);
  CHECK(st.error().code == Errc::unavailable);
  CHECK(st.error().message.find("not running") != std::string::npos);
  CHECK_FALSE(send(d.path / "submit.sock", {"a@x", {}}, "x"));
  CHECK(send(d.path / "submit.sock", {"a x", {"b@y"}}, "x").error().code == Errc::invalid_argument);
  CHECK(send(d.path / "submit.sock", {"a@x", {"b@y>\r\nRCPT TO:<c@z"}}, "x").error().code ==
        Errc::invalid_argument);
}

TEST_CASE("command line: which form (manual FROM TO vs classic recipients)") {
  using F = CommandLine::Form;
  auto parse = [](std::vector<std::string> a, bool as_sendmail = false, bool hook = false) {
    return parse_command_line(a, as_sendmail, hook);
  };
  // The manual's forwarding recipe: FROM TO, the mail on standard input.
  auto m = parse({"fwd1@example.test", "bob@example.test"});
  REQUIRE(m);
  CHECK(m->form == F::manual_stdin);
  CHECK(m->sender == "fwd1@example.test");
  CHECK(m->recipients == std::vector<std::string>{"bob@example.test"});
  CHECK(m->ignore_dots);
  m = parse({"a@x", "b@y, c@z", "-nowait"});
  REQUIRE(m);
  CHECK(m->form == F::manual_stdin);
  CHECK(m->recipients == std::vector<std::string>{"b@y", "c@z"});
  // Started as "sendmail": Unix meaning, two recipients; in a hook the manual's.
  m = parse({"a@x", "b@y"}, true);
  REQUIRE(m);
  CHECK(m->form == F::classic);
  CHECK(m->recipients == std::vector<std::string>{"a@x", "b@y"});
  CHECK(parse({"a@x", "b@y"}, true, true)->form == F::manual_stdin);
  // Any option, one or three addresses, or -- : classic.
  for (auto args : std::vector<std::vector<std::string>>{
           {"a@x"}, {"a@x", "b@y", "c@z"}, {"-i", "a@x", "b@y"}, {"--", "a@x", "b@y"}, {"-oi", "a@x"},
           {"-t"}, {"-f", "a@x", "b@y"}, {"-i", "-FCronDaemon", "-B8BITMIME", "-oem", "root"},
           {"-B", "8BITMIME", "-i", "root"}}) {
    CAPTURE(args.size());
    auto c = parse(args);
    REQUIRE(c);
    CHECK(c->form == F::classic);
  }
  m = parse({"--", "a@x", "b@y"});
  CHECK(m->recipients == std::vector<std::string>{"a@x", "b@y"});
  m = parse({"-f", "<>", "-t"});
  REQUIRE(m);
  CHECK(m->sender == "<>");
  CHECK(m->sender_given);
  CHECK(m->from_headers);
  m = parse({"-i", "-FCronDaemon", "-B8BITMIME", "-oem", "root"});
  CHECK(m->full_name == "CronDaemon");
  CHECK(m->recipients == std::vector<std::string>{"root"});
  // The manual's -mf / -sb forms.
  m = parse({"a@x", "b@y,c@z", "-mf", "/tmp/m.eml", "-del"});
  REQUIRE(m);
  CHECK(m->form == F::stored_file);
  CHECK(m->file == "/tmp/m.eml");
  CHECK(m->del);
  m = parse({"a@x", "b@y", "-sb", "r.sab", "-onlyonce", "o.csv", "--auto-replied"});
  REQUIRE(m);
  CHECK(m->form == F::subject_body);
  CHECK(m->onlyonce == "o.csv");
  CHECK(m->auto_replied);
  // Usage errors.
  for (auto args : std::vector<std::vector<std::string>>{
           {"-f"}, {"a@x", "b@y", "-mf"}, {"a@x", "b@y", "-sb", "s", "-mf", "s"}, {"a b@x", "b@y", "-sb", "s"},
           {"-q"}, {"a@x", "b@y", "-onlyonce", "o", "-mf", "s"}, {"a@x", "-mf", "m"}, {"a@x", "b@y", "-del"},
           {"bad address", "b@y"}, {"a@x", "b@y>"}, {"a@x", ","}, {"-f", "a b", "c@d"}, {"-i", "x<y@z"}, {"-B"}}) {
    CAPTURE(args.size());
    auto c = parse(args);
    REQUIRE_FALSE(c);
    CHECK(c.error().code == Errc::invalid_argument);
  }
}

TEST_CASE("exit statuses follow sysexits.h") {
  namespace x = exit_code;
  CHECK(exit_status(Error(Errc::permission_denied, "")) == x::no_perm);
  CHECK(x::no_perm == 77);
  CHECK(exit_status(Error(Errc::unavailable, "")) == x::temp_fail);
  CHECK(x::temp_fail == 75);
  CHECK(exit_status(Error::smtp(451, "4.3.0", "later")) == x::temp_fail);
  CHECK(exit_status(Error::smtp(452, "4.2.2", "full")) == x::temp_fail);
  CHECK(exit_status(Error::smtp(550, "5.1.1", "no such user")) == x::no_user);
  CHECK(exit_status(Error::smtp(552, "5.3.4", "too big")) == x::unavailable);
  CHECK(exit_status(Error::smtp(554, "", "no")) == x::unavailable);
  CHECK(exit_status(Error(Errc::protocol, "")) == x::protocol);
  CHECK(exit_status(Error(Errc::invalid_argument, "")) == x::data_err);
  CHECK(exit_status(Error(Errc::io, "")) == x::temp_fail);
  CHECK(exit_status(Error(Errc::internal, "")) == x::software);
}

TEST_CASE("auto-reply fields are added only when missing; empty messages") {
  const std::vector<std::string> f = {"Auto-Submitted: auto-replied\r\n", "In-Reply-To: <a@b>\r\n"};
  CHECK(add_missing_fields("Subject: s\r\n\r\nb\r\n", f) ==
        "Auto-Submitted: auto-replied\r\nIn-Reply-To: <a@b>\r\nSubject: s\r\n\r\nb\r\n");
  CHECK(add_missing_fields("auto-submitted: no\r\n\r\nb\r\n", f) ==
        "In-Reply-To: <a@b>\r\nauto-submitted: no\r\n\r\nb\r\n");
  CHECK(add_missing_fields("just a body\r\n", f) ==
        "Auto-Submitted: auto-replied\r\nIn-Reply-To: <a@b>\r\n\r\njust a body\r\n");
  CHECK(add_missing_fields("Subject: s\r\n\r\nb\r\n", {}) == "Subject: s\r\n\r\nb\r\n");
  CHECK(empty_message(""));
  CHECK(empty_message("\r\n\r\n \t\r\n"));
  CHECK_FALSE(empty_message("\r\nx"));
  CHECK_FALSE(empty_message("Subject: s\r\n"));
}

TEST_CASE("systemd unit") {
  daemon::UnitOptions o;
  o.home = "/srv/wizmail";
  o.program = "/usr/local/bin/wizmail-server";
  o.time_out_of_stop = 20;
  auto u = daemon::systemd_unit(o);
  REQUIRE(u);
  for (const char* line :
       {"[Unit]\n", "[Service]\n", "[Install]\n", "Type=simple\n",
        "ExecStart=/usr/local/bin/wizmail-server --home /srv/wizmail\n",
        "ExecReload=/bin/kill -HUP $MAINPID\n", "Restart=on-failure\n", "NoNewPrivileges=yes\n",
        "ProtectSystem=strict\n", "ReadWritePaths=/srv/wizmail\n", "PrivateTmp=yes\n",
        "TimeoutStopSec=50\n", "WantedBy=multi-user.target\n", "Environment=WIZ98MS_HOME=/srv/wizmail\n"})
    CHECK_MESSAGE(u->find(line) != std::string::npos, line);
  CHECK(u->find("User=") == std::string::npos);
  o.user = "mail";
  u = daemon::systemd_unit(o);
  REQUIRE(u);
  CHECK(u->find("User=mail\n") != std::string::npos);
  CHECK(u->find("AmbientCapabilities=CAP_NET_BIND_SERVICE\n") != std::string::npos);
  for (const char* bad_home : {"/srv/wiz mail", "/srv/%h", "/srv/$x", "/srv/a\nExecStartPre=/bin/sh", "relative"}) {
    o.home = bad_home;
    if (std::string(bad_home) == "relative") continue;  // made absolute; covered below
    CHECK_FALSE(daemon::systemd_unit(o));
  }
  o.home = "/srv/wizmail";
  o.program = "wizmail-server";
  CHECK_FALSE(daemon::systemd_unit(o));
  o.program = "/usr/bin/wizmail-server";
  o.user = "root;x";
  CHECK_FALSE(daemon::systemd_unit(o));
}

TEST_CASE("service install and uninstall into a directory") {
  TempDir d;
  daemon::UnitOptions o;
  o.home = "/srv/wizmail";
  o.program = "/usr/bin/wizmail-server";
  auto r = daemon::install_service(o, d.path / "units");
  REQUIRE(r);
  CHECK(r->unit_file == d.path / "units" / "wizmail.service");
  CHECK_FALSE(r->systemctl_ran);
  CHECK(fs::exists(r->unit_file));
  auto u = daemon::uninstall_service(d.path / "units");
  REQUIRE(u);
  CHECK_FALSE(fs::exists(r->unit_file));
  auto again = daemon::uninstall_service(d.path / "units");
  REQUIRE_FALSE(again);
  CHECK(again.error().code == Errc::not_found);
}

TEST_CASE("config_check: the load's errors with file:line, then a stale unit as a warning") {
  TempDir d;
  auto home = d.path / "home";
  fs::create_directories(home / "def");
  std::ofstream(home / "def" / "smtpenv.dat") << "# comment\nport=seventy\n";
  auto bad = daemon::config_check(home, d.path / "units");
  REQUIRE_FALSE(bad.empty());
  CHECK(bad.front().severity == ConfigDiagnostic::Severity::error);
  CHECK(bad.front().to_string().find("smtpenv.dat:2: port: ") != std::string::npos);
  std::ofstream(home / "def" / "smtpenv.dat") << "port=2525\n";
  auto good = daemon::config_check(home, d.path / "units");
  for (const auto& x : good) CHECK(x.severity == ConfigDiagnostic::Severity::warning);
  // A unit installed for this home with other ReadWritePaths: one more warning.
  auto cfg = load_config(home);
  REQUIRE(cfg);
  auto o = daemon::unit_options(**cfg);
  o.program = "/usr/bin/wizmail-server";
  o.writable.push_back("/elsewhere");
  REQUIRE(daemon::install_service(o, d.path / "units"));
  auto stale = daemon::config_check(home, d.path / "units");
  REQUIRE(stale.size() == good.size() + 1);
  CHECK(stale.back().severity == ConfigDiagnostic::Severity::warning);
  CHECK(stale.back().to_string().find("is out of date") != std::string::npos);
}
