// SharedState in Redis (docs/cluster.md) over hiredis' blocking API: each
// call takes a connection from a small pool (made on demand: connect
// timeout, AUTH, SELECT), sends one command or one Lua script and waits for
// the reply within the command timeout. A connection that failed in any way
// is dropped, so the next call connects afresh; an unreachable server costs
// a caller at most the connect timeout and is Errc::unavailable.
#pragma once

#include <memory>

#include "state/redis_url.hpp"
#include "state/shared_state.hpp"

namespace wizmail::state {

struct RedisOptions {
  RedisAddress address;
  Millis connect_timeout{200};
  Millis command_timeout{500};
  std::size_t max_idle = 4;  // connections kept open between calls
};

std::shared_ptr<SharedState> make_redis_state(RedisOptions options);

}  // namespace wizmail::state
