// The auth penalty shared by the nodes of a cluster (AuthPenalty::share,
// docs/cluster.md): two AuthPenalty objects (two nodes) over one in-process
// SharedState with an injected clock, and over a state that is down.
#include "auth/penalty.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "down_state.hpp"
#include "state/shared_state.hpp"

using namespace std::chrono_literals;
using wizmail::auth::AuthAdmission;
using wizmail::auth::AuthPenalty;
using wizmail::auth::AuthPolicy;

namespace {

struct Cluster {
  std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now();
  std::shared_ptr<wizmail::state::SharedState> shared =
      wizmail::state::make_memory_state([this] { return now; });
  std::vector<std::string> logged;
  AuthPenalty a{AuthPenalty::Options{3600s, 100}}, b{AuthPenalty::Options{3600s, 100}};
  Cluster() {
    a.share(shared, [this](std::string_view t) { logged.emplace_back(t); });
    b.share(shared, [this](std::string_view t) { logged.emplace_back(t); });
  }
};

}  // namespace

TEST_CASE("shared auth penalty: failures on one node count on the other, per network") {
  Cluster c;
  AuthPolicy pol{.max_concurrent = 0, .block_failures = 0, .block_time = 0s};
  CHECK(c.a.failed("192.0.2.7", {}, pol) == 1);
  CHECK(c.b.failed("192.0.2.7", {}, pol) == 2);
  CHECK(c.a.failed("::ffff:192.0.2.7", {}, pol) == 3);  // the same host, v4-mapped
  CHECK(c.b.recent("192.0.2.7") == 3);
  // Another address is its own network: one address never counts for another.
  CHECK(c.b.recent("192.0.2.8") == 0);
  CHECK(c.a.failed("2001:db8:1:2::1", {}, pol) == 1);
  CHECK(c.b.failed("2001:db8:1:2:ffff::9", {}, pol) == 2);  // one /64
  CHECK(c.b.recent("2001:db8:1:3::1") == 0);
  // The admission on B waits by A's failures.
  auto adm = c.b.begin("192.0.2.7", pol);
  CHECK(adm.kind == AuthAdmission::Kind::check);
  CHECK(adm.failures == 3);
  c.b.end("192.0.2.7");
  // The window restarts at each failure, and passes without one.
  c.now += 3000s;
  CHECK(c.a.failed("192.0.2.7", {}, pol) == 4);
  c.now += 3000s;
  CHECK(c.b.recent("192.0.2.7") == 4);
  c.now += 601s;
  CHECK(c.b.recent("192.0.2.7") == 0);
  // A success on one node clears the network on both.
  CHECK(c.a.failed("192.0.2.9", {}, pol) == 1);
  c.b.succeeded("192.0.2.9");
  CHECK(c.a.recent("192.0.2.9") == 0);
  CHECK(c.logged.empty());
}

TEST_CASE("shared auth penalty: a network blocked on one node is blocked on the other, and only it") {
  Cluster c;
  AuthPolicy pol{.max_concurrent = 0, .block_failures = 3, .block_time = 600s};
  c.a.failed("203.0.113.9", {}, pol);
  c.b.failed("203.0.113.9", {}, pol);
  CHECK_FALSE(c.a.blocked("203.0.113.9"));
  CHECK(c.a.failed("203.0.113.9", {}, pol) == 3);
  CHECK(c.b.blocked("203.0.113.9"));
  CHECK(c.b.begin("203.0.113.9", pol).kind == AuthAdmission::Kind::blocked);
  CHECK(c.b.in_progress("203.0.113.9") == 0);
  // One address must never lock others out.
  CHECK_FALSE(c.b.blocked("203.0.113.10"));
  CHECK(c.b.begin("203.0.113.10", pol).kind == AuthAdmission::Kind::check);
  c.b.end("203.0.113.10");
  // After block_time: admitted again with the failures still counted (the
  // window is longer), so the next failure blocks again at once.
  c.now += 601s;
  auto adm = c.a.begin("203.0.113.9", pol);
  CHECK(adm.kind == AuthAdmission::Kind::check);
  CHECK(adm.failures == 3);
  c.a.end("203.0.113.9");
  CHECK(c.b.failed("203.0.113.9", {}, pol) == 4);
  CHECK(c.a.blocked("203.0.113.9"));
  // A success lifts it everywhere.
  c.b.succeeded("203.0.113.9");
  CHECK_FALSE(c.a.blocked("203.0.113.9"));
  CHECK(c.a.recent("203.0.113.9") == 0);
  // 0 = never block.
  AuthPolicy never{.max_concurrent = 0, .block_failures = 0, .block_time = 600s};
  for (int i = 0; i < 20; ++i) c.a.failed("192.0.2.1", {}, never);
  CHECK_FALSE(c.b.blocked("192.0.2.1"));
}

TEST_CASE("shared auth penalty: attempts in progress stay per node") {
  Cluster c;
  AuthPolicy pol{.max_concurrent = 1, .block_failures = 0, .block_time = 0s};
  CHECK(c.a.begin("192.0.2.7", pol).kind == AuthAdmission::Kind::check);
  CHECK(c.a.begin("192.0.2.7", pol).kind == AuthAdmission::Kind::busy);
  CHECK(c.b.begin("192.0.2.7", pol).kind == AuthAdmission::Kind::check);  // B's own connections
  c.a.end("192.0.2.7");
  c.b.end("192.0.2.7");
  CHECK(c.a.in_progress("192.0.2.7") == 0);
  CHECK(c.a.size() == 0);
}

TEST_CASE("shared auth penalty: a state that cannot be asked is 'unavailable', never a pass") {
  AuthPenalty p;
  std::vector<std::string> logged;
  p.share(std::make_shared<wizmail::test::DownState>(), [&](std::string_view t) { logged.emplace_back(t); });
  AuthPolicy pol{.max_concurrent = 1, .block_failures = 3, .block_time = 600s};
  CHECK(p.begin("192.0.2.7", pol).kind == AuthAdmission::Kind::unavailable);
  CHECK(p.in_progress("192.0.2.7") == 0);  // nothing to end()
  CHECK_FALSE(p.blocked("192.0.2.7"));      // begin() is what refuses
  CHECK(p.failed("192.0.2.7", {}, pol) == 0);
  p.succeeded("192.0.2.7");
  REQUIRE(logged.size() == 4);
  CHECK(logged[0].find("Connection refused") != std::string::npos);
  CHECK(logged[2].find("not counted") != std::string::npos);
}
