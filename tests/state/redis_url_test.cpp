#include "state/redis_url.hpp"

#include <doctest/doctest.h>

using wizmail::state::parse_redis_url;

TEST_CASE("redis_url: host, port, db") {
  auto a = parse_redis_url("redis://127.0.0.1:6379/0");
  REQUIRE(a);
  CHECK(a->host == "127.0.0.1");
  CHECK(a->port == 6379);
  CHECK(a->db == 0);
  CHECK(a->password.empty());
  CHECK_FALSE(a->unix_socket());

  a = parse_redis_url("redis://redis.internal");
  REQUIRE(a);
  CHECK(a->host == "redis.internal");
  CHECK(a->port == 6379);
  CHECK(a->db == 0);

  a = parse_redis_url("redis://10.0.0.5:7000/3");
  REQUIRE(a);
  CHECK(a->port == 7000);
  CHECK(a->db == 3);
  CHECK(a->display() == "redis://10.0.0.5:7000/3");

  a = parse_redis_url("redis://h/");  // an empty db is db 0
  REQUIRE(a);
  CHECK(a->db == 0);
}

TEST_CASE("redis_url: IPv6 literal") {
  auto a = parse_redis_url("redis://[::1]:6380/2");
  REQUIRE(a);
  CHECK(a->host == "::1");
  CHECK(a->port == 6380);
  CHECK(a->db == 2);
  CHECK(a->display() == "redis://[::1]:6380/2");
  a = parse_redis_url("redis://[2001:db8::5]");
  REQUIRE(a);
  CHECK(a->host == "2001:db8::5");
  CHECK(a->port == 6379);
}

TEST_CASE("redis_url: password and ACL user; display hides the password") {
  auto a = parse_redis_url("redis://:s3cret@10.0.0.5:6379/1");
  REQUIRE(a);
  CHECK(a->user.empty());
  CHECK(a->password == "s3cret");
  CHECK(a->display().find("s3cret") == std::string::npos);
  a = parse_redis_url("redis://wiz:p%40ss%3Aword@h");
  REQUIRE(a);
  CHECK(a->user == "wiz");
  CHECK(a->password == "p@ss:word");
}

TEST_CASE("redis_url: UNIX socket") {
  auto a = parse_redis_url("unix:///run/redis/redis.sock");
  REQUIRE(a);
  CHECK(a->unix_socket());
  CHECK(a->socket_path == "/run/redis/redis.sock");
  CHECK(a->db == 0);
  a = parse_redis_url("unix://:pw@/run/redis.sock?db=4");
  REQUIRE(a);
  CHECK(a->password == "pw");
  CHECK(a->db == 4);
  CHECK(a->display() == "unix:///run/redis.sock/4");
}

TEST_CASE("redis_url: bad URLs say what is wrong") {
  for (const char* bad : {
           "",                                  // nothing
           "127.0.0.1:6379",                    // no scheme
           "http://127.0.0.1:6379",             // another scheme
           "rediss://127.0.0.1:6379",           // TLS not supported
           "redis://",                          // no host
           "redis://:6379",                     // no host
           "redis://h:",                        // empty port
           "redis://h:0",                       // port 0
           "redis://h:65536",                   // port too big
           "redis://h:12ab",                    // port not a number
           "redis://h:-1",                      // negative
           "redis://h/x",                       // db not a number
           "redis://h/99999999",                // db too big
           "redis://h/-1",                      // negative db
           "redis://ho st",                     // space
           "redis://h\n",                       // control character
           "redis://h!x",                       // bad host
           "redis://[::1",                      // unclosed bracket
           "redis://[::1]x",                    // junk after ]
           "redis://[nothex]:1",                // bad IPv6
           "redis://[::1]:",                    // empty port
           "redis://pw@h",                      // user info without ':'
           "redis://:@h",                       // empty password
           "redis://:%zz@h",                    // bad escape
           "redis://:%4@h",                     // short escape
           "unix://",                           // no path
           "unix://relative.sock",              // relative path
           "unix:///r.sock?db=x",               // bad db
           "unix:///r.sock?foo=1",              // unknown query
       }) {
    CAPTURE(bad);
    auto a = parse_redis_url(bad);
    REQUIRE_FALSE(a);
    CHECK(a.error().code == wizmail::Errc::invalid_argument);
    CHECK(a.error().message.find("redis_url") != std::string::npos);
  }
}
