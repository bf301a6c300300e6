// The web console's administrator requests (docs/console.md): dashboard,
// per-account settings, mailing lists, the queue, logs, configuration, DKIM.
// Each is the operation the `wizmail` command runs, through the same library
// call; nothing here knows a file format the library does not already own.
#include <sys/statvfs.h>

#include <algorithm>
#include <ctime>
#include <mutex>

#include "config/def_edit.hpp"
#include "config/parser.hpp"
#include "config/table.hpp"
#include "server/console_api.hpp"
#include "server/console_logs.hpp"
#include "util/strings.hpp"
#include "wizmail/account_store.hpp"
#include "wizmail/admin/daemon.hpp"
#include "wizmail/admin/dkim.hpp"
#include "wizmail/queue.hpp"
#include "wizmail/relay.hpp"
#include "wizmail_version.h"

namespace wizmail::server::console {

namespace {
using nlohmann::json;
using Req = httplib::Request;
using Res = httplib::Response;
namespace fs = std::filesystem;

// One def-file edit at a time (the pool serves 4 requests at once): read,
// change, validate, write and reload are one step.
std::mutex& edit_mutex() {
  static std::mutex mu;
  return mu;
}

std::int64_t now_s() { return static_cast<std::int64_t>(::time(nullptr)); }

// The last this many bytes of a log are read for a tail, and for a search or
// a session (never the whole of a big file).
constexpr std::size_t tail_bytes = 1 << 20;
constexpr std::size_t search_bytes = 16 << 20;
constexpr std::size_t max_log_lines = 1000;
constexpr std::size_t max_queue_entries = 1000;

// A def file's text; "" when it does not exist.
Result<std::string> def_text(const fs::path& p) {
  auto t = config::read_def_file(p);
  if (!t && t.error().code == Errc::not_found) return std::string();
  return t;
}

// The account named in the path, existing and of `kind` (an ordinary
// account or a list); else the answer is made.
std::optional<std::pair<std::string, fs::path>> existing(const Config& cfg, const std::string& raw, Res& res,
                                                           bool list) {
  auto name = AccountStore::normalize_name(raw);
  if (!name) {
    send_error(res, 400, name.error().message);
    return std::nullopt;
  }
  AccountStore store(cfg.mailbox_dir());
  auto kind = store.lookup(*name);
  if (!kind) {
    send_error(res, 500, kind.error().message);
    return std::nullopt;
  }
  if (*kind == AccountKind::none || (list && *kind != AccountKind::mailing_list)) {
    send_error(res, 404, list ? util::cat("no mailing list ", *name) : util::cat("no account ", *name));
    return std::nullopt;
  }
  auto dir = store.account_dir(*name);
  if (!dir) {
    send_error(res, 400, dir.error().message);
    return std::nullopt;
  }
  return std::pair{*name, *dir};
}

// config.def's keys (those an account may override), with the account's
// value ("" and set:false when its config.def does not set it) and the
// server-wide one.
json account_settings_json(const Config& cfg, std::string_view text, bool lists_only) {
  json rows = json::array();
  for (const auto& k : config::keys()) {
    if (!k.account_override || k.obsolete) continue;
    if (lists_only != k.name.starts_with("mailing_list_")) continue;
    auto v = config::def_value(text, config::names_of(k));
    rows.push_back(json{{"key", k.name},
                        {"value", v ? *v : std::string()},
                        {"set", v.has_value()},
                        {"default", config::format_value(k, k.field.get(cfg))},
                        {"type", config::type_name(k.type)},
                        {"allowed", config::allowed_text(k)},
                        {"doc", k.doc}});
  }
  return rows;
}

// Set one config.def key of the account in `dir`, validated as delivery
// reads it (Config::account_settings_from_text: "file:line: key: message").
void put_account_setting(const Config& cfg, const fs::path& dir, const std::string& account, const Req& req,
                         Res& res) {
  auto c = parse_setting(req.body);
  if (!c) return send_error(res, 400, c.error().message);
  const auto* k = config::find_key_any(c->key);
  if (!k || !k->account_override || k->obsolete)
    return send_error(res, 400, util::cat("'", c->key, "' is not a key config.def may set"));
  std::lock_guard lk(edit_mutex());
  auto path = dir / "config.def";
  auto text = def_text(path);
  if (!text) return send_error(res, 500, text.error().message);
  auto next = config::set_def_value(*text, config::names_of(*k),
                                    c->value.empty() ? std::nullopt : std::optional<std::string_view>(c->value));
  if (!next) return send_error(res, 400, next.error().message);
  if (auto v = cfg.account_settings_from_text(*next, path.string()); !v)
    return send_error(res, 400, v.error().message);
  if (auto st = config::write_def_file(path, *next); !st) return send_error(res, 500, st.error().message);
  send_json(res, 200, json{{"account", account}, {"key", k->name}, {"value", c->value}});
}

json queue_entry_json(const QueueEntry& e) {
  json rcpts = json::array();
  int attempts = 0;
  std::string last_error;
  for (const auto& r : e.recipients) {
    rcpts.push_back(json{{"address", r.address}, {"status", to_string(r.state)}, {"attempts", r.attempts},
                         {"last_reply", r.last_reply}});
    attempts = std::max(attempts, r.attempts);
    if (!r.last_reply.empty()) last_error = r.last_reply;
  }
  if (!e.attempts.empty()) last_error = e.attempts.back().text;
  return json{{"id", e.id},
              {"state", to_string(e.state)},
              {"from", e.sender},
              {"recipients", std::move(rcpts)},
              {"size", e.size},
              {"attempts", attempts},
              {"created", e.created},
              {"next_attempt", e.state == QueueState::deferred ? json(e.next_attempt) : json(nullptr)},
              {"last_error", last_error},
              {"client_ip", e.client_ip},
              {"auth_user", e.auth_user}};
}

std::optional<std::string> queue_id(const Req& req, Res& res) {
  auto id = req.matches[1].str();
  if (auto st = RelayQueue::validate_id(id); !st) {
    send_error(res, 400, st.error().message);
    return std::nullopt;
  }
  return id;
}

const std::pair<std::string_view, std::string_view> log_files[] = {
    {"smtp", "smtp.log"}, {"pop", "pop.log"}, {"error", "error.log"}};

// ml.def's keys (SPEC §7), with what each says.
const std::pair<std::string_view, std::string_view> ml_keys[] = {
    {"count", "the number of the next post (the subject prefix [name0001])"},
    {"admin_mail_address", "the list's administrator; empty = postmaster@<domain>"},
    {"return_path", "the envelope sender of posts; empty = admin_mail_address"},
    {"name", "the subject prefix's name; empty = the account name"},
};

void dashboard(const Api& api, const Req& req, Res& res) {
  if (!api.admin(req, res)) return;
  auto cfg = api.deps->config();
  const auto now = now_s();
  json sessions{{"smtp", 0}, {"submission", 0}, {"smtps", 0}, {"pop3", 0}, {"pop3s", 0}};
  if (api.deps->live_sessions)
    for (const auto& s : api.deps->live_sessions()) {
      auto name = std::string(to_string(s.protocol));
      sessions[name] = sessions.value(name, 0) + 1;
    }
  // The queue: its length and its oldest entry (ids sort oldest first).
  RelayQueue queue(cfg->queue_dir(), cfg->node);
  json qj{{"length", 0}, {"oldest_age_s", nullptr}};
  if (auto ids = queue.list()) {
    qj["length"] = ids->size();
    for (const auto& id : *ids)
      if (auto e = queue.load(id)) {
        qj["oldest_age_s"] = std::max<std::int64_t>(0, now - e->created);
        break;
      }
  }
  json disk{{"path", cfg->home.string()}, {"total_bytes", nullptr}, {"free_bytes", nullptr}};
  struct statvfs vfs{};
  if (::statvfs(cfg->home.c_str(), &vfs) == 0) {
    disk["total_bytes"] = static_cast<std::uint64_t>(vfs.f_blocks) * vfs.f_frsize;
    disk["free_bytes"] = static_cast<std::uint64_t>(vfs.f_bavail) * vfs.f_frsize;
  }
  json series;
  if (api.deps->stats) api.series->observe(now, series_totals(api.deps->stats()));
  auto snap = api.series->snapshot(now);
  series["minute_start"] = snap.minute_start;
  series["received"] = snap.counts[ops::MinuteSeries::received];
  series["delivered"] = snap.counts[ops::MinuteSeries::delivered];
  series["relayed"] = snap.counts[ops::MinuteSeries::relayed];
  series["bounced"] = snap.counts[ops::MinuteSeries::bounced];
  json totals;
  if (api.deps->stats) {
    auto st = api.deps->stats();
    totals = json{{"received", st.messages_received}, {"delivered", st.messages_delivered},
                  {"relayed", st.messages_relayed}, {"bounced", st.messages_bounced},
                  {"sessions_total", st.sessions_total}};
  }
  send_json(res, 200, json{{"version", WIZMAIL_VERSION}, {"started", api.deps->started}, {"now", now},
                           {"sessions", sessions}, {"queue", qj}, {"disk", disk}, {"series", series},
                           {"totals", totals}});
}

void add_account_routes(httplib::Server& h, const Api& api) {
  h.Get(R"(/api/accounts/([^/]+)/settings)", [api](const Req& req, Res& res) {
    if (!api.admin(req, res)) return;
    auto cfg = api.deps->config();
    auto acc = existing(*cfg, req.matches[1].str(), res, false);
    if (!acc) return;
    auto text = def_text(acc->second / "config.def");
    if (!text) return send_error(res, 500, text.error().message);
    json rows = account_settings_json(*cfg, *text, false);
    for (auto& r : account_settings_json(*cfg, *text, true)) rows.push_back(std::move(r));
    send_json(res, 200, json{{"account", acc->first}, {"settings", std::move(rows)}});
  });
  h.Put(R"(/api/accounts/([^/]+)/settings)", [api](const Req& req, Res& res) {
    if (!api.admin(req, res)) return;
    auto cfg = api.deps->config();
    auto acc = existing(*cfg, req.matches[1].str(), res, false);
    if (!acc) return;
    put_account_setting(*cfg, acc->second, acc->first, req, res);
  });
}

void add_list_routes(httplib::Server& h, const Api& api) {
  h.Get("/api/lists", [api](const Req& req, Res& res) {
    if (!api.admin(req, res)) return;
    auto cfg = api.deps->config();
    AccountStore store(cfg->mailbox_dir());
    auto names = store.list();
    if (!names) return send_error(res, 500, names.error().message);
    json lists = json::array();
    for (const auto& n : *names) {
      auto kind = store.lookup(n);
      if (!kind || *kind != AccountKind::mailing_list) continue;
      auto m = store.members(n);
      json row{{"name", n}, {"members", m ? json(m->size()) : json(nullptr)}};
      if (!m) row["error"] = m.error().message;
      lists.push_back(std::move(row));
    }
    send_json(res, 200, json{{"lists", std::move(lists)}});
  });
  h.Get(R"(/api/lists/([^/]+))", [api](const Req& req, Res& res) {
    if (!api.admin(req, res)) return;
    auto cfg = api.deps->config();
    auto list = existing(*cfg, req.matches[1].str(), res, true);
    if (!list) return;
    AccountStore store(cfg->mailbox_dir());
    auto members = store.members(list->first);
    if (!members) return send_error(res, 500, members.error().message);
    auto ml = load_ml_def(list->second / "ml.def");
    if (!ml) return send_error(res, 500, ml.error().message);
    json settings = json::array();
    for (const auto& [key, doc] : ml_keys) {
      std::string value = key == "count" ? std::to_string(ml->count)
                          : key == "admin_mail_address" ? ml->admin_mail_address
                          : key == "return_path"        ? ml->return_path
                                                        : ml->name;
      settings.push_back(json{{"key", key}, {"file", "ml.def"}, {"value", value}, {"default", key == "count" ? "0" : ""},
                              {"doc", doc}});
    }
    auto text = def_text(list->second / "config.def");
    if (!text) return send_error(res, 500, text.error().message);
    for (auto& r : account_settings_json(*cfg, *text, true)) {
      r["file"] = "config.def";
      settings.push_back(std::move(r));
    }
    send_json(res, 200, json{{"name", list->first}, {"members", *members}, {"settings", std::move(settings)}});
  });
  h.Put(R"(/api/lists/([^/]+)/members)", [api](const Req& req, Res& res) {
    if (!api.admin(req, res)) return;
    auto want = parse_members(req.body);
    if (!want) return send_error(res, 400, want.error().message);
    for (std::size_t i = 0; i < want->size(); ++i) {
      const auto& a = (*want)[i];
      if (auto st = AccountStore::validate_address(a); !st)
        return send_error(res, 400, util::cat("members[", std::to_string(i), "]: ", st.error().message));
      for (std::size_t j = 0; j < i; ++j)
        if (util::iequals((*want)[j], a)) return send_error(res, 400, util::cat("members: ", a, " is given twice"));
    }
    auto cfg = api.deps->config();
    auto list = existing(*cfg, req.matches[1].str(), res, true);
    if (!list) return;
    std::lock_guard lk(edit_mutex());
    AccountStore store(cfg->mailbox_dir());
    auto have = store.members(list->first);
    if (!have) return send_error(res, 500, have.error().message);
    auto in = [](const std::vector<std::string>& v, std::string_view a) {
      return std::any_of(v.begin(), v.end(), [&](const std::string& x) { return util::iequals(x, a); });
    };
    // The operations of `wizmail ml add` / `ml del`, one address each.
    for (const auto& a : *have)
      if (!in(*want, a))
        if (auto st = store.remove_member(list->first, a); !st && st.error().code != Errc::not_found)
          return send_error(res, 500, st.error().message);
    for (const auto& a : *want)
      if (!in(*have, a))
        if (auto st = store.add_member(list->first, a); !st && st.error().code != Errc::already_exists)
          return send_error(res, status_of(st.error()), st.error().message);
    auto now = store.members(list->first);
    if (!now) return send_error(res, 500, now.error().message);
    send_json(res, 200, json{{"name", list->first}, {"members", *now}});
  });
  h.Put(R"(/api/lists/([^/]+)/settings)", [api](const Req& req, Res& res) {
    if (!api.admin(req, res)) return;
    auto cfg = api.deps->config();
    auto list = existing(*cfg, req.matches[1].str(), res, true);
    if (!list) return;
    auto c = parse_setting(req.body);
    if (!c) return send_error(res, 400, c.error().message);
    bool ml_key = std::any_of(std::begin(ml_keys), std::end(ml_keys), [&](const auto& k) { return k.first == c->key; });
    if (!ml_key) return put_account_setting(*cfg, list->second, list->first, req, res);
    std::lock_guard lk(edit_mutex());
    auto path = list->second / "ml.def";
    auto ml = load_ml_def(path);
    if (!ml) return send_error(res, 500, ml.error().message);
    if (c->key == "count") {
      auto n = util::parse_int(c->value);
      if (!n || *n < 0) return send_error(res, 400, "count: a whole number, 0 or more");
      ml->count = *n;
    } else if (c->key == "admin_mail_address" || c->key == "return_path") {
      if (!c->value.empty())
        if (auto st = AccountStore::validate_address(c->value); !st)
          return send_error(res, 400, util::cat(c->key, ": ", st.error().message));
      (c->key == "admin_mail_address" ? ml->admin_mail_address : ml->return_path) = c->value;
    } else {
      ml->name = c->value;
    }
    // save_ml_def refuses what ml.def cannot hold (a line break, NUL, blanks around).
    if (auto st = save_ml_def(path, *ml); !st) return send_error(res, status_of(st.error()), st.error().message);
    send_json(res, 200, json{{"name", list->first}, {"key", c->key}, {"value", c->value}});
  });
}

void add_queue_routes(httplib::Server& h, const Api& api) {
  h.Get("/api/queue", [api](const Req& req, Res& res) {
    if (!api.admin(req, res)) return;
    auto cfg = api.deps->config();
    RelayQueue queue(cfg->queue_dir(), cfg->node);
    auto ids = queue.list();
    if (!ids) return send_error(res, 500, ids.error().message);
    json entries = json::array();
    for (const auto& id : *ids) {
      if (entries.size() >= max_queue_entries) break;
      auto e = queue.load(id);
      if (!e) continue;  // delivered or deleted since the listing, or unreadable
      entries.push_back(queue_entry_json(*e));
    }
    send_json(res, 200, json{{"entries", std::move(entries)}, {"length", ids->size()}});
  });
  h.Post("/api/queue/flush", [api](const Req& req, Res& res) {
    if (!api.admin(req, res)) return;
    // As `wizmail queue flush` asks the running server.
    if (auto st = api.deps->flush_queue ? api.deps->flush_queue() : Status(fail(Errc::unavailable, "no server"));
        !st)
      return send_error(res, 503, st.error().message);
    send_json(res, 200, json{{"flushed", true}});
  });
  h.Get(R"(/api/queue/([^/]+))", [api](const Req& req, Res& res) {
    if (!api.admin(req, res)) return;
    auto id = queue_id(req, res);
    if (!id) return;
    auto cfg = api.deps->config();
    RelayQueue queue(cfg->queue_dir(), cfg->node);
    auto e = queue.load(*id);
    if (!e) return send_error(res, status_of(e.error()), e.error().message);
    json j = queue_entry_json(*e);
    json attempts = json::array();
    for (const auto& a : e->attempts) attempts.push_back(json{{"time", a.time}, {"text", a.text}});
    j["attempt_log"] = std::move(attempts);
    auto headers = read_header_block(queue.message_path(*id));
    j["headers"] = headers ? *headers : std::string();
    send_json(res, 200, j);
  });
  h.Delete(R"(/api/queue/([^/]+))", [api](const Req& req, Res& res) {
    if (!api.admin(req, res)) return;
    auto id = queue_id(req, res);
    if (!id) return;
    auto cfg = api.deps->config();
    RelayQueue queue(cfg->queue_dir(), cfg->node);
    // As `wizmail queue delete` with a server running: an entry being
    // delivered right now is refused (409, try again).
    if (auto st = delete_queue_entry(queue, *id, false); !st)
      return send_error(res, status_of(st.error()), st.error().message);
    send_json(res, 200, json{{"deleted", *id}});
  });
}

void add_log_routes(httplib::Server& h, const Api& api) {
  h.Get("/api/logs", [api](const Req& req, Res& res) {
    if (!api.admin(req, res)) return;
    std::string file = req.has_param("file") ? req.get_param_value("file") : "smtp";
    auto it = std::find_if(std::begin(log_files), std::end(log_files), [&](const auto& f) { return f.first == file; });
    if (it == std::end(log_files)) return send_error(res, 400, "file: smtp, pop or error");
    LogQuery q;
    if (req.has_param("lines")) {
      auto n = util::parse_int(req.get_param_value("lines"));
      if (!n || *n < 1 || *n > static_cast<std::int64_t>(max_log_lines))
        return send_error(res, 400, "lines: 1 to 1000");
      q.max_lines = static_cast<std::size_t>(*n);
    }
    q.contains = req.get_param_value("q");
    if (q.contains.size() > 256) return send_error(res, 400, "q: at most 256 bytes");
    auto cfg = api.deps->config();
    auto lines = read_log_lines(cfg->log_dir() / it->second, q, q.contains.empty() ? tail_bytes : search_bytes);
    if (!lines) return send_error(res, 500, lines.error().message);
    send_json(res, 200, json{{"file", file}, {"lines", *lines}});
  });
  h.Get(R"(/api/logs/session/([^/]+))", [api](const Req& req, Res& res) {
    if (!api.admin(req, res)) return;
    auto id = req.matches[1].str();
    if (!valid_session_id(id)) return send_error(res, 400, "a session id is 1 to 32 letters and digits");
    auto cfg = api.deps->config();
    std::vector<std::pair<std::string_view, std::string>> all;
    for (const auto& [name, file] : log_files) {
      auto lines = read_log_lines(cfg->log_dir() / file, LogQuery{max_log_lines, {}, id}, search_bytes);
      if (!lines) return send_error(res, 500, lines.error().message);
      for (auto& l : *lines) all.emplace_back(name, std::move(l));
    }
    // In time order: every line starts with its UTC time "YYYY-MM-DD HH:MM:SS.mmm".
    std::stable_sort(all.begin(), all.end(),
                     [](const auto& a, const auto& b) { return a.second.substr(0, 23) < b.second.substr(0, 23); });
    json lines = json::array();
    for (const auto& [f, l] : all) lines.push_back(json{{"file", f}, {"line", l}});
    send_json(res, 200, json{{"session", id}, {"lines", std::move(lines)}});
  });
}

void add_config_routes(httplib::Server& h, const Api& api) {
  h.Get("/api/config", [api](const Req& req, Res& res) {
    if (!api.admin(req, res)) return;
    auto cfg = api.deps->config();
    json keys = json::array();
    for (const auto& k : config::keys()) {
      if (k.obsolete) continue;
      keys.push_back(json{{"key", k.name},
                          {"file", config::file_name(k.file)},
                          {"value", config::format_value(k, k.field.get(*cfg))},
                          {"default", k.default_value},
                          {"type", config::type_name(k.type)},
                          {"allowed", config::allowed_text(k)},
                          {"account_override", k.account_override},
                          {"doc", k.doc}});
    }
    send_json(res, 200, json{{"keys", std::move(keys)}});
  });
  h.Put("/api/config", [api](const Req& req, Res& res) {
    if (!api.admin(req, res)) return;
    auto c = parse_setting(req.body);
    if (!c) return send_error(res, 400, c.error().message);
    auto cfg = api.deps->config();
    // As `wizmail config set`: validated by the loader's parser, then written.
    auto edit = set_config_value(cfg->home, c->key, c->value);
    if (!edit) return send_error(res, edit.error().code == Errc::invalid_argument ? 400 : 500, edit.error().message);
    // As `wizmail reload` / SIGHUP: the running server loads the files again.
    if (auto st = api.deps->reload ? api.deps->reload() : Status(fail(Errc::unavailable, "no server")); !st)
      return send_error(res, 500, util::cat("written, but the reload failed: ", st.error().message));
    send_json(res, 200, json{{"key", edit->key}, {"file", edit->file}, {"value", edit->value}, {"reloaded", true}});
  });
  h.Get("/api/config/check", [api](const Req& req, Res& res) {
    if (!api.admin(req, res)) return;
    auto cfg = api.deps->config();
    // What `wizmail config check` prints, from the same function.
    json warnings = json::array(), errors = json::array();
    auto put = [&](const ConfigDiagnostic& d) {
      (d.severity == ConfigDiagnostic::Severity::error ? errors : warnings).push_back(d.to_string());
    };
    for (const auto& d : daemon::config_check(cfg->home, "", cfg->node)) put(d);
    send_json(res, 200, json{{"warnings", std::move(warnings)}, {"errors", std::move(errors)}});
  });
}

void add_dkim_routes(httplib::Server& h, const Api& api) {
  h.Get("/api/dkim", [api](const Req& req, Res& res) {
    if (!api.admin(req, res)) return;
    auto cfg = api.deps->config();
    // HOME/def/dkim/<domain>/<selector>.key (docs/dkim.md); each key's
    // record as `wizmail dkim show DOMAIN --selector S` gives it.
    json records = json::array();
    std::error_code ec;
    std::vector<std::pair<std::string, std::string>> keys;
    for (const auto& d : fs::directory_iterator(cfg->home / "def" / "dkim", ec)) {
      if (!d.is_directory(ec)) continue;
      std::error_code ec2;
      for (const auto& f : fs::directory_iterator(d.path(), ec2))
        if (f.path().extension() == ".key" && f.is_regular_file(ec2))
          keys.emplace_back(d.path().filename().string(), f.path().stem().string());
    }
    std::sort(keys.begin(), keys.end());
    for (const auto& [domain, selector] : keys) {
      auto k = dkim_show(cfg->home, domain, selector);
      if (!k) {
        records.push_back(json{{"domain", domain}, {"selector", selector}, {"error", k.error().message}});
        continue;
      }
      records.push_back(json{{"domain", k->domain},
                             {"selector", k->selector},
                             {"name", k->record_name},
                             {"type", "TXT"},
                             {"value", k->record},
                             {"strings", k->strings},
                             {"algorithm", k->algorithm},
                             {"active", k->active},
                             {"zone_line", k->zone_line()}});
    }
    send_json(res, 200, json{{"records", std::move(records)}});
  });
}
}  // namespace

void add_admin_routes(httplib::Server& h, const Api& api) {
  h.Get("/api/dashboard", [api](const Req& req, Res& res) { dashboard(api, req, res); });
  add_account_routes(h, api);
  add_list_routes(h, api);
  add_queue_routes(h, api);
  add_log_routes(h, api);
  add_config_routes(h, api);
  add_dkim_routes(h, api);
}

}  // namespace wizmail::server::console
