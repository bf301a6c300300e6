// The web console API's pure parts (docs/console.md): the dashboard's
// minute series (time passed in), log tail/search/session selection, the
// def-file edit, the request bodies — good and bad input.
#include "server/console_logs.hpp"

#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "config/def_edit.hpp"
#include "ops/minute_series.hpp"
#include "server/console_model.hpp"

using namespace wizmail;
using namespace wizmail::server::console;
using wizmail::ops::MinuteSeries;

namespace {
constexpr std::int64_t t0 = 1'800'000'000 / 60 * 60;  // a minute's start
MinuteSeries::Totals totals(std::uint64_t r, std::uint64_t d = 0, std::uint64_t l = 0, std::uint64_t b = 0) {
  return {r, d, l, b};
}
}  // namespace

TEST_CASE("minute series: 60 minutes, oldest first, the current minute last") {
  MinuteSeries s;
  auto snap = s.snapshot(t0 + 30);
  REQUIRE(snap.minute_start.size() == 60);
  CHECK(snap.minute_start.back() == t0);
  CHECK(snap.minute_start.front() == t0 - 59 * 60);
  for (const auto& c : snap.counts) {
    REQUIRE(c.size() == 60);
    for (auto v : c) CHECK(v == 0);
  }
}

TEST_CASE("minute series: growth since the last observation lands in now's minute") {
  MinuteSeries s;
  s.observe(t0, totals(100, 50, 7, 1));  // the base: not counted
  s.observe(t0 + 10, totals(103, 52, 7, 1));
  s.observe(t0 + 59, totals(104, 52, 8, 1));
  s.observe(t0 + 61, totals(110, 60, 8, 3));
  auto snap = s.snapshot(t0 + 61);
  CHECK(snap.counts[MinuteSeries::received][58] == 4);
  CHECK(snap.counts[MinuteSeries::delivered][58] == 2);
  CHECK(snap.counts[MinuteSeries::relayed][58] == 1);
  CHECK(snap.counts[MinuteSeries::bounced][58] == 0);
  CHECK(snap.counts[MinuteSeries::received][59] == 6);
  CHECK(snap.counts[MinuteSeries::delivered][59] == 8);
  CHECK(snap.counts[MinuteSeries::bounced][59] == 2);
}

TEST_CASE("minute series: an hour later the old minutes are gone; a slot is reused") {
  MinuteSeries s;
  s.observe(t0, totals(0));
  s.observe(t0 + 5, totals(9));
  auto later = s.snapshot(t0 + 3600);
  for (auto v : later.counts[MinuteSeries::received]) CHECK(v == 0);
  // The same ring slot an hour later starts from zero.
  s.observe(t0 + 3600 + 5, totals(10));
  auto snap = s.snapshot(t0 + 3600 + 5);
  CHECK(snap.counts[MinuteSeries::received][59] == 1);
  // 59 minutes later the first minute is still shown, first.
  MinuteSeries s2;
  s2.observe(t0, totals(0));
  s2.observe(t0 + 1, totals(3));
  CHECK(s2.snapshot(t0 + 59 * 60).counts[MinuteSeries::received][0] == 3);
  CHECK(s2.snapshot(t0 + 60 * 60).counts[MinuteSeries::received][0] == 0);
}

TEST_CASE("minute series: a total read earlier by a racing observer is never counted twice") {
  MinuteSeries s;
  s.observe(t0, totals(100));
  s.observe(t0 + 1, totals(110));  // the sampler read 110
  s.observe(t0 + 1, totals(105));  // a request read 105 before that, observed after
  s.observe(t0 + 2, totals(112));
  CHECK(s.snapshot(t0 + 2).counts[MinuteSeries::received][59] == 12);
}

TEST_CASE("log lines: tail, substring, session, cut first line") {
  std::string text =
      "2026-12-07 00:00:01.000 S1 127.0.0.1:5 - connect\n"
      "2026-12-07 00:00:02.000 S2 127.0.0.1:6 - connect\n"
      "2026-12-07 00:00:03.000 S1 127.0.0.1:5 alice AUTH ok\n"
      "\n"
      "2026-12-07 00:00:04.000 S10 127.0.0.1:7 - S1 in the text\r\n";
  auto all = select_lines(text, {200, {}, {}}, false);
  CHECK(all.size() == 4);
  CHECK(all.back() == "2026-12-07 00:00:04.000 S10 127.0.0.1:7 - S1 in the text");
  auto last2 = select_lines(text, {2, {}, {}}, false);
  REQUIRE(last2.size() == 2);
  CHECK(last2[0].find("AUTH ok") != std::string::npos);
  auto s1 = select_lines(text, {200, {}, "S1"}, false);
  REQUIRE(s1.size() == 2);  // not S10, not "S1" in the text
  CHECK(s1[1].find("AUTH ok") != std::string::npos);
  auto found = select_lines(text, {200, "alice", {}}, false);
  CHECK(found.size() == 1);
  CHECK(select_lines(text, {200, "nobody", {}}, false).empty());
  // Read from the middle of a line: that partial line is dropped.
  auto cut = select_lines(std::string_view(text).substr(10), {200, {}, {}}, true);
  CHECK(cut.size() == 3);
  CHECK(select_lines(text, {0, {}, {}}, false).empty());
}

