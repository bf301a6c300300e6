#include "milter/client.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "util/strings.hpp"

namespace wizmail::milter {

namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 1 << 30));
}

Error sys_error(std::string_view what) { return Error{Errc::unavailable, util::cat(what, ": ", std::strerror(errno))}; }

// Wait for `events` on `fd` until the deadline; false on a timeout.
Result<bool> wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, remaining_ms(deadline));
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) return unexpected(sys_error("poll"));
  }
}

// A non-blocking connect to one address, finished within the deadline.
Result<int> connect_one(const sockaddr* sa, socklen_t len, int family, Clock::time_point deadline) {
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return unexpected(sys_error("socket"));
  if (::connect(fd, sa, len) != 0) {
    if (errno != EINPROGRESS) {
      auto e = sys_error("connect");
      ::close(fd);
      return unexpected(e);
    }
    auto ready = wait_for(fd, POLLOUT, deadline);
    if (!ready || !*ready) {
      ::close(fd);
      if (!ready) return unexpected(ready.error());
      return unexpected(Error{Errc::unavailable, "connect: timed out"});
    }
    int err = 0;
    socklen_t el = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err != 0) {
      errno = err;
      auto e = sys_error("connect");
      ::close(fd);
      return unexpected(e);
    }
  }
  return fd;
}

}  // namespace

Result<Address> parse_address(std::string_view spec) {
  Address a;
  a.spec.assign(util::trim(spec));
  std::string_view s = a.spec;
  auto bad = [&](std::string_view why) {
    return unexpected(Error{Errc::invalid_argument, util::cat("milter '", a.spec, "': ", why)});
  };
  if (s.starts_with("unix:") || s.starts_with("local:")) {
    a.kind = Address::Kind::unix_socket;
    a.path.assign(s.substr(s.find(':') + 1));
    if (a.path.empty() || a.path.front() != '/') return bad("unix: needs an absolute path");
    if (a.path.size() >= sizeof(sockaddr_un{}.sun_path)) return bad("socket path too long");
    return a;
  }
  if (!s.starts_with("inet:") && !s.starts_with("inet6:")) return bad("expected inet:host:port or unix:/path");
  s.remove_prefix(s.find(':') + 1);
  auto colon = s.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return bad("expected inet:host:port");
  std::string_view host = s.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  auto port = util::parse_int(s.substr(colon + 1));
  if (!port || *port < 1 || *port > 65535) return bad("bad port");
  if (host.empty()) return bad("no host");
  a.host.assign(host);
  a.port = static_cast<std::uint16_t>(*port);
  return a;
}

Client::~Client() { close(); }

void Client::close() noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  reader_ = PacketReader{};
}

Status Client::open() {
  close();
  const auto deadline = Clock::now() + t_.connect;
  if (addr_.kind == Address::Kind::unix_socket) {
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path, addr_.path.c_str(), addr_.path.size() + 1);
    auto fd = connect_one(reinterpret_cast<const sockaddr*>(&un), sizeof un, AF_UNIX, deadline);
    if (!fd) return unexpected(fd.error());
    fd_ = *fd;
  } else {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* res = nullptr;
    const std::string port = std::to_string(addr_.port);
    if (int rc = ::getaddrinfo(addr_.host.c_str(), port.c_str(), &hints, &res); rc != 0)
      return unexpected(Error{Errc::unavailable, util::cat("resolve ", addr_.host, ": ", ::gai_strerror(rc))});
    Error last{Errc::unavailable, "no address"};
    for (auto* ai = res; ai; ai = ai->ai_next) {
      auto fd = connect_one(ai->ai_addr, ai->ai_addrlen, ai->ai_family, deadline);
      if (fd) {
        fd_ = *fd;
        break;
      }
      last = fd.error();
    }
    ::freeaddrinfo(res);
    if (fd_ < 0) return unexpected(last);
  }
  if (auto st = send(encode_optneg(kVersion, act::all, proto::offered), t_.connect); !st) {
    close();
    return st;
  }
  auto p = read_packet(t_.connect);
  if (!p) {
    close();
    return unexpected(p.error());
  }
  auto n = decode_optneg(*p, act::all, proto::offered);
  if (!n) {
    close();
    return unexpected(n.error());
  }
  neg_ = std::move(*n);
  return {};
}

Status Client::send(std::string_view bytes, std::chrono::milliseconds timeout) {
  if (fd_ < 0) return fail(Errc::unavailable, "not connected");
  const auto deadline = Clock::now() + timeout;
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      auto ready = wait_for(fd_, POLLOUT, deadline);
      if (!ready) return unexpected(ready.error());
      if (!*ready) return fail(Errc::temporary, "timed out sending to the milter");
      continue;
    }
    return unexpected(sys_error("send"));
  }
  return {};
}

Result<PacketReader::Packet> Client::read_packet(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    auto p = reader_.next();
    if (!p) return unexpected(p.error());
    if (*p) return std::move(**p);
    auto ready = wait_for(fd_, POLLIN, deadline);
    if (!ready) return unexpected(ready.error());
    if (!*ready) return unexpected(Error{Errc::temporary, "timed out waiting for the milter"});
    char buf[16384];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n == 0) return unexpected(Error{Errc::unavailable, "the milter closed the connection"});
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      return unexpected(sys_error("recv"));
    }
    reader_.feed(std::string_view(buf, static_cast<std::size_t>(n)));
  }
}

Result<Reply> Client::receive(std::chrono::milliseconds timeout) {
  if (fd_ < 0) return unexpected(Error{Errc::unavailable, "not connected"});
  for (;;) {
    auto p = read_packet(timeout);
    if (!p) return unexpected(p.error());
    auto r = decode_reply(*p);
    if (!r) return r;
    if (r->kind == Reply::Kind::progress) continue;  // the timeout starts again
    return r;
  }
}

void Client::quit() noexcept {
  if (fd_ < 0) return;
  (void)send(encode_simple(cmd::quit), std::chrono::milliseconds(100));
  close();
}

}  // namespace wizmail::milter
