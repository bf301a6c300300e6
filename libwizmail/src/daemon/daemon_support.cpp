#include "daemon/daemon_support.hpp"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vector>

namespace wizmail::daemon {

namespace fs = std::filesystem;

ReadyPipe::~ReadyPipe() {
  if (fd_ >= 0) ::close(fd_);
}

void ReadyPipe::error(std::string_view reason) {
  std::string line = "error: ";
  for (char c : reason) line += c == '\n' ? '\t' : c;  // one line; tabs mark line breaks
  line += '\n';
  send(line);
}

void ReadyPipe::send(std::string_view line) {
  if (fd_ < 0) return;
  while (!line.empty()) {
    auto n = ::write(fd_, line.data(), line.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    line.remove_prefix(static_cast<std::size_t>(n));
  }
  ::close(fd_);
  fd_ = -1;
}

namespace {

// lchown every entry under `root` that root owns (start() created it).
Status hand_over(const fs::path& root, uid_t uid, gid_t gid) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(root, ec))) return {};
  auto give = [&](const fs::path& p) -> Status {
    struct stat st {};
    if (::lstat(p.c_str(), &st) != 0) return {};  // gone meanwhile
    if (st.st_uid != 0) return {};
    if (::lchown(p.c_str(), uid, gid) != 0) return fail_errno("chown " + p.string(), errno);
    return {};
  };
  if (auto st = give(root); !st) return st;
  if (fs::is_symlink(root, ec)) return {};
  for (fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec), end;
       !ec && it != end; it.increment(ec))
    if (auto st = give(it->path()); !st) return st;
  if (ec) return fail(Errc::io, "walk " + root.string() + ": " + ec.message());
  return {};
}

}  // namespace

Status drop_privileges(const std::string& user, const Config& config) {
  if (user.empty() || ::geteuid() != 0) return {};
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  int rc = ::getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &found);
  if (rc != 0) return fail_errno("look up run_as_user " + user, rc);
  if (!found) return fail(Errc::not_found, "run_as_user: no such user: " + user);
  uid_t uid = pw.pw_uid;
  gid_t gid = pw.pw_gid;
  if (uid == 0) return {};
  // Mail folders are the user's: refuse to run where it could not write.
  for (const auto& dir : {config.home, config.mailbox_dir()}) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) return fail_errno("stat " + dir.string(), errno);
    if (st.st_uid != uid)
      return fail(Errc::permission_denied,
                  "run_as_user " + user + ": " + dir.string() + " does not belong to " + user +
                      " (run: chown -R " + user + " " + dir.string() + ")");
  }
  for (const char* sub : {"var", "resendmail", "deadmail"})
    if (auto st = hand_over(config.home / sub, uid, gid); !st) return st;
  if (::initgroups(pw.pw_name, gid) != 0) return fail_errno("initgroups " + user, errno);
  if (::setgid(gid) != 0) return fail_errno("setgid", errno);
  if (::setuid(uid) != 0) return fail_errno("setuid " + user, errno);
  if (::setuid(0) == 0 || ::geteuid() == 0)
    return fail(Errc::permission_denied, "could not drop root privileges");
  return {};
}

}  // namespace wizmail::daemon
