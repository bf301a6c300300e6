#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <limits>

#include "util/fd.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"
#include "wizmail/queue.hpp"

namespace wizmail {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kMagic = "wizmail-queue 1";
// A node of a shared home deletes a data file without an envelope only at
// this age (seconds): younger, another node may be between its renames.
constexpr std::int64_t kOrphanAge = 3600;
constexpr std::string_view kStateDirs[] = {"incoming", "active", "deferred"};

// The adopter in an adopted/ folder's name <dead>@<adopter>@<unique>;
// empty for any other name.
std::string_view adopter_of(std::string_view name) {
  auto at = name.find('@');
  auto at2 = at == std::string_view::npos ? at : name.find('@', at + 1);
  return at2 == std::string_view::npos ? std::string_view{} : name.substr(at + 1, at2 - at - 1);
}

// A node name as config's validate_node_name() has it (1–63 of letters,
// digits, '-', '_'): it becomes a folder name here.
bool node_name_ok(std::string_view n) {
  return !n.empty() && n.size() <= 63 && std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  });
}

std::int64_t unix_now() {
  using namespace std::chrono;
  return duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
}

std::string encode(std::string_view s) {
  static const char hex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7F || c == '%') {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += ch;
    }
  }
  return out;
}

std::optional<std::string> decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  auto val = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    int hi = val(s[i + 1]), lo = val(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return out;
}

std::optional<std::int64_t> num(std::string_view s) {
  auto v = util::parse_int(s);
  if (!v || *v < 0) return std::nullopt;
  return v;
}

// Copy `src` into the new file `fd`.
Status copy_into(const fs::path& src, int fd, const fs::path& dst) {
  util::UniqueFd in(::open(src.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.get() < 0) return fail_errno("open " + src.string(), errno);
  for (;;) {
    ssize_t n = ::copy_file_range(in.get(), nullptr, fd, nullptr, 1 << 20, 0);
    if (n == 0) return {};
    if (n > 0) continue;
    if (errno == EINTR) continue;
    if (errno != EXDEV && errno != EINVAL && errno != ENOSYS) return fail_errno("copy to " + dst.string(), errno);
    char buf[65536];
    for (;;) {
      ssize_t r = ::read(in.get(), buf, sizeof buf);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return fail_errno("read " + src.string(), errno);
      if (r == 0) return {};
      if (auto st = util::write_all(fd, {buf, static_cast<std::size_t>(r)}, dst); !st) return st;
    }
  }
}

// `hidden`: names starting with '.' too (a save's temporary files).
Result<std::vector<std::string>> entries_in(const fs::path& dir, bool hidden = false) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    if (errno == ENOENT) return out;
    return fail_errno("open directory " + dir.string(), errno);
  }
  while (dirent* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n == "." || n == ".." || (!hidden && n.front() == '.')) continue;
    out.emplace_back(n);
  }
  ::closedir(d);
  return out;
}

}  // namespace

std::string_view to_string(RecipientState s) noexcept {
  switch (s) {
    case RecipientState::pending: return "pending";
    case RecipientState::delivered: return "delivered";
    case RecipientState::failed: return "failed";
  }
  return "pending";
}

std::string_view to_string(QueueState s) noexcept { return kStateDirs[static_cast<int>(s)]; }

bool QueueEntry::finished() const noexcept {
  return std::none_of(recipients.begin(), recipients.end(),
                      [](const QueueRecipient& r) { return r.state == RecipientState::pending; });
}

std::string serialize_queue_entry(const QueueEntry& e) {
  std::string out;
  out.reserve(256 + e.recipients.size() * 64);
  out += kMagic;
  out += "\nid " + encode(e.id);
  out += "\ncreated " + std::to_string(e.created);
  out += "\nnext " + std::to_string(e.next_attempt);
  out += "\nsize " + std::to_string(e.size);
  out += "\nsender " + encode(e.sender);
  out += "\nclient " + encode(e.client_ip);
  out += "\nauth " + encode(e.auth_user);
  if (e.ret != DsnRet::unspecified) out += "\nret " + std::string(to_string(e.ret));
  if (!e.envid.empty()) out += "\nenvid " + encode(e.envid);
  if (e.smtputf8) out += "\nsmtputf8 1";
  if (e.delay_notified > 0) out += "\ndelay-notified " + std::to_string(e.delay_notified);
  for (const auto& r : e.recipients) {
    out += "\nrcpt ";
    out += to_string(r.state);
    out += ' ' + std::to_string(r.attempts) + ' ' + encode(r.address) + ' ' + encode(r.last_reply);
    if (r.dsn.empty()) continue;
    out += "\ndsn " + (r.dsn.notify ? format_dsn_notify(r.dsn.notify) : std::string("-"));
    if (!r.dsn.orcpt.empty()) out += ' ' + encode(r.dsn.orcpt);
  }
  for (const auto& a : e.attempts) out += "\nattempt " + std::to_string(a.time) + ' ' + encode(a.text);
  out += "\nend\n";
  return out;
}

