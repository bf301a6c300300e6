#include "wizmail/admin/monitor.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <iostream>

#include "helpers.hpp"
#include "wizmail/account_store.hpp"
#include "wizmail/mailbox.hpp"

using namespace wizmail;
using wizmail::test::TempHome;
namespace fs = std::filesystem;

namespace {

void put_messages(const fs::path& account_dir, int n, int size) {
  for (int i = 0; i < n; ++i) {
    auto name = "1700000000.M" + std::to_string(i) + "P1Q1.host,S=" + std::to_string(size);
    test::write(account_dir / (i % 2 ? "cur" : "new") / (i % 2 ? name + ":2,S" : name), std::string(static_cast<std::size_t>(size), 'x'));
  }
}

std::vector<AccountActivity> rows(std::initializer_list<std::pair<const char*, std::uint64_t>> v) {
  std::vector<AccountActivity> out;
  for (auto& [n, b] : v) {
    AccountActivity a;
    a.account = n;
    a.bytes = b;
    a.messages = b / 10;
    out.push_back(a);
  }
  return out;
}

using K = MonitorView::Key;
MonitorView::Input ch(char c) { return {K::character, c}; }

}  // namespace

TEST_CASE("collect_activity: per-account figures, counters and totals") {
  TempHome h;
  auto cfg = h.config();
  REQUIRE(cfg);
  fs::create_directories(cfg->mailbox_dir());
  AccountStore store(cfg->mailbox_dir());
  REQUIRE(store.create("alice", "pw"));
  REQUIRE(store.create("bob", "pw"));
  REQUIRE(store.create("carol", "pw"));
  put_messages(cfg->mailbox_dir() / "alice", 3, 100);
  put_messages(cfg->mailbox_dir() / "bob", 2, 5000);
  REQUIRE(add_mailbox_counters(cfg->mailbox_dir() / "alice", {7, 2, 1}));
  REQUIRE(add_mailbox_counters(cfg->mailbox_dir() / "bob", {1, 0, 4}));
  auto s = collect_activity(*cfg);
  REQUIRE(s);
  REQUIRE(s->accounts.size() == 3);
  CHECK(s->accounts[0].account == "alice");
  CHECK(s->accounts[0].messages == 3);
  CHECK(s->accounts[0].bytes == 300);
  CHECK(s->accounts[0].received == 7);
  CHECK(s->accounts[0].sent == 2);
  CHECK(s->accounts[0].deleted == 1);
  CHECK(s->accounts[1].bytes == 10000);
  CHECK(s->accounts[2].messages == 0);
  CHECK(s->totals.messages == 5);
  CHECK(s->totals.bytes == 10300);
  CHECK(s->totals.received == 8);
  CHECK(s->totals.deleted == 5);
  CHECK(s->queue_length == 0);

  auto json = activity_json(*s);
  CHECK(json.find("{\"account\":\"alice\",\"messages\":3,\"bytes\":300,\"sent\":2,\"received\":7,\"deleted\":1}") !=
        std::string::npos);
  CHECK(json.find("\"totals\":{\"messages\":5,\"bytes\":10300,") != std::string::npos);
  auto table = activity_table(*s);
  CHECK(table.find("alice") != std::string::npos);
  CHECK(table.find("total") != std::string::npos);
  CHECK(table.find('\x1b') == std::string::npos);
}

TEST_CASE("collect_activity: a missing mailbox folder is an error, hand-made folders are skipped") {
  TempHome h;
  auto cfg = h.config();
  REQUIRE(cfg);
  CHECK_FALSE(collect_activity(*cfg));
  fs::create_directories(cfg->mailbox_dir() / "Not-Valid");
  fs::create_directories(cfg->mailbox_dir() / ".creating-x");
  auto s = collect_activity(*cfg);
  REQUIRE(s);
  CHECK(s->accounts.empty());
}