TEST_CASE("log lines: session ids, line_of_session on short lines") {
  CHECK(valid_session_id("S1a2B3"));
  CHECK_FALSE(valid_session_id(""));
  CHECK_FALSE(valid_session_id("../etc"));
  CHECK_FALSE(valid_session_id("a b"));
  CHECK_FALSE(valid_session_id(std::string(33, 'a')));
  CHECK_FALSE(line_of_session("2026-12-07", "S1"));
  CHECK_FALSE(line_of_session("2026-12-07 00:00", "S1"));
  CHECK(line_of_session("2026-12-07 00:00 S1", "S1"));
}

TEST_CASE("read_log_lines reads only the end of a big file") {
  auto dir = std::filesystem::temp_directory_path() / ("wizmail-logs-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto file = dir / "smtp.log";
  {
    std::ofstream f(file);
    for (int i = 0; i < 20000; ++i) f << "2026-12-07 00:00:00.000 S" << i << " p - line " << i << "\n";
  }
  auto tail = read_log_lines(file, {5, {}, {}}, 4096);
  REQUIRE(tail);
  REQUIRE(tail->size() == 5);
  CHECK(tail->back().ends_with("line 19999"));
  // A line only at the start is outside the bytes read.
  auto first = read_log_lines(file, {5, {}, "S0"}, 4096);
  REQUIRE(first);
  CHECK(first->empty());
  auto whole = read_log_lines(file, {5, {}, "S0"}, 64 << 20);
  REQUIRE(whole);
  CHECK(whole->size() == 1);
  auto missing = read_log_lines(dir / "none.log", {5, {}, {}}, 4096);
  REQUIRE(missing);
  CHECK(missing->empty());
  CHECK_FALSE(read_log_lines(dir, {5, {}, {}}, 4096));  // a folder
  // Just rotated: the short new file, then the end of smtp.log.1 before it.
  std::filesystem::rename(file, dir / "smtp.log.1");
  {
    std::ofstream f(file);
    f << "2026-12-07 00:00:01.000 Snew p - after the rotation\n";
  }
  auto rotated = read_log_lines(file, {3, {}, {}}, 4096);
  REQUIRE(rotated);
  REQUIRE(rotated->size() == 3);
  CHECK(rotated->at(1).ends_with("line 19999"));
  CHECK(rotated->at(2).ends_with("after the rotation"));
  auto old_session = read_log_lines(file, {5, {}, "S19990"}, 4096);
  REQUIRE(old_session);
  CHECK(old_session->size() == 1);
  std::filesystem::remove_all(dir);
}

TEST_CASE("def edit: replace in place, keep comments, line ends and other keys") {
  std::string text = "# comment\r\nport=25\r\n// other\r\nrelay=0\r\n";
  auto r = config::set_def_value(text, {"relay"}, "1");
  REQUIRE(r);
  CHECK(*r == "# comment\r\nport=25\r\n// other\r\nrelay=1\r\n");
  // A synonym's line is replaced by the key's own name; a duplicate dropped.
  auto s = config::set_def_value("A=1\nold=2\nb=3\nnew=4\n", {"new", "old"}, "5");
  REQUIRE(s);
  CHECK(*s == "A=1\nnew=5\nb=3\n");
  // Appended when absent; a last line without its end gets one first.
  auto a = config::set_def_value("x=1", {"y"}, "2");
  REQUIRE(a);
  CHECK(*a == "x=1\ny=2\n");
  auto e = config::set_def_value("", {"y"}, "2");
  REQUIRE(e);
  CHECK(*e == "y=2\n");
  // Case-insensitive key match; comment lines never match.
  auto c = config::set_def_value("#port=1\nPORT=25\n", {"port"}, "26");
  REQUIRE(c);
  CHECK(*c == "#port=1\nport=26\n");
  // nullopt removes.
  auto rm = config::set_def_value("a=1\nb=2\n", {"a"}, std::nullopt);
  REQUIRE(rm);
  CHECK(*rm == "b=2\n");
  CHECK(config::def_value("# a=9\na = 1 \n", {"a"}) == "1");
  CHECK_FALSE(config::def_value("b=1\n", {"a"}));
}

TEST_CASE("def edit: values a def line cannot hold are refused") {
  CHECK_FALSE(config::set_def_value("", {"a"}, "1\nrelay=1"));
  CHECK_FALSE(config::set_def_value("", {"a"}, "1\r"));
  CHECK_FALSE(config::set_def_value("", {"a"}, std::string_view("1\0", 2)));
  CHECK_FALSE(config::set_def_value("", {"a"}, " 1"));
  CHECK_FALSE(config::set_def_value("", {}, "1"));
}

TEST_CASE("parse_setting") {
  auto s = parse_setting(R"({"key":"port","value":"25"})");
  REQUIRE(s);
  CHECK(s->key == "port");
  CHECK(s->value == "25");
  CHECK_FALSE(parse_setting(R"({"key":"port"})"));
  CHECK_FALSE(parse_setting(R"({"key":"port","value":25})"));
  CHECK_FALSE(parse_setting(R"({"key":"","value":"1"})"));
  CHECK_FALSE(parse_setting(R"({"key":"p","value":"1","x":"y"})"));
  CHECK_FALSE(parse_setting("[]"));
  CHECK_FALSE(parse_setting("{"));
}

TEST_CASE("parse_members and parse_forward") {
  auto m = parse_members(R"({"members":["a@x.test","b@y.test"]})");
  REQUIRE(m);
  CHECK(m->size() == 2);
  CHECK(parse_members(R"({"members":[]})"));
  CHECK_FALSE(parse_members(R"({"members":"a@x"})"));
  CHECK_FALSE(parse_members(R"({"members":[1]})"));
  CHECK_FALSE(parse_members(R"({"members":[],"extra":1})"));
  auto f = parse_forward(R"({"addresses":["a@x.test"],"keep_copy":true})");
  REQUIRE(f);
  CHECK(f->keep_copy);
  CHECK_FALSE(parse_forward(R"({"addresses":["a@x.test"]})"));
  CHECK_FALSE(parse_forward(R"({"addresses":["a@x.test"],"keep_copy":"yes"})"));
  std::string many = R"({"keep_copy":true,"addresses":[)";
  for (int i = 0; i < 21; ++i) many += std::string(i ? "," : "") + "\"a@x.test\"";
  CHECK_FALSE(parse_forward(many + "]}"));
}

TEST_CASE("parse_vacation and valid_date") {
  auto v = parse_vacation(
      R"({"enabled":true,"subject":"Away","text":"Back soon\n","from":"2026-12-01","until":"2026-12-24"})");
  REQUIRE(v);
  CHECK(v->enabled);
  CHECK(v->text == "Back soon\n");
  CHECK(parse_vacation(R"({"enabled":false,"subject":"","text":"","from":"","until":""})"));
  CHECK_FALSE(parse_vacation(R"({"enabled":true,"subject":"","text":"x","from":"","until":""})"));
  CHECK_FALSE(parse_vacation(R"({"enabled":true,"subject":"a\nBcc: x","text":"x","from":"","until":""})"));
  CHECK_FALSE(parse_vacation(R"({"enabled":true,"subject":"a","text":"x","from":"2026-13-01","until":""})"));
  CHECK_FALSE(parse_vacation(R"({"enabled":true,"subject":"a","text":"x","from":"2026-12-24","until":"2026-12-01"})"));
  CHECK_FALSE(parse_vacation(R"({"enabled":"yes","subject":"a","text":"x","from":"","until":""})"));
  CHECK_FALSE(parse_vacation(R"({"enabled":true,"subject":"a","text":"x","from":""})"));
  CHECK_FALSE(parse_vacation(
      std::string(R"({"enabled":true,"subject":"a","from":"","until":"","text":")") + std::string(8001, 'x') + "\"}"));
  CHECK(valid_date("2024-02-29"));
  CHECK_FALSE(valid_date("2023-02-29"));
  CHECK_FALSE(valid_date("2026-04-31"));
  CHECK_FALSE(valid_date("2026-1-01"));
  CHECK_FALSE(valid_date("../../etc"));
}

TEST_CASE("parse_password_change: current_password optional in the body") {
  auto p = parse_password_change(R"({"password":"new","current_password":"old"})");
  REQUIRE(p);
  CHECK(p->current_password == "old");
  CHECK_FALSE(parse_password_change(R"({"password":"new"})")->current_password);
  CHECK_FALSE(parse_password_change(R"({"password":"new","current_password":1})"));
}
