#include "auth/penalty.hpp"
#include "net/address.hpp"

#include <doctest/doctest.h>

#include <string>

using wizmail::auth::AuthPenalty;
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
  CHECK(wizmail::net::client_network("2001:db8:1:2:aaaa:bbbb:cccc:dddd") == "2001:db8:1:2::/64");
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

using wizmail::auth::AuthAdmission;
using wizmail::auth::AuthPolicy;
using wizmail::auth::auth_delay_for;

TEST_CASE("auth penalty: every attempt waits by the network's failures, right or wrong") {
  using ms = std::chrono::milliseconds;
  // No failures: no wait. Then base × 2^(n−1), capped.
  CHECK(auth_delay_for(0, ms(1000), ms(16000)) == ms(0));
  CHECK(auth_delay_for(1, ms(1000), ms(16000)) == ms(1000));
  CHECK(auth_delay_for(2, ms(1000), ms(16000)) == ms(2000));
  CHECK(auth_delay_for(5, ms(1000), ms(16000)) == ms(16000));
  CHECK(auth_delay_for(6, ms(1000), ms(16000)) == ms(16000));
  CHECK(auth_delay_for(1'000'000, ms(1000), ms(16000)) == ms(16000));
  CHECK(auth_delay_for(3, ms(0), ms(16000)) == ms(0));  // delays off
  CHECK(auth_delay_for(3, ms(1000), ms(1500)) == ms(1500));

  AuthPenalty p;
  AuthPolicy pol{.max_concurrent = 0, .block_failures = 0, .block_time = 0s};
  auto t = AuthPenalty::Clock::now();
  auto a = p.begin("192.0.2.7", pol, t);
  CHECK(a.kind == AuthAdmission::Kind::check);
  CHECK(a.failures == 0);
  p.failed("192.0.2.7", t, pol);
  p.end("192.0.2.7");
  p.failed("192.0.2.7", t, pol);
  // The admission says how many failures the network has, whatever the
  // password the attempt carries: the caller waits before checking.
  a = p.begin("192.0.2.7", pol, t + 1s);
  CHECK(a.kind == AuthAdmission::Kind::check);
  CHECK(a.failures == 2);
  p.end("192.0.2.7");
  // Another address of the same IPv4 network? No: each IPv4 address is one.
  CHECK(p.begin("192.0.2.8", pol, t).failures == 0);
  p.end("192.0.2.8");
  CHECK(p.size() == 1);  // a clean network leaves no record behind
}

TEST_CASE("auth penalty: at most max_concurrent attempts in progress per network") {
  AuthPenalty p;
  AuthPolicy pol{.max_concurrent = 2, .block_failures = 0, .block_time = 0s};
  auto t = AuthPenalty::Clock::now();
  CHECK(p.begin("2001:db8:1:2::1", pol, t).kind == AuthAdmission::Kind::check);
  CHECK(p.begin("2001:db8:1:2::2", pol, t).kind == AuthAdmission::Kind::check);
  // The third from the same /64 while two are in progress: busy.
  CHECK(p.begin("2001:db8:1:2::3", pol, t).kind == AuthAdmission::Kind::busy);
  CHECK(p.in_progress("2001:db8:1:2::9") == 2);
  // Another /64 is not affected.
  CHECK(p.begin("2001:db8:1:3::1", pol, t).kind == AuthAdmission::Kind::check);
  p.end("2001:db8:1:3::1");
  // One ends: room for one more.
  p.end("2001:db8:1:2::1");
  CHECK(p.begin("2001:db8:1:2::3", pol, t).kind == AuthAdmission::Kind::check);
  CHECK(p.begin("2001:db8:1:2::4", pol, t).kind == AuthAdmission::Kind::busy);
  // A success clears failures but not the attempts in progress.
  p.failed("2001:db8:1:2::2", t, pol);
  p.succeeded("2001:db8:1:2::2");
  CHECK(p.recent("2001:db8:1:2::2", t) == 0);
  CHECK(p.in_progress("2001:db8:1:2::2") == 2);
  p.end("2001:db8:1:2::2");
  p.end("2001:db8:1:2::3");
  CHECK(p.in_progress("2001:db8:1:2::2") == 0);
  p.end("2001:db8:1:2::3");  // an unmatched end() does not go negative
  CHECK(p.in_progress("2001:db8:1:2::2") == 0);
  CHECK(p.size() == 0);
  // 0 = no cap.
  AuthPolicy open{.max_concurrent = 0, .block_failures = 0, .block_time = 0s};
  for (int i = 0; i < 100; ++i) CHECK(p.begin("198.51.100.1", open, t).kind == AuthAdmission::Kind::check);
  CHECK(p.in_progress("198.51.100.1") == 100);
}

TEST_CASE("auth penalty: block_failures failures block the network for block_time") {
  AuthPenalty p(AuthPenalty::Options{std::chrono::seconds(3600), 100});
  AuthPolicy pol{.max_concurrent = 0, .block_failures = 3, .block_time = 600s};
  auto t = AuthPenalty::Clock::now();
  CHECK(p.failed("203.0.113.9", t, pol) == 1);
  CHECK(p.failed("203.0.113.9", t + 1s, pol) == 2);
  CHECK_FALSE(p.blocked("203.0.113.9", t + 1s));
  CHECK(p.failed("203.0.113.9", t + 2s, pol) == 3);
  CHECK(p.blocked("203.0.113.9", t + 2s));
  // Right or wrong, nothing is admitted while blocked.
  CHECK(p.begin("203.0.113.9", pol, t + 3s).kind == AuthAdmission::Kind::blocked);
  CHECK(p.begin("::ffff:203.0.113.9", pol, t + 601s).kind == AuthAdmission::Kind::blocked);
  CHECK(p.in_progress("203.0.113.9") == 0);
  // Another address is not blocked.
  CHECK_FALSE(p.blocked("203.0.113.10", t + 3s));
  // After block_time: admitted again, with the failures still counted, so
  // the next failure blocks again at once.
  auto a = p.begin("203.0.113.9", pol, t + 602s);
  CHECK(a.kind == AuthAdmission::Kind::check);
  CHECK(a.failures == 3);
  p.end("203.0.113.9");
  CHECK(p.failed("203.0.113.9", t + 603s, pol) == 4);
  CHECK(p.blocked("203.0.113.9", t + 603s));
  // A block survives make_room's first pass; a success lifts it.
  p.succeeded("203.0.113.9");
  CHECK_FALSE(p.blocked("203.0.113.9", t + 604s));
  // 0 = never block.
  AuthPolicy never{.max_concurrent = 0, .block_failures = 0, .block_time = 600s};
  for (int i = 0; i < 50; ++i) p.failed("192.0.2.1", t, never);
  CHECK_FALSE(p.blocked("192.0.2.1", t));
}

TEST_CASE("auth penalty: records of attempts in progress are never evicted") {
  AuthPenalty p(AuthPenalty::Options{std::chrono::seconds(60), 8});
  AuthPolicy pol{.max_concurrent = 1, .block_failures = 0, .block_time = 0s};
  auto t = AuthPenalty::Clock::now();
  REQUIRE(p.begin("192.0.2.200", pol, t).kind == AuthAdmission::Kind::check);
  for (int i = 0; i < 100; ++i) p.failed("10.1.0." + std::to_string(i), t + 120s + std::chrono::seconds(i));
  CHECK(p.size() <= 9);
  // Still in progress: a second attempt of that network is still busy.
  CHECK(p.begin("192.0.2.200", pol, t + 300s).kind == AuthAdmission::Kind::busy);
}