Result<QueueEntry> parse_queue_entry(std::string_view text) {
  auto bad = [](std::string why) { return fail(Errc::parse, "queue envelope: " + why); };
  QueueEntry e;
  bool magic = false, ended = false, have_id = false, have_size = false;
  std::size_t pos = 0;
  int lineno = 0;
  while (pos < text.size()) {
    auto nl = text.find('\n', pos);
    if (nl == std::string_view::npos) return bad("last line not terminated");
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++lineno;
    if (ended) return bad("data after end record");
    if (lineno == 1) {
      if (line != kMagic) return bad("not a wizmail queue file");
      magic = true;
      continue;
    }
    auto sp = line.find(' ');
    std::string_view key = line.substr(0, sp);
    std::string_view val = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
    auto where = " (line " + std::to_string(lineno) + ")";
    if (key == "end" && sp == std::string_view::npos) {
      ended = true;
    } else if (key == "id") {
      auto v = decode(val);
      if (!v || !RelayQueue::validate_id(*v)) return bad("bad id" + where);
      e.id = *v;
      have_id = true;
    } else if (key == "created" || key == "next" || key == "size") {
      auto v = num(val);
      if (!v) return bad("bad number" + where);
      if (key == "created") e.created = *v;
      else if (key == "next") e.next_attempt = *v;
      else {
        e.size = static_cast<std::uint64_t>(*v);
        have_size = true;
      }
    } else if (key == "sender" || key == "client" || key == "auth") {
      auto v = decode(val);
      if (!v) return bad("bad encoding" + where);
      (key == "sender" ? e.sender : key == "client" ? e.client_ip : e.auth_user) = *v;
    } else if (key == "rcpt") {
      auto parts = std::vector<std::string_view>{};
      std::string_view rest = val;
      for (int i = 0; i < 3; ++i) {
        auto s = rest.find(' ');
        if (s == std::string_view::npos) return bad("short rcpt record" + where);
        parts.push_back(rest.substr(0, s));
        rest = rest.substr(s + 1);
      }
      parts.push_back(rest);
      QueueRecipient r;
      if (parts[0] == "pending") r.state = RecipientState::pending;
      else if (parts[0] == "delivered") r.state = RecipientState::delivered;
      else if (parts[0] == "failed") r.state = RecipientState::failed;
      else return bad("bad recipient state" + where);
      auto n = num(parts[1]);
      auto addr = decode(parts[2]);
      auto reply = decode(parts[3]);
      // attempts is an int: a larger count would be written back negative,
      // and a negative one is refused.
      if (!n || *n > std::numeric_limits<int>::max() || !addr || addr->empty() || !reply)
        return bad("bad rcpt record" + where);
      r.attempts = static_cast<int>(*n);
      r.address = *addr;
      r.last_reply = *reply;
      e.recipients.push_back(std::move(r));
    } else if (key == "ret") {
      auto v = parse_dsn_ret(val);
      if (!v) return bad("bad ret record" + where);
      e.ret = *v;
    } else if (key == "envid") {
      auto v = decode(val);
      if (!v || v->empty()) return bad("bad envid record" + where);
      e.envid = *v;
    } else if (key == "smtputf8") {
      if (val != "1") return bad("bad smtputf8 record" + where);
      e.smtputf8 = true;
    } else if (key == "delay-notified") {
      auto t = num(val);
      if (!t) return bad("bad delay-notified record" + where);
      e.delay_notified = *t;
    } else if (key == "dsn") {
      if (e.recipients.empty() || !e.recipients.back().dsn.empty()) return bad("dsn record without its rcpt" + where);
      auto sp2 = val.find(' ');
      auto nv = val.substr(0, sp2);
      DsnRequest d;
      if (nv != "-") {
        auto n = parse_dsn_notify(nv);
        if (!n) return bad("bad NOTIFY in dsn record" + where);
        d.notify = *n;
      }
      if (sp2 != std::string_view::npos) {
        auto o = decode(val.substr(sp2 + 1));
        if (!o || o->find(';') == std::string::npos) return bad("bad ORCPT in dsn record" + where);
        d.orcpt = *o;
      }
      if (d.empty()) return bad("empty dsn record" + where);
      e.recipients.back().dsn = std::move(d);
    } else if (key == "attempt") {
      auto s = val.find(' ');
      if (s == std::string_view::npos) return bad("bad attempt record" + where);
      auto t = num(val.substr(0, s));
      auto txt = decode(val.substr(s + 1));
      if (!t || !txt) return bad("bad attempt record" + where);
      e.attempts.push_back({*t, *txt});
    } else {
      return bad("unknown record '" + std::string(key.substr(0, 20)) + "'" + where);
    }
  }
  if (!magic) return bad("empty file");
  if (!ended) return bad("no end record (incomplete file)");
  if (!have_id || !have_size) return bad("missing id or size");
  if (e.recipients.empty()) return bad("no recipients");
  return e;
}

