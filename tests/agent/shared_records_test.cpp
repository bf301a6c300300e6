// The agent's records shared by the nodes of a cluster
// (agent/shared_records.hpp): list post numbers and the auto-reply record,
// over the in-process SharedState with an injected clock.
#include "agent/shared_records.hpp"

#include <doctest/doctest.h>

#include <set>

#include "down_state.hpp"
#include "state/shared_state.hpp"
#include "temp_dir.hpp"
#include "wizmail/config.hpp"

using namespace std::chrono_literals;
using namespace wizmail;

namespace {
void write_ml(const std::filesystem::path& file, std::int64_t count) {
  MailingListSettings ml;
  ml.count = count;
  REQUIRE(save_ml_def(file, ml));
}
std::int64_t file_count(const std::filesystem::path& file) { return load_ml_def(file)->count; }
}  // namespace

TEST_CASE("list post numbers: two nodes, each its own ml.def, never the same number") {
  test::TempDir a, b;
  auto fa = a.path() / "ml.def", fb = b.path() / "ml.def";
  write_ml(fa, 5);  // node A has seen posts up to 5
  write_ml(fb, 3);
  auto shared = state::make_memory_state();
  std::set<std::int64_t> seen;
  // The first number continues above the file that seeds the key.
  CHECK(*agent::next_post_number(*shared, "team", fb) == 4);
  CHECK(*agent::next_post_number(*shared, "team", fa) == 6);
  seen = {4, 6};
  for (int i = 0; i < 20; ++i) {
    auto n = agent::next_post_number(*shared, "team", i % 2 ? fa : fb);
    REQUIRE(n);
    CHECK(seen.insert(*n).second);
  }
  CHECK(*seen.rbegin() == 26);
  // Each file keeps the highest number its node gave (the durable record).
  CHECK(std::max(file_count(fa), file_count(fb)) == 26);
  // Another list is another sequence.
  test::TempDir o;
  write_ml(o.path() / "ml.def", 0);
  CHECK(*agent::next_post_number(*shared, "other", o.path() / "ml.def") == 1);
  // The state lost the key (Redis restarted empty): it continues above the file.
  REQUIRE(shared->erase("wizmail:mlcount:team"));
  auto hi = std::max(file_count(fa), file_count(fb));
  auto from = hi == file_count(fa) ? fa : fb;
  CHECK(*agent::next_post_number(*shared, "team", from) == hi + 1);
}

TEST_CASE("list post numbers: a state that cannot be asked is an error and the file is left alone") {
  test::TempDir d;
  auto f = d.path() / "ml.def";
  write_ml(f, 9);
  test::DownState down;
  auto n = agent::next_post_number(down, "team", f);
  REQUIRE_FALSE(n);
  CHECK(n.error().code == Errc::unavailable);
  CHECK(file_count(f) == 9);
}

TEST_CASE("auto-reply record: one per sender and account per interval, across nodes") {
  auto now = std::chrono::steady_clock::now();
  auto shared = state::make_memory_state([&] { return now; });
  CHECK(*agent::claim_auto_reply(*shared, "alice", "Bob@Example.org", 86400s));
  CHECK_FALSE(*agent::claim_auto_reply(*shared, "alice", "bob@example.org", 86400s));  // any case
  CHECK(*agent::claim_auto_reply(*shared, "alice", "carol@example.org", 86400s));      // another sender
  CHECK(*agent::claim_auto_reply(*shared, "dave", "bob@example.org", 86400s));         // another account
  now += 86399s;
  CHECK_FALSE(*agent::claim_auto_reply(*shared, "alice", "bob@example.org", 86400s));
  now += 1s;
  CHECK(*agent::claim_auto_reply(*shared, "alice", "bob@example.org", 86400s));  // a day later
  CHECK_FALSE(*agent::claim_auto_reply(*shared, "alice", "bob@example.org", 86400s));
  // No interval: always.
  CHECK(*agent::claim_auto_reply(*shared, "alice", "bob@example.org", 0s));
  test::DownState down;
  CHECK_FALSE(agent::claim_auto_reply(down, "alice", "bob@example.org", 86400s));
}
