// RFC 5322 §3.3 dates, independent of the C locale.
#pragma once

#include <chrono>
#include <string>

namespace wizmail::util {

// "Tue, 4 Mar 2025 09:05:07 +0100": the local time of the process's time
// zone (TZ) with its offset, as MUAs and Postfix's cleanup write Date:.
std::string rfc5322_local_date(std::chrono::system_clock::time_point t);

}  // namespace wizmail::util