TEST_CASE("collect_activity: 1000 accounts without reading a body") {
  TempHome h;
  auto cfg = h.config();
  REQUIRE(cfg);
  for (int i = 0; i < 1000; ++i) {
    auto d = cfg->mailbox_dir() / ("user" + std::to_string(i));
    for (auto sub : {"new", "cur", "tmp"}) fs::create_directories(d / sub);
    put_messages(d, 4, 10);
  }
  // Bodies that contradict their ,S=: the totals must come from the names.
  for (auto sub : {"new", "cur"})
    for (auto& e : fs::directory_iterator(cfg->mailbox_dir() / "user7" / sub)) test::write(e.path(), "x");
  auto t0 = std::chrono::steady_clock::now();
  auto s = collect_activity(*cfg);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  REQUIRE(s);
  CHECK(s->accounts.size() == 1000);
  CHECK(s->totals.messages == 4000);
  CHECK(s->totals.bytes == 40000);
  std::cout << "collect_activity: 1000 accounts x 4 messages in " << ms << " ms\n";
}

TEST_CASE("sort_activity and parse_activity_sort") {
  auto r = rows({{"bob", 50}, {"alice", 50}, {"carol", 900}, {"dave", 10}});
  sort_activity(r, ActivitySort::bytes, true);
  CHECK(r[0].account == "carol");
  CHECK(r[1].account == "alice");  // ties by name
  CHECK(r[2].account == "bob");
  CHECK(r[3].account == "dave");
  sort_activity(r, ActivitySort::bytes, false);
  CHECK(r[0].account == "dave");
  CHECK(r[3].account == "carol");
  sort_activity(r, ActivitySort::account, true);
  CHECK(r[0].account == "dave");
  CHECK(parse_activity_sort("Bytes") == ActivitySort::bytes);
  CHECK(parse_activity_sort("size") == ActivitySort::bytes);
  CHECK(parse_activity_sort("name") == ActivitySort::account);
  CHECK_FALSE(parse_activity_sort(""));
  CHECK_FALSE(parse_activity_sort("bytes; rm"));
}

TEST_CASE("find_account: prefix first, then substring, wrapping, case-insensitive") {
  auto r = rows({{"admin", 1}, {"alice", 1}, {"malice", 1}, {"bob", 1}});
  CHECK(find_account(r, "al") == 1u);
  CHECK(find_account(r, "AL") == 1u);
  CHECK(find_account(r, "al", 2) == 1u);  // prefix match wins over the substring at 2, wrapping
  CHECK(find_account(r, "lice") == 1u);
  CHECK(find_account(r, "lice", 2) == 2u);
  CHECK(find_account(r, "b") == 3u);
  CHECK_FALSE(find_account(r, "zed"));
  CHECK_FALSE(find_account(r, ""));
  CHECK_FALSE(find_account(std::vector<AccountActivity>{}, "a"));
  CHECK(find_account(r, "a", 99) == 0u);  // `from` past the end wraps
}

TEST_CASE("MonitorView: keys sort, search and move the cursor") {
  MonitorView v;
  v.set_size(10, 100);
  ActivitySnapshot s;
  s.accounts = rows({{"alice", 30}, {"bob", 900}, {"carol", 10}, {"dave", 500}});
  v.set_snapshot(s);
  CHECK(v.rows()[0].account == "alice");
  CHECK(v.handle(ch('3')));  // bytes, biggest first
  CHECK(v.sort() == ActivitySort::bytes);
  CHECK(v.descending());
  CHECK(v.rows()[0].account == "bob");
  v.handle(ch('3'));  // again: reverse
  CHECK_FALSE(v.descending());
  CHECK(v.rows()[0].account == "carol");
  // Search moves the cursor to the account.
  v.handle(ch('/'));
  CHECK(v.searching());
  for (char c : std::string("dav")) v.handle(ch(c));
  v.handle({K::enter, 0});
  CHECK_FALSE(v.searching());
  CHECK(v.rows()[v.cursor()].account == "dave");
  // The cursor stays on the same account across a resort and a refresh.
  v.handle(ch('1'));
  CHECK(v.rows()[v.cursor()].account == "dave");
  v.set_snapshot(s);
  CHECK(v.rows()[v.cursor()].account == "dave");
  // A failed search says so and keeps the cursor.
  v.handle(ch('/'));
  v.handle(ch('z'));
  v.handle({K::enter, 0});
  CHECK(v.rows()[v.cursor()].account == "dave");
  CHECK(v.message().find("no account matches") != std::string::npos);
  // Escape cancels a search; backspace edits it.
  v.handle(ch('/'));
  v.handle(ch('x'));
  v.handle({K::backspace, 0});
  v.handle(ch('a'));
  v.handle({K::escape, 0});
  CHECK_FALSE(v.searching());
  CHECK(v.rows()[v.cursor()].account == "dave");
  // Movement stays in range.
  v.handle({K::end, 0});
  CHECK(v.cursor() == 3);
  v.handle({K::down, 0});
  CHECK(v.cursor() == 3);
  v.handle({K::home, 0});
  v.handle({K::up, 0});
  CHECK(v.cursor() == 0);
  v.handle({K::page_down, 0});
  CHECK(v.cursor() == 3);
  CHECK_FALSE(v.handle(ch('q')));
}

