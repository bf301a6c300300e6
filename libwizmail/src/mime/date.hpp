// RFC 5322 §3.3 dates, independent of the C locale (strftime's %a and %b
// follow LC_TIME, which an embedding program may set).
#pragma once

#include <chrono>
#include <string>

namespace wizmail::mime {

enum class DateZone : bool {
  local,  // the process's time zone (TZ) and its offset, as MUAs and Postfix's cleanup write Date:
  utc,    // "+0000": Received: time stamps, DSN fields
};

// "Tue, 4 Mar 2025 09:05:07 +0100" (day of month without a leading zero).
std::string rfc5322_date(std::chrono::system_clock::time_point t, DateZone zone = DateZone::local);

}  // namespace wizmail::mime
