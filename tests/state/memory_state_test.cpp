// The in-process SharedState with an injected clock: exact expiry
// boundaries without sleeping.
#include "state/shared_state.hpp"

#include <doctest/doctest.h>

using namespace std::chrono_literals;
using wizmail::state::make_memory_state;

namespace {
struct FakeClock {
  std::chrono::steady_clock::time_point t{std::chrono::seconds(1000)};
  wizmail::state::SteadyNow fn() {
    return [this] { return t; };
  }
};
}  // namespace

TEST_CASE("memory state: a lease expires exactly at its ttl unless renewed") {
  FakeClock clock;
  auto s = make_memory_state(clock.fn());
  REQUIRE(*s->acquire("L", "a", 1000ms));
  CHECK_FALSE(*s->acquire("L", "b", 1000ms));
  clock.t += 999ms;
  CHECK_FALSE(*s->acquire("L", "b", 1000ms));
  CHECK(*s->renew("L", "a", 1000ms));  // now lives until +1999
  clock.t += 999ms;
  CHECK_FALSE(*s->acquire("L", "b", 1000ms));
  clock.t += 1ms;  // +1999: expired
  CHECK_FALSE(*s->renew("L", "a", 1000ms));
  CHECK(*s->acquire("L", "b", 1000ms));
  CHECK_FALSE(*s->release("L", "a"));  // not a's any more
  CHECK(*s->release("L", "b"));
  CHECK(*s->acquire("L", "a", 1000ms));
}

TEST_CASE("memory state: re-taking one's own lease refreshes it") {
  FakeClock clock;
  auto s = make_memory_state(clock.fn());
  REQUIRE(*s->acquire("L", "a", 100ms));
  clock.t += 90ms;
  CHECK(*s->acquire("L", "a", 100ms));
  clock.t += 90ms;
  CHECK_FALSE(*s->acquire("L", "b", 100ms));
}

TEST_CASE("memory state: counter expiry set once, or refreshed") {
  FakeClock clock;
  auto s = make_memory_state(clock.fn());
  CHECK(*s->increment("daily", 1000ms, false) == 1);
  clock.t += 600ms;
  CHECK(*s->increment("daily", 1000ms, false) == 2);
  clock.t += 400ms;  // the first increment's expiry holds
  CHECK(*s->counter("daily") == 0);
  CHECK(*s->increment("daily", 1000ms, false) == 1);

  CHECK(*s->increment("penalty", 1000ms, true) == 1);
  clock.t += 600ms;
  CHECK(*s->increment("penalty", 1000ms, true) == 2);
  clock.t += 600ms;  // refreshed at +600: alive until +1600
  CHECK(*s->counter("penalty") == 2);
  clock.t += 400ms;
  CHECK(*s->counter("penalty") == 0);
}

TEST_CASE("memory state: keys with a ttl") {
  FakeClock clock;
  auto s = make_memory_state(clock.fn());
  CHECK_FALSE(s->get("k")->has_value());
  REQUIRE(s->put("k", "v1", 500ms));
  CHECK(**s->get("k") == "v1");
  REQUIRE(s->put("k", "v2", 500ms));
  clock.t += 499ms;
  CHECK(**s->get("k") == "v2");
  clock.t += 1ms;
  CHECK_FALSE(s->get("k")->has_value());
  REQUIRE(s->put("k", "v3", 500ms));
  REQUIRE(s->erase("k"));
  CHECK_FALSE(s->get("k")->has_value());
  CHECK(s->describe() == "in-process");
}

TEST_CASE("memory state: expired entries are swept as new ones arrive") {
  FakeClock clock;
  auto s = make_memory_state(clock.fn());
  // "k17": appended, not "k" + std::to_string (GCC 12's -Wrestrict at -O3).
  auto key = [](char prefix, int i) {
    std::string k(1, prefix);
    k += std::to_string(i);
    return k;
  };
  for (int i = 0; i < 5000; ++i) REQUIRE(s->put(key('k', i), "v", 10ms));
  clock.t += 20ms;
  for (int i = 0; i < 5000; ++i) REQUIRE(s->put(key('n', i), "v", 10ms));
  for (int i = 0; i < 5000; i += 997) CHECK_FALSE(s->get(key('k', i))->has_value());
  CHECK(s->get("n4999")->has_value());
}
