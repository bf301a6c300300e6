// The live sessions of a server (Asio's connection_manager): every SMTP and
// POP3 connection, TCP or local, is added as it starts and removed as it
// ends; a stop tells every one to wind down by a deadline; `sessions` reads
// a snapshot. One registry, so the three kinds of connection register the
// same way. Thread-safe: connections start and end on any session thread.
#pragma once

#include <asio/any_io_executor.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "wizmail/server.hpp"

namespace wizmail::server {

// A live session as the server sees it.
class Connection {
 public:
  virtual ~Connection() = default;
  // Called on the connection's executor (and once, by add(), before it
  // runs): wind down (421 / -ERR when idle, after the current transaction
  // otherwise), hard close at `deadline`.
  virtual void shutdown(std::chrono::steady_clock::time_point deadline) = 0;
  virtual asio::any_io_executor executor() const = 0;
  // A snapshot for Server::sessions(); called from any thread.
  virtual SessionInfo describe() const = 0;
};

class ConnectionRegistry {
 public:
  using Clock = std::chrono::steady_clock;
  using Id = std::uint64_t;

  // Makes a connection with make(id) and registers it, under the lock a
  // stop takes: either the stop sees it, or it sees the stop and is told at
  // once (before it runs) to wind down by the stop's deadline. make returns
  // a shared_ptr to a Connection (or to a class derived from it).
  template <class Make>
  auto add(Make&& make) -> decltype(make(Id{})) {
    std::lock_guard lk(mu_);
    const Id id = ++next_;
    auto conn = make(id);
    map_.emplace(id, std::weak_ptr<Connection>(conn));
    if (stopping_) conn->shutdown(deadline_);
    return conn;
  }

  // From a connection's destructor. True when that was the last one of a
  // stop that has not finished: the caller then finishes it (finish_stop).
  bool remove(Id id);

  struct Stop {
    bool first = false;     // this call began the stop
    bool sooner = false;    // it brought the deadline forward
    bool finished = false;  // the stop had finished already: nothing done
    Clock::time_point deadline;
    std::size_t live = 0;   // connections told to wind down (first or sooner)
  };
  // Begins the stop, or brings its deadline forward when `deadline` is
  // sooner. Unless the stop had finished, runs `under_lock(first)` under
  // the registry's lock (so it is ordered with finish_stop()), then posts
  // shutdown(deadline) to every live connection's executor when the call
  // began the stop or brought it forward.
  Stop stop_all(Clock::time_point deadline, const std::function<void(bool first)>& under_lock = {});

  // When stopping, with no connection left and the stop not finished yet:
  // marks it finished, runs `under_lock` under the lock and returns true.
  // Otherwise false and nothing runs. `ready` (under the lock too) may
  // still hold the finish back (e.g. a worker that is still winding down).
  bool finish_stop(const std::function<bool()>& ready, const std::function<void()>& under_lock);

  bool stopping() const;
  // Stopping, and every connection has ended.
  bool stopped() const;
  Clock::time_point deadline() const;
  std::size_t size() const;
  std::vector<std::shared_ptr<Connection>> snapshot() const;

 private:
  mutable std::mutex mu_;
  Id next_ = 0;
  std::unordered_map<Id, std::weak_ptr<Connection>> map_;
  bool stopping_ = false;
  bool finished_ = false;
  Clock::time_point deadline_{};
};

}  // namespace wizmail::server
