// The web console's pure parts: sessions (expiry by an injected clock,
// logout, account deletion), the CSRF comparison, Cookie headers, the
// JSON requests — good and bad input.
#include "server/console_model.hpp"

#include <doctest/doctest.h>

using namespace wizmail::server::console;
using namespace std::chrono_literals;

namespace {
struct FakeClock {
  SessionStore::Clock::time_point t{};
  std::function<SessionStore::Clock::time_point()> fn() {
    return [this] { return t; };
  }
};
}  // namespace

TEST_CASE("random tokens are 256 bits of hex and differ") {
  auto a = random_token(), b = random_token();
  CHECK(a.size() == 64);
  CHECK(a.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(a != b);
}

TEST_CASE("same_token: equal only when both equal and non-empty") {
  CHECK(same_token("abc", "abc"));
  CHECK_FALSE(same_token("abc", "abd"));
  CHECK_FALSE(same_token("abc", "abcd"));
  CHECK_FALSE(same_token("", ""));
  CHECK_FALSE(same_token("abc", ""));
}

TEST_CASE("cookie_value finds the named cookie only") {
  CHECK(cookie_value("wizmail_session=abc", "wizmail_session") == "abc");
  CHECK(cookie_value("a=1; wizmail_session=abc ;b=2", "wizmail_session") == "abc");
  CHECK(cookie_value("a=1;  wizmail_session=\"q\"", "wizmail_session") == "q");
  CHECK_FALSE(cookie_value("xwizmail_session=abc", "wizmail_session"));
  CHECK_FALSE(cookie_value("wizmail_sessionx=abc; a", "wizmail_session"));
  CHECK_FALSE(cookie_value("", "wizmail_session"));
  CHECK_FALSE(cookie_value("wizmail_session", "wizmail_session"));
  CHECK(cookie_value(";;=;wizmail_session=;", "wizmail_session") == "");
}

TEST_CASE("session cookies carry HttpOnly, SameSite=Strict, Path=/ and Secure under TLS") {
  CHECK(session_cookie("ID", false) == "wizmail_session=ID; HttpOnly; SameSite=Strict; Path=/");
  CHECK(session_cookie("ID", true) == "wizmail_session=ID; HttpOnly; SameSite=Strict; Path=/; Secure");
  CHECK(expired_session_cookie(true).find("Max-Age=0") != std::string::npos);
  CHECK(expired_session_cookie(true).ends_with("; Secure"));
}

TEST_CASE("sessions expire when idle, absolutely, at logout and with their account") {
  FakeClock clock;
  SessionStore store({.idle = 10min, .absolute = 60min, .max_sessions = 3}, clock.fn());
  auto s = store.create("alice", false);
  CHECK(s.id.size() == 64);
  CHECK(s.csrf.size() == 64);
  CHECK(s.id != s.csrf);
  REQUIRE(store.find(s.id));
  CHECK(store.find(s.id)->account == "alice");
  CHECK_FALSE(store.find(s.csrf));

  SUBCASE("idle") {
    clock.t += 9min;
    CHECK(store.find(s.id));  // used: the idle time restarts
    clock.t += 9min;
    CHECK(store.find(s.id));
    clock.t += 10min;
    CHECK_FALSE(store.find(s.id));
    CHECK(store.size() == 0);
  }
  SUBCASE("absolute, however busy") {
    for (int i = 0; i < 11; ++i) {
      clock.t += 5min;
      CHECK(store.find(s.id));
    }
    clock.t += 5min;  // 60 minutes after login
    CHECK_FALSE(store.find(s.id));
  }
  SUBCASE("logout") {
    store.remove(s.id);
    CHECK_FALSE(store.find(s.id));
  }
  SUBCASE("account deleted") {
    auto b = store.create("bob", true);
    store.remove_account("alice");
    CHECK_FALSE(store.find(s.id));
    CHECK(store.find(b.id));
    CHECK(store.find(b.id)->admin);
  }
  SUBCASE("bounded: the one idle longest goes") {
    clock.t += 1s;
    auto b = store.create("b", false);
    clock.t += 1s;
    auto c = store.create("c", false);
    clock.t += 1s;
    CHECK(store.find(s.id));  // s now the most recent
    auto d = store.create("d", false);
    CHECK(store.size() == 3);
    CHECK_FALSE(store.find(b.id));
    CHECK(store.find(s.id));
    CHECK(store.find(c.id));
    CHECK(store.find(d.id));
  }
}

TEST_CASE("parse_credentials accepts exactly {account, password} strings") {
  auto ok = parse_credentials(R"({"account":"alice","password":"pw"})");
  REQUIRE(ok);
  CHECK(ok->account == "alice");
  CHECK(ok->password == "pw");
  for (const char* bad : {"", "nul", "[]", "\"x\"", "{", R"({"account":"a"})", R"({"password":"p"})",
                          R"({"account":1,"password":"p"})", R"({"account":"a","password":null})",
                          R"({"account":"a","password":"p","admin":true})", "{\"account\":\"a\",\"password\":\"p\"}x"}) {
    CAPTURE(bad);
    auto r = parse_credentials(bad);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == wizmail::Errc::invalid_argument);
  }
}

TEST_CASE("parse_password_change: password required, account optional") {
  auto own = parse_password_change(R"({"password":"new"})");
  REQUIRE(own);
  CHECK(own->account.empty());
  CHECK(own->password == "new");
  auto other = parse_password_change(R"({"password":"new","account":"bob"})");
  REQUIRE(other);
  CHECK(other->account == "bob");
  CHECK_FALSE(parse_password_change(R"({"account":"bob"})"));
  CHECK_FALSE(parse_password_change(R"({"password":["x"]})"));
  CHECK_FALSE(parse_password_change(R"({"password":"x","csrf":"y"})"));
}
