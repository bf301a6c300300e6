// One contract, run against both SharedState implementations: in-process
// and a real redis-server started by the test (loopback, free port, no
// persistence, killed at the end). Then what only Redis can do wrong: the
// server gone (Errc::unavailable within the timeouts, never a pass) and
// back; two clients (two nodes) on one server; the LeaseKeeper's renewals.
#include "state/shared_state.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "redis_server.hpp"
#include "state/lease_keeper.hpp"
#include "state/redis_state.hpp"
#include "wait_until.hpp"

using namespace std::chrono_literals;
using namespace wizmail::state;
using wizmail::Errc;
using wizmail::Result;
using wizmail::Status;

namespace {

std::shared_ptr<SharedState> redis_client(std::uint16_t port) {
  RedisOptions o;
  o.address = *parse_redis_url(std::string("redis://127.0.0.1:") + std::to_string(port) + "/1");
  return make_redis_state(o);
}

void contract(const std::function<std::shared_ptr<SharedState>()>& make) {
  auto s = make();
  auto t = make();  // another node (for Redis: another connection pool)

  // Leases: one owner at a time, renew and release only by the owner.
  REQUIRE(*s->acquire("c:lease", "a", 5000ms));
  CHECK_FALSE(*t->acquire("c:lease", "b", 5000ms));
  CHECK(*s->acquire("c:lease", "a", 5000ms));  // re-take by the owner
  CHECK_FALSE(*t->renew("c:lease", "b", 5000ms));
  CHECK_FALSE(*t->release("c:lease", "b"));
  CHECK(*t->renew("c:lease", "a", 5000ms));
  CHECK(*s->release("c:lease", "a"));
  CHECK_FALSE(*s->release("c:lease", "a"));
  CHECK_FALSE(*s->renew("c:lease", "a", 5000ms));
  CHECK(*t->acquire("c:lease", "b", 5000ms));
  CHECK(*t->release("c:lease", "b"));

  // A lease expires by itself.
  REQUIRE(*s->acquire("c:short", "a", 150ms));
  CHECK_FALSE(*t->acquire("c:short", "b", 150ms));
  CHECK(wizmail::test::wait_until([&] { return *t->acquire("c:short", "b", 5000ms); }, 3s));
  CHECK_FALSE(*s->renew("c:short", "a", 5000ms));
  CHECK(*t->release("c:short", "b"));

  // Owners and names are bytes, not words.
  REQUIRE(*s->acquire("c:odd name\n", "owner with spaces", 5000ms));
  CHECK_FALSE(*t->acquire("c:odd name\n", "owner with", 5000ms));
  CHECK(*t->release("c:odd name\n", "owner with spaces"));

  // Counters.
  CHECK(*s->counter("c:n") == 0);
  CHECK(*s->increment("c:n", 5000ms, false) == 1);
  CHECK(*t->increment("c:n", 5000ms, false) == 2);
  CHECK(*s->counter("c:n") == 2);
  REQUIRE(s->erase("c:n"));
  CHECK(*t->counter("c:n") == 0);
  // The first increment's expiry holds without refresh.
  CHECK(*s->increment("c:once", 300ms, false) == 1);
  CHECK(wizmail::test::wait_until([&] { return *t->counter("c:once") == 0; }, 3s));
  // With refresh, each increment restarts it: keep incrementing every 100 ms
  // for 600 ms on a 300 ms ttl and it stays.
  std::int64_t last = 0;
  for (int i = 0; i < 7; ++i) {
    last = *s->increment("c:pen", 300ms, true);
    std::this_thread::sleep_for(100ms);
  }
  CHECK(last == 7);
  CHECK(*t->counter("c:pen") == 7);
  CHECK(wizmail::test::wait_until([&] { return *t->counter("c:pen") == 0; }, 3s));

  // Concurrent increments are not lost.
  std::vector<std::thread> th;
  std::atomic<int> failed{0};
  for (int k = 0; k < 4; ++k)
    th.emplace_back([&, k] {
      auto& st = k % 2 ? *s : *t;
      for (int i = 0; i < 50; ++i)
        if (!st.increment("c:race", 5000ms, false)) ++failed;
    });
  for (auto& x : th) x.join();
  CHECK(failed.load() == 0);
  CHECK(*s->counter("c:race") == 200);
  REQUIRE(s->erase("c:race"));

  // Sequences: max(current, floor) + 1 from either node, never expiring.
  CHECK(*s->increment_from("c:seq", 0) == 1);
  CHECK(*t->increment_from("c:seq", 0) == 2);
  CHECK(*s->increment_from("c:seq", 1) == 3);     // a floor below is ignored
  CHECK(*t->increment_from("c:seq", 41) == 42);   // a floor above wins (a lost key reseeded)
  CHECK(*s->counter("c:seq") == 42);
  CHECK(*s->increment("c:seq", 5000ms, false) == 43);  // the same number a counter reads
  REQUIRE(s->erase("c:seq"));
  CHECK(*t->increment_from("c:seq", 7) == 8);
  // Concurrent: every number handed out once.
  {
    std::vector<std::thread> seq;
    std::mutex mu;
    std::vector<std::int64_t> got;
    for (int k = 0; k < 4; ++k)
      seq.emplace_back([&, k] {
        auto& st = k % 2 ? *s : *t;
        for (int i = 0; i < 25; ++i)
          if (auto v = st.increment_from("c:seq", 8)) {
            std::lock_guard lk(mu);
            got.push_back(*v);
          }
      });
    for (auto& x : seq) x.join();
    std::sort(got.begin(), got.end());
    REQUIRE(got.size() == 100);
    CHECK(std::adjacent_find(got.begin(), got.end()) == got.end());
    CHECK(got.front() == 9);
    CHECK(got.back() == 108);
  }
  REQUIRE(s->erase("c:seq"));

  // A key that is no counter cannot be incremented (Redis: an error reply).
  REQUIRE(s->put("c:word", "abc", 5000ms));
  CHECK_FALSE(t->increment("c:word", 5000ms, false));
  CHECK_FALSE(t->counter("c:word"));
  CHECK_FALSE(t->increment_from("c:word", 0));
  REQUIRE(s->erase("c:word"));

  // Keys with a ttl.
  CHECK_FALSE(s->get("c:k")->has_value());
  REQUIRE(s->put("c:k", std::string("v\0x", 3), 5000ms));
  CHECK(**t->get("c:k") == std::string("v\0x", 3));
  REQUIRE(t->put("c:k", "w", 200ms));
  CHECK(**s->get("c:k") == "w");
  CHECK(wizmail::test::wait_until([&] { return !s->get("c:k")->has_value(); }, 3s));
  REQUIRE(s->put("c:k", "x", 5000ms));
  REQUIRE(t->erase("c:k"));
  CHECK_FALSE(s->get("c:k")->has_value());

  // Concurrent acquisition: exactly one winner.
  std::atomic<int> winners{0};
  th.clear();
  for (int k = 0; k < 8; ++k)
    th.emplace_back([&, k] {
      auto& st = k % 2 ? *s : *t;
      if (*st.acquire("c:contended", std::string("o") + std::to_string(k), 5000ms)) ++winners;
    });
  for (auto& x : th) x.join();
  CHECK(winners.load() == 1);
}

}  // namespace