RelayQueue::RelayQueue(fs::path dir) : dir_(std::move(dir)) {}
RelayQueue::RelayQueue(fs::path dir, std::string node) : dir_(std::move(dir)), node_(std::move(node)) {
  // Never a path out of resendmail/: a bad name makes a queue of no node
  // (the caller validated it long before; config refuses such a name).
  if (!node_name_ok(node_)) node_.clear();
}

fs::path RelayQueue::tmp_dir() const { return node_.empty() ? dir_ / "tmp" : dir_ / "tmp" / node_; }
fs::path RelayQueue::active_dir() const { return node_.empty() ? dir_ / "active" : dir_ / "claims" / node_; }

std::vector<fs::path> RelayQueue::claim_dirs() const {
  std::vector<fs::path> out{dir_ / "active"};
  if (auto nodes = entries_in(dir_ / "claims"))
    for (const auto& n : *nodes) out.push_back(dir_ / "claims" / n);
  return out;
}

Status RelayQueue::validate_id(std::string_view id) {
  if (id.empty() || id.size() > 128 || id.front() == '.')
    return fail(Errc::invalid_argument, "bad queue id");
  for (char c : id)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-'))
      return fail(Errc::invalid_argument, "bad queue id");
  return {};
}

Status RelayQueue::init() const {
  for (auto sub : {"tmp", "data", "incoming", "active", "deferred", "corrupt"})
    if (auto st = util::make_dirs(dir_ / sub, 0700); !st) return st;
  if (node_.empty()) return {};
  for (const auto& d : {tmp_dir(), active_dir(), dir_ / "adopted"})
    if (auto st = util::make_dirs(d, 0700); !st) return st;
  return {};
}

fs::path RelayQueue::message_path(std::string_view id) const { return dir_ / "data" / std::string(id); }

Result<fs::path> RelayQueue::find(std::string_view id, QueueState* state, bool anywhere) const {
  if (auto st = validate_id(id); !st) return unexpected(st.error());
  const std::string name(id);
  auto found = [&](const fs::path& p, QueueState s) {
    struct stat sb{};
    if (::stat(p.c_str(), &sb) != 0) return false;
    if (state) *state = s;
    return true;
  };
  for (auto [p, s] : {std::pair{dir_ / "incoming" / name, QueueState::incoming},
                      std::pair{active_dir() / name, QueueState::active},
                      std::pair{dir_ / "deferred" / name, QueueState::deferred}})
    if (found(p, s)) return p;
  if (anywhere)
    for (const auto& d : claim_dirs())
      if (auto p = d / name; found(p, QueueState::active)) return p;
  return fail(Errc::not_found, "no queue entry " + std::string(id));
}

bool RelayQueue::holds(std::string_view id) const {
  if (!validate_id(id)) return false;
  struct stat sb{};
  return ::stat((active_dir() / std::string(id)).c_str(), &sb) == 0;
}

