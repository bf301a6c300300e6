// start, stop, supervise (wizmail/admin/daemon.hpp).
#include "wizmail/admin/daemon.hpp"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <ctime>
#include <thread>

#include "daemon/daemon_support.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"
#include "wizmail/admin/control.hpp"

namespace wizmail::daemon {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

bool executable(const fs::path& p) { return !p.empty() && ::access(p.c_str(), X_OK) == 0; }

std::string timestamp() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

// Read the child's one-line verdict, up to `deadline`. "" at EOF.
Result<std::string> read_verdict(int fd, Clock::time_point deadline) {
  std::string line;
  char buf[512];
  for (;;) {
    auto nl = line.find('\n');
    if (nl != std::string::npos) return line.substr(0, nl);
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return fail(Errc::temporary, "the server did not report ready in time");
    pollfd pfd{fd, POLLIN, 0};
    int pr = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (pr < 0 && errno != EINTR) return fail_errno("poll", errno);
    if (pr <= 0) continue;
    auto n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail_errno("read", errno);
    if (n == 0) return line;
    line.append(buf, static_cast<std::size_t>(n));
    if (line.size() > 65536) return fail(Errc::protocol, "start-up report too long");
  }
}

bool process_gone(pid_t pid) { return !control::is_server_process(pid); }

}  // namespace

fs::path server_program(const fs::path& explicit_path) {
  if (!explicit_path.empty()) return explicit_path;
  if (const char* env = std::getenv("WIZMAIL_SERVER"); env && *env) return env;
  std::error_code ec;
  auto self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    auto dir = self.parent_path();
    for (const auto& cand : {dir / "wizmail-server", dir.parent_path() / "wizmail-server" / "wizmail-server"})
      if (executable(cand)) return cand;
  }
  return "wizmail-server";
}

Status become_server_user(const Config& config) {
  return drop_privileges(config.server.run_as_user, config);
}

Result<Started> start(const fs::path& home, const StartOptions& opt) {
  Started out;
  auto pid_file = control::pid_file_path(home, opt.node);
  if (auto pid = control::read_pid(pid_file)) {
    if (control::is_server_process(*pid))
      return fail(Errc::already_exists, "the server is already running (pid " + std::to_string(*pid) + ")");
    // The process is gone or the pid now belongs to another program.
    ::unlink(pid_file.c_str());
    out.removed_stale_pid_file = true;
  }
  auto program = server_program(opt.program);
  std::vector<std::string> args = {program.string(), "--home", home.string(), "--ready-fd", "3"};
  if (opt.threads > 0) args.insert(args.end(), {"--threads", std::to_string(opt.threads)});
  if (!opt.sync.empty()) args.insert(args.end(), {"--sync", opt.sync});
  if (!opt.node.empty()) args.insert(args.end(), {"--node", opt.node});
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return fail_errno("pipe", errno);
  pid_t child = ::fork();
  if (child < 0) {
    int err = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    return fail_errno("fork", err);
  }
  if (child == 0) {
    // First child: new session, then fork again so the daemon is no child
    // of ours (never a zombie, never a terminal's process group leader).
    ::close(fds[0]);
    if (::setsid() < 0) ::_exit(70);
    pid_t grandchild = ::fork();
    if (grandchild < 0) ::_exit(71);
    if (grandchild > 0) ::_exit(0);
    ::umask(027);
    if (::chdir("/") != 0) ::_exit(72);
    int null = ::open("/dev/null", O_RDWR);
    if (null < 0) ::_exit(73);
    ::dup2(null, 0);
    ::dup2(null, 1);
    ::dup2(null, 2);
    if (null > 2) ::close(null);
    if (fds[1] != 3) {
      ::dup2(fds[1], 3);  // dup2 clears close-on-exec on the copy
      ::close(fds[1]);
    } else {
      ::fcntl(3, F_SETFD, 0);
    }
    ::signal(SIGPIPE, SIG_DFL);
    if (program.has_parent_path()) ::execv(argv[0], argv.data());
    else ::execvp(argv[0], argv.data());
    const char msg[] = "error: cannot run the server program\n";
    (void)!::write(3, msg, sizeof msg - 1);
    ::_exit(127);
  }
  ::close(fds[1]);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  auto verdict = read_verdict(fds[0], Clock::now() + opt.timeout);
  ::close(fds[0]);
  if (!verdict) return unexpected(verdict.error());
  if (*verdict == "ok") {
    auto pid = control::read_pid(pid_file);
    if (!pid) return fail(Errc::internal, "the server started but wrote no pid file");
    out.pid = *pid;
    return out;
  }
  if (verdict->starts_with("error: ")) {
    std::string why = verdict->substr(7);
    for (auto& c : why)
      if (c == '\t') c = '\n';
    if (why == "cannot run the server program") why += " " + program.string();
    return fail(Errc::unavailable, why);
  }
  return fail(Errc::unavailable, "the server exited during start-up (see " +
                                     (log_dir(home, opt.node) / "server.log").string() + ")");
}

