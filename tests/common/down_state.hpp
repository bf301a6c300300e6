// A SharedState whose every call fails as an unreachable Redis does
// (Errc::unavailable): for the "Redis down" paths of what uses the state.
#pragma once

#include "state/shared_state.hpp"

namespace wizmail::test {

class DownState final : public state::SharedState {
 public:
  Error down() const { return Error(Errc::unavailable, "redis test: connect: Connection refused"); }
  Result<bool> acquire(std::string_view, std::string_view, state::Millis) override { return unexpected(down()); }
  Result<bool> renew(std::string_view, std::string_view, state::Millis) override { return unexpected(down()); }
  Result<bool> release(std::string_view, std::string_view) override { return unexpected(down()); }
  Result<std::int64_t> increment(std::string_view, state::Millis, bool) override { return unexpected(down()); }
  Result<std::int64_t> increment_from(std::string_view, std::int64_t) override { return unexpected(down()); }
  Result<std::int64_t> counter(std::string_view) override { return unexpected(down()); }
  Status put(std::string_view, std::string_view, state::Millis) override { return unexpected(down()); }
  Result<std::optional<std::string>> get(std::string_view) override { return unexpected(down()); }
  Status erase(std::string_view) override { return unexpected(down()); }
  std::string describe() const override { return "down"; }
};

}  // namespace wizmail::test
