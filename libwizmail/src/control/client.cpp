// Client side of the control socket, and the pid file checks.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "control/unix_socket.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"
#include "wizmail/admin/control.hpp"

namespace wizmail::control {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

Result<UnixSocketName> UnixSocketName::make(const fs::path& path) {
  constexpr std::size_t kMax = sizeof(sockaddr_un{}.sun_path) - 1;
  if (path.native().size() <= kMax) return UnixSocketName(path.native(), -1);
  auto folder = path.parent_path();
  if (folder.empty()) folder = ".";
  int dir = ::open(folder.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return fail_errno(util::cat("open ", folder.native()), errno);
  UnixSocketName n(util::cat("/proc/self/fd/", std::to_string(dir), "/", path.filename().native()), dir);
  if (n.name_.size() > kMax)
    return fail(Errc::invalid_argument,
                util::cat("socket name too long (max ", std::to_string(kMax), " bytes): ", path.filename().native()));
  return n;
}

UnixSocketName::~UnixSocketName() {
  if (dir_ >= 0) ::close(dir_);
}

Result<int> connect_unix(const fs::path& path) {
  const auto& p = path.native();
  auto name = UnixSocketName::make(path);
  if (!name) return unexpected(name.error());
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, name->name().c_str(), name->name().size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail_errno("socket", errno);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    ::close(fd);
    if (err == ENOENT || err == ECONNREFUSED)
      return fail(Errc::unavailable, "the server is not running (no listener on " + p + ")");
    return fail_errno("connect " + p, err);
  }
  return fd;
}

namespace {

Status write_all(int fd, std::string_view data, Clock::time_point deadline) {
  while (!data.empty()) {
    auto n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) return fail_errno("write to the control socket", errno);
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return fail(Errc::temporary, "the server did not answer in time");
    pollfd pfd{fd, POLLOUT, 0};
    ::poll(&pfd, 1, static_cast<int>(left.count()));
  }
  return {};
}

}  // namespace

Result<std::string> read_line_buffered(int fd, std::string& buf, std::size_t max,
                                      Clock::time_point deadline) {
  char chunk[4096];
  for (;;) {
    auto nl = buf.find('\n');
    if (nl != std::string::npos) {
      std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return line;
    }
    if (buf.size() > max) return fail(Errc::protocol, "reply line too long");
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return fail(Errc::temporary, "the server did not answer in time");
    pollfd pfd{fd, POLLIN, 0};
    int pr = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (pr <= 0) continue;
    auto n = ::recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return fail_errno("read from the server", errno);
    if (n == 0) return fail(Errc::protocol, "the server closed the connection");
    buf.append(chunk, static_cast<std::size_t>(n));
  }
}

Result<std::string> read_line(int fd, std::size_t max, Clock::time_point deadline) {
  std::string buf;
  return read_line_buffered(fd, buf, max, deadline);
}

Result<std::string> call_raw(const fs::path& socket, const Request& request,
                             std::chrono::milliseconds timeout) {
  auto fd = connect_unix(socket);
  if (!fd) return unexpected(fd.error());
  auto deadline = Clock::now() + timeout;
  auto st = write_all(*fd, format_request(request) + "\n", deadline);
  Result<std::string> line = st ? read_line(*fd, kMaxReplyLine, deadline)
                                : Result<std::string>(unexpected(st.error()));
  ::close(*fd);
  return line;
}

Result<Json> call(const fs::path& socket, const Request& request, std::chrono::milliseconds timeout) {
  auto line = call_raw(socket, request, timeout);
  if (!line) return unexpected(line.error());
  auto doc = parse_json(*line);
  if (!doc) return fail(Errc::protocol, "malformed reply from the server: " + doc.error().message);
  if (!doc->is_object()) return fail(Errc::protocol, "malformed reply from the server");
  return doc;
}

std::optional<pid_t> read_pid(const fs::path& file) {
  auto text = util::read_file(file);
  if (!text) return std::nullopt;
  auto n = util::parse_int(util::trim(*text));
  if (!n || *n <= 0 || *n > 0x3FFFFFFF) return std::nullopt;
  return static_cast<pid_t>(*n);
}

bool is_server_process(pid_t pid) {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0 && errno != EPERM) return false;
  auto proc = fs::path("/proc") / std::to_string(pid);
  auto stat = util::read_file(proc / "stat");
  if (!stat) return false;
  // "pid (comm) S ...": the state follows the last ')'.
  auto close = stat->rfind(')');
  if (close == std::string::npos || close + 2 >= stat->size()) return false;
  char state = (*stat)[close + 2];
  if (state == 'Z' || state == 'X') return false;
  auto comm = util::read_file(proc / "comm");
  if (!comm) return false;
  auto name = util::trim(*comm);
  return name == "wizmail-server" || name == "wizmail";
}

std::optional<pid_t> running_server(const fs::path& home, std::string_view node) {
  auto pid = read_pid(pid_file_path(home, node));
  if (!pid || !is_server_process(*pid)) return std::nullopt;
  return pid;
}

}  // namespace wizmail::control
