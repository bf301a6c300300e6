// The control channel between the admin commands and a running server
// (docs/control.md): a UNIX socket var/run/control.sock (mode 0600; peers
// with another uid than the server's, other than root, are refused), one JSON
// object per line in each direction:
//
//   → {"v":1,"cmd":"sessions"}
//   ← {"v":1,"ok":true,"sessions":[...],"workers":[...]}
//
// This header holds the pure parts (a strict JSON reader, the request
// grammar, the sessions table) and the client side; the server side lives in
// the library (the daemon opens the socket, see ServerOptions::local_sockets).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wizmail/error.hpp"

namespace wizmail::control {

inline constexpr int kProtocolVersion = 1;
// A request or reply line longer than this is refused (requests) or treated
// as a broken server (replies; sessions lists may be long).
inline constexpr std::size_t kMaxRequestLine = 4096;
inline constexpr std::size_t kMaxReplyLine = 8u << 20;

// ---- A strict JSON reader (RFC 8259; nlohmann's parser underneath, through
// its SAX interface, so it is iterative): no trailing commas, no comments,
// no duplicate keys, depth at most 32, UTF-8 validated, \u escapes incl.
// surrogate pairs. Numbers are kept as double (integers up to 2^53 exact).
struct Json {
  enum class Kind { null, boolean, number, string, array, object };
  // Declared here, defaulted in the .cpp: clang with libstdc++ 12 cannot
  // otherwise decide whether `members` (pairs holding a Json) is default
  // constructible while it is still instantiating that pair.
  Json();
  Kind kind = Kind::null;
  bool b = false;
  double n = 0;
  std::string s;
  std::vector<Json> items;                            // array
  std::vector<std::pair<std::string, Json>> members;  // object, in order

  bool is_object() const noexcept { return kind == Kind::object; }
  bool is_array() const noexcept { return kind == Kind::array; }
  const std::string* string() const noexcept { return kind == Kind::string ? &s : nullptr; }
  const bool* boolean() const noexcept { return kind == Kind::boolean ? &b : nullptr; }
  const double* number() const noexcept { return kind == Kind::number ? &n : nullptr; }
  // Member of an object, nullptr when absent or not an object.
  const Json* get(std::string_view key) const noexcept;
};

// Errc::invalid_argument with the byte offset and reason.
Result<Json> parse_json(std::string_view text);

// ---- Requests
// cluster: every node of the shared home and its heartbeat (docs/cluster.md).
enum class Command { stop, reload, sessions, stats, flush, cluster };
std::string_view to_string(Command c) noexcept;

struct Request {
  Command command = Command::stats;
  bool force = false;  // stop: close sessions at once
};

// One request line (without the line end). Strict: an object with "v" (an
// integer, must be 1), "cmd" (a known command) and, for stop only, an
// optional boolean "force"; any other member is an error. The error message
// is what the server puts in its error reply.
Result<Request> parse_request(std::string_view line);
std::string format_request(const Request& r);

// ---- Client
// In <home>/var/run, or <home>/nodes/<node>/run for a node of a shared
// home (docs/cluster.md).
std::filesystem::path control_socket_path(const std::filesystem::path& home, std::string_view node = {});
std::filesystem::path submit_socket_path(const std::filesystem::path& home, std::string_view node = {});
std::filesystem::path pid_file_path(const std::filesystem::path& home, std::string_view node = {});

// Connect, send one request, read one reply line. Errc::unavailable when no
// server listens on the socket (absent file or connection refused);
// Errc::temporary after `timeout`.
Result<Json> call(const std::filesystem::path& socket, const Request& request,
                  std::chrono::milliseconds timeout = std::chrono::seconds(5));
// The same, returning the reply line as sent (for --json output).
Result<std::string> call_raw(const std::filesystem::path& socket, const Request& request,
                             std::chrono::milliseconds timeout = std::chrono::seconds(5));
// The reply's "ok"; an error reply becomes an Error with its message.
Status check_reply(const Json& reply);

// The sessions reply as a table for a terminal (one line per session, then
// the workers). Errc::invalid_argument when the reply has another shape.
Result<std::string> sessions_table(const Json& reply);

// ---- Pid file and process checks (start/stop/supervise)
// The pid in `file`, nullopt when absent, empty or not a positive number.
std::optional<pid_t> read_pid(const std::filesystem::path& file);
// Does `pid` exist and run a wizmail server (its executable is
// wizmail-server or wizmail)? A pid reused by another program is not ours.
bool is_server_process(pid_t pid);
// The running server of `home`, nullopt when none (stale files ignored).
std::optional<pid_t> running_server(const std::filesystem::path& home, std::string_view node = {});

}  // namespace wizmail::control