TEST_CASE("contract: in-process") {
  auto one = make_memory_state();  // nodes of one process share one store
  contract([&] { return one; });
}

TEST_CASE("contract: redis") {
  if (!wizmail::test::redis_server_program()) {
    MESSAGE("redis-server not installed: skipped");
    return;
  }
  wizmail::test::RedisServer redis;
  contract([&] { return redis_client(redis.port()); });
  CHECK(redis_client(redis.port())->describe() ==
        std::string("redis://127.0.0.1:") + std::to_string(redis.port()) + "/1");
}

TEST_CASE("redis: server gone is Errc::unavailable at once, never a pass; back again works") {
  if (!wizmail::test::redis_server_program()) return;
  wizmail::test::RedisServer redis;
  auto s = redis_client(redis.port());
  REQUIRE(*s->acquire("g:lease", "a", 60000ms));
  redis.kill();
  auto t0 = std::chrono::steady_clock::now();
  auto a = s->acquire("g:lease", "b", 60000ms);  // a pooled connection, now dead
  REQUIRE_FALSE(a);
  CHECK(a.error().code == Errc::unavailable);
  auto b = s->increment("g:n", 1000ms, true);
  REQUIRE_FALSE(b);
  CHECK(b.error().code == Errc::unavailable);
  CHECK_FALSE(s->put("g:k", "v", 1000ms));
  CHECK_FALSE(s->get("g:k"));
  CHECK_FALSE(s->counter("g:n"));
  CHECK_FALSE(s->renew("g:lease", "a", 1000ms));
  CHECK_FALSE(s->release("g:lease", "a"));
  CHECK(std::chrono::steady_clock::now() - t0 < 3s);  // refused, not waited for
  redis.start();  // empty: no persistence
  CHECK(*s->acquire("g:lease", "b", 60000ms));
}

TEST_CASE("redis: a server that does not answer costs at most the command timeout") {
  if (!wizmail::test::redis_server_program()) return;
  wizmail::test::RedisServer redis;
  RedisOptions o;
  o.address = *parse_redis_url(std::string("redis://127.0.0.1:") + std::to_string(redis.port()));
  o.command_timeout = 300ms;
  auto s = make_redis_state(o);
  REQUIRE(s->put("h:k", "v", 60000ms));
  redis.pause();  // SIGSTOP: connections are accepted by the kernel, nothing answers
  auto t0 = std::chrono::steady_clock::now();
  auto g = s->get("h:k");
  auto took = std::chrono::steady_clock::now() - t0;
  redis.resume();
  REQUIRE_FALSE(g);
  CHECK(g.error().code == Errc::unavailable);
  CHECK(took >= 250ms);
  CHECK(took < 2s);
  CHECK(**s->get("h:k") == "v");  // a fresh connection afterwards
}

