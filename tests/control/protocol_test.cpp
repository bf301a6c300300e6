// The control protocol's pure parts: the JSON reader, requests, replies and
// the sessions table (wizmail/admin/control.hpp).
#include "wizmail/admin/control.hpp"

#include <doctest/doctest.h>

#include "control/reply.hpp"

#include <string>

using namespace wizmail;
using namespace wizmail::control;

TEST_CASE("json reader accepts RFC 8259 values") {
  auto j = parse_json(R"( {"a": [1, -2.5e3, true, false, null, "x\u00e9\ud83d\ude00\n"], "b": {}} )");
  REQUIRE(j);
  REQUIRE(j->is_object());
  const Json* a = j->get("a");
  REQUIRE(a);
  REQUIRE(a->is_array());
  REQUIRE(a->items.size() == 6);
  CHECK(*a->items[0].number() == 1);
  CHECK(*a->items[1].number() == -2500);
  CHECK(*a->items[2].boolean());
  CHECK_FALSE(*a->items[3].boolean());
  CHECK(a->items[4].kind == Json::Kind::null);
  CHECK(*a->items[5].string() == "x\xC3\xA9\xF0\x9F\x98\x80\n");
  CHECK(j->get("b")->is_object());
  CHECK(j->get("missing") == nullptr);
  CHECK(parse_json("[]")->items.empty());
  CHECK(*parse_json("\"\"")->string() == "");
}

TEST_CASE("json reader refuses malformed input") {
  const char* bad[] = {
      "",                      // nothing
      "{",                     // unterminated
      "{\"a\":1,}",            // trailing comma
      "[1,]",                  //
      "{\"a\" 1}",             // missing colon
      "{a:1}",                 // unquoted name
      "{\"a\":1}{}",           // trailing value
      "01",                    // leading zero
      "1.",                    // no fraction digits
      "-",                     //
      "1e",                    //
      "tru",                   //
      "nul",                   //
      "\"abc",                 // unterminated string
      "\"a\tb\"",              // raw control character
      "\"\\x\"",               // bad escape
      "\"\\u12\"",             // short \u
      "\"\\ud800\"",           // lone high surrogate
      "\"\\udc00\"",           // lone low surrogate
      "\"\\ud800\\u0041\"",    // bad pair
      "\"\xC3\"",              // truncated UTF-8
      "\"\xC0\xAF\"",          // overlong
      "\"\xED\xA0\x80\"",      // encoded surrogate
      "\"\xF5\x80\x80\x80\"",  // beyond U+10FFFF
      "{\"a\":1,\"a\":2}",     // duplicate member
      "1e999",                 // not finite
      "// comment\n1",         //
      "[1 2]",                 //
  };
  for (const char* b : bad) {
    INFO("input: " << b);
    auto r = parse_json(b);
    CHECK_FALSE(r);
    if (!r) CHECK(r.error().code == Errc::invalid_argument);
  }
}

TEST_CASE("json reader bounds nesting") {
  std::string deep(33, '[');
  deep += std::string(33, ']');
  CHECK_FALSE(parse_json(deep));
  std::string ok(32, '[');
  ok += std::string(32, ']');
  CHECK(parse_json(ok));
  std::string huge = "[" + std::string(100000, '[');
  CHECK_FALSE(parse_json(huge));  // no stack overflow: refused at depth 33
}

TEST_CASE("requests: the valid forms") {
  auto r = parse_request(R"({"v":1,"cmd":"stop","force":true})");
  REQUIRE(r);
  CHECK(r->command == Command::stop);
  CHECK(r->force);
  r = parse_request(R"({"cmd":"stop","v":1})");
  REQUIRE(r);
  CHECK_FALSE(r->force);
  for (auto c : {Command::stop, Command::reload, Command::sessions, Command::stats, Command::flush,
                 Command::cluster}) {
    Request q;
    q.command = c;
    auto back = parse_request(format_request(q));
    REQUIRE(back);
    CHECK(back->command == c);
  }
  Request f;
  f.command = Command::stop;
  f.force = true;
  CHECK(format_request(f) == R"({"v":1,"cmd":"stop","force":true})");
  CHECK(parse_request(" {\"v\":1.0,\"cmd\":\"stats\"} "));  // 1.0 is the integer 1
}

TEST_CASE("requests: bad input is refused with a reason") {
  struct Case {
    const char* line;
    const char* reason;
  };
  const Case cases[] = {
      {"stop", "bad JSON"},
      {"[]", "must be a JSON object"},
      {"{}", "missing \"v\""},
      {R"({"v":"1","cmd":"stop"})", "integer"},
      {R"({"v":1.5,"cmd":"stop"})", "integer"},
      {R"({"v":2,"cmd":"stop"})", "version"},
      {R"({"v":0,"cmd":"stop"})", "version"},
      {R"({"v":1})", "missing \"cmd\""},
      {R"({"v":1,"cmd":1})", "missing \"cmd\""},
      {R"({"v":1,"cmd":"STOP"})", "unknown command"},
      {R"({"v":1,"cmd":"shutdown"})", "unknown command"},
      {R"({"v":1,"cmd":"stop","force":"yes"})", "true or false"},
      {R"({"v":1,"cmd":"stats","force":true})", "unexpected member"},
      {R"({"v":1,"cmd":"stats","extra":null})", "unexpected member"},
      {R"({"v":1,"cmd":"stats","v":1})", "duplicate"},
  };
  for (const auto& c : cases) {
    INFO("line: " << c.line);
    auto r = parse_request(c.line);
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find(c.reason) != std::string::npos);
  }
  std::string long_line = R"({"v":1,"cmd":"stats","pad":")" + std::string(5000, 'x') + "\"}";
  auto r = parse_request(long_line);
  REQUIRE_FALSE(r);
  CHECK(r.error().code == Errc::limit);
}

