// Heartbeats of the nodes sharing a home (wizmail/admin/cluster.hpp).
#include "wizmail/admin/cluster.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <map>
#include <system_error>

#include "util/fd.hpp"
#include "util/fs.hpp"
#include "util/strings.hpp"
#include "wizmail/config.hpp"

namespace wizmail::cluster {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kKeys[] = {"node",          "pid",          "host",         "listen",
                                      "started",       "beat_ms",      "interval",     "sessions_smtp",
                                      "sessions_pop3", "queue_held"};

bool printable(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return u >= 0x20 && u != 0x7f;
  });
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) util::append(out, out.empty() ? "" : ",", i);
  return out;
}

}  // namespace

std::string format_heartbeat(const Heartbeat& b) {
  std::string out;
  util::append(out, "node=", b.node, "\n");
  util::append(out, "pid=", std::to_string(b.pid), "\n");
  util::append(out, "host=", b.host, "\n");
  util::append(out, "listen=", join(b.listen), "\n");
  util::append(out, "started=", std::to_string(b.started), "\n");
  util::append(out, "beat_ms=", std::to_string(b.beat_ms), "\n");
  util::append(out, "interval=", std::to_string(b.interval), "\n");
  util::append(out, "sessions_smtp=", std::to_string(b.sessions_smtp), "\n");
  util::append(out, "sessions_pop3=", std::to_string(b.sessions_pop3), "\n");
  util::append(out, "queue_held=", std::to_string(b.queue_held), "\n");
  return out;
}

Result<Heartbeat> parse_heartbeat(std::string_view text) {
  Heartbeat b;
  std::map<std::string, int, std::less<>> seen;
  int line_no = 0;
  auto bad = [&](std::string_view what) {
    return fail(Errc::parse, util::cat("heartbeat line ", std::to_string(line_no), ": ", what));
  };
  if (text.size() > 64 * 1024) return fail(Errc::parse, "heartbeat: larger than 64 KiB");
  while (!text.empty()) {
    ++line_no;
    auto nl = text.find('\n');
    if (nl == std::string_view::npos) return bad("not ended by a line end (written in part?)");
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    auto eq = line.find('=');
    if (eq == std::string_view::npos) return bad("expected key=value");
    std::string_view key = line.substr(0, eq), value = line.substr(eq + 1);
    if (std::find(std::begin(kKeys), std::end(kKeys), key) == std::end(kKeys))
      return bad(util::cat("unknown key '", key.substr(0, 40), "'"));
    if (!seen.emplace(std::string(key), line_no).second) return bad(util::cat("duplicate key '", key, "'"));
    if (!printable(value)) return bad(util::cat(key, ": control character in the value"));
    auto number = [&](std::int64_t lo, std::int64_t hi) -> std::optional<std::int64_t> {
      auto v = util::parse_int(value);
      if (!v || *v < lo || *v > hi) return std::nullopt;
      return v;
    };
    auto need = [&](std::int64_t lo, std::int64_t hi) -> Result<std::int64_t> {
      auto v = number(lo, hi);
      if (!v) return bad(util::cat(key, ": expected a number from ", std::to_string(lo), " to ", std::to_string(hi)));
      return *v;
    };
    constexpr std::int64_t big = std::int64_t{1} << 53;
    Result<std::int64_t> n{0};
    if (key == "node") {
      if (auto st = validate_node_name(value); !st) return bad(st.error().message);
      b.node = std::string(value);
    } else if (key == "host") {
      if (value.empty() || value.size() > 255) return bad("host: empty or longer than 255");
      b.host = std::string(value);
    } else if (key == "listen") {
      b.listen = util::split_list(value, ',');
    } else if (key == "pid") {
      if (!(n = need(1, 0x7fffffff))) return unexpected(n.error());
      b.pid = static_cast<pid_t>(*n);
    } else if (key == "started") {
      if (!(n = need(0, big))) return unexpected(n.error());
      b.started = *n;
    } else if (key == "beat_ms") {
      if (!(n = need(0, big))) return unexpected(n.error());
      b.beat_ms = *n;
    } else if (key == "interval") {
      if (!(n = need(1, 300))) return unexpected(n.error());
      b.interval = static_cast<int>(*n);
    } else {
      if (!(n = need(0, big))) return unexpected(n.error());
      if (key == "sessions_smtp") b.sessions_smtp = static_cast<std::uint64_t>(*n);
      else if (key == "sessions_pop3") b.sessions_pop3 = static_cast<std::uint64_t>(*n);
      else b.queue_held = static_cast<std::uint64_t>(*n);
    }
  }
  for (auto k : kKeys)
    if (!seen.contains(k)) return fail(Errc::parse, util::cat("heartbeat: missing key '", k, "'"));
  return b;
}

NodeStatus node_status(std::string name, std::optional<Heartbeat> beat, std::chrono::system_clock::time_point now) {
  NodeStatus s;
  s.name = std::move(name);
  if (!beat) return s;
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  // A clock a little behind another node's must not give a negative age.
  s.age_seconds = static_cast<double>(std::max<std::int64_t>(0, now_ms - beat->beat_ms)) / 1000.0;
  s.alive = s.age_seconds <= static_cast<double>(kMissedBeats) * beat->interval;
  s.beat = std::move(beat);
  return s;
}

