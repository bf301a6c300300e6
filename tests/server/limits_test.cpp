// Pure state of the hostile-client limits (issue 13, item 5): the command
// deadline / DATA rate and the per-client connection count. Time is passed
// in: no sleeps.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "net/client_connections.hpp"
#include "net/request_deadline.hpp"

using wizmail::net::ClientConnections;
using wizmail::net::RequestDeadline;
using namespace std::chrono_literals;
using Phase = RequestDeadline::Phase;

TEST_CASE("command deadline: a line must end within `command` of its first byte, however it trickles") {
  RequestDeadline r({.command = 120s, .min_rate = 500});
  auto t = RequestDeadline::Clock::now();
  CHECK_FALSE(r.deadline());  // idle: the silence timer only
  r.update(Phase::command, 0, t);
  REQUIRE(r.deadline());
  CHECK(*r.deadline() == t + 120s);
  // One byte a second: the deadline does not move.
  for (int i = 1; i < 100; ++i) r.update(Phase::command, 0, t + std::chrono::seconds(i));
  CHECK(*r.deadline() == t + 120s);
  // The line ended: no deadline; the next line starts its own.
  r.update(Phase::idle, 0, t + 100s);
  CHECK_FALSE(r.deadline());
  r.update(Phase::command, 0, t + 130s);
  CHECK(*r.deadline() == t + 250s);
}

TEST_CASE("DATA: command_deadline of grace, then each byte buys 1/min_rate s") {
  RequestDeadline r({.command = 10s, .min_rate = 1000});
  auto t = RequestDeadline::Clock::now();
  r.update(Phase::data, 0, t);  // the 354
  CHECK(*r.deadline() == t + 10s);
  r.update(Phase::data, 5000, t + 1s);
  CHECK(*r.deadline() == t + 15s);
  // At 1 byte/s the deadline creeps by 1 ms per second: it is reached.
  auto when = t + 1s;
  for (int i = 0; i < 20; ++i) {
    when += 1s;
    r.update(Phase::data, 1, when);
  }
  CHECK(*r.deadline() == t + 15s + 20ms);
  CHECK(when > *r.deadline());
  // A fast client is never near it: 50 MB at 10 MB/s needs 5 s, earns 50,000 s.
  RequestDeadline fast({.command = 10s, .min_rate = 1000});
  fast.update(Phase::data, 0, t);
  for (int i = 1; i <= 50; ++i) fast.update(Phase::data, 1'000'000, t + std::chrono::milliseconds(100 * i));
  CHECK(*fast.deadline() > t + 50000s);
  // The end of data: idle again (commit is the server's time).
  r.update(Phase::idle, 0, when);
  CHECK_FALSE(r.deadline());
  // A new DATA starts afresh.
  r.update(Phase::data, 0, when + 1s);
  CHECK(*r.deadline() == when + 11s);
  // min_rate 0: no deadline for DATA; commands still have theirs.
  RequestDeadline off({.command = 10s, .min_rate = 0});
  off.update(Phase::data, 100, t);
  CHECK_FALSE(off.deadline());
  off.update(Phase::command, 0, t);
  CHECK(*off.deadline() == t + 10s);
}

TEST_CASE("client connections: at most `limit` per IPv4 address or IPv6 /64, places given back") {
  ClientConnections c;
  std::vector<ClientConnections::Slot> held;
  for (int i = 0; i < 3; ++i) {
    auto [ok, slot] = c.acquire("192.0.2.7", 3);
    CHECK(ok);
    CHECK(slot);
    held.push_back(std::move(slot));
  }
  CHECK(c.count("192.0.2.7") == 3);
  auto [refused, none] = c.acquire("::ffff:192.0.2.7", 3);  // the same host, v4-mapped
  CHECK_FALSE(refused);
  CHECK_FALSE(none);
  CHECK(c.count("192.0.2.7") == 3);  // a refusal counts nothing
  // Another address has its own count.
  auto [other, oslot] = c.acquire("192.0.2.8", 3);
  CHECK(other);
  // One /64 is one client.
  auto [a1, s1] = c.acquire("2001:db8:1:2::1", 1);
  auto [a2, s2] = c.acquire("2001:db8:1:2:ffff::2", 1);
  auto [a3, s3] = c.acquire("2001:db8:1:3::1", 1);
  CHECK(a1);
  CHECK_FALSE(a2);
  CHECK(a3);
  // A connection ends: its place is free again.
  held.pop_back();
  CHECK(c.count("192.0.2.7") == 2);
  auto [again, aslot] = c.acquire("192.0.2.7", 3);
  CHECK(again);
  // Moving a slot moves the place, it does not double it.
  ClientConnections::Slot moved = std::move(aslot);
  CHECK_FALSE(aslot);
  CHECK(c.count("192.0.2.7") == 3);
  moved = ClientConnections::Slot{};
  CHECK(c.count("192.0.2.7") == 2);
  // 0 = no limit.
  std::vector<ClientConnections::Slot> many;
  for (int i = 0; i < 1000; ++i) many.push_back(c.acquire("198.51.100.1", 0).second);
  CHECK(c.count("198.51.100.1") == 1000);
  many.clear();
  held.clear();
  oslot = {};
  s1 = {};
  s3 = {};
  // Every place given back: nothing remembered.
  CHECK(c.networks() == 0);
}
