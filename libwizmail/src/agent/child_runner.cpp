#include "agent/child_runner.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <future>

extern char** environ;

namespace wizmail::agent {

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::size_t kMaxLogged = 64 * 1024;  // output logged per child
constexpr auto kKillAfterTerm = std::chrono::seconds(2);

int open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
  long fd = ::syscall(SYS_pidfd_open, pid, 0);
  if (fd >= 0) {
    ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
    return static_cast<int>(fd);
  }
#endif
  (void)pid;
  return -1;
}

}  // namespace

std::string ChildExit::describe() const {
  std::string s;
  if (WIFEXITED(status)) s = "exit " + std::to_string(WEXITSTATUS(status));
  else if (WIFSIGNALED(status)) s = "killed by signal " + std::to_string(WTERMSIG(status));
  else s = "status " + std::to_string(status);
  if (timed_out) s += " (timeout)";
  return s;
}

struct ChildRunner::Child {
  pid_t pid = 0;
  int out_fd = -1;
  int pidfd = -1;
  std::string label;
  std::optional<Clock::time_point> deadline;
  int kill_stage = 0;  // 0 none, 1 SIGTERM sent, 2 SIGKILL sent
  Clock::time_point term_sent{};
  bool timed_out = false;
  std::string partial;
  std::string last_line;
  std::size_t logged = 0;
  bool truncated = false;
  std::function<void(const ChildExit&)> on_exit;
  std::shared_ptr<void> keepalive;
  bool reaped = false;
  int status = 0;
};

ChildRunner::ChildRunner(LogFn log) : log_(std::move(log)) {
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  thread_ = std::thread([this] { loop(); });
}

ChildRunner::~ChildRunner() {
  stop(std::chrono::seconds(5));
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void ChildRunner::wake() {
  std::uint64_t one = 1;
  if (wake_fd_ >= 0) [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
}

std::size_t ChildRunner::running() const {
  std::lock_guard lk(mu_);
  return children_.size();
}

Result<pid_t> ChildRunner::spawn(SpawnSpec spec, std::function<void(const ChildExit&)> on_exit) {
  if (spec.argv.empty() || spec.argv[0].empty()) return fail(Errc::invalid_argument, "no program");
  {
    std::lock_guard lk(mu_);
    if (stopping_) return fail(Errc::unavailable, "shutting down: " + spec.argv[0] + " not started");
  }
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return fail_errno("pipe", errno);
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  ::posix_spawn_file_actions_init(&fa);
  ::posix_spawnattr_init(&attr);
  std::string in = spec.stdin_file.empty() ? std::string("/dev/null") : spec.stdin_file.string();
  ::posix_spawn_file_actions_addopen(&fa, 0, in.c_str(), O_RDONLY, 0);
  ::posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  ::posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
  // Sockets and files of the server (listeners included) stay out of the child.
  ::posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  std::string cwd = spec.cwd.string();
  if (!cwd.empty()) ::posix_spawn_file_actions_addchdir_np(&fa, cwd.c_str());
  // Its own process group (a timeout kills what it started too), default
  // signal dispositions and an empty mask whatever the server uses.
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  ::posix_spawnattr_setsigdefault(&attr, &all);
  ::posix_spawnattr_setsigmask(&attr, &none);
  ::posix_spawnattr_setpgroup(&attr, 0);
  ::posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

  std::vector<std::string> env_store;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv(*e);
    auto eq = kv.find('=');
    bool overridden = false;
    for (const auto& x : spec.env)
      if (eq != std::string_view::npos && x.compare(0, eq + 1, kv.substr(0, eq + 1)) == 0) overridden = true;
    if (!overridden) env_store.emplace_back(kv);
  }
  for (const auto& x : spec.env) env_store.push_back(x);
  std::vector<char*> envp;
  for (auto& s : env_store) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<char*> argv;
  for (auto& a : spec.argv) argv.push_back(a.data());
  argv.push_back(nullptr);

  pid_t pid = 0;
  int rc = ::posix_spawnp(&pid, argv[0], &fa, &attr, argv.data(), envp.data());
  ::posix_spawn_file_actions_destroy(&fa);
  ::posix_spawnattr_destroy(&attr);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    return fail(Errc::io, "cannot start " + spec.argv[0] + ": " + std::strerror(rc));
  }
  ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
  auto c = std::make_unique<Child>();
  c->pid = pid;
  c->out_fd = fds[0];
  c->pidfd = open_pidfd(pid);
  c->label = spec.label.empty() ? spec.argv[0] : spec.label;
  if (spec.timeout) c->deadline = Clock::now() + *spec.timeout;
  c->on_exit = std::move(on_exit);
  c->keepalive = std::move(spec.keepalive);
  {
    std::lock_guard lk(mu_);
    if (!loop_done_) {
      children_.push_back(std::move(c));
      c.reset();
    }
  }
  if (c) {
    // stop() finished while this child was being started: nobody would reap
    // it, so end it here.
    ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    ::close(c->out_fd);
    if (c->pidfd >= 0) ::close(c->pidfd);
    if (c->on_exit) c->on_exit(ChildExit{pid, status, true, {}});
    return fail(Errc::unavailable, "shutting down: " + c->label + " stopped");
  }
  wake();
  return pid;
}

