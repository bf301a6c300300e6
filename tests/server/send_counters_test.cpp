// send_max_during_a_day's counters (server/send_counters.hpp): in-process
// with their file, and shared by two nodes through one in-process
// SharedState with an injected clock and day.
#include "server/send_counters.hpp"

#include <doctest/doctest.h>

#include "down_state.hpp"
#include "state/shared_state.hpp"
#include "temp_dir.hpp"
#include "util/fs.hpp"

using namespace std::chrono_literals;
using wizmail::server::SendCounters;

TEST_CASE("send counters in-process: per account and day, kept in var/sendcount") {
  wizmail::test::TempDir dir;
  std::string day = "2026-12-07";
  {
    SendCounters c(dir.path() / "sendcount", [&] { return day; });
    CHECK(*c.today("alice") == 0);
    REQUIRE(c.record("alice"));
    REQUIRE(c.record("alice"));
    CHECK(*c.today("alice") == 2);
    CHECK(*c.today("bob") == 0);
    CHECK(*wizmail::util::read_file(dir.path() / "sendcount" / "alice") == "2026-12-07 2\n");
    CHECK(*c.today("../x") == 0);  // not an account name: never a file
    REQUIRE(c.record("../x"));
  }
  // A restart reads the file; the next day starts at 0.
  SendCounters again(dir.path() / "sendcount", [&] { return day; });
  CHECK(*again.today("alice") == 2);
  day = "2026-12-08";
  CHECK(*again.today("alice") == 0);
}

TEST_CASE("send counters shared: both nodes count one total per account and day") {
  wizmail::test::TempDir dir_a, dir_b;
  auto now = std::chrono::steady_clock::now();
  auto shared = wizmail::state::make_memory_state([&] { return now; });
  std::string day = "2026-12-07";
  SendCounters a(dir_a.path() / "sendcount", [&] { return day; });
  SendCounters b(dir_b.path() / "sendcount", [&] { return day; });
  a.share(shared);
  b.share(shared);
  REQUIRE(a.record("alice"));
  REQUIRE(b.record("alice"));
  REQUIRE(a.record("alice"));
  CHECK(*b.today("alice") == 3);
  CHECK(*a.today("bob") == 0);
  CHECK(*shared->counter("wizmail:sendcount:2026-12-07:alice") == 3);
  CHECK_FALSE(std::filesystem::exists(dir_a.path() / "sendcount" / "alice"));  // the state is the record
  // A new day is a new counter; yesterday's expires by itself.
  day = "2026-12-08";
  CHECK(*a.today("alice") == 0);
  REQUIRE(b.record("alice"));
  CHECK(*a.today("alice") == 1);
  now += 49h;
  CHECK(*shared->counter("wizmail:sendcount:2026-12-07:alice") == 0);
}

TEST_CASE("send counters shared: a state that cannot be asked is an error, never 0") {
  wizmail::test::TempDir dir;
  SendCounters c(dir.path() / "sendcount");
  c.share(std::make_shared<wizmail::test::DownState>());
  auto n = c.today("alice");
  REQUIRE_FALSE(n);
  CHECK(n.error().code == wizmail::Errc::unavailable);
  CHECK_FALSE(c.record("alice"));
}