TEST_CASE("replies") {
  auto ok = parse_json(ok_reply({{"pid", 7}}));
  REQUIRE(ok);
  CHECK(check_reply(*ok));
  CHECK(*ok->get("pid")->number() == 7);
  auto err = parse_json(error_reply("bad_request", "line \"x\"\n"));
  REQUIRE(err);
  auto st = check_reply(*err);
  REQUIRE_FALSE(st);
  CHECK(st.error().message == "line \"x\"\n");
  CHECK(st.error().code == Errc::invalid_argument);
  auto ns = parse_json(error_reply("not_supported", "no"));
  CHECK(check_reply(*ns).error().code == Errc::unavailable);
  CHECK_FALSE(check_reply(*parse_json("{}")));
  CHECK_FALSE(check_reply(*parse_json(R"({"ok":"yes"})")));
}

TEST_CASE("sessions table") {
  auto reply = parse_json(
      R"({"v":1,"ok":true,"sessions":[)"
      R"({"id":3,"protocol":"smtp","peer":"127.0.0.1:4000","account":"","state":"mail","command":"MAIL FROM:<a@b>","age":75},)"
      R"({"id":4,"protocol":"pop3","peer":"[::1]:5","account":"alice","state":"transaction","command":"evil\u001b[2J","age":4000}],)"
      R"("workers":[{"name":"queue runner","state":"idle","age":2}]})");
  REQUIRE(reply);
  auto t = sessions_table(*reply);
  REQUIRE(t);
  CHECK(t->find("2 sessions\n") == 0);
  CHECK(t->find("ID") != std::string::npos);
  CHECK(t->find("MAIL FROM:<a@b>") != std::string::npos);
  CHECK(t->find("1:15") != std::string::npos);   // 75 s
  CHECK(t->find("1h06") != std::string::npos);   // 4000 s
  CHECK(t->find("alice") != std::string::npos);
  CHECK(t->find('\x1b') == std::string::npos);   // control characters never reach the terminal
  CHECK(t->find("1 worker\n") != std::string::npos);
  CHECK(t->find("queue runner") != std::string::npos);

  auto empty = parse_json(R"({"ok":true,"sessions":[],"workers":[]})");
  CHECK(*sessions_table(*empty) == "0 sessions\n0 workers\n");
  CHECK_FALSE(sessions_table(*parse_json(R"({"ok":true})")));
  CHECK_FALSE(sessions_table(*parse_json(R"({"sessions":[1],"workers":[]})")));
}

TEST_CASE("sessions table: numbers a long long cannot hold") {
  // Found by the control_json fuzzer: casting 1e300 to long long was undefined.
  auto reply = parse_json(
      R"({"sessions":[{"id":1e300,"protocol":"smtp","age":1e300},{"id":-2.5,"age":-4}],)"
      R"("workers":[{"name":"w","state":"idle","age":-1e300}]})");
  REQUIRE(reply);
  auto t = sessions_table(*reply);
  REQUIRE(t);
  CHECK(t->find("1e+300") != std::string::npos);
  CHECK(t->find("-2.5") != std::string::npos);
  // No age is shown for an impossible one.
  CHECK(t->find(":") == std::string::npos);
}

TEST_CASE("paths") {
  CHECK(control_socket_path("/h") == "/h/var/run/control.sock");
  CHECK(submit_socket_path("/h") == "/h/var/run/submit.sock");
  CHECK(pid_file_path("/h") == "/h/var/run/wizmail.pid");
}

TEST_CASE("pid files") {
  auto dir = std::filesystem::temp_directory_path() / ("wizmail-pid-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto f = dir / "p";
  auto write = [&](const std::string& s) {
    FILE* fp = std::fopen(f.c_str(), "w");
    std::fputs(s.c_str(), fp);
    std::fclose(fp);
  };
  CHECK_FALSE(read_pid(f));
  write("123\n");
  CHECK(read_pid(f) == 123);
  for (const char* bad : {"", "abc", "-5", "0", "12x", "99999999999"}) {
    write(bad);
    CHECK_FALSE(read_pid(f));
  }
  // This test program is not a wizmail server; pid 1 is not either.
  CHECK_FALSE(is_server_process(::getpid()));
  CHECK_FALSE(is_server_process(0));
  CHECK_FALSE(is_server_process(-1));
  std::filesystem::remove_all(dir);
}
