#include "mime/date.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <ctime>
#include <string>

using namespace wizmail::mime;
using Clock = std::chrono::system_clock;

namespace {

// TZ for the scope of one check.
struct WithTz {
  explicit WithTz(const char* tz) {
    if (const char* old = std::getenv("TZ")) saved = old, had = true;
    ::setenv("TZ", tz, 1);
    ::tzset();
  }
  ~WithTz() {
    if (had) ::setenv("TZ", saved.c_str(), 1);
    else ::unsetenv("TZ");
    ::tzset();
  }
  std::string saved;
  bool had = false;
};

}  // namespace

TEST_CASE("rfc5322_date: UTC, English names whatever the locale, day without a leading zero") {
  CHECK(rfc5322_date(Clock::from_time_t(697170952), DateZone::utc) == "Tue, 4 Feb 1992 02:35:52 +0000");
  CHECK(rfc5322_date(Clock::from_time_t(1700086400), DateZone::utc) == "Wed, 15 Nov 2023 22:13:20 +0000");
  CHECK(rfc5322_date(Clock::from_time_t(0), DateZone::utc) == "Thu, 1 Jan 1970 00:00:00 +0000");
}

TEST_CASE("rfc5322_date: local time carries the zone's offset, east and west, with minutes") {
  const auto t = Clock::from_time_t(697170952);  // 1992-02-04 02:35:52 UTC
  {
    WithTz tz("JST-9");
    CHECK(rfc5322_date(t) == "Tue, 4 Feb 1992 11:35:52 +0900");
    CHECK(rfc5322_date(t, DateZone::utc) == "Tue, 4 Feb 1992 02:35:52 +0000");
  }
  {
    WithTz tz("NST3:30");
    CHECK(rfc5322_date(t) == "Mon, 3 Feb 1992 23:05:52 -0330");
  }
}
