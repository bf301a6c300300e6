#include "agent/shared_records.hpp"

#include "state/shared_state.hpp"
#include "util/strings.hpp"
#include "wizmail/config.hpp"

namespace wizmail::agent {

Result<std::int64_t> next_post_number(state::SharedState& shared, std::string_view list,
                                      const std::filesystem::path& ml_def) {
  const std::string key = util::cat("wizmail:mlcount:", list);
  return increment_ml_count(ml_def, [&](std::int64_t current) { return shared.increment_from(key, current); });
}

Result<bool> claim_auto_reply(state::SharedState& shared, std::string_view account, std::string_view sender,
                              std::chrono::seconds interval) {
  if (interval.count() <= 0) return true;
  auto n = shared.increment(util::cat("wizmail:autoreply:", account, ":", util::to_lower(sender)), interval, false);
  if (!n) return unexpected(n.error());
  return *n == 1;
}

}  // namespace wizmail::agent
