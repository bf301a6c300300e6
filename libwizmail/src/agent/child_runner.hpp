// Private: starts hook programs from an argv vector (posix_spawnp, never a
// shell) and owns them until they have been reaped. One reaper thread polls
// every child's output pipe (stdout and stderr, merged; logged line by line
// to server.log) and its pidfd, kills a child whose deadline passed (SIGTERM
// to its process group, SIGKILL two seconds later) and reaps it. Nothing
// here touches SIGCHLD, so an embedding program's signal handling is left alone.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "wizmail/error.hpp"

namespace wizmail::agent {

struct SpawnSpec {
  std::vector<std::string> argv;           // argv[0] is the program (PATH searched)
  std::filesystem::path cwd;               // empty = inherit
  std::filesystem::path stdin_file;        // empty = /dev/null
  std::vector<std::string> env;            // "NAME=value" added to the inherited environment
  std::string label;                       // names the child in the log
  // Killed when still running after this long; nullopt = never.
  std::optional<std::chrono::milliseconds> timeout;
  std::shared_ptr<void> keepalive;         // released once the child was reaped
};

struct ChildExit {
  pid_t pid = 0;
  int status = 0;          // waitpid status
  bool timed_out = false;  // we killed it
  std::string last_line;   // the last non-empty line it wrote (at most 512 octets), for notices
  std::string describe() const;  // "exit 0", "killed by signal 9 (timeout)"
};

class ChildRunner {
 public:
  using LogFn = std::function<void(const std::string&)>;
  explicit ChildRunner(LogFn log);
  ~ChildRunner();  // stop(std::chrono::seconds(5))
  ChildRunner(const ChildRunner&) = delete;
  ChildRunner& operator=(const ChildRunner&) = delete;

  // Start a child; `on_exit` runs on the reaper thread after it was reaped.
  Result<pid_t> spawn(SpawnSpec spec, std::function<void(const ChildExit&)> on_exit = {});
  // Start and block until the child was reaped (or killed at its timeout).
  Result<ChildExit> run(SpawnSpec spec);

  std::size_t running() const;
  // Children still running get `grace`, then SIGTERM, then SIGKILL; all are
  // reaped before this returns. No spawn is accepted afterwards.
  void stop(std::chrono::milliseconds grace);

 private:
  struct Child;
  void loop();
  void wake();

  LogFn log_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Child>> children_;
  bool stopping_ = false;
  bool loop_done_ = false;  // the reaper thread has returned
  std::optional<std::chrono::steady_clock::time_point> stop_deadline_;
  int wake_fd_ = -1;  // eventfd
  std::thread thread_;
};

}  // namespace wizmail::agent
