#include "net/greet_cache.hpp"

#include <doctest/doctest.h>

#include <string>

using wizmail::net::GreetCache;
using namespace std::chrono_literals;

TEST_CASE("greet cache: a passed address is known for the ttl, then forgotten") {
  GreetCache c;
  auto t0 = GreetCache::Clock::time_point{} + 1000h;
  CHECK_FALSE(c.passed("192.0.2.7", 60s, t0));
  c.pass("192.0.2.7", 60s, t0);
  CHECK(c.passed("192.0.2.7", 60s, t0 + 59s));
  CHECK_FALSE(c.passed("192.0.2.7", 60s, t0 + 60s));
  CHECK_FALSE(c.passed("192.0.2.8", 60s, t0 + 1s));
  // The same address written as IPv4-mapped IPv6 (a dual-stack listener).
  CHECK(c.passed("::ffff:192.0.2.7", 60s, t0 + 1s));
  // A ttl of 0 (greet_pass_ttl=0): every connection waits.
  CHECK_FALSE(c.passed("192.0.2.7", 0s, t0));
  // Passing again renews.
  c.pass("192.0.2.7", 60s, t0 + 50s);
  CHECK(c.passed("192.0.2.7", 60s, t0 + 100s));
  CHECK(c.size() == 1);
}

TEST_CASE("greet cache: bounded; expired entries go first, then the oldest") {
  GreetCache c(16);
  auto t0 = GreetCache::Clock::time_point{} + 1000h;
  for (int i = 0; i < 16; ++i) c.pass("198.51.100." + std::to_string(i), 60s, t0 + std::chrono::seconds(i));
  CHECK(c.size() == 16);
  // At t0+70s entries 0..10 have expired: they go, the rest stay.
  c.pass("203.0.113.1", 60s, t0 + 70s);
  CHECK(c.size() == 6);
  CHECK(c.passed("198.51.100.15", 60s, t0 + 70s));
  CHECK(c.passed("203.0.113.1", 60s, t0 + 70s));
  // Fill with fresh ones: never more than 16, the newest kept.
  for (int i = 0; i < 100; ++i) c.pass("2001:db8::" + std::to_string(i + 1), 3600s, t0 + 80s + std::chrono::seconds(i));
  CHECK(c.size() <= 16);
  CHECK(c.passed("2001:db8::100", 3600s, t0 + 200s));
  CHECK_FALSE(c.passed("2001:db8::1", 3600s, t0 + 200s));
}
