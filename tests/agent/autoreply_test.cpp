#include "wizmail/autoreply.hpp"

#include <doctest/doctest.h>

#include "temp_dir.hpp"
#include "util/strings.hpp"
#include <stdlib.h>

#include <filesystem>

using namespace wizmail;
namespace fs = std::filesystem;

TEST_CASE("RFC 3834: who never gets an auto-reply") {
  HeaderList plain{{"From", "bob@example.org"}, {"Subject", "hi"}};
  CHECK(auto_reply_check("bob@example.org", plain, "alice@localhost").allowed);
  CHECK(auto_reply_check("bob@example.org", {{"Auto-Submitted", "no"}}, "alice@localhost").allowed);
  CHECK(auto_reply_check("bob@example.org", {{"Precedence", "first-class"}}, "alice@localhost").allowed);

  auto no = [](std::string_view sender, HeaderList h) {
    auto r = auto_reply_check(sender, h, "alice@localhost");
    CHECK(!r.allowed);
    CHECK(!r.reason.empty());
    return r.reason;
  };
  no("", {});
  no("MAILER-DAEMON@example.org", {});
  no("mailer-daemon@example.org", {});
  no("owner-list@example.org", {});
  no("list-request@example.org", {});
  no("list-bounces@example.org", {});
  no("Alice@Localhost", {});  // itself
  CHECK(no("bob@example.org", {{"Auto-Submitted", "auto-replied"}}).find("Auto-Submitted") != std::string::npos);
  no("bob@example.org", {{"auto-submitted", "Auto-Generated; owner-email=x"}});
  no("bob@example.org", {{"Precedence", "bulk"}});
  no("bob@example.org", {{"Precedence", " LIST "}});
  no("bob@example.org", {{"Precedence", "junk"}});
  no("bob@example.org", {{"List-Id", "<ml.example.org>"}});
  no("bob@example.org", {{"List-Unsubscribe", "<mailto:x@y>"}});
  no("bob@example.org", {{"X-Loop", "alice@localhost"}});
  HeaderList hops;
  for (int i = 0; i < 25; ++i) hops.emplace_back("Received", "from x");
  no("bob@example.org", hops);
  hops.pop_back();
  CHECK(auto_reply_check("bob@example.org", hops, "alice@localhost").allowed);
}

TEST_CASE("forward loop guard: Delivered-To of this address, or too many hops") {
  CHECK(!forward_loop({}, "a@localhost"));
  CHECK(!forward_loop({{"Delivered-To", "b@localhost"}}, "a@localhost"));
  CHECK(forward_loop({{"Delivered-To", "b@localhost"}, {"delivered-to", " A@LocalHost "}}, "a@localhost"));
  CHECK(forward_loop({{"Delivered-To", "<a@localhost>"}}, "a@localhost"));
  HeaderList hops;
  for (int i = 0; i < 24; ++i) hops.emplace_back(i % 2 ? "Received" : "Delivered-To", util::cat("x", std::to_string(i)));
  CHECK(!forward_loop(hops, "a@localhost"));
  hops.emplace_back("Received", "y");
  CHECK(forward_loop(hops, "a@localhost"));
}

TEST_CASE("ReplyMemory: once per sender within the interval") {
  test::TempDir tmp("wizmail-reply");
  ReplyMemory m(tmp.path() / ".autoreply");
  using namespace std::chrono_literals;
  CHECK(!m.recently("bob@example.org", 1000, 3600s));  // no file yet
  REQUIRE(m.record("Bob@Example.org", 1000));
  CHECK(m.recently("bob@example.org", 1000, 3600s));
  CHECK(m.recently("BOB@example.org", 4599, 3600s));
  CHECK(!m.recently("bob@example.org", 4600, 3600s));
  CHECK(!m.recently("carol@example.org", 1000, 3600s));
  REQUIRE(m.record("bob@example.org", 5000));
  CHECK(m.recently("bob@example.org", 5001, 3600s));
  // Bounded: the oldest entries go.
  for (int i = 0; i < 1005; ++i) REQUIRE(m.record(util::cat("u", std::to_string(i), "@x"), 10000 + i));
  CHECK(!m.recently("bob@example.org", 10000, 1000000s));
  CHECK(m.recently("u1004@x", 11004, 10s));
}
