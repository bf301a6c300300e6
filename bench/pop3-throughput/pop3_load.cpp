// pop3-load: a raw POP3 load generator for bench/pop3-throughput/run.py.
//
//   pop3-load PORT PASSWORD COUNT INFLIGHT ACCOUNT...
//
// One thread and connection per account on 127.0.0.1:PORT: USER/PASS, then
// RETR 1..COUNT keeping INFLIGHT commands outstanding, then QUIT. Each
// response must begin "+OK" and ends at CRLF.CRLF (dot-stuffed bodies cannot
// contain it). Prints "<messages> <seconds> <messages/s>" for all
// connections together (first connect to last response). Written in C++ so
// that the client, not the server, is the cheap side (a python client
// costs ~60 µs per message, more than either server).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "pop3-load: %s\n", why.c_str());
  std::exit(1);
}

class Conn {
 public:
  explicit Conn(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) die("socket");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) die("connect");
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~Conn() { ::close(fd_); }
  void send(std::string_view s) {
    while (!s.empty()) {
      auto n = ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL);
      if (n <= 0) die("send");
      s.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  // One status line (without CRLF).
  std::string line() {
    for (;;) {
      auto nl = buf_.find("\r\n", pos_);
      if (nl != std::string::npos) {
        std::string l = buf_.substr(pos_, nl - pos_);
        pos_ = nl + 2;
        return l;
      }
      fill();
    }
  }
  // Consume whole multi-line responses; returns how many ended. Checks
  // that each begins with +OK.
  std::size_t responses() {
    std::size_t done = 0;
    for (;;) {
      if (in_body_) {
        auto end = buf_.find("\r\n.\r\n", body_from_ > pos_ ? body_from_ : pos_);
        if (end == std::string::npos) {
          // Keep the last 4 octets: a terminator may straddle reads.
          body_from_ = buf_.size() >= 4 ? buf_.size() - 4 : 0;
          if (body_from_ < pos_) body_from_ = pos_;
          break;
        }
        pos_ = end + 5;
        in_body_ = false;
        ++done;
        continue;
      }
      if (buf_.size() - pos_ < 3) break;
      if (buf_.compare(pos_, 3, "+OK") != 0) die("unexpected response: " + buf_.substr(pos_, 60));
      // The status line's own CRLF: the body starts after it.
      auto nl = buf_.find("\r\n", pos_);
      if (nl == std::string::npos) break;
      pos_ = nl;  // the terminator search includes this CRLF (empty body)
      in_body_ = true;
      body_from_ = pos_;
    }
    compact();
    return done;
  }
  void fill() {
    compact();
    std::size_t old = buf_.size();
    buf_.resize(old + (1 << 20));
    auto n = ::recv(fd_, buf_.data() + old, 1 << 20, 0);
    if (n <= 0) die("connection closed");
    buf_.resize(old + static_cast<std::size_t>(n));
  }

 private:
  void compact() {
    if (pos_ > (1 << 20) || pos_ == buf_.size()) {
      std::size_t keep_from = pos_;
      buf_.erase(0, keep_from);
      body_from_ = body_from_ > keep_from ? body_from_ - keep_from : 0;
      pos_ = 0;
    }
  }
  int fd_ = -1;
  std::string buf_;
  std::size_t pos_ = 0, body_from_ = 0;
  bool in_body_ = false;
};

void client(int port, std::string account, std::string password, long count, long inflight) {
  Conn c(port);
  if (c.line().rfind("+OK", 0) != 0) die("no greeting");
  c.send("USER " + account + "\r\nPASS " + password + "\r\n");
  if (c.line().rfind("+OK", 0) != 0) die("USER refused");
  if (auto l = c.line(); l.rfind("+OK", 0) != 0) die("PASS refused: " + l);
  long sent = 0, done = 0;
  std::string batch;
  while (done < count) {
    batch.clear();
    while (sent < count && sent - done < inflight) batch += "RETR " + std::to_string(++sent) + "\r\n";
    if (!batch.empty()) c.send(batch);
    c.fill();
    done += static_cast<long>(c.responses());
  }
  c.send("QUIT\r\n");
  (void)c.line();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: pop3-load PORT PASSWORD COUNT INFLIGHT ACCOUNT...\n");
    return 2;
  }
  int port = std::atoi(argv[1]);
  std::string password = argv[2];
  long count = std::atol(argv[3]), inflight = std::atol(argv[4]);
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> ts;
  for (int i = 5; i < argc; ++i) ts.emplace_back(client, port, std::string(argv[i]), password, count, inflight);
  for (auto& t : ts) t.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  long total = count * (argc - 5);
  std::printf("%ld %.3f %.0f\n", total, secs, static_cast<double>(total) / secs);
  return 0;
}
