// Control protocol v1: requests, replies, the sessions table (docs/control.md).
#include <cmath>
#include <cstdio>
#include <optional>

#include "control/reply.hpp"
#include "wizmail/admin/control.hpp"
#include "wizmail/config.hpp"

namespace wizmail::control {

namespace fs = std::filesystem;

std::string_view to_string(Command c) noexcept {
  switch (c) {
    case Command::stop: return "stop";
    case Command::reload: return "reload";
    case Command::sessions: return "sessions";
    case Command::stats: return "stats";
    case Command::flush: return "flush";
    case Command::cluster: return "cluster";
  }
  return "stats";
}

Result<Request> parse_request(std::string_view line) {
  if (line.size() > kMaxRequestLine) return fail(Errc::limit, "request too long");
  auto doc = parse_json(line);
  if (!doc) return unexpected(doc.error());
  if (!doc->is_object()) return fail(Errc::invalid_argument, "request must be a JSON object");
  const Json* v = doc->get("v");
  if (!v) return fail(Errc::invalid_argument, "missing \"v\"");
  const double* vn = v->number();
  if (!vn || *vn != std::floor(*vn)) return fail(Errc::invalid_argument, "\"v\" must be an integer");
  if (*vn != kProtocolVersion)
    return fail(Errc::invalid_argument, "unsupported protocol version (this server speaks 1)");
  const Json* cmd = doc->get("cmd");
  if (!cmd || !cmd->string()) return fail(Errc::invalid_argument, "missing \"cmd\" string");
  Request r;
  static constexpr Command all[] = {Command::stop, Command::reload, Command::sessions,
                                    Command::stats, Command::flush, Command::cluster};
  bool known = false;
  for (auto c : all)
    if (*cmd->string() == to_string(c)) r.command = c, known = true;
  if (!known) return fail(Errc::invalid_argument, "unknown command");
  for (const auto& [key, value] : doc->members) {
    if (key == "v" || key == "cmd") continue;
    if (key == "force" && r.command == Command::stop) {
      if (!value.boolean()) return fail(Errc::invalid_argument, "\"force\" must be true or false");
      r.force = *value.boolean();
      continue;
    }
    return fail(Errc::invalid_argument, "unexpected member \"" + key + "\"");
  }
  return r;
}

namespace {
std::string dump(const nlohmann::ordered_json& j) {
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}
}  // namespace

std::string format_request(const Request& r) {
  nlohmann::ordered_json j{{"v", kProtocolVersion}, {"cmd", std::string(to_string(r.command))}};
  if (r.command == Command::stop) j["force"] = r.force;
  return dump(j);
}

std::string ok_reply(const nlohmann::ordered_json& fields) {
  nlohmann::ordered_json j{{"v", kProtocolVersion}, {"ok", true}};
  for (const auto& [k, v] : fields.items()) j[k] = v;
  return dump(j);
}

std::string error_reply(std::string_view code, std::string_view message) {
  return dump(nlohmann::ordered_json{{"v", kProtocolVersion},
                                     {"ok", false},
                                     {"error", std::string(code)},
                                     {"message", std::string(message)}});
}

fs::path control_socket_path(const fs::path& home, std::string_view node) {
  return run_dir(home, node) / "control.sock";
}
fs::path submit_socket_path(const fs::path& home, std::string_view node) {
  return run_dir(home, node) / "submit.sock";
}
fs::path pid_file_path(const fs::path& home, std::string_view node) { return run_dir(home, node) / "wizmail.pid"; }

Status check_reply(const Json& reply) {
  const Json* ok = reply.get("ok");
  if (!ok || !ok->boolean()) return fail(Errc::protocol, "malformed reply from the server");
  if (*ok->boolean()) return {};
  const Json* msg = reply.get("message");
  const Json* code = reply.get("error");
  std::string text = msg && msg->string() ? *msg->string() : "request failed";
  Errc errc = Errc::internal;
  if (code && code->string()) {
    if (*code->string() == "not_supported") errc = Errc::unavailable;
    else if (*code->string() == "bad_request") errc = Errc::invalid_argument;
  }
  return fail(errc, text);
}

namespace {

// A whole number that fits a long long, or nothing (converting any other
// double would be undefined).
std::optional<long long> whole(double d) {
  if (!(d >= -9.2e18 && d <= 9.2e18) || d != std::floor(d)) return std::nullopt;
  return static_cast<long long>(d);
}

std::string str_member(const Json& o, std::string_view key) {
  const Json* v = o.get(key);
  if (!v) return {};
  if (const auto* s = v->string()) return *s;
  if (const auto* n = v->number()) {
    if (auto w = whole(*n)) return std::to_string(*w);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", *n);
    return buf;
  }
  return {};
}

std::string age_text(const Json& o) {
  const Json* v = o.get("age");
  if (!v || !v->number()) return "-";
  auto w = whole(std::floor(*v->number()));
  if (!w || *w < 0) return "-";
  long long s = *w;
  char buf[32];
  if (s < 3600) std::snprintf(buf, sizeof buf, "%lld:%02lld", s / 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%lldh%02lld", s / 3600, (s / 60) % 60);
  return buf;
}

// Control characters and very long values would break the table.
std::string cell(std::string s, std::size_t max) {
  for (auto& c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) c = '?';
  if (s.size() > max) s = s.substr(0, max - 1) + "~";
  return s.empty() ? "-" : s;
}

void row(std::string& out, const std::vector<std::string>& cells, const std::vector<std::size_t>& w) {
  for (std::size_t i = 0; i < cells.size(); ++i) {
    out += cells[i];
    if (i + 1 < cells.size()) out += std::string(w[i] > cells[i].size() ? w[i] - cells[i].size() + 2 : 2, ' ');
  }
  out += '\n';
}

}  // namespace

Result<std::string> sessions_table(const Json& reply) {
  const Json* sessions = reply.get("sessions");
  const Json* workers = reply.get("workers");
  if (!sessions || !sessions->is_array() || !workers || !workers->is_array())
    return fail(Errc::invalid_argument, "not a sessions reply");
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"ID", "PROTO", "PEER", "ACCOUNT", "STATE", "AGE", "COMMAND"});
  for (const auto& s : sessions->items) {
    if (!s.is_object()) return fail(Errc::invalid_argument, "not a sessions reply");
    rows.push_back({cell(str_member(s, "id"), 12), cell(str_member(s, "protocol"), 10),
                    cell(str_member(s, "peer"), 47), cell(str_member(s, "account"), 32),
                    cell(str_member(s, "state"), 16), age_text(s),
                    cell(str_member(s, "command"), 60)});
  }
  std::vector<std::size_t> w(7, 0);
  for (const auto& r : rows)
    for (std::size_t i = 0; i < r.size(); ++i) w[i] = std::max(w[i], r[i].size());
  std::string out = std::to_string(sessions->items.size()) + " session" +
                    (sessions->items.size() == 1 ? "" : "s") + "\n";
  if (!sessions->items.empty())
    for (const auto& r : rows) row(out, r, w);
  std::vector<std::vector<std::string>> wrows;
  wrows.push_back({"WORKER", "STATE", "SINCE"});
  for (const auto& s : workers->items) {
    if (!s.is_object()) return fail(Errc::invalid_argument, "not a sessions reply");
    wrows.push_back({cell(str_member(s, "name"), 32), cell(str_member(s, "state"), 60), age_text(s)});
  }
  std::vector<std::size_t> ww(3, 0);
  for (const auto& r : wrows)
    for (std::size_t i = 0; i < r.size(); ++i) ww[i] = std::max(ww[i], r[i].size());
  out += std::to_string(workers->items.size()) + " worker" +
         (workers->items.size() == 1 ? "" : "s") + "\n";
  if (!workers->items.empty())
    for (const auto& r : wrows) row(out, r, ww);
  return out;
}

}  // namespace wizmail::control
