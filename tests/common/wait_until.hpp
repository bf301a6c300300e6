// Poll an observable state until it holds or the time is up (never a fixed
// sleep): the C++ twin of harness.wait_until in tests/e2e/harness.py.
#pragma once

#include <chrono>
#include <functional>
#include <thread>

namespace wizmail::test {

// Whether `pred` held within `limit`; it is asked once more at the end.
inline bool wait_until(const std::function<bool()>& pred,
                       std::chrono::milliseconds limit = std::chrono::seconds(10),
                       std::chrono::milliseconds step = std::chrono::milliseconds(10)) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(step);
  }
  return pred();
}

}  // namespace wizmail::test