RelayQueue::Staged::Staged(Staged&& o) noexcept
    : dir_(std::move(o.dir_)), tmp_(std::move(o.tmp_)), id_(std::move(o.id_)), env_fd_(o.env_fd_), data_fd_(o.data_fd_),
      published_(o.published_) {
  o.env_fd_ = o.data_fd_ = -1;
  o.id_.clear();
  o.published_ = true;
}

RelayQueue::Staged& RelayQueue::Staged::operator=(Staged&& o) noexcept {
  if (this != &o) {
    cleanup();
    dir_ = std::move(o.dir_);
    tmp_ = std::move(o.tmp_);
    id_ = std::move(o.id_);
    env_fd_ = o.env_fd_;
    data_fd_ = o.data_fd_;
    published_ = o.published_;
    o.env_fd_ = o.data_fd_ = -1;
    o.id_.clear();
    o.published_ = true;
  }
  return *this;
}

RelayQueue::Staged::~Staged() { cleanup(); }

void RelayQueue::Staged::cleanup() noexcept {
  if (env_fd_ >= 0) ::close(env_fd_);
  if (data_fd_ >= 0) ::close(data_fd_);
  env_fd_ = data_fd_ = -1;
  if (!published_ && !id_.empty()) {
    ::unlink((tmp_ / (id_ + ".env")).c_str());
    ::unlink((tmp_ / (id_ + ".data")).c_str());
  }
  published_ = true;
}

std::vector<int> RelayQueue::Staged::files_to_sync() const {
  std::vector<int> out;
  if (env_fd_ >= 0) out.push_back(env_fd_);
  if (data_fd_ >= 0) out.push_back(data_fd_);
  return out;
}

Status RelayQueue::Staged::publish() {
  if (published_) return fail(Errc::internal, "queue entry already published");
  auto tmp_data = tmp_ / (id_ + ".data");
  auto tmp_env = tmp_ / (id_ + ".env");
  if (::rename(tmp_data.c_str(), (dir_ / "data" / id_).c_str()) != 0) {
    int e = errno;
    cleanup();
    return fail_errno("queue: rename data " + id_, e);
  }
  if (::rename(tmp_env.c_str(), (dir_ / "incoming" / id_).c_str()) != 0) {
    int e = errno;
    ::unlink((dir_ / "data" / id_).c_str());
    cleanup();
    return fail_errno("queue: rename envelope " + id_, e);
  }
  published_ = true;
  if (env_fd_ >= 0) ::close(env_fd_);
  if (data_fd_ >= 0) ::close(data_fd_);
  env_fd_ = data_fd_ = -1;
  return {};
}

std::vector<fs::path> RelayQueue::Staged::dirs_to_sync() const {
  return {dir_ / "data", dir_ / "incoming"};
}

// A new entry's id and tmp/ names, after the envelope's checks.
Result<RelayQueue::Staged> RelayQueue::begin_stage(const QueueEnvelope& env) const {
  if (env.recipients.empty()) return fail(Errc::invalid_argument, "queue: no recipients");
  if (!env.dsn.empty() && env.dsn.size() != env.recipients.size())
    return fail(Errc::invalid_argument, "queue: DSN requests do not match the recipients");
  Staged s;
  s.dir_ = dir_;
  s.tmp_ = tmp_dir();
  // A node taken for dead while it ran lost its tmp/ folder to the
  // takeover (RelayQueue::adopt): it makes a new one and goes on.
  if (!node_.empty() && ::access(s.tmp_.c_str(), F_OK) != 0)
    if (auto st = util::make_dirs(s.tmp_, 0700); !st) return unexpected(st.error());
  s.id_ = util::unique_name_part();
  if (!node_.empty()) util::append(s.id_, ".", node_);
  s.published_ = false;
  return s;
}

