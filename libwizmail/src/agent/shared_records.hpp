// The delivery agent's records that the nodes of a cluster share
// (docs/cluster.md): mailing-list post numbers and the auto-reply
// once-per-interval record. Used only with a SharedState (redis_url); a
// single node keeps ml.def's count and the account's `.autoreply` file.
// Both may wait for Redis: they run on the agent's worker threads, never
// on a session's.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string_view>

#include "wizmail/error.hpp"

namespace wizmail::state {
class SharedState;
}

namespace wizmail::agent {

// The list's next post number: `wizmail:mlcount:<list>` in the shared
// state is the one sequence every node takes numbers from (no two nodes
// ever get the same), seeded — under ml.def's lock — by the file's count,
// which stays the durable record (written back when the number is
// higher). So a Redis that lost the key continues above what this node's
// ml.def has seen. An unreachable store is an error: the post is retried
// later, nothing is sent without a number.
Result<std::int64_t> next_post_number(state::SharedState& shared, std::string_view list,
                                      const std::filesystem::path& ml_def);

// true: `sender` gets `account`'s auto-reply now, and no node will send it
// another within `interval` (one atomic counter with that expiry,
// `wizmail:autoreply:<account>:<sender, lower case>`, the first increment
// wins); false: one was sent within the interval. An unreachable store is
// an error: the caller sends no reply (never two).
Result<bool> claim_auto_reply(state::SharedState& shared, std::string_view account, std::string_view sender,
                              std::chrono::seconds interval);

}  // namespace wizmail::agent