TEST_CASE("lease keeper: renews on its own thread, releases when dropped, reports loss") {
  auto store = make_memory_state();
  std::vector<std::string> logs;
  std::mutex mu;
  LeaseKeeper keeper(store, 300ms, [&](std::string_view t) {
    std::lock_guard lk(mu);
    logs.emplace_back(t);
  });
  auto l = keeper.acquire("k:a", "me");
  REQUIRE(l);
  CHECK(l->held());
  // Renewed: still held well past the ttl without anyone touching it.
  std::this_thread::sleep_for(900ms);
  CHECK_FALSE(*store->acquire("k:a", "other", 300ms));
  CHECK(l->intact());
  auto busy = keeper.acquire("k:a", "other");
  REQUIRE_FALSE(busy);
  CHECK(busy.error().code == Errc::busy);
  // Dropped: released by the keeper's thread soon, not at the ttl.
  *l = LeaseKeeper::Lease{};
  CHECK(wizmail::test::wait_until([&] { return *store->acquire("k:a", "other", 60000ms); }, 250ms));
  // Lost (someone broke it): the next renew says so.
  auto m = keeper.acquire("k:b", "me");
  REQUIRE(m);
  REQUIRE(*store->release("k:b", "me"));
  REQUIRE(*store->acquire("k:b", "thief", 60000ms));
  CHECK(wizmail::test::wait_until([&] { return !m->intact(); }, 2s));
  std::lock_guard lk(mu);
  bool said = false;
  for (auto& t : logs) said = said || t.find("k:b lost") != std::string::npos;
  CHECK(said);
}

namespace {
// The in-process store, noting which thread each release ran on.
class ReleaseWatch : public SharedState {
 public:
  std::shared_ptr<SharedState> inner = make_memory_state();
  std::mutex mu;
  std::vector<std::thread::id> release_threads;
  Result<bool> acquire(std::string_view n, std::string_view o, Millis t) override { return inner->acquire(n, o, t); }
  Result<bool> renew(std::string_view n, std::string_view o, Millis t) override { return inner->renew(n, o, t); }
  Result<bool> release(std::string_view n, std::string_view o) override {
    {
      std::lock_guard lk(mu);
      release_threads.push_back(std::this_thread::get_id());
    }
    return inner->release(n, o);
  }
  Result<std::int64_t> increment(std::string_view n, Millis t, bool r) override { return inner->increment(n, t, r); }
  Result<std::int64_t> counter(std::string_view n) override { return inner->counter(n); }
  Result<std::int64_t> increment_from(std::string_view n, std::int64_t f) override {
    return inner->increment_from(n, f);
  }
  Status put(std::string_view n, std::string_view v, Millis t) override { return inner->put(n, v, t); }
  Result<std::optional<std::string>> get(std::string_view n) override { return inner->get(n); }
  Status erase(std::string_view n) override { return inner->erase(n); }
  std::string describe() const override { return "watch"; }
};
}  // namespace

TEST_CASE("lease keeper: release_now frees the lease in the caller's thread before it returns") {
  auto watch = std::make_shared<ReleaseWatch>();
  LeaseKeeper keeper(watch, 60000ms);
  for (int i = 0; i < 3; ++i) {
    auto l = keeper.acquire("k:q", "me");
    REQUIRE(l);
    l->release_now();
    CHECK_FALSE(l->held());
    // Free at once for another owner, and it was this thread that freed it.
    CHECK(*watch->acquire("k:q", "other", 60000ms));
    REQUIRE(*watch->release("k:q", "other"));
    std::lock_guard lk(watch->mu);
    REQUIRE(watch->release_threads.size() == static_cast<std::size_t>(2 * i + 2));
    CHECK(watch->release_threads[2 * i] == std::this_thread::get_id());
  }
  // Released already: dropping it afterwards releases nothing more.
  auto l = keeper.acquire("k:r", "me");
  REQUIRE(l);
  l->release_now();
  *l = LeaseKeeper::Lease{};
  l->release_now();  // not held: nothing to do
  std::this_thread::sleep_for(50ms);
  std::lock_guard lk(watch->mu);
  CHECK(watch->release_threads.size() == 7);
}

TEST_CASE("lease keeper over redis: kept alive past the ttl, released by a clean stop") {
  if (!wizmail::test::redis_server_program()) return;
  wizmail::test::RedisServer redis;
  auto other = redis_client(redis.port());
  {
    LeaseKeeper keeper(redis_client(redis.port()), 400ms);
    auto l = keeper.acquire("k:node", LeaseKeeper::node_id());
    REQUIRE(l);
    std::this_thread::sleep_for(1000ms);
    CHECK_FALSE(*other->acquire("k:node", "b", 400ms));
    CHECK(l->intact());
    auto kept = std::move(*l);  // moved, still held
    CHECK_FALSE(l->held());
    CHECK(kept.held());
  }  // the keeper stops with `kept` still alive: it releases it
  CHECK(*other->acquire("k:node", "b", 400ms));
}