Result<ChildExit> ChildRunner::run(SpawnSpec spec) {
  auto done = std::make_shared<std::promise<ChildExit>>();
  auto fut = done->get_future();
  auto pid = spawn(std::move(spec), [done](const ChildExit& e) { done->set_value(e); });
  if (!pid) return unexpected(pid.error());
  return fut.get();
}

void ChildRunner::stop(std::chrono::milliseconds grace) {
  {
    std::lock_guard lk(mu_);
    if (!stopping_) {
      stopping_ = true;
      stop_deadline_ = Clock::now() + grace;
    }
  }
  wake();
  if (thread_.joinable()) thread_.join();
}

void ChildRunner::loop() {
  std::vector<pollfd> pfds;
  std::vector<Child*> snapshot;
  for (;;) {
    bool stopping;
    std::optional<Clock::time_point> stop_at;
    {
      std::lock_guard lk(mu_);
      stopping = stopping_;
      stop_at = stop_deadline_;
      if (stopping && children_.empty()) {
        loop_done_ = true;
        return;
      }
      snapshot.clear();
      for (auto& c : children_) snapshot.push_back(c.get());
    }
    auto now = Clock::now();
    // Deadlines: the child's own, and the stop grace for everybody.
    for (auto* c : snapshot) {
      bool due = (c->deadline && now >= *c->deadline) || (stopping && stop_at && now >= *stop_at);
      if (due && c->kill_stage == 0) {
        c->timed_out = true;
        ::kill(-c->pid, SIGTERM);
        ::kill(c->pid, SIGTERM);
        c->kill_stage = 1;
        c->term_sent = now;
        log_("hook " + c->label + "[" + std::to_string(c->pid) + "]: timeout, SIGTERM sent");
      } else if (c->kill_stage == 1 && now - c->term_sent >= kKillAfterTerm) {
        ::kill(-c->pid, SIGKILL);
        ::kill(c->pid, SIGKILL);
        c->kill_stage = 2;
        log_("hook " + c->label + "[" + std::to_string(c->pid) + "]: SIGKILL sent");
      }
    }
    auto wait_ms = std::chrono::milliseconds(1000);
    bool any_without_pidfd = false;
    for (auto* c : snapshot) {
      if (c->pidfd < 0) any_without_pidfd = true;
      std::optional<Clock::time_point> next;
      if (c->kill_stage == 0 && c->deadline) next = c->deadline;
      if (c->kill_stage == 1) next = c->term_sent + kKillAfterTerm;
      if (next) wait_ms = std::min(wait_ms, std::chrono::duration_cast<std::chrono::milliseconds>(*next - now));
    }
    if (stopping && stop_at) wait_ms = std::min(wait_ms, std::chrono::duration_cast<std::chrono::milliseconds>(*stop_at - now));
    if (any_without_pidfd) wait_ms = std::min(wait_ms, std::chrono::milliseconds(50));
    if (wait_ms.count() < 0) wait_ms = std::chrono::milliseconds(0);

    pfds.clear();
    pfds.push_back({wake_fd_, POLLIN, 0});
    for (auto* c : snapshot) {
      if (c->out_fd >= 0) pfds.push_back({c->out_fd, POLLIN, 0});
      if (c->pidfd >= 0) pfds.push_back({c->pidfd, POLLIN, 0});
    }
    ::poll(pfds.data(), pfds.size(), static_cast<int>(wait_ms.count()) + 1);
    std::uint64_t v;
    while (::read(wake_fd_, &v, sizeof v) > 0) {
    }

    auto drain = [&](Child* c, bool final) {
      char buf[4096];
      for (;;) {
        if (c->out_fd < 0) break;
        auto n = ::read(c->out_fd, buf, sizeof buf);
        if (n > 0) {
          c->partial.append(buf, static_cast<std::size_t>(n));
          std::size_t nl;
          while ((nl = c->partial.find('\n')) != std::string::npos) {
            std::string line = c->partial.substr(0, nl);
            c->partial.erase(0, nl + 1);
            if (!line.empty() && line.back() == '\r') line.pop_back();
            if (!line.empty()) c->last_line = line.substr(0, 512);
            if (c->logged < kMaxLogged) {
              c->logged += line.size();
              log_("hook " + c->label + "[" + std::to_string(c->pid) + "]: " + line);
            } else if (!c->truncated) {
              c->truncated = true;
              log_("hook " + c->label + "[" + std::to_string(c->pid) + "]: output truncated");
            }
          }
          if (c->partial.size() > 8192) {  // an endless line: log it in pieces
            if (c->logged < kMaxLogged) {
              c->logged += c->partial.size();
              log_("hook " + c->label + "[" + std::to_string(c->pid) + "]: " + c->partial);
            }
            c->partial.clear();
          }
          continue;
        }
        if (n == 0) {  // every writer closed it
          ::close(c->out_fd);
          c->out_fd = -1;
        }
        break;  // EAGAIN or error
      }
      if (final && !c->partial.empty()) c->last_line = c->partial.substr(0, 512);
      if (final && !c->partial.empty() && c->logged < kMaxLogged)
        log_("hook " + c->label + "[" + std::to_string(c->pid) + "]: " + c->partial);
      if (final) c->partial.clear();
    };

    std::vector<Child*> reaped;
    for (auto* c : snapshot) {
      drain(c, false);
      int status = 0;
      pid_t r = ::waitpid(c->pid, &status, WNOHANG);
      if (r == c->pid || (r < 0 && errno == ECHILD)) {
        c->reaped = true;
        c->status = r == c->pid ? status : 0;
        drain(c, true);  // what it wrote last (a grandchild may keep the pipe: no blocking)
        reaped.push_back(c);
      }
    }
    if (reaped.empty()) continue;
    std::vector<std::unique_ptr<Child>> gone;
    {
      std::lock_guard lk(mu_);
      for (auto it = children_.begin(); it != children_.end();) {
        if ((*it)->reaped) {
          gone.push_back(std::move(*it));
          it = children_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& c : gone) {
      if (c->out_fd >= 0) ::close(c->out_fd);
      if (c->pidfd >= 0) ::close(c->pidfd);
      ChildExit e{c->pid, c->status, c->timed_out, c->last_line};
      log_("hook " + c->label + "[" + std::to_string(c->pid) + "]: " + e.describe());
      if (c->on_exit) {
        try {
          c->on_exit(e);
        } catch (...) {
        }
      }
      c->keepalive.reset();
    }
  }
}

}  // namespace wizmail::agent
