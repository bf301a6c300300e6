#include "net/auth_penalty.hpp"

#include <doctest/doctest.h>

#include <string>

using wizmail::net::AuthPenalty;
using namespace std::chrono_literals;

TEST_CASE("auth penalty: counts per network, across calls, until a success or the window") {
  AuthPenalty p(AuthPenalty::Options{std::chrono::seconds(60), 100});
  auto t = AuthPenalty::Clock::now();
  CHECK(p.recent("192.0.2.7", t) == 0);
  CHECK(p.failed("192.0.2.7", t) == 1);
  CHECK(p.failed("192.0.2.7", t + 1s) == 2);
  CHECK(p.failed("::ffff:192.0.2.7", t + 2s) == 3);  // the same host, v4-mapped
  CHECK(p.failed("192.0.2.8", t + 2s) == 1);         // IPv4: each address its own
  CHECK(p.recent("192.0.2.7", t + 3s) == 3);
  // One IPv6 /64 is one network.
  CHECK(p.failed("2001:db8:1:2::1", t) == 1);
  CHECK(p.failed("2001:db8:1:2:ffff::9", t) == 2);
  CHECK(p.failed("2001:db8:1:3::1", t) == 1);
  CHECK(AuthPenalty::network("2001:db8:1:2:aaaa:bbbb:cccc:dddd") == "2001:db8:1:2::/64");
  // A success clears the network.
  p.succeeded("192.0.2.7");
  CHECK(p.recent("192.0.2.7", t + 3s) == 0);
  CHECK(p.failed("192.0.2.7", t + 3s) == 1);
  // Past the window without a failure, the count starts again.
  CHECK(p.recent("192.0.2.8", t + 63s) == 0);
  CHECK(p.failed("192.0.2.8", t + 63s) == 1);
  // Not an address: counted by its text.
  CHECK(p.failed("local", t) == 1);
  CHECK(p.failed("local", t) == 2);
}

TEST_CASE("auth penalty: memory stays bounded, expired records go first, then the oldest") {
  AuthPenalty p(AuthPenalty::Options{std::chrono::seconds(60), 64});
  auto t = AuthPenalty::Clock::now();
  for (int i = 0; i < 32; ++i) p.failed("198.51.100." + std::to_string(i), t);
  for (int i = 0; i < 32; ++i) p.failed("203.0.113." + std::to_string(i), t + 120s);
  CHECK(p.size() == 64);
  // Full: the 32 expired ones make room.
  p.failed("192.0.2.1", t + 121s);
  CHECK(p.size() == 33);
  CHECK(p.recent("203.0.113.5", t + 121s) == 1);
  // Flood with fresh addresses: never more than 64.
  for (int i = 0; i < 1000; ++i)
    p.failed("10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256), t + 122s + std::chrono::milliseconds(i));
  CHECK(p.size() <= 64);
  // The newest is still there.
  CHECK(p.recent("10.0.3.231", t + 123s) == 1);
}
