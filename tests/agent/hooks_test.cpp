#include "wizmail/hooks.hpp"

#include <doctest/doctest.h>

#include "temp_dir.hpp"
#include <stdlib.h>

#include <filesystem>
#include <fstream>

using namespace wizmail;
namespace fs = std::filesystem;

TEST_CASE("hook files: the manual's examples parse") {
  // アプリケーション連携機能2: フィルター機能
  auto d = parse_hook_def("bin=/usr/local/bin/filter\r\nparam1=MAILFILE_PATH\r\nparam2=未承諾広告\r\n", "exec.def");
  REQUIRE(d);
  CHECK(d->command == std::vector<std::string>{"/usr/local/bin/filter"});
  CHECK(d->params == std::vector<std::string>{"MAILFILE_PATH", "未承諾広告"});
  CHECK(d->permission.empty());
  CHECK(!d->stdin_message);
  // 認証機能 with addresses, then domains.
  auto p = parse_hook_def("bin=\"/opt/Wiz Mail/mailparser\"\nparam1=-i\nparam2=MAILFILE_PATH\nparam3=-o\n"
                          "param4=/srv/共有 フォルダ\npermission_mailaddress=a@my.home, A@my.company\n",
                          "exec.def");
  REQUIRE(p);
  CHECK(p->command == std::vector<std::string>{"/opt/Wiz Mail/mailparser"});
  CHECK(p->params.back() == "/srv/共有 フォルダ");
  CHECK(p->permission == std::vector<std::string>{"a@my.home", "a@my.company"});
  // フォーワーディング機能 (bin with arguments, // comment) and stdin=1.
  auto f = parse_hook_def("// sendmail FROM TO\nbin=sendmail forward@localhost postmaster@localhost\n# x\n\nstdin=1\n",
                          "exec.def");
  REQUIRE(f);
  CHECK(f->command == std::vector<std::string>{"sendmail", "forward@localhost", "postmaster@localhost"});
  CHECK(f->stdin_message);
  // params stop at the first missing number.
  auto g = parse_hook_def("bin=x\nparam2=b\nparam1=a\nparam4=d\n", "exec.def");
  REQUIRE(g);
  CHECK(g->params == std::vector<std::string>{"a", "b"});
  CHECK(parse_hook_def("\xEF\xBB\xBF" "bin=x\n", "exec.def"));  // BOM
  CHECK(parse_hook_def("BIN=x\nParam1=y\n", "exec.def")->params.size() == 1);
}

TEST_CASE("hook files: bad input is a clear error naming file and line") {
  auto err = [](std::string_view text) {
    auto d = parse_hook_def(text, "/m/a/exec.def");
    REQUIRE(!d);
    CHECK(d.error().code == Errc::parse);
    return d.error().message;
  };
  CHECK(err("param1=x\n").find("bin: missing") != std::string::npos);
  CHECK(err("bin=\n").find("/m/a/exec.def:1: bin: empty program") == 0);
  CHECK(err("bin=a\nbin=b\n").find(":2: bin: duplicate") != std::string::npos);
  CHECK(err("bin=a\nparm1=b\n").find(":2: parm1: unknown key") != std::string::npos);
  CHECK(err("bin=a\njust text\n").find(":2: expected key=value") != std::string::npos);
  CHECK(err("bin=\"/unterminated\n").find("unterminated quote") != std::string::npos);
  CHECK(err("bin=a\nstdin=yes\n").find("stdin: must be 0 or 1") != std::string::npos);
  CHECK(err("bin=a\nparam0=x\n").find("param0") != std::string::npos);
  CHECK(err("bin=a\nparam100=x\n").find("param100") != std::string::npos);
  CHECK(err("bin=a\nparam01=x\n").find("param01") != std::string::npos);
  CHECK(err("bin=a\nparam-1=x\n").find("param-1") != std::string::npos);
  CHECK(err("bin=a\nparam1=x\nparam1=y\n").find("duplicate") != std::string::npos);
  CHECK(err(std::string_view("bin=a\0b\n", 8)).find("NUL") != std::string::npos);
}

TEST_CASE("split_command_line") {
  CHECK(split_command_line("a  b\tc").value() == std::vector<std::string>{"a", "b", "c"});
  CHECK(split_command_line("\"C:/Program Files/x\" -f \"a b\"c").value() ==
        std::vector<std::string>{"C:/Program Files/x", "-f", "a bc"});
  CHECK(split_command_line("\"\"").value() == std::vector<std::string>{""});
  CHECK(split_command_line("   ").value().empty());
  CHECK(!split_command_line("\"x"));
}

