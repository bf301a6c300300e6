#include "agent/child_runner.hpp"

#include <doctest/doctest.h>

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>

#include "argv_file.hpp"
#include "temp_dir.hpp"
#include "util/fs.hpp"

using namespace wizmail;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

std::string helper() { return std::string(std::getenv("WIZMAIL_BUILD_DIR")) + "/tests/agent/hook_helper"; }

struct Logs {
  std::mutex mu;
  std::vector<std::string> lines;
  agent::ChildRunner::LogFn fn() {
    return [this](const std::string& l) {
      std::lock_guard lk(mu);
      lines.push_back(l);
    };
  }
  bool has(std::string_view s) {
    std::lock_guard lk(mu);
    for (auto& l : lines)
      if (l.find(s) != std::string::npos) return true;
    return false;
  }
};

using test::read_argv_file;

}  // namespace

TEST_CASE("argv arrives verbatim, one argument each; stdin, cwd and env") {
  test::TempDir d("wizmail-child");
  Logs logs;
  agent::ChildRunner r(logs.fn());
  std::ofstream(d.path() / "in.eml") << "Subject: x\r\n\r\nbody\r\n";
  const std::vector<std::string> nasty = {"a b", "$(touch " + (d.path() / "pwned").string() + ")", "`id`", "x;y|z&",
                                          "'\"", "*", "", "日本語", "> /tmp/x", "\\n"};
  agent::SpawnSpec s;
  s.argv = {helper(), "record", d.path().string()};
  s.argv.insert(s.argv.end(), nasty.begin(), nasty.end());
  s.stdin_file = d.path() / "in.eml";
  s.label = "test";
  auto e = r.run(s);
  REQUIRE(e);
  CHECK(WIFEXITED(e->status));
  CHECK(WEXITSTATUS(e->status) == 0);
  CHECK(!e->timed_out);
  auto argv = read_argv_file(d.path() / (std::to_string(e->pid) + ".argv"));
  CHECK(argv == nasty);
  CHECK(util::read_file(d.path() / (std::to_string(e->pid) + ".stdin")).value() == "Subject: x\r\n\r\nbody\r\n");
  CHECK(!fs::exists(d.path() / "pwned"));
  CHECK(logs.has("test[" + std::to_string(e->pid) + "]: recorded 10 args"));
  CHECK(logs.has("exit 0"));
  // Without a stdin file the child reads /dev/null.
  s.stdin_file.clear();
  s.argv = {helper(), "record", d.path().string()};
  auto e2 = r.run(s);
  REQUIRE(e2);
  CHECK(util::read_file(d.path() / (std::to_string(e2->pid) + ".stdin")).value().empty());
}

TEST_CASE("failures: missing program, exit status, output logged") {
  Logs logs;
  agent::ChildRunner r(logs.fn());
  agent::SpawnSpec s;
  s.argv = {"/nonexistent/program"};
  auto e = r.run(s);
  REQUIRE(!e);
  CHECK(e.error().message.find("cannot start /nonexistent/program") != std::string::npos);
  s.argv = {};
  CHECK(!r.run(s));
  s.argv = {helper(), "fail"};
  s.label = "failer";
  auto f = r.run(s);
  REQUIRE(f);
  CHECK(WEXITSTATUS(f->status) == 3);
  CHECK(f->describe() == "exit 3");
  CHECK(logs.has("failer[" + std::to_string(f->pid) + "]: failing on purpose"));
}

TEST_CASE("a waited-for child is killed at its timeout, with what it started") {
  Logs logs;
  agent::ChildRunner r(logs.fn());
  agent::SpawnSpec s;
  s.argv = {helper(), "sleep", "30"};
  s.timeout = 200ms;
  auto t0 = std::chrono::steady_clock::now();
  auto e = r.run(s);
  auto took = std::chrono::steady_clock::now() - t0;
  REQUIRE(e);
  CHECK(e->timed_out);
  CHECK(WIFSIGNALED(e->status));
  CHECK(WTERMSIG(e->status) == SIGTERM);
  CHECK(took >= 200ms);  // not before its timeout
  CHECK(e->describe() == "killed by signal 15 (timeout)");
  CHECK(logs.has("timeout, SIGTERM sent"));
  CHECK(r.running() == 0);
  // A child that ignores SIGTERM gets SIGKILL two seconds later.
  s.argv = {"/bin/sh", "-c", "trap '' TERM; sleep 30"};
  s.timeout = 100ms;
  auto k = r.run(s);
  REQUIRE(k);
  CHECK(k->timed_out);
  CHECK(WTERMSIG(k->status) == SIGKILL);
}

TEST_CASE("no-wait children are all reaped; stop kills what is left") {
  Logs logs;
  test::TempDir d("wizmail-child");
  std::atomic<int> exited{0};
  {
    agent::ChildRunner r(logs.fn());
    std::vector<pid_t> pids;
    auto keep = std::make_shared<int>(1);
    for (int i = 0; i < 20; ++i) {
      agent::SpawnSpec s;
      s.argv = {helper(), "record", d.path().string(), std::to_string(i)};
      s.keepalive = keep;
      auto pid = r.spawn(s, [&](const agent::ChildExit&) { ++exited; });
      REQUIRE(pid);
      pids.push_back(*pid);
    }
    keep.reset();
    for (int i = 0; i < 500 && exited < 20; ++i) std::this_thread::sleep_for(10ms);
    CHECK(exited == 20);
    CHECK(r.running() == 0);
    for (auto pid : pids) {
      // Reaped: no zombie is left under that pid.
      CHECK(::waitpid(pid, nullptr, WNOHANG) == -1);
      CHECK(errno == ECHILD);
    }
    agent::SpawnSpec s;
    s.argv = {helper(), "sleep", "30"};
    std::optional<agent::ChildExit> last;
    REQUIRE(r.spawn(s, [&](const agent::ChildExit& x) { last = x; }));
    r.stop(100ms);
    // stop() returned with the sleeper reaped: killed, not waited for.
    REQUIRE(last);
    CHECK(WIFSIGNALED(last->status));
    CHECK(WTERMSIG(last->status) == SIGTERM);
    CHECK(r.running() == 0);
    CHECK(!r.spawn(s));  // stopped
  }
}
