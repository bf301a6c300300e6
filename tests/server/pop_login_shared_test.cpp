// POP-before-SMTP logins in the cluster's shared state
// (server/pop_login_shared.hpp): recorded by one node, found by another;
// the in-process SharedState with an injected clock.
#include "server/pop_login_shared.hpp"

#include <doctest/doctest.h>

#include "down_state.hpp"
#include "state/shared_state.hpp"

using namespace std::chrono_literals;
using namespace wizmail;

TEST_CASE("shared POP logins: a login on one node is found on another, within its ttl") {
  auto steady = std::chrono::steady_clock::now();
  std::int64_t now = 1'000'000;
  auto shared = state::make_memory_state([&] { return steady; });
  auto a = make_shared_pop_login_table(shared, [&] { return now; });
  auto b = make_shared_pop_login_table(shared, [&] { return now; });
  CHECK_FALSE(*b->find("192.0.2.7", 0));
  REQUIRE(a->record("192.0.2.7", "alice", now, 600s));
  CHECK(*b->find("192.0.2.7", now - 600) == "alice");
  CHECK(*b->find("::ffff:192.0.2.7", now - 600) == "alice");  // any spelling
  CHECK_FALSE(*b->find("192.0.2.8", 0));
  CHECK(*shared->get("wizmail:poplogin:4:c0000207") == "1000000 alice");
  // Older than the caller's window: not found.
  CHECK_FALSE(*b->find("192.0.2.7", now + 1));
  // A later login replaces an earlier one, never the reverse.
  REQUIRE(b->record("192.0.2.7", "bob", now + 10, 600s));
  REQUIRE(a->record("192.0.2.7", "carol", now + 5, 600s));  // seeded from an older ip file
  CHECK(*a->find("192.0.2.7", 0) == "bob");
  // IPv6.
  REQUIRE(a->record("2001:db8::1", "dave", now, 600s));
  CHECK(*b->find("2001:0db8:0::1", 0) == "dave");
  // The key goes with the ttl (counted from the login, not from the record).
  steady += 611s;
  CHECK_FALSE(*b->find("192.0.2.7", 0));
  // A login already past its ttl is not recorded at all.
  now += 2000;
  REQUIRE(a->record("192.0.2.9", "erin", now - 700, 600s));
  CHECK_FALSE(*b->find("192.0.2.9", 0));
  // Not an address.
  CHECK_FALSE(a->record("not-an-ip", "x", now, 600s));
  CHECK_FALSE(*a->find("not-an-ip", 0));
}

TEST_CASE("shared POP logins: a state that cannot be asked is an error, never 'no login'") {
  auto t = make_shared_pop_login_table(std::make_shared<test::DownState>());
  auto f = t->find("192.0.2.7", 0);
  REQUIRE_FALSE(f);
  CHECK(f.error().code == Errc::unavailable);
  CHECK_FALSE(t->record("192.0.2.7", "alice", static_cast<std::int64_t>(std::time(nullptr)), 600s));
}