Result<RelayQueue::Staged> RelayQueue::stage(const QueueEnvelope& env, const fs::path& message_path,
                                             std::uint64_t size) const {
  auto staged = begin_stage(env);
  if (!staged) return staged;
  Staged& s = *staged;
  auto tmp_data = s.tmp_ / (s.id_ + ".data");
  if (::link(message_path.c_str(), tmp_data.c_str()) != 0) {
    int fd = ::open(tmp_data.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return fail_errno("queue: create " + tmp_data.string(), errno);
    s.data_fd_ = fd;
    if (auto st = copy_into(message_path, fd, tmp_data); !st) return unexpected(st.error());
  }
  if (auto st = write_staged_envelope(s, env, size); !st) return unexpected(st.error());
  return staged;
}

Result<RelayQueue::Staged> RelayQueue::stage(const QueueEnvelope& env, std::string_view message) const {
  auto staged = begin_stage(env);
  if (!staged) return staged;
  Staged& s = *staged;
  auto tmp_data = s.tmp_ / (s.id_ + ".data");
  int fd = ::open(tmp_data.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return fail_errno("queue: create " + tmp_data.string(), errno);
  s.data_fd_ = fd;
  if (auto st = util::write_all(fd, message, tmp_data); !st) return unexpected(st.error());
  if (auto st = write_staged_envelope(s, env, message.size()); !st) return unexpected(st.error());
  return staged;
}

Status RelayQueue::write_staged_envelope(Staged& s, const QueueEnvelope& env, std::uint64_t size) const {
  QueueEntry e;
  e.id = s.id_;
  e.sender = env.sender;
  e.client_ip = env.client_ip;
  e.auth_user = env.auth_user;
  e.created = e.next_attempt = unix_now();
  e.size = size;
  e.ret = env.ret;
  e.envid = env.envid;
  e.smtputf8 = env.smtputf8;
  for (std::size_t i = 0; i < env.recipients.size(); ++i)
    e.recipients.push_back({env.recipients[i], RecipientState::pending, 0, {},
                            env.dsn.empty() ? DsnRequest{} : env.dsn[i]});
  auto tmp_env = s.tmp_ / (s.id_ + ".env");
  int fd = ::open(tmp_env.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return fail_errno("queue: create " + tmp_env.string(), errno);
  s.env_fd_ = fd;
  return util::write_all(fd, serialize_queue_entry(e), tmp_env);
}

namespace {
Status finish_durably(RelayQueue::Staged& s, int extra_fd) {
  for (int fd : s.files_to_sync())
    if (::fsync(fd) != 0) return fail_errno("queue: fsync", errno);
  if (extra_fd >= 0 && ::fsync(extra_fd) != 0) return fail_errno("queue: fsync", errno);
  if (auto st = s.publish(); !st) return st;
  for (const auto& d : s.dirs_to_sync())
    if (auto st = util::fsync_dir(d); !st) return st;
  return {};
}
}  // namespace

Result<std::string> RelayQueue::enqueue(const QueueEnvelope& env, const fs::path& message_file) const {
  struct stat st{};
  if (::stat(message_file.c_str(), &st) != 0) return fail_errno("queue: " + message_file.string(), errno);
  auto s = stage(env, message_file, static_cast<std::uint64_t>(st.st_size));
  if (!s) return unexpected(s.error());
  // A linked data file shares the caller's inode: sync it through our name.
  util::UniqueFd data(::open((tmp_dir() / (s->id() + ".data")).c_str(), O_RDONLY | O_CLOEXEC));
  if (auto r = finish_durably(*s, data.get()); !r) return unexpected(r.error());
  return s->id();
}

Result<std::string> RelayQueue::enqueue(const QueueEnvelope& env, std::string_view message) const {
  auto tmp = tmp_dir() / util::cat("in.", util::unique_name_part());
  {
    util::UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (fd.get() < 0) return fail_errno("queue: create " + tmp.string(), errno);
    if (auto st = util::write_all(fd.get(), message, tmp); !st) {
      ::unlink(tmp.c_str());
      return unexpected(st.error());
    }
  }
  auto r = enqueue(env, tmp);
  ::unlink(tmp.c_str());
  return r;
}

Result<std::vector<std::string>> RelayQueue::list() const {
  std::vector<std::string> out;
  std::vector<fs::path> dirs{dir_ / "incoming", dir_ / "deferred"};
  for (auto& d : claim_dirs()) dirs.push_back(std::move(d));
  for (const auto& d : dirs) {
    auto names = entries_in(d);
    if (!names) return unexpected(names.error());
    for (auto& n : *names)
      if (validate_id(n)) out.push_back(std::move(n));
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

Result<QueueEntry> RelayQueue::load(std::string_view id) const {
  QueueState state{};
  auto path = find(id, &state, true);
  if (!path) return unexpected(path.error());
  auto text = util::read_file(*path);
  if (!text) return unexpected(text.error());
  auto e = parse_queue_entry(*text);
  if (!e) return unexpected(e.error());
  if (e->id != id) return fail(Errc::parse, "queue envelope " + std::string(id) + " names another id");
  e->state = state;
  return e;
}

Status RelayQueue::move(std::string_view id, QueueState to, Sync sync) const {
  QueueState from{};
  auto path = find(id, &from);
  if (!path) return unexpected(path.error());
  if (from == to) return {};
  auto dst = state_dir(to) / std::string(id);
  if (::rename(path->c_str(), dst.c_str()) != 0) {
    // A node's claims/ folder adopted while it ran (taken for dead): the
    // old claims are another node's now; this node claims into a new one.
    if (errno != ENOENT || to != QueueState::active || node_.empty() || ::access(path->c_str(), F_OK) != 0)
      return fail_errno("queue: move " + std::string(id), errno);
    if (auto st = util::make_dirs(active_dir(), 0700); !st) return st;
    if (::rename(path->c_str(), dst.c_str()) != 0) return fail_errno("queue: move " + std::string(id), errno);
  }
  if (sync == Sync::later) return {};
  if (auto st = util::fsync_dir(dst.parent_path()); !st) return st;
  return util::fsync_dir(path->parent_path());
}

Status RelayQueue::save(const QueueEntry& e) const {
  // A node saves a claimed entry only where its claim is: were the entry
  // taken over meanwhile, it must not be written back anywhere else.
  auto path = !node_.empty() && e.state == QueueState::active
                  ? (holds(e.id) ? Result<fs::path>(active_dir() / e.id)
                                 : fail(Errc::not_found, util::cat("queue entry ", e.id, " is not claimed by this node")))
                  : find(e.id);
  if (!path) return unexpected(path.error());
  return util::write_file_atomic(*path, serialize_queue_entry(e), 0600);
}

Status RelayQueue::update_recipient(std::string_view id, std::string_view address,
                                    RecipientState state, std::string_view reply) const {
  auto e = load(id);
  if (!e) return unexpected(e.error());
  bool found = false;
  for (auto& r : e->recipients) {
    if (r.address != address) continue;
    // A recorded delivery is final: never send twice after a 250.
    if (r.state == RecipientState::delivered)
      return fail(Errc::invalid_argument, "recipient " + std::string(address) + " already delivered");
    r.state = state;
    r.last_reply = std::string(reply);
    ++r.attempts;
    found = true;
  }
  if (!found) return fail(Errc::not_found, "no recipient " + std::string(address) + " in " + std::string(id));
  e->attempts.push_back({unix_now(), std::string(address) + ": " + std::string(reply)});
  return save(*e);
}

Status RelayQueue::retire(std::string_view id) const {
  auto path = node_.empty() ? find(id)
              : holds(id)   ? Result<fs::path>(active_dir() / std::string(id))
                            : fail(Errc::not_found, util::cat("queue entry ", id, " is not claimed by this node"));
  if (!path) return unexpected(path.error());
  std::string name(id);
  name += ".done";
  if (::rename(path->c_str(), (tmp_dir() / name).c_str()) != 0) {
    // As in stage(): a node's tmp/ taken away by a takeover, its claim made
    // again since.
    if (errno != ENOENT || node_.empty() || ::access(path->c_str(), F_OK) != 0)
      return fail_errno("queue: retire " + std::string(id), errno);
    if (auto st = util::make_dirs(tmp_dir(), 0700); !st) return st;
    if (::rename(path->c_str(), (tmp_dir() / name).c_str()) != 0)
      return fail_errno("queue: retire " + std::string(id), errno);
  }
  return {};
}

Status RelayQueue::purge_retired(std::string_view id) const {
  if (auto st = validate_id(id); !st) return st;
  std::string name(id);
  name += ".done";
  if (::unlink((tmp_dir() / name).c_str()) != 0 && errno != ENOENT)
    return fail_errno("queue: purge " + std::string(id), errno);
  if (::unlink(message_path(id).c_str()) != 0 && errno != ENOENT)
    return fail_errno("queue: remove data " + std::string(id), errno);
  return {};
}

fs::path RelayQueue::state_dir(QueueState state) const {
  return state == QueueState::active ? active_dir() : dir_ / to_string(state);
}

Status RelayQueue::remove(std::string_view id) const {
  auto path = find(id);
  if (!path) return unexpected(path.error());
  if (::unlink(path->c_str()) != 0) return fail_errno("queue: remove " + std::string(id), errno);
  if (auto st = util::fsync_dir(path->parent_path()); !st) return st;
  if (::unlink(message_path(id).c_str()) != 0 && errno != ENOENT)
    return fail_errno("queue: remove data " + std::string(id), errno);
  return {};
}

Result<std::optional<std::int64_t>> RelayQueue::next_due() const {
  std::optional<std::int64_t> best;
  for (auto st : {QueueState::incoming, QueueState::deferred}) {
    auto names = entries_in(dir_ / to_string(st));
    if (!names) return unexpected(names.error());
    for (const auto& n : *names) {
      if (!validate_id(n)) continue;
      auto e = load(n);
      if (!e) continue;
      auto t = st == QueueState::incoming ? std::min(e->next_attempt, e->created) : e->next_attempt;
      if (!best || t < *best) best = t;
    }
  }
  return best;
}

Result<std::vector<std::string>> RelayQueue::due(std::int64_t now) const {
  std::vector<std::string> out;
  for (auto st : {QueueState::incoming, QueueState::deferred}) {
    auto names = entries_in(dir_ / to_string(st));
    if (!names) return unexpected(names.error());
    for (const auto& n : *names) {
      if (!validate_id(n)) continue;
      if (st == QueueState::incoming) {
        out.push_back(n);
        continue;
      }
      auto e = load(n);
      if (e && e->next_attempt <= now) out.push_back(n);
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

Result<RelayQueue::Recovery> RelayQueue::recover() const {
  if (auto st = init(); !st) return unexpected(st.error());
  Recovery r;
  auto tmp = entries_in(tmp_dir());
  if (!tmp) return unexpected(tmp.error());
  for (const auto& n : *tmp)
    if (::unlink((tmp_dir() / n).c_str()) == 0) ++r.tmp_removed;
  // A node: its own claims, and what a single server left claimed.
  std::vector<fs::path> claimed{dir_ / "active"};
  if (!node_.empty()) claimed.push_back(active_dir());
  for (const auto& d : claimed) {
    auto active = entries_in(d);
    if (!active) return unexpected(active.error());
    for (const auto& n : *active)
      if (validate_id(n) && ::rename((d / n).c_str(), (dir_ / "incoming" / n).c_str()) == 0) ++r.reactivated;
  }
  // A takeover this node had begun when it stopped: finished now.
  if (!node_.empty()) {
    auto adopted = entries_in(dir_ / "adopted");
    if (!adopted) return unexpected(adopted.error());
    for (const auto& n : *adopted) {
      if (adopter_of(n) != node_) continue;
      Adoption a;
      if (auto st = drain_adopted(dir_ / "adopted" / n, a); !st) return unexpected(st.error());
      r.reactivated += a.entries;
      r.tmp_removed += a.tmp_removed;
    }
  }
  // Every envelope must parse and have its data file of the right size.
  std::vector<std::string> live;
  for (auto st : {QueueState::incoming, QueueState::deferred}) {
    auto names = entries_in(dir_ / to_string(st));
    if (!names) return unexpected(names.error());
    for (const auto& n : *names) {
      auto path = dir_ / to_string(st) / n;
      bool ok = false;
      if (validate_id(n)) {
        auto text = util::read_file(path);
        auto e = text ? parse_queue_entry(*text) : Result<QueueEntry>(unexpected(text.error()));
        struct stat sb{};
        ok = e && e->id == n && ::stat(message_path(n).c_str(), &sb) == 0 &&
             static_cast<std::uint64_t>(sb.st_size) == e->size;
      }
      if (ok) {
        live.push_back(n);
        continue;
      }
      // Never acknowledged (the 250 waits for both renames to be durable):
      // keep it aside for a human rather than guess.
      if (::rename(path.c_str(), (dir_ / "corrupt" / n).c_str()) == 0) ++r.corrupt;
    }
  }
  std::sort(live.begin(), live.end());
  auto data = entries_in(dir_ / "data");
  if (!data) return unexpected(data.error());
  const auto orphan_age = node_.empty() ? 0 : kOrphanAge;
  const auto now = unix_now();
  for (const auto& n : *data) {
    if (std::binary_search(live.begin(), live.end(), n)) continue;
    struct stat sb{};
    if (::stat((dir_ / "corrupt" / n).c_str(), &sb) == 0) continue;  // kept with its envelope
    if (orphan_age > 0) {
      // Another node's entry may be between its two renames (data first),
      // or claimed: only an hour-old data file without any envelope goes.
      if (find(n, nullptr, true)) continue;
      if (::stat((dir_ / "data" / n).c_str(), &sb) != 0 || now - sb.st_ctime < orphan_age) continue;
    }
    if (::unlink((dir_ / "data" / n).c_str()) == 0) ++r.orphans_removed;
  }
  for (const auto& d : {tmp_dir(), dir_ / "data", dir_ / "incoming", dir_ / "corrupt"}) (void)util::fsync_dir(d);
  return r;
}

Result<RelayQueue::Adoption> RelayQueue::adopt(std::string_view dead) const {
  if (node_.empty() || dead == node_ || !node_name_ok(dead))
    return fail(Errc::invalid_argument, util::cat("queue: cannot adopt node '", dead, "'"));
  Adoption a;
  const std::string d(dead);
  // One rename each takes the dead node's claims and tmp/ away: whatever
  // it still does with them fails from now on.
  auto mine = dir_ / "adopted" / util::cat(d, "@", node_, "@", util::unique_name_part());
  bool made = false;
  for (auto [from, sub] : {std::pair{dir_ / "claims" / d, "claims"}, std::pair{dir_ / "tmp" / d, "tmp"}}) {
    if (::access(from.c_str(), F_OK) != 0) continue;
    if (!made) {
      if (auto st = util::make_dirs(mine, 0700); !st) return unexpected(st.error());
      made = true;
    }
    if (::rename(from.c_str(), (mine / sub).c_str()) != 0 && errno != ENOENT)
      return fail_errno("queue: adopt " + d, errno);
  }
  if (made) (void)util::fsync_dir(dir_ / "adopted");
  // Adoptions of the dead node's, or this node's own (a crash mid-way),
  // left unfinished; each is drained by renames only, so two drainers
  // never put an entry back twice.
  auto adopted = entries_in(dir_ / "adopted");
  if (!adopted) return unexpected(adopted.error());
  for (const auto& n : *adopted) {
    auto adopter = adopter_of(n);
    if (adopter.empty() || (adopter != dead && adopter != node_)) continue;
    if (auto st = drain_adopted(dir_ / "adopted" / n, a); !st) return unexpected(st.error());
  }
  return a;
}

Status RelayQueue::drain_adopted(const fs::path& adopted, Adoption& a) const {
  if (auto names = entries_in(adopted / "claims", true)) {
    for (const auto& n : *names) {
      auto from = adopted / "claims" / n;
      if (!validate_id(n)) {  // a save's temporary file
        ::unlink(from.c_str());
        continue;
      }
      if (::rename(from.c_str(), (dir_ / "incoming" / n).c_str()) == 0) ++a.entries;
      else if (errno != ENOENT) return fail_errno("queue: adopt " + n, errno);
    }
    if (a.entries > 0) (void)util::fsync_dir(dir_ / "incoming");
  }
  if (auto names = entries_in(adopted / "tmp", true)) {
    for (const auto& n : *names) {
      // A retired entry: delivered; its data file goes with it. Anything
      // else was never published, so never acknowledged.
      if (n.ends_with(".done")) {
        auto id = n.substr(0, n.size() - 5);
        if (validate_id(id) && !find(id, nullptr, true)) ::unlink(message_path(id).c_str());
      }
      if (::unlink((adopted / "tmp" / n).c_str()) == 0) ++a.tmp_removed;
    }
  }
  for (auto sub : {"claims", "tmp"}) ::rmdir((adopted / sub).c_str());
  if (::rmdir(adopted.c_str()) != 0 && errno != ENOENT && errno != ENOTEMPTY)
    return fail_errno("queue: remove " + adopted.string(), errno);
  return {};
}

}  // namespace wizmail
