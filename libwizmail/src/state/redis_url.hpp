// The Redis address of `redis_url` (docs/cluster.md), parsed without any I/O:
//   redis://[[user]:password@]host[:port][/db]   host: a name, IPv4, or [IPv6]
//   unix://[:password@]/absolute/path.sock[?db=N]
// Pure: the config check (a malformed URL is a warning) and the Redis
// client both use it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "wizmail/error.hpp"

namespace wizmail::state {

struct RedisAddress {
  std::string host;         // empty for a UNIX socket
  std::uint16_t port = 6379;
  std::string socket_path;  // set for unix://
  std::string user;         // Redis 6 ACL user; empty = "default"
  std::string password;     // empty = no AUTH
  int db = 0;               // SELECT db when not 0

  bool unix_socket() const noexcept { return !socket_path.empty(); }
  // For logs: the address without the password.
  std::string display() const;
};

// Errc::invalid_argument naming what is wrong.
Result<RedisAddress> parse_redis_url(std::string_view url);

}  // namespace wizmail::state