TEST_CASE("MonitorView: render keeps the cursor visible and the screen bounded") {
  MonitorView v;
  v.set_size(8, 60);  // 3 table rows
  ActivitySnapshot s;
  for (int i = 0; i < 50; ++i) {
    AccountActivity a;
    a.account = "user" + std::to_string(100 + i);
    s.accounts.push_back(a);
  }
  v.set_snapshot(s);
  v.handle({K::end, 0});
  auto screen = v.render();
  CHECK(screen.starts_with("\x1b[H\x1b[2J"));
  CHECK(screen.find("\x1b[7muser149") != std::string::npos);
  CHECK(screen.find("user100") == std::string::npos);
  std::size_t lines = 0;
  for (char c : screen) lines += c == '\n';
  CHECK(lines == 7);  // rows - 1 line breaks
  // No line is longer than the width (escape codes aside).
  std::string plain;
  for (std::size_t i = 0; i < screen.size(); ++i) {
    if (screen[i] == '\x1b') {
      while (i < screen.size() && !std::isalpha(static_cast<unsigned char>(screen[i])) ) ++i;
      continue;
    }
    plain += screen[i];
  }
  std::size_t col = 0;
  for (char c : plain) {
    if (c == '\n' || c == '\r') col = 0;
    else CHECK(++col <= 60);
  }
  // An error text with control characters cannot inject escape codes.
  s.accounts[0].error = "bad\x1b[2Jname";
  v.handle({K::home, 0});
  v.set_snapshot(s);
  v.set_size(8, 200);
  auto scr = v.render();
  CHECK(scr.find("bad?[2Jname") != std::string::npos);
}

TEST_CASE("MonitorView::decode_keys at every chunk size") {
  const std::string input = "q\x1b[A\x1b[B\x1b[5~\x1b[6~\x1b[H\x1b[F/ab\x7f\r\x1b[1;5D";
  const std::vector<K> want{K::character, K::up, K::down, K::page_up, K::page_down, K::home, K::end,
                            K::character, K::character, K::character, K::backspace, K::enter};
  for (std::size_t chunk : {1u, 2u, 3u, 4u, 7u, 64u}) {
    CAPTURE(chunk);
    std::string pending;
    std::vector<MonitorView::Input> got;
    for (std::size_t i = 0; i < input.size(); i += chunk) {
      auto part = MonitorView::decode_keys(pending, std::string_view(input).substr(i, chunk));
      got.insert(got.end(), part.begin(), part.end());
    }
    REQUIRE(got.size() == want.size());
    for (std::size_t i = 0; i < want.size(); ++i) CHECK(got[i].key == want[i]);
    CHECK(got[0].ch == 'q');
    CHECK(pending.empty());
  }
  std::string pending;
  CHECK(MonitorView::decode_keys(pending, "\x1b").empty());
  CHECK(pending == "\x1b");
  auto esc = MonitorView::flush_keys(pending);
  CHECK(pending.empty());
  REQUIRE(esc.size() == 1);
  CHECK(esc[0].key == K::escape);
  // Garbage CSI sequences are bounded and dropped.
  pending.clear();
  auto junk = MonitorView::decode_keys(pending, "\x1b[" + std::string(100, '1') + "x" + "k");
  REQUIRE(junk.size() == 1);
  CHECK(junk[0].ch == 'k');
  CHECK(pending.empty());
  // An ESC then another key in one read: Escape, then the key.
  auto two = MonitorView::decode_keys(pending, "\x1bq");
  REQUIRE(two.size() == 2);
  CHECK(two[0].key == K::escape);
  CHECK(two[1].ch == 'q');
}
