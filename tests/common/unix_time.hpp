// Test-side "now" in unix seconds, read from the clock the library uses for
// its names and ids (std::chrono::system_clock = CLOCK_REALTIME). Not
// std::time(): glibc answers it from the coarse clock, which lags the precise
// one by up to a tick, so an id made a moment earlier could look to be from
// the future (tests/ops/metrics_test.cpp failed that way).
#pragma once

#include <chrono>
#include <cstdint>

namespace wizmail::test {

inline std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace wizmail::test
