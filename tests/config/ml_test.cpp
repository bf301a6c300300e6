#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "helpers.hpp"
#include "wizmail/config.hpp"

using namespace wizmail;
using cfgtest::TempDir;
namespace fs = std::filesystem;

TEST_CASE("ml.def: save and load round trip, the manual's Japanese name") {
  TempDir d;
  auto file = d.path / "ml.def";
  MailingListSettings ml{42, "ml_error@localhost", "ml_master@localhost", "サンプルメール:"};
  REQUIRE(save_ml_def(file, ml));
  auto back = load_ml_def(file);
  REQUIRE(back.has_value());
  CHECK(back->count == 42);
  CHECK(back->admin_mail_address == "ml_error@localhost");
  CHECK(back->return_path == "ml_master@localhost");
  CHECK(back->name == "サンプルメール:");
  // Empty values round-trip as empty.
  REQUIRE(save_ml_def(file, MailingListSettings{}));
  back = load_ml_def(file);
  REQUIRE(back.has_value());
  CHECK(back->count == 0);
  CHECK(back->name.empty());
}

TEST_CASE("ml.def: the manual's file with comments and CRLF loads") {
  TempDir d;
  cfgtest::write(d.path / "ml.def", "# list\r\ncount=10\r\nadmin_mail_address=ml_error@localhost\r\n");
  auto ml = load_ml_def(d.path / "ml.def");
  REQUIRE(ml.has_value());
  CHECK(ml->count == 10);
  CHECK(ml->return_path.empty());
}

TEST_CASE("ml.def: bad input is refused and a refused save changes nothing") {
  TempDir d;
  auto file = d.path / "ml.def";
  for (std::string bad : std::vector<std::string>{"count=-1\n", "count=ten\n", "count=1\ncount=2\n", "cuont=1\n",
                          std::string("count=1\n\0junk", 13), "name=\xff\n"}) {
    CAPTURE(bad);
    cfgtest::write(file, bad);
    auto ml = load_ml_def(file);
    REQUIRE_FALSE(ml.has_value());
    CHECK(ml.error().message.find(file.string() + ":") == 0);
    CHECK_FALSE(increment_ml_count(file).has_value());
    CHECK(cfgtest::slurp(file) == bad);
  }
  CHECK(load_ml_def(d.path / "missing.def").error().code == Errc::not_found);
  CHECK_FALSE(increment_ml_count(d.path / "missing.def").has_value());

  REQUIRE(save_ml_def(file, MailingListSettings{7, "a@b.example", "", "x"}));
  const std::string before = cfgtest::slurp(file);
  for (auto ml : {MailingListSettings{1, "a@b\nport=1", "", ""}, MailingListSettings{1, "", "", " x"},
                  MailingListSettings{-5, "", "", ""}, MailingListSettings{1, "", std::string("a\0b", 3), ""}}) {
    auto st = save_ml_def(file, ml);
    CHECK_FALSE(st.has_value());
    CHECK(st.error().code == Errc::invalid_argument);
    CHECK(cfgtest::slurp(file) == before);
  }
}

TEST_CASE("ml.def: count increments are never lost across threads and processes") {
  TempDir d;
  auto file = d.path / "ml.def";
  REQUIRE(save_ml_def(file, MailingListSettings{100, "admin@example.org", "", "list"}));
  constexpr int kChildIncrements = 40;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 30;

  // Fork before any thread exists, so the child is a clean copy.
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    int failures = 0;
    for (int i = 0; i < kChildIncrements; ++i)
      if (!increment_ml_count(file)) ++failures;
    ::_exit(failures == 0 ? 0 : 1);
  }
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  std::vector<std::vector<std::int64_t>> seen(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto n = increment_ml_count(file);
        if (!n) ++failures;
        else seen[t].push_back(*n);
      }
    });
  }
  for (auto& th : threads) th.join();
  int st = 0;
  REQUIRE(::waitpid(child, &st, 0) == child);
  CHECK(WIFEXITED(st));
  CHECK(WEXITSTATUS(st) == 0);
  CHECK(failures == 0);
  auto ml = load_ml_def(file);
  REQUIRE(ml.has_value());
  CHECK(ml->count == 100 + kChildIncrements + kThreads * kPerThread);
  CHECK(ml->admin_mail_address == "admin@example.org");
  CHECK(ml->name == "list");
  // Each value handed out in this process is unique.
  std::vector<std::int64_t> all;
  for (auto& v : seen) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());
  // No temporary files are left behind.
  for (auto& e : fs::directory_iterator(d.path)) {
    auto name = e.path().filename().string();
    CHECK((name == "ml.def" || name == "ml.def.lock"));
  }
}