Result<Stopped> stop(const fs::path& home, bool force, std::chrono::seconds wait, std::string_view node) {
  Stopped out;
  auto pid_file = control::pid_file_path(home, node);
  auto pid = control::read_pid(pid_file);
  if (wait.count() <= 0) {
    int t = 60;
    if (auto cfg = load_config(home, node)) t = (*cfg)->server.time_out_of_stop;
    wait = std::chrono::seconds(force ? 30 : t + 30);
  }
  if (!pid || !control::is_server_process(*pid)) {
    out.was_running = false;
    if (pid || fs::exists(pid_file)) {
      ::unlink(pid_file.c_str());
      out.removed_stale_pid_file = true;
    }
    return out;
  }
  out.pid = *pid;
  control::Request req;
  req.command = control::Command::stop;
  req.force = force;
  auto reply = control::call(control::control_socket_path(home, node), req, 10s);
  if (reply && control::check_reply(*reply)) {
    out.via_control = true;
  } else {
    // No control socket (an older or wedged server): SIGTERM; twice for a
    // forced stop (the second one closes the sessions at once).
    if (::kill(*pid, SIGTERM) != 0 && errno != ESRCH) return fail_errno("kill", errno);
    if (force) {
      std::this_thread::sleep_for(100ms);
      ::kill(*pid, SIGTERM);
    }
  }
  auto deadline = Clock::now() + wait;
  while (!process_gone(*pid)) {
    if (Clock::now() >= deadline)
      return fail(Errc::temporary, "the server (pid " + std::to_string(*pid) + ") did not stop within " +
                                       std::to_string(wait.count()) + " s");
    std::this_thread::sleep_for(50ms);
  }
  // A server killed hard leaves its pid file; remove it if it still names it.
  if (auto again = control::read_pid(pid_file); again && *again == *pid) ::unlink(pid_file.c_str());
  return out;
}

int supervise(const fs::path& home, const SuperviseOptions& opt) {
  auto log_file = opt.log_file.empty() ? log_dir(home, opt.start.node) / "supervise.log" : opt.log_file;
  (void)util::make_dirs(log_file.parent_path(), 0750);
  auto log = [&](const std::string& text) {
    int fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) return;
    std::string line = timestamp() + " " + text + "\n";
    (void)!::write(fd, line.data(), line.size());
    ::close(fd);
  };
  auto keep_going = [&] { return !opt.keep_going || opt.keep_going(); };
  auto interval = std::max(opt.interval, std::chrono::seconds(1));
  auto backoff = interval;
  int starts = 0;
  bool started_once = false;
  bool seen_up = false;  // the last started server was found running at a check
  log("supervise: watching " + home.string() + " every " + std::to_string(interval.count()) + " s");
  while (keep_going()) {
    if (!control::running_server(home, opt.start.node)) {
      // Down again before any check saw it up: a crash loop, wait longer.
      if (started_once && !seen_up) backoff = std::min(backoff * 2, std::max(opt.max_backoff, interval));
      else backoff = interval;
      ++starts;
      started_once = true;
      seen_up = false;
      auto r = start(home, opt.start);
      if (r) {
        log("supervise: server was not running; started (pid " + std::to_string(r->pid) + ")");
      } else {
        std::string why = r.error().message;
        for (auto& c : why)
          if (c == '\n') c = ' ';
        log("supervise: server was not running; start failed: " + why);
      }
      if (backoff > interval)
        log("supervise: crash loop, next check in " + std::to_string(backoff.count()) + " s");
    } else {
      seen_up = true;
      backoff = interval;
    }
    auto until = Clock::now() + backoff;
    while (Clock::now() < until && keep_going()) std::this_thread::sleep_for(100ms);
  }
  log("supervise: ended");
  return starts;
}

}  // namespace wizmail::daemon