std::vector<std::string> nodes_to_take_over(const std::vector<NodeStatus>& nodes, std::string_view self,
                                            std::chrono::seconds after) {
  std::vector<std::string> out;
  for (const auto& n : nodes) {
    if (n.name == self || !n.beat) continue;
    const double limit = std::max<double>(static_cast<double>(after.count()),
                                          static_cast<double>(kMissedBeats + 1) * n.beat->interval);
    if (n.age_seconds > limit) out.push_back(n.name);
  }
  return out;
}

Result<std::vector<NodeStatus>> read_cluster_status(const fs::path& home, std::chrono::system_clock::time_point now) {
  std::vector<NodeStatus> out;
  const fs::path dir = home / "nodes";
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory) return out;
    return fail(Errc::io, util::cat("cannot read ", dir.string(), ": ", ec.message()));
  }
  std::vector<std::string> names;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) return fail(Errc::io, util::cat("cannot read ", dir.string(), ": ", ec.message()));
    std::error_code ec2;
    if (!it->is_directory(ec2)) continue;
    auto name = it->path().filename().string();
    if (validate_node_name(name)) names.push_back(std::move(name));
  }
  std::sort(names.begin(), names.end());
  for (auto& name : names) {
    auto file = dir / name / "heartbeat";
    auto text = util::read_file(file);
    if (!text) {
      auto s = node_status(name, std::nullopt, now);
      s.problem = text.error().code == Errc::not_found ? "no heartbeat yet" : text.error().message;
      out.push_back(std::move(s));
      continue;
    }
    auto beat = parse_heartbeat(*text);
    if (!beat) {
      auto s = node_status(name, std::nullopt, now);
      s.problem = util::cat(file.string(), ": ", beat.error().message);
      out.push_back(std::move(s));
      continue;
    }
    if (beat->node != name) {
      auto s = node_status(name, std::nullopt, now);
      s.problem = util::cat(file.string(), ": written by node '", beat->node, "'");
      out.push_back(std::move(s));
      continue;
    }
    out.push_back(node_status(name, std::move(*beat), now));
  }
  return out;
}

namespace {
const char* state_of(const NodeStatus& n) { return !n.beat ? "unknown" : n.alive ? "alive" : "stale"; }
}  // namespace

std::string cluster_status_json(const std::vector<NodeStatus>& nodes) {
  nlohmann::ordered_json arr = nlohmann::ordered_json::array();
  for (const auto& n : nodes) {
    nlohmann::ordered_json j;
    j["name"] = n.name;
    j["alive"] = n.alive;
    j["state"] = state_of(n);
    if (!n.beat) {
      j["heartbeat_age_seconds"] = nullptr;
      j["problem"] = n.problem;
      arr.push_back(std::move(j));
      continue;
    }
    const auto& b = *n.beat;
    j["heartbeat_age_seconds"] = n.age_seconds;
    j["pid"] = b.pid;
    j["host"] = b.host;
    j["listen"] = b.listen;
    j["started"] = b.started;
    j["interval"] = b.interval;
    j["sessions"] = {{"smtp", b.sessions_smtp}, {"pop3", b.sessions_pop3}};
    j["queue_held"] = b.queue_held;
    arr.push_back(std::move(j));
  }
  nlohmann::ordered_json top;
  top["nodes"] = std::move(arr);
  return top.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string cluster_status_table(const std::vector<NodeStatus>& nodes) {
  if (nodes.empty()) return "no nodes (no folder under nodes/)\n";
  std::string out;
  char buf[512];
  std::snprintf(buf, sizeof buf, "%-20s %-7s %9s %8s %5s %5s %6s  %s\n", "NODE", "STATE", "BEAT AGE", "PID", "SMTP",
                "POP3", "QUEUE", "HOST");
  out += buf;
  for (const auto& n : nodes) {
    if (!n.beat) {
      std::snprintf(buf, sizeof buf, "%-20s %-7s %9s %8s %5s %5s %6s  %s\n", n.name.c_str(), state_of(n), "-", "-",
                    "-", "-", "-", n.problem.c_str());
    } else {
      const auto& b = *n.beat;
      std::snprintf(buf, sizeof buf, "%-20s %-7s %8.1fs %8d %5llu %5llu %6llu  %s\n", n.name.c_str(), state_of(n),
                    n.age_seconds, static_cast<int>(b.pid), static_cast<unsigned long long>(b.sessions_smtp),
                    static_cast<unsigned long long>(b.sessions_pop3), static_cast<unsigned long long>(b.queue_held),
                    b.host.c_str());
    }
    out += buf;
  }
  return out;
}

Status write_heartbeat(const fs::path& node_dir, const Heartbeat& beat) {
  const auto text = format_heartbeat(beat);
  const auto tmp = node_dir / util::cat(".heartbeat.", std::to_string(::getpid()), ".tmp");
  const auto file = node_dir / "heartbeat";
  util::UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (fd.get() < 0) return fail_errno(util::cat("create ", tmp.string()), errno);
  if (auto st = util::write_all(fd.get(), text, tmp); !st) {
    ::unlink(tmp.c_str());
    return st;
  }
  fd.reset();
  if (::rename(tmp.c_str(), file.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    return fail_errno(util::cat("rename ", tmp.string(), " to ", file.string()), e);
  }
  return {};
}

}  // namespace wizmail::cluster
