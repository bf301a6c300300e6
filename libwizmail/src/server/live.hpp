// What `wizmail sessions` reads: each connection's SessionNote (kept up to
// date on the connection's strand, copied from any thread) and the
// registered background workers.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "wizmail/server.hpp"

namespace wizmail {

struct WorkerHandle::Slot {
  std::mutex mu;
  std::string name;
  std::string state;
  std::chrono::steady_clock::time_point since;
};

}  // namespace wizmail

namespace wizmail::server {

class WorkerRegistry {
 public:
  WorkerHandle add(std::string name, std::string state);
  // Live workers in registration order (ended ones are dropped).
  std::vector<WorkerInfo> list();

 private:
  std::mutex mu_;
  std::vector<std::weak_ptr<WorkerHandle::Slot>> slots_;
};

class SessionNote {
 public:
  void start(Protocol protocol, std::string peer);
  // Sets all three (a finished command does not linger).
  void update(std::string_view state, std::string_view account, std::string_view command);
  void set_state(std::string_view state);
  SessionInfo snapshot(std::uint64_t id) const;

 private:
  mutable std::mutex mu_;
  SessionInfo info_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

// A session's id in the logs: 12 hex digits, the server's start time then
// the connection's number, after `prefix` ("" for SMTP, "p" for POP3; the
// start-time part shortened by the prefix's length).
std::string session_id(std::string_view prefix, std::uint64_t n);
// A local submit session's: "L" and the connection's number in hex.
std::string local_session_id(std::uint64_t n);

}  // namespace wizmail::server
