// Pure parts of wizmail/relay.hpp: the SMTP reply parser (fed at chunk
// sizes 1..512), host:port parsing, back-off, and the DSN builder (checked
// structurally and by python3's email package).
#include "wizmail/relay.hpp"

#include <doctest/doctest.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "outbound/reply_parser.hpp"
#include "util/fs.hpp"

extern char** environ;

namespace fs = std::filesystem;
using namespace wizmail;
using outbound::ReplyParser;

namespace {

struct Parsed {
  std::vector<SmtpReply> replies;
  bool bad = false;
  std::string error;
  std::size_t leftover = 0;
};

// Feed `input` in chunks of `chunk` octets, as a connection would.
Parsed feed(std::string_view input, std::size_t chunk) {
  Parsed out;
  ReplyParser p;
  std::string buf;
  for (std::size_t pos = 0; pos < input.size(); pos += chunk) {
    buf.append(input.substr(pos, chunk));
    for (;;) {
      auto step = p.parse(buf);
      buf.erase(0, step.used);
      if (step.status == ReplyParser::Status::done) {
        out.replies.push_back(p.take());
        continue;
      }
      if (step.status == ReplyParser::Status::bad) {
        out.bad = true;
        out.error = p.error();
        return out;
      }
      break;
    }
  }
  out.leftover = buf.size();
  return out;
}

const std::vector<std::size_t> kChunks = {1, 2, 3, 4, 7, 8, 16, 32, 64, 128, 256, 512};

int run_python(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (::posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) return -1;
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST_CASE("reply parser: a transcript of replies at every chunk size") {
  const std::string transcript =
      "220 mx.example.org ESMTP ready\r\n"
      "250-mx.example.org greets you\r\n"
      "250-PIPELINING\r\n"
      "250-SIZE 10240000\r\n"
      "250-8BITMIME\r\n"
      "250 STARTTLS\r\n"
      "250 2.1.0 Ok\r\n"
      "550 5.1.1 <nobody@example.org>: Recipient address rejected\r\n"
      "451-4.3.0 first line\n"  // a bare LF is tolerated
      "451 4.3.0 second line\r\n"
      "354\r\n";
  for (auto chunk : kChunks) {
    CAPTURE(chunk);
    auto r = feed(transcript, chunk);
    REQUIRE_FALSE(r.bad);
    REQUIRE(r.replies.size() == 6);
    CHECK(r.leftover == 0);
    CHECK(r.replies[0].code == 220);
    CHECK(r.replies[0].lines == std::vector<std::string>{"mx.example.org ESMTP ready"});
    CHECK(r.replies[1].code == 250);
    CHECK(r.replies[1].lines.size() == 5);
    auto caps = outbound::ehlo_capabilities(r.replies[1]);
    CHECK(caps == std::vector<std::string>{"PIPELINING", "SIZE 10240000", "8BITMIME", "STARTTLS"});
    CHECK(outbound::find_capability(caps, "size") == std::optional<std::string>("10240000"));
    CHECK(outbound::find_capability(caps, "pipelining") == std::optional<std::string>(""));
    CHECK_FALSE(outbound::find_capability(caps, "AUTH"));
    CHECK(r.replies[2].enhanced == "2.1.0");
    CHECK(r.replies[3].permanent());
    CHECK(r.replies[3].enhanced == "5.1.1");
    CHECK(r.replies[4].temporary());
    CHECK(r.replies[4].lines.size() == 2);
    CHECK(r.replies[4].to_string() == "451 4.3.0 first line / 4.3.0 second line");
    CHECK(r.replies[5].code == 354);
    CHECK(r.replies[5].lines == std::vector<std::string>{""});
  }
}

TEST_CASE("reply parser: an unfinished reply waits for more") {
  auto r = feed("250-one\r\n250-two\r\n250 thr", 4);
  CHECK_FALSE(r.bad);
  CHECK(r.replies.empty());
  CHECK(r.leftover > 0);
}

TEST_CASE("reply parser: bad input is refused at every chunk size") {
  struct Case {
    const char* input;
    const char* why;
  };
  const Case cases[] = {
      {"hello\r\n", "malformed"},
      {"25\r\n", "malformed"},
      {"2500 x\r\n", "malformed"},
      {"250x\r\n", "malformed"},
      {"199 too low\r\n", "malformed"},
      {"600 too high\r\n", "malformed"},
      {"250-one\r\n251 two\r\n", "code changes"},
      {"\r\n", "malformed"},
  };
  for (const auto& c : cases) {
    for (auto chunk : kChunks) {
      CAPTURE(c.input);
      CAPTURE(chunk);
      auto r = feed(c.input, chunk);
      CHECK(r.bad);
      CHECK(r.error.find(c.why) != std::string::npos);
    }
  }
}

TEST_CASE("reply parser: limits bound what a hostile peer can make us hold") {
  std::string long_line = "250 " + std::string(ReplyParser::kMaxLine + 10, 'a');
  CHECK(feed(long_line, 512).bad);  // no line end yet, already too long
  CHECK(feed(long_line + "\r\n", 512).bad);
  std::string many;
  for (std::size_t i = 0; i < ReplyParser::kMaxLines + 5; ++i) many += "250-x\r\n";
  auto r = feed(many, 512);
  CHECK(r.bad);
  CHECK(r.error.find("lines") != std::string::npos);
}

TEST_CASE("parse_host_port") {
  auto hp = parse_host_port("relay.example.net:587");
  REQUIRE(hp);
  CHECK(hp->host == "relay.example.net");
  CHECK(hp->port == 587);
  hp = parse_host_port("127.0.0.1");
  REQUIRE(hp);
  CHECK(hp->port == 0);
  hp = parse_host_port("[::1]:2525");
  REQUIRE(hp);
  CHECK(hp->host == "::1");
  CHECK(hp->port == 2525);
  hp = parse_host_port("::1");
  REQUIRE(hp);
  CHECK(hp->host == "::1");
  for (const char* bad : {"", "host:", "host:0", "host:65536", "host:x", "[::1", "[::1]x", "a b:25", "ex..ample",
                          "[]:25", ":25"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_host_port(bad));
  }
}

TEST_CASE("retry_delay doubles and is capped at an hour (or the base when larger)") {
  using std::chrono::milliseconds;
  using namespace std::chrono_literals;
  CHECK(retry_delay(300s, 1) == 300s);
  CHECK(retry_delay(300s, 2) == 600s);
  CHECK(retry_delay(300s, 3) == 1200s);
  CHECK(retry_delay(300s, 5) == 3600s);
  CHECK(retry_delay(300s, 50) == 3600s);
  CHECK(retry_delay(2h, 3) == 2h);
  CHECK(retry_delay(milliseconds(100), 0) == milliseconds(100));
  CHECK(retry_delay(milliseconds(0), 4) == milliseconds(8));
}

TEST_CASE("lookup helpers refuse malformed names without asking DNS") {
  ResolverOptions opt;
  opt.servers = {"127.0.0.1:9"};  // nothing listens: a query would time out
  CHECK(lookup_mx("bad domain", opt).error().code == Errc::invalid_argument);
  CHECK(lookup_mx("", opt).error().code == Errc::invalid_argument);
  CHECK(lookup_addresses("a..b", opt).error().code == Errc::invalid_argument);
  auto lit = lookup_addresses("[::1]", opt);
  REQUIRE(lit);
  CHECK(*lit == std::vector<std::string>{"::1"});
  ResolverOptions bad;
  bad.servers = {"not-an-ip"};
  CHECK_FALSE(lookup_mx("example.org", bad));
}

namespace {

DsnInput sample_dsn() {
  DsnInput in;
  in.reporting_domain = "example.com";
  in.reporting_mta = "mail.example.com";
  in.original_sender = "alice@example.com";
  in.queue_id = "1700000000.M1P2Q3";
  in.arrival_time = 1700000000;
  in.now = 1700000600;
  in.recipients = {
      {"bob@example.org", "5.1.1", "mx.example.org[192.0.2.1]:25", "550 5.1.1 no such user", 550},
      {"carol@example.net", "", "", "domain example.net does not exist", 0},
  };
  in.original_headers =
      "Received: from x\r\n\tby y\r\nFrom: Alice <alice@example.com>\r\nTo: bob@example.org\r\n"
      "Subject: hello\r\nMessage-ID: <abc@example.com>\r\n\r\n";
  return in;
}

}  // namespace

TEST_CASE("build_dsn: RFC 3464 structure") {
  auto dsn = build_dsn(sample_dsn());
  CHECK(dsn.find("From: Mail Delivery System <MAILER-DAEMON@example.com>\r\n") == 0);
  CHECK(dsn.find("To: <alice@example.com>\r\n") != std::string::npos);
  CHECK(dsn.find("Content-Type: multipart/report; report-type=delivery-status;") != std::string::npos);
  CHECK(dsn.find("Auto-Submitted: auto-replied\r\n") != std::string::npos);
  CHECK(dsn.find("Reporting-MTA: dns; mail.example.com\r\n") != std::string::npos);
  CHECK(dsn.find("Final-Recipient: rfc822; bob@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
                 "Remote-MTA: dns; mx.example.org[192.0.2.1]:25\r\n"
                 "Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n") != std::string::npos);
  CHECK(dsn.find("Final-Recipient: rfc822; carol@example.net\r\nAction: failed\r\nStatus: 5.0.0\r\n") !=
        std::string::npos);
  CHECK(dsn.find("Content-Type: text/rfc822-headers\r\n\r\nReceived: from x\r\n\tby y\r\n") != std::string::npos);
  CHECK(dsn.find("Subject: hello\r\nMessage-ID: <abc@example.com>\r\n\r\n--") != std::string::npos);
  // Every line ends with CRLF and none is longer than SMTP allows.
  std::size_t start = 0;
  while (start < dsn.size()) {
    auto nl = dsn.find('\n', start);
    REQUIRE(nl != std::string::npos);
    CHECK(nl > start);
    CHECK(dsn[nl - 1] == '\r');
    CHECK(nl - start < 998);
    start = nl + 1;
  }
}

TEST_CASE("build_dsn: hostile values cannot inject lines or 8-bit into the report") {
  auto in = sample_dsn();
  in.recipients[0].diagnostic = "550 evil\r\nX-Injected: yes\r\n\xff\xfe";
  in.recipients[0].address = "bob@example.org\r\nAction: delivered";
  in.timed_out = true;
  in.recipients[1].smtp_code = 451;
  auto dsn = build_dsn(in);
  CHECK(dsn.find("\r\nX-Injected") == std::string::npos);
  CHECK(dsn.find("\r\nAction: delivered") == std::string::npos);
  CHECK(dsn.find("Diagnostic-Code: smtp; 550 evil  X-Injected: yes  ??") != std::string::npos);
  CHECK(dsn.find("Status: 4.4.7") != std::string::npos);  // given up: delivery time expired
  CHECK(dsn.find("delivery time expired") != std::string::npos);
}

TEST_CASE("build_dsn: python3's email package reads it as a delivery report") {
  auto in = sample_dsn();
  in.original_headers += "";
  in.original_headers.insert(0, "X-Latin: caf\xc3\xa9\r\n");
  auto dsn = build_dsn(in);
  auto dir = fs::temp_directory_path() / ("wizmail-dsn-" + std::to_string(::getpid()));
  REQUIRE(util::make_dirs(dir));
  auto file = dir / "dsn.eml";
  REQUIRE(util::write_file_atomic(file, dsn));
  auto script = fs::path(std::getenv("WIZMAIL_SOURCE_DIR") ? std::getenv("WIZMAIL_SOURCE_DIR") : ".") / "tests" /
                "outbound" / "check_dsn.py";
  int rc = run_python({"python3", script.string(), file.string(), "alice@example.com",
                       "bob@example.org=5.1.1,carol@example.net=5.0.0", "Subject: hello"});
  CHECK(rc == 0);
  std::error_code ec;
  fs::remove_all(dir, ec);
}

namespace {

// build_dsn(in) read by check_dsn.py with `args` after FILE.
int check_with_python(const DsnInput& in, std::vector<std::string> args) {
  auto dir = fs::temp_directory_path() / ("wizmail-dsn2-" + std::to_string(::getpid()));
  REQUIRE(util::make_dirs(dir));
  auto file = dir / "dsn.eml";
  REQUIRE(util::write_file_atomic(file, build_dsn(in)));
  auto script = fs::path(std::getenv("WIZMAIL_SOURCE_DIR") ? std::getenv("WIZMAIL_SOURCE_DIR") : ".") / "tests" /
                "outbound" / "check_dsn.py";
  args.insert(args.begin(), {"python3", script.string(), file.string()});
  int rc = run_python(args);
  std::error_code ec;
  fs::remove_all(dir, ec);
  return rc;
}

}  // namespace

TEST_CASE("build_dsn: ENVID and ORCPT come back (RFC 3464 Original-Envelope-Id, Original-Recipient)") {
  auto in = sample_dsn();
  in.envelope_id = "QQ314159";
  in.recipients[0].original_recipient = "rfc822;Sales@example.org";
  in.recipients[1].original_recipient = "utf-8;j\\x{F6}rg@example.org";
  auto dsn = build_dsn(in);
  CHECK(dsn.find("Original-Envelope-Id: QQ314159\r\nReporting-MTA: dns; mail.example.com\r\n") != std::string::npos);
  CHECK(dsn.find("\r\nOriginal-Recipient: rfc822; Sales@example.org\r\nFinal-Recipient: rfc822; bob@example.org\r\n") !=
        std::string::npos);
  CHECK(check_with_python(in, {"alice@example.com", "bob@example.org=5.1.1,carol@example.net=5.0.0",
                               "Subject: hello", "--envid", "QQ314159", "--orcpt",
                               "bob@example.org=rfc822; Sales@example.org", "--orcpt",
                               "carol@example.net=utf-8; j\\x{F6}rg@example.org"}) == 0);
  // A hostile ORCPT or ENVID stays one 7-bit line.
  in.envelope_id = "x\r\nAction: delivered";
  in.recipients[0].original_recipient = "rfc822;a\r\nX-Evil: 1\xff";
  dsn = build_dsn(in);
  CHECK(dsn.find("\r\nAction: delivered") == std::string::npos);
  CHECK(dsn.find("\r\nX-Evil") == std::string::npos);
}

TEST_CASE("build_dsn: RET=FULL returns the whole message as message/rfc822") {
  auto in = sample_dsn();
  in.original_message = "From: Alice <alice@example.com>\r\nSubject: hello\r\n\r\nthe body line\r\n--=_not_ours\r\n";
  auto dsn = build_dsn(in);
  CHECK(dsn.find("Content-Type: message/rfc822\r\n\r\nFrom: Alice") != std::string::npos);
  CHECK(check_with_python(in, {"alice@example.com", "bob@example.org=5.1.1,carol@example.net=5.0.0",
                               "the body line", "--full"}) == 0);
  // Without the message (RET=HDRS, or too large): the headers only.
  in.original_message.clear();
  CHECK(check_with_python(in, {"alice@example.com", "bob@example.org=5.1.1,carol@example.net=5.0.0",
                               "Subject: hello", "--absent", "the body line"}) == 0);
}

TEST_CASE("build_dsn: success and delay reports; their headers only, whatever RET said") {
  auto in = sample_dsn();
  in.recipients.resize(1);
  in.recipients[0].action = DsnAction::relayed;
  in.recipients[0].status = "";
  in.recipients[0].smtp_code = 250;
  in.recipients[0].diagnostic = "250 2.0.0 Ok: queued";
  in.original_message = "Subject: hello\r\n\r\nsecret body\r\n";  // never returned on success
  auto dsn = build_dsn(in);
  CHECK(dsn.find("Subject: Successful Mail Delivery Report\r\n") != std::string::npos);
  CHECK(dsn.find("Action: relayed\r\nStatus: 2.0.0\r\n") != std::string::npos);
  CHECK(check_with_python(in, {"alice@example.com", "bob@example.org=2.0.0", "Subject: hello", "--action", "relayed",
                               "--absent", "secret body"}) == 0);
  in.recipients[0].action = DsnAction::delayed;
  in.recipients[0].smtp_code = 0;
  in.recipients[0].diagnostic = "connect to mx.example.org: Connection refused";
  in.will_retry_until = 1700086400;
  dsn = build_dsn(in);
  CHECK(dsn.find("Subject: Delayed Mail (still being retried)\r\n") != std::string::npos);
  CHECK(dsn.find("Action: delayed\r\nStatus: 4.0.0\r\n") != std::string::npos);
  CHECK(dsn.find("Will-Retry-Until: Wed, 15 Nov 2023 22:13:20 +0000\r\n") != std::string::npos);
  CHECK(check_with_python(in, {"alice@example.com", "bob@example.org=4.0.0", "Subject: hello", "--action",
                               "delayed", "--absent", "secret body"}) == 0);
}

TEST_CASE("build_dsn: a UTF-8 recipient is a utf-8 address type; a UTF-8 sender stays UTF-8 in To:") {
  auto in = sample_dsn();
  in.original_sender = "j\xc3\xb6rg@b\xc3\xbcro.example";
  in.recipients.resize(1);
  in.recipients[0].address = "\xe7\x94\xb0\xe4\xb8\xad@example.org";
  auto dsn = build_dsn(in);
  CHECK(dsn.find("To: <j\xc3\xb6rg@b\xc3\xbcro.example>\r\n") != std::string::npos);
  CHECK(dsn.find("Final-Recipient: utf-8; \\x{7530}\\x{4E2D}@example.org\r\n") != std::string::npos);
  CHECK(check_with_python(in, {"j\xc3\xb6rg@b\xc3\xbcro.example", "\\x{7530}\\x{4E2D}@example.org=5.1.1",
                               "Subject: hello"}) == 0);
}

TEST_CASE("a resolver nobody answers is a temporary failure") {
  ResolverOptions opt;
  opt.servers = {"127.0.0.1:9"};
  opt.timeout = std::chrono::milliseconds(200);
  opt.tries = 1;
  auto mx = lookup_mx("example.test", opt);
  REQUIRE_FALSE(mx);
  CHECK(mx.error().code == Errc::temporary);
  RouteOptions ro;
  ro.resolver = opt;
  auto r = route("example.test", ro);
  REQUIRE_FALSE(r);
  CHECK(r.error().temporary());
}
