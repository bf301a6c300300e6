#include "wizmail/pop_before_smtp.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "temp_dir.hpp"
#include "util/fs.hpp"
#include "wizmail/account_store.hpp"

using namespace wizmail;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::optional<std::string> who(PopLoginTable& t, std::string_view ip, std::int64_t since = 0) {
  auto r = t.find(ip, since);
  REQUIRE(r);
  return *r;
}

}  // namespace

TEST_CASE("a recorded login is found at once, by any spelling of the address") {
  auto t = make_memory_pop_login_table();
  CHECK(!who(*t, "192.0.2.7"));
  REQUIRE(t->record("192.0.2.7", "alice", 1000, 600s));
  CHECK(who(*t, "192.0.2.7") == "alice");
  CHECK(who(*t, "::ffff:192.0.2.7") == "alice");  // IPv4-mapped is the same address
  CHECK(!who(*t, "192.0.2.8"));
  REQUIRE(t->record("2001:DB8::1", "bob", 1000, 600s));
  CHECK(who(*t, "2001:db8:0::1") == "bob");
  // `since`: a login older than the TTL no longer counts.
  CHECK(who(*t, "192.0.2.7", 1000) == "alice");
  CHECK(!who(*t, "192.0.2.7", 1001));
}

TEST_CASE("the newest login from an address wins, never an older one") {
  auto t = make_memory_pop_login_table();
  REQUIRE(t->record("::ffff:10.0.0.1", "alice", 2000, 600s));
  REQUIRE(t->record("10.0.0.1", "bob", 1000, 600s));  // older: e.g. seeded from a file
  CHECK(who(*t, "10.0.0.1") == "alice");
  REQUIRE(t->record("10.0.0.1", "bob", 3000, 600s));
  CHECK(who(*t, "10.0.0.1") == "bob");
}

TEST_CASE("bad addresses are refused, never stored or matched") {
  auto t = make_memory_pop_login_table();
  for (std::string bad : std::vector<std::string>{"", "localhost", "1.2.3", "1.2.3.4/24", "::g",
                                                  std::string("1.2.3.4\0", 8)}) {
    CAPTURE(bad);
    auto st = t->record(bad, "alice", 1, 600s);
    REQUIRE(!st);
    CHECK(st.error().code == Errc::invalid_argument);
    CHECK(!who(*t, bad));
  }
}

TEST_CASE("the table stays bounded: expired logins go first, then the oldest") {
  auto t = make_memory_pop_login_table(8);
  // 8 logins that expire at 1100, then many fresh ones: the expired go.
  for (int i = 0; i < 8; ++i) REQUIRE(t->record("10.0.0." + std::to_string(i), "old", 1000, 100s));
  for (int i = 0; i < 100; ++i) REQUIRE(t->record("10.0.1." + std::to_string(i), "new", 2000 + i, 600s));
  for (int i = 0; i < 8; ++i) CHECK(!who(*t, "10.0.0." + std::to_string(i)));
  // The newest are kept; never more than 8 in all.
  CHECK(who(*t, "10.0.1.99") == "new");
  int kept = 0;
  for (int i = 0; i < 100; ++i) kept += who(*t, "10.0.1." + std::to_string(i)).has_value();
  CHECK(kept >= 1);
  CHECK(kept <= 8);
}

TEST_CASE("seeding from the ip files takes the logins within the TTL only") {
  test::TempDir tmp;
  AccountStore store(tmp.path() / "mailbox");
  REQUIRE(util::make_dirs(tmp.path() / "mailbox"));
  for (auto n : {"alice", "bob", "carol", "dave"}) REQUIRE(store.create(n, "pw"));
  REQUIRE(store.write_pop_login("alice", "192.0.2.1", 10'000 - 60));
  REQUIRE(store.write_pop_login("bob", "192.0.2.2", 10'000 - 601));  // too old
  REQUIRE(util::write_file_atomic(tmp.path() / "mailbox" / "carol" / "ip", "garbage\n"));
  // dave never logged in.
  auto t = make_memory_pop_login_table();
  auto n = seed_pop_logins(*t, store, 10'000, 600s);
  REQUIRE(n);
  CHECK(*n == 1);
  CHECK(who(*t, "192.0.2.1") == "alice");
  CHECK(!who(*t, "192.0.2.2"));
  // A mailbox folder that cannot be listed is an error.
  AccountStore none(tmp.path() / "nope");
  CHECK(!seed_pop_logins(*t, none, 10'000, 600s));
}
