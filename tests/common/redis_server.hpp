// A real redis-server for one test (Debian's redis-server, test only):
// on a loopback port free at run time, no persistence, killed (SIGKILL)
// and reaped when the object goes. Tests that need it skip when the
// program is not installed.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "wait_until.hpp"

namespace wizmail::test {

// A port that was free a moment ago on 127.0.0.1 (the kernel's choice).
inline std::uint16_t free_loopback_port() {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(s);
    throw std::runtime_error("no free port");
  }
  ::close(s);
  return ntohs(a.sin_port);
}

inline bool port_accepts(std::uint16_t port) {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  bool ok = ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(s);
  return ok;
}

inline const char* redis_server_program() {
  for (const char* p : {"/usr/bin/redis-server", "/usr/sbin/redis-server"})
    if (::access(p, X_OK) == 0) return p;
  return nullptr;
}

class RedisServer {
 public:
  RedisServer() : port_(free_loopback_port()) { start(); }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;
  ~RedisServer() { kill(); }

  std::uint16_t port() const noexcept { return port_; }
  std::string url(int db = 0) const {
    return "redis://127.0.0.1:" + std::to_string(port_) + "/" + std::to_string(db);
  }
  // SIGKILL and reap (the port then refuses connections).
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
  }
  void pause() { ::kill(pid_, SIGSTOP); }
  void resume() { ::kill(pid_, SIGCONT); }
  // A new server on the same port (after kill()).
  void start() {
    const char* prog = redis_server_program();
    if (!prog) throw std::runtime_error("redis-server is not installed");
    std::string port = std::to_string(port_);
    pid_ = ::fork();
    if (pid_ == 0) {
      int null = ::open("/dev/null", O_WRONLY);
      if (null >= 0) {
        ::dup2(null, 1);
        ::dup2(null, 2);
      }
      ::execl(prog, prog, "--port", port.c_str(), "--bind", "127.0.0.1", "--save", "",
              "--appendonly", "no", "--dir", "/tmp", "--logfile", "", "--loglevel", "warning",
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    if (!wait_until([this] { return port_accepts(port_); }))
      throw std::runtime_error("redis-server did not start");
  }

 private:
  std::uint16_t port_;
  pid_t pid_ = -1;
};

}  // namespace wizmail::test