TEST_CASE("permission_mailaddress: addresses or domains") {
  HookDef d;
  CHECK(hook_permits(d, "anyone@example.org"));
  CHECK(hook_permits(d, ""));
  d.permission = {"a@my.home", "my.company"};
  CHECK(hook_permits(d, "a@my.home"));
  CHECK(hook_permits(d, "A@MY.HOME"));
  CHECK(!hook_permits(d, "b@my.home"));
  CHECK(hook_permits(d, "anyone@my.company"));
  CHECK(hook_permits(d, "Anyone@My.Company"));
  CHECK(!hook_permits(d, "x@sub.my.company"));
  CHECK(!hook_permits(d, "x@my.company.evil"));
  CHECK(!hook_permits(d, "my.company"));  // no '@': not an address of the domain
  CHECK(!hook_permits(d, ""));            // null sender
}

TEST_CASE("hook_argv: tokens replaced as whole arguments, bytes verbatim") {
  HookDef d;
  d.command = {"/bin/prog", "FROM_ADDRESS", "-x"};
  d.params = {"TO_ADDRESS", "SUBJECT", "MAILFILE_PATH", "SUBJECT_X", "a SUBJECT b", "FROM_ADDRESS"};
  HookTokens t;
  t.from_address = "\"a;b\"@x.example";
  t.to_address = "u$(rm -rf /)@local";
  t.subject = "`id` | cat > /etc/passwd; 日本語 FROM_ADDRESS";
  t.mailfile_path = "/tmp/m 1.eml";
  auto argv = hook_argv(d, t);
  CHECK(argv == std::vector<std::string>{"/bin/prog", t.from_address, "-x", t.to_address, t.subject,
                                         t.mailfile_path, "SUBJECT_X", "a SUBJECT b", t.from_address});
  // The program word is never replaced.
  d.command = {"SUBJECT"};
  d.params.clear();
  CHECK(hook_argv(d, t) == std::vector<std::string>{"SUBJECT"});
}

TEST_CASE("hook_files: exec.def, exec2.def … to the first gap, then forward, reply") {
  test::TempDir tmp("wizmail-hooks");
  const fs::path& dir = tmp.path();
  auto touch = [&](const char* n) { std::ofstream(dir / n) << "bin=x\n"; };
  CHECK(hook_files(dir).empty());
  touch("exec2.def");  // without exec.def it never runs
  touch("reply.def");
  auto h = hook_files(dir);
  REQUIRE(h.size() == 1);
  CHECK(h[0].kind == HookKind::reply);
  touch("exec.def");
  touch("exec3.def");
  touch("exec5.def");  // after the gap at 4
  touch("forward.def");
  fs::create_directory(dir / "exec4.def");  // a folder is not a hook file
  h = hook_files(dir);
  REQUIRE(h.size() == 5);
  CHECK(h[0].path.filename() == "exec.def");
  CHECK(h[1].path.filename() == "exec2.def");
  CHECK(h[2].path.filename() == "exec3.def");
  CHECK(h[3].kind == HookKind::forward);
  CHECK(h[4].kind == HookKind::reply);
  CHECK(to_string(HookKind::forward) == "forward");
}

TEST_CASE("hook files: active_from / active_until bound the days a hook runs") {
  auto d = parse_hook_def("bin=wizmail-sendmail\nactive_from=2026-12-01\nactive_until=2026-12-24\n", "reply.def");
  REQUIRE(d);
  CHECK(d->active_from == "2026-12-01");
  CHECK_FALSE(hook_active_on(*d, "2026-11-30"));
  CHECK(hook_active_on(*d, "2026-12-01"));
  CHECK(hook_active_on(*d, "2026-12-24"));
  CHECK_FALSE(hook_active_on(*d, "2026-12-25"));
  auto open = parse_hook_def("bin=x\nactive_until=2026-12-24\n", "reply.def");
  REQUIRE(open);
  CHECK(hook_active_on(*open, "2000-01-01"));
  CHECK(hook_active_on(*parse_hook_def("bin=x\n", "reply.def"), "2026-12-25"));
  CHECK_FALSE(parse_hook_def("bin=x\nactive_from=tomorrow\n", "reply.def"));
  CHECK_FALSE(parse_hook_def("bin=x\nactive_from=2026-13-01\n", "reply.def"));
  CHECK_FALSE(parse_hook_def("bin=x\nactive_from=2026-12-01\nactive_from=2026-12-02\n", "reply.def"));
}
