// Tiny blocking SMTP and POP3 clients for loopback tests: plain sockets, a
// receive timeout, no library code between the test and the server's bytes.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <cerrno>
#include <cstdint>
#include <string>
#include <string_view>

namespace wizmail::test {

// Whether a connect to the loopback port is refused (nobody listens).
inline bool connect_refused(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool refused = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 && errno == ECONNREFUSED;
  ::close(fd);
  return refused;
}

// A connection to 127.0.0.1:port that reads CRLF lines.
class LineClient {
 public:
  explicit LineClient(std::uint16_t port, int timeout_seconds = 10) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd_ >= 0);
    timeval tv{timeout_seconds, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  }
  LineClient(const LineClient&) = delete;
  LineClient& operator=(const LineClient&) = delete;
  ~LineClient() {
    if (fd_ >= 0) ::close(fd_);
  }

  int fd() const { return fd_; }

  void send(std::string_view s) {
    while (!s.empty()) {
      auto n = ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL);
      if (n <= 0) return;
      s.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  // One line with its CRLF; "" on EOF or timeout before a whole line.
  std::string line() {
    for (;;) {
      auto nl = buf_.find("\r\n");
      if (nl != std::string::npos) {
        std::string l = buf_.substr(0, nl + 2);
        buf_.erase(0, nl + 2);
        return l;
      }
      char tmp[4096];
      auto n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n <= 0) return {};
      buf_.append(tmp, static_cast<std::size_t>(n));
    }
  }
  // Whether the server closed the connection (the next read sees EOF).
  bool eof() {
    char c;
    return ::recv(fd_, &c, 1, 0) == 0;
  }

 private:
  int fd_ = -1;
  std::string buf_;
};

// SMTP: a reply is one line or several ("250-…" … "250 …").
class SmtpClient : public LineClient {
 public:
  using LineClient::LineClient;
  // One whole reply, its lines joined with their CRLFs; "" on EOF/timeout.
  std::string reply() {
    std::string out;
    for (;;) {
      std::string l = line();
      if (l.empty()) return out;
      out += l;
      if (l.size() < 4 || l[3] != '-') return out;
    }
  }
  std::string cmd(std::string_view c) {
    send(std::string(c) + "\r\n");
    return reply();
  }
};

// The first three characters of an SMTP reply.
inline std::string code(const std::string& reply) { return reply.substr(0, 3); }

}  // namespace wizmail::test
