#include "wizmail/admin/maintenance.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <functional>

#include "util/fd.hpp"
#include "util/strings.hpp"
#include "wizmail/queue.hpp"

namespace wizmail {

namespace fs = std::filesystem;
using util::UniqueFd;

namespace {

constexpr int max_depth = 8;  // dustbox/<account>/<file> needs 2; deadmail may nest a little

// Names of a folder's entries (without "." and ".."), read through `dfd`.
Result<std::vector<std::string>> entries(int dfd, const fs::path& shown) {
  int dup = ::fcntl(dfd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return fail_errno("dup " + shown.string(), errno);
  DIR* d = ::fdopendir(dup);
  if (!d) {
    int e = errno;
    ::close(dup);
    return fail_errno("opendir " + shown.string(), e);
  }
  std::vector<std::string> out;
  errno = 0;
  while (dirent* de = ::readdir(d)) {
    if (std::strcmp(de->d_name, ".") == 0 || std::strcmp(de->d_name, "..") == 0) continue;
    out.emplace_back(de->d_name);
  }
  int e = errno;
  ::closedir(d);
  if (e != 0) return fail_errno("readdir " + shown.string(), e);
  std::sort(out.begin(), out.end());
  return out;
}

// Open a folder without following a link in its last component. A missing
// folder is not an error (nothing to purge): the result is then an empty UniqueFd.
Result<UniqueFd> open_dir_nofollow(int at, const fs::path& path, const fs::path& shown) {
  int fd = ::openat(at, path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) return UniqueFd(fd);
  if (errno == ENOENT) return UniqueFd();
  if (errno == ELOOP || errno == ENOTDIR)
    return fail(Errc::invalid_argument, shown.string() + " is a symbolic link or not a folder; skipped");
  return fail_errno("open " + shown.string(), errno);
}

struct Purger {
  const MaintenanceOptions& opt;
  std::int64_t now;
  MaintenanceReport& report;

  void warn(std::string w) { report.warnings.push_back(std::move(w)); }

  void remove(int dfd, const std::string& name, MaintenanceItem item) {
    if (!opt.dry_run && ::unlinkat(dfd, name.c_str(), 0) != 0) {
      warn("cannot remove " + item.path.string() + ": " + std::strerror(errno));
      return;
    }
    report.bytes += item.bytes;
    report.items.push_back(std::move(item));
  }

  // Remove regular files under `dfd` whose age (seconds since the later of
  // mtime and ctime) is at least `keep`. Links are never followed nor
  // removed; emptied sub-folders are removed (not the top folder).
  // Returns whether the folder is empty afterwards (or would be).
  bool purge_tree(int dfd, const fs::path& shown, MaintenanceItem::Kind kind, std::int64_t keep,
                  const std::string& why, int depth) {
    auto names = entries(dfd, shown);
    if (!names) {
      warn(names.error().message);
      return false;
    }
    bool empty = true;
    for (const auto& n : *names) {
      struct stat st {};
      fs::path p = shown / n;
      if (::fstatat(dfd, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno != ENOENT) warn("cannot stat " + p.string() + ": " + std::strerror(errno));
        empty = empty && errno == ENOENT;
        continue;
      }
      if (S_ISLNK(st.st_mode)) {
        warn(p.string() + " is a symbolic link; left alone");
        empty = false;
        continue;
      }
      if (S_ISDIR(st.st_mode)) {
        if (depth >= max_depth) {
          warn(p.string() + ": folders nested too deep; left alone");
          empty = false;
          continue;
        }
        int sub = ::openat(dfd, n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0) {
          warn("cannot open " + p.string() + ": " + std::strerror(errno));
          empty = false;
          continue;
        }
        UniqueFd subfd(sub);
        bool sub_empty = purge_tree(subfd.get(), p, kind, keep, why, depth + 1);
        // A dead-mail sub-folder emptied by this run goes too. Dustbox
        // account folders stay: the store may be moving a message into one
        // right now.
        if (sub_empty && !opt.dry_run && kind != MaintenanceItem::Kind::dustbox) {
          if (::unlinkat(dfd, n.c_str(), AT_REMOVEDIR) != 0 && errno != ENOTEMPTY && errno != EEXIST)
            warn("cannot remove folder " + p.string() + ": " + std::strerror(errno));
        }
        if (!sub_empty) empty = false;
        continue;
      }
      if (!S_ISREG(st.st_mode)) {
        warn(p.string() + " is not a regular file; left alone");
        empty = false;
        continue;
      }
      // A file moved into the dustbox keeps its delivery mtime; the move
      // itself (rename) sets ctime, so the later of the two is when it
      // arrived here.
      std::int64_t since = std::max<std::int64_t>(st.st_mtim.tv_sec, st.st_ctim.tv_sec);
      std::int64_t age = now - since;
      if (age < keep) {
        empty = false;
        continue;
      }
      MaintenanceItem item{kind, p, static_cast<std::uint64_t>(st.st_size), age, why};
      std::size_t before = report.items.size();
      remove(dfd, n, std::move(item));
      if (report.items.size() == before) empty = false;
    }
    return empty;
  }

  void purge_folder(const fs::path& dir, MaintenanceItem::Kind kind, int keep_days) {
    auto fd = open_dir_nofollow(AT_FDCWD, dir, dir);
    if (!fd) {
      warn(fd.error().message);
      return;
    }
    if (!*fd) return;
    std::int64_t keep = static_cast<std::int64_t>(keep_days) * 86400;
    purge_tree(fd->get(), dir, kind, keep, "older than " + std::to_string(keep_days) + " days", 0);
  }

  // Queue entries in incoming/ and deferred/ created more than
  // resend_timeout minutes ago. An entry is claimed by renaming its envelope
  // into tmp/ (atomic: a sender that moved it to active/ first wins, and
  // active/ is never touched), then its data file and envelope are removed.
  void purge_queue(const Config& cfg) {
    const fs::path qdir = cfg.queue_dir();
    auto q = open_dir_nofollow(AT_FDCWD, qdir, qdir);
    if (!q) {
      warn(q.error().message);
      return;
    }
    if (!*q) return;
    std::int64_t timeout = static_cast<std::int64_t>(cfg.smtp.resend_timeout) * 60;
    auto tmp = open_dir_nofollow(q->get(), "tmp", qdir / "tmp");
    auto data = open_dir_nofollow(q->get(), "data", qdir / "data");
    if (!tmp || !data || !*tmp || !*data) {
      warn("queue " + qdir.string() + " lacks tmp/ or data/ (or they are links); queue skipped");
      return;
    }
    for (const char* state : {"incoming", "deferred"}) {
      fs::path sdir = qdir / state;
      auto sfd = open_dir_nofollow(q->get(), state, sdir);
      if (!sfd) {
        warn(sfd.error().message);
        continue;
      }
      if (!*sfd) continue;
      auto names = entries(sfd->get(), sdir);
      if (!names) {
        warn(names.error().message);
        continue;
      }
      for (const auto& id : *names) {
        if (!RelayQueue::validate_id(id)) continue;
        int efd = ::openat(sfd->get(), id.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (efd < 0) {
          if (errno != ENOENT) warn("cannot open " + (sdir / id).string() + ": " + std::strerror(errno));
          continue;  // ENOENT: a sender just took it
        }
        std::string text;
        {
          UniqueFd f(efd);
          char buf[8192];
          ssize_t n;
          while ((n = ::read(f.get(), buf, sizeof buf)) > 0 && text.size() < (1u << 20))
            text.append(buf, static_cast<std::size_t>(n));
        }
        auto e = parse_queue_entry(text);
        if (!e) {
          warn((sdir / id).string() + ": unreadable envelope, left for recovery: " + e.error().message);
          continue;
        }
        std::int64_t age = now - e->created;
        if (age < timeout) continue;
        MaintenanceItem item{MaintenanceItem::Kind::queue, sdir / id, e->size, age,
                             "queued longer than resend_timeout (" +
                                 std::to_string(cfg.smtp.resend_timeout) + " minutes)"};
        if (!opt.dry_run) {
          std::string claimed = id + ".expired";
          if (::renameat(sfd->get(), id.c_str(), tmp->get(), claimed.c_str()) != 0) {
            if (errno != ENOENT) warn("cannot claim " + (sdir / id).string() + ": " + std::strerror(errno));
            continue;
          }
          if (::unlinkat(data->get(), id.c_str(), 0) != 0 && errno != ENOENT)
            warn("cannot remove " + (qdir / "data" / id).string() + ": " + std::strerror(errno));
          if (::unlinkat(tmp->get(), claimed.c_str(), 0) != 0 && errno != ENOENT)
            warn("cannot remove " + (qdir / "tmp" / claimed).string() + ": " + std::strerror(errno));
        }
        report.bytes += item.bytes;
        report.items.push_back(std::move(item));
      }
    }
  }

  // Rotated logs: "<name>.log.<N>" and "<name>.log.<N>.gz" (the server's own
  // rotation makes ".1"; logrotate makes more generations). The live
  // "<name>.log" is never touched.
  void purge_logs(const fs::path& dir) {
    auto fd = open_dir_nofollow(AT_FDCWD, dir, dir);
    if (!fd) {
      warn(fd.error().message);
      return;
    }
    if (!*fd) return;
    auto names = entries(fd->get(), dir);
    if (!names) {
      warn(names.error().message);
      return;
    }
    std::int64_t keep = static_cast<std::int64_t>(opt.log_keep_days) * 86400;
    for (const auto& n : *names) {
      std::string_view s = n;
      if (s.ends_with(".gz")) s.remove_suffix(3);
      auto dot = s.rfind('.');
      if (dot == std::string_view::npos) continue;
      auto gen = util::parse_int(s.substr(dot + 1));
      if (!gen || *gen < 1 || !s.substr(0, dot).ends_with(".log") || dot <= 4) continue;
      struct stat st {};
      if (::fstatat(fd->get(), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      if (S_ISLNK(st.st_mode)) {
        warn((dir / n).string() + " is a symbolic link; left alone");
        continue;
      }
      if (!S_ISREG(st.st_mode)) continue;
      std::int64_t age = now - st.st_mtim.tv_sec;
      std::string why;
      if (*gen > opt.log_generations)
        why = "generation " + std::to_string(*gen) + " beyond " + std::to_string(opt.log_generations);
      else if (age >= keep)
        why = "older than " + std::to_string(opt.log_keep_days) + " days";
      else
        continue;
      remove(fd->get(), n, {MaintenanceItem::Kind::log, dir / n, static_cast<std::uint64_t>(st.st_size), age, why});
    }
  }
};

}  // namespace

std::string_view to_string(MaintenanceItem::Kind k) noexcept {
  switch (k) {
    case MaintenanceItem::Kind::dustbox: return "dustbox";
    case MaintenanceItem::Kind::dead: return "dead";
    case MaintenanceItem::Kind::queue: return "queue";
    case MaintenanceItem::Kind::log: return "log";
  }
  return "dustbox";
}

std::size_t MaintenanceReport::count(MaintenanceItem::Kind k) const {
  return static_cast<std::size_t>(
      std::count_if(items.begin(), items.end(), [k](const MaintenanceItem& i) { return i.kind == k; }));
}

Result<MaintenanceReport> run_maintenance(const Config& config, const MaintenanceOptions& options) {
  MaintenanceOptions opt = options;
  if (opt.dustbox_keep_days < 0) opt.dustbox_keep_days = config.server.dustbox_keep_days;
  if (opt.dead_keep_days < 0) opt.dead_keep_days = opt.dustbox_keep_days;
  if (opt.dustbox_keep_days < 0 || opt.dead_keep_days < 0 || opt.log_keep_days < 0)
    return fail(Errc::invalid_argument, "keep days must not be negative");
  if (opt.log_generations < 1) return fail(Errc::invalid_argument, "log generations must be at least 1");
  struct stat st {};
  if (::stat(config.home.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return fail(Errc::not_found, "home " + config.home.string() + " is not a folder");

  MaintenanceReport report;
  Purger p{opt, opt.now != 0 ? opt.now : static_cast<std::int64_t>(std::time(nullptr)), report};
  p.purge_folder(config.dustbox_dir(), MaintenanceItem::Kind::dustbox, opt.dustbox_keep_days);
  p.purge_folder(config.dead_dir(), MaintenanceItem::Kind::dead, opt.dead_keep_days);
  p.purge_queue(config);
  p.purge_logs(config.log_dir());
  return report;
}

}  // namespace wizmail
