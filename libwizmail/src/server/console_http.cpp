#include "server/console_http.hpp"

#include <httplib.h>

#include <condition_variable>
#include <ctime>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "ops/http_service.hpp"
#include "server/console_api.hpp"
#include "server/console_assets.hpp"
#include "server/console_model.hpp"
#include "util/strings.hpp"
#include "wizmail/account_store.hpp"
#include "wizmail/admin/monitor.hpp"

namespace wizmail::server {

namespace {
using nlohmann::json;
using console::WebSession;
using console::send_error;
using console::send_json;

// A bounded pool: at most 4 requests are served at once; accepted
// connections beyond wait in the pool's queue, each bounded by the read
// timeout (a slow client holds one thread for at most that long).
constexpr ops::HttpLimits limits{.threads = 4, .io_timeout_s = 5, .keep_alive_requests = 20, .max_body = 16 * 1024};

// How often the dashboard's minute series samples the server's counters.
constexpr auto series_interval = std::chrono::seconds(2);

json account_row(const AccountStore& store, const std::string& name) {
  json row{{"account", name}};
  auto kind = store.lookup(name);
  if (!kind) {
    row["error"] = kind.error().message;
    return row;
  }
  row["kind"] = *kind == AccountKind::mailing_list ? "mailing_list" : "account";
  return row;
}
}  // namespace

struct ConsoleServer::Impl {
  Deps deps;
  bool tls = false;
  std::unique_ptr<ops::HttpService> service;
  httplib::Server* http = nullptr;  // service's
  console::SessionStore sessions{console::SessionStore::Options{}};
  ops::MinuteSeries series;
  std::thread sampler;
  std::mutex sampler_mu;
  std::condition_variable sampler_cv;
  bool sampler_stop = false;

  void sample() {
    if (deps.stats) series.observe(static_cast<std::int64_t>(::time(nullptr)), console::series_totals(deps.stats()));
  }
  void start_sampler() {
    sample();  // the base: what the server counted before is not this hour's
    sampler = std::thread([this] {
      std::unique_lock lk(sampler_mu);
      while (!sampler_cv.wait_for(lk, series_interval, [this] { return sampler_stop; })) {
        lk.unlock();
        sample();
        lk.lock();
      }
    });
  }
  void stop_sampler() {
    {
      std::lock_guard lk(sampler_mu);
      sampler_stop = true;
    }
    sampler_cv.notify_all();
    if (sampler.joinable()) sampler.join();
  }
  void log_error(std::string_view peer, std::string_view account, std::string_view text) const {
    if (deps.log_error) deps.log_error(peer, account, text);
  }

  bool is_admin(const Config& cfg, std::string_view account) const {
    for (const auto& a : cfg.server.admin_accounts)
      if (a == account) return true;
    return false;
  }

  // The request's live session, else the reply is made (401) and nullopt.
  std::optional<WebSession> session_of(const httplib::Request& req, httplib::Response& res) {
    std::optional<WebSession> s;
    if (auto c = console::cookie_value(req.get_header_value("Cookie"), console::session_cookie_name))
      s = sessions.find(*c);
    if (!s) {
      send_error(res, 401, "not logged in");
      return std::nullopt;
    }
    // A state-changing request carries the session's CSRF token.
    if (req.method != "GET" && req.method != "HEAD" &&
        !console::same_token(req.get_header_value("X-CSRF-Token"), s->csrf)) {
      send_error(res, 403, "missing or wrong X-CSRF-Token");
      return std::nullopt;
    }
    return s;
  }

  std::optional<WebSession> admin_of(const httplib::Request& req, httplib::Response& res) {
    auto s = session_of(req, res);
    if (!s) return s;
    if (!s->admin) {
      send_error(res, 403, "administrators only");
      return std::nullopt;
    }
    return s;
  }

  // A password checked exactly as SMTP AUTH checks it
  // (AccountStore::authenticate, SmtpConnection's Environment::authenticate),
  // through the same penalty as SMTP AUTH and POP3: admission, the wait
  // before the check (right or wrong), failures and success per client
  // network. Unless `ok`, the answer is made (429, 401, 503) and a refusal
  // or failure logged in error.log, named by `what`.
  enum class Check { ok, refused };
  Check checked_password(const httplib::Request& req, httplib::Response& res, const Config& cfg,
                         const std::string& account, const std::string& password, std::string_view what,
                         std::string_view wrong_answer) {
    const auto& ip = req.remote_addr;
    auth::AuthPolicy policy{.max_concurrent = cfg.smtp.auth_concurrency_limit,
                            .block_failures = cfg.smtp.auth_block_failures,
                            .block_time = std::chrono::seconds(cfg.smtp.auth_block_time)};
    auto adm = deps.penalty->begin(ip, policy);
    if (adm.kind == auth::AuthAdmission::Kind::blocked) {
      log_error(ip, {}, util::cat(what, " refused: too many failed logins from this network"));
      send_error(res, 429, "too many failed logins from your network, try later");
      return Check::refused;
    }
    if (adm.kind == auth::AuthAdmission::Kind::busy) {
      send_error(res, 429, "too many login attempts from your network in progress, try later");
      return Check::refused;
    }
    if (adm.kind == auth::AuthAdmission::Kind::unavailable) {
      log_error(ip, {}, util::cat(what, " refused: the auth penalty's shared state is unavailable"));
      send_error(res, 503, "temporary authentication failure");
      return Check::refused;
    }
    auto delay = auth::auth_delay_for(adm.failures, std::chrono::milliseconds(cfg.smtp.auth_penalty_delay),
                                      std::chrono::milliseconds(cfg.smtp.auth_penalty_max_delay));
    if (delay.count() > 0) std::this_thread::sleep_for(delay);
    AccountStore store(cfg.mailbox_dir());
    auto ok = store.authenticate(account, password);
    deps.penalty->end(ip);
    if (!ok && ok.error().code != Errc::not_found && ok.error().code != Errc::invalid_argument) {
      send_error(res, 503, "temporary authentication failure");
      return Check::refused;
    }
    if (!ok || !*ok) {
      deps.penalty->failed(ip, auth::AuthPenalty::Clock::now(), policy);
      // As SMTP AUTH's failure line (the name as given, quoted; sanitised by the logger).
      log_error(ip, {}, util::cat(what, " failed for user \"", account, "\""));
      send_error(res, 401, wrong_answer);
      return Check::refused;
    }
    deps.penalty->succeeded(ip);
    return Check::ok;
  }

  void login(const httplib::Request& req, httplib::Response& res) {
    auto creds = console::parse_credentials(req.body);
    if (!creds) return send_error(res, 400, creds.error().message);
    auto cfg = deps.config();
    if (checked_password(req, res, *cfg, creds->account, creds->password, "console login",
                         "authentication failed") != Check::ok)
      return;
    auto name = AccountStore::normalize_name(creds->account);
    if (!name) return send_error(res, 400, name.error().message);
    auto s = sessions.create(*name, is_admin(*cfg, *name));
    log_error(req.remote_addr, *name, s.admin ? "console login (administrator)" : "console login");
    res.set_header("Set-Cookie", console::session_cookie(s.id, tls));
    send_json(res, 200, json{{"account", s.account}, {"admin", s.admin}, {"csrf_token", s.csrf}});
  }

  void routes() {
    auto& h = *http;
    console::Api api;
    api.deps = &deps;
    api.session = [this](const httplib::Request& req, httplib::Response& res) { return session_of(req, res); };
    api.admin = [this](const httplib::Request& req, httplib::Response& res) { return admin_of(req, res); };
    api.sessions = &sessions;
    api.series = &series;
    console::add_admin_routes(h, api);
    console::add_self_routes(h, api);
    h.Post("/api/login", [this](const httplib::Request& req, httplib::Response& res) { login(req, res); });
    h.Post("/api/logout", [this](const httplib::Request& req, httplib::Response& res) {
      auto s = session_of(req, res);
      if (!s) return;
      sessions.remove(s->id);
      res.set_header("Set-Cookie", console::expired_session_cookie(tls));
      send_json(res, 200, json{{"logged_out", true}});
    });
    h.Get("/api/me", [this](const httplib::Request& req, httplib::Response& res) {
      auto s = session_of(req, res);
      if (!s) return;
      send_json(res, 200, json{{"account", s->account}, {"admin", s->admin}, {"csrf_token", s->csrf}});
    });
    h.Get("/api/accounts", [this](const httplib::Request& req, httplib::Response& res) {
      if (!admin_of(req, res)) return;
      auto cfg = deps.config();
      AccountStore store(cfg->mailbox_dir());
      // What `wizmail monitor` shows, from the same collector.
      auto snap = collect_activity(*cfg);
      if (!snap) return send_error(res, 500, snap.error().message);
      // ?q=TEXT (case-insensitive substring) &sort=account|messages|bytes|sent|received|deleted &order=asc|desc
      auto q = util::to_lower(req.get_param_value("q"));
      if (q.size() > 256) return send_error(res, 400, "q: at most 256 characters");
      auto sort_by = ActivitySort::account;
      if (req.has_param("sort")) {
        auto by = parse_activity_sort(req.get_param_value("sort"));
        if (!by) return send_error(res, 400, "sort: account, messages, bytes, sent, received or deleted");
        sort_by = *by;
      }
      auto order = req.has_param("order") ? req.get_param_value("order") : std::string("asc");
      if (order != "asc" && order != "desc") return send_error(res, 400, "order: asc or desc");
      std::erase_if(snap->accounts, [&](const AccountActivity& r) {
        return !q.empty() && util::to_lower(r.account).find(q) == std::string::npos;
      });
      sort_activity(snap->accounts, sort_by, order == "desc");
      json list = json::array();
      for (const auto& r : snap->accounts) {
        json row = account_row(store, r.account);
        row["messages"] = r.messages;
        row["bytes"] = r.bytes;
        row["sent"] = r.sent;
        row["received"] = r.received;
        row["deleted"] = r.deleted;
        if (!r.error.empty()) row["error"] = r.error;
        list.push_back(std::move(row));
      }
      send_json(res, 200, json{{"accounts", std::move(list)},
                               {"queue_length", snap->queue_length},
                               {"quota", {{"messages", cfg->server.mailbox_capacity_mail_count},
                                          {"bytes", cfg->server.mailbox_capacity_mail_size}}}});
    });
    h.Post("/api/accounts", [this](const httplib::Request& req, httplib::Response& res) {
      if (!admin_of(req, res)) return;
      auto creds = console::parse_credentials(req.body);
      if (!creds) return send_error(res, 400, creds.error().message);
      // As `wizmail account create` validates: the folded name, then exists?
      auto name = AccountStore::normalize_name(creds->account);
      if (!name) return send_error(res, 400, name.error().message);
      auto cfg = deps.config();
      AccountStore store(cfg->mailbox_dir());
      auto kind = store.lookup(*name);
      if (!kind) return send_error(res, 500, kind.error().message);
      if (*kind != AccountKind::none) return send_error(res, 409, util::cat("account ", *name, " already exists"));
      if (auto st = store.create(*name, creds->password); !st) {
        int code = st.error().code == Errc::invalid_argument ? 400
                   : st.error().code == Errc::already_exists ? 409 : 500;
        return send_error(res, code, st.error().message);
      }
      send_json(res, 201, json{{"created", *name}});
    });
    h.Delete(R"(/api/accounts/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
      if (!admin_of(req, res)) return;
      auto name = AccountStore::normalize_name(req.matches[1].str());
      if (!name) return send_error(res, 400, name.error().message);
      auto cfg = deps.config();
      AccountStore store(cfg->mailbox_dir());
      if (auto st = store.remove(*name); !st) {
        int code = st.error().code == Errc::not_found ? 404
                   : st.error().code == Errc::invalid_argument || st.error().code == Errc::permission_denied ? 400
                                                                                                           : 500;
        return send_error(res, code, st.error().message);
      }
      sessions.remove_account(*name);
      send_json(res, 200, json{{"deleted", *name}});
    });
    h.Post("/api/password", [this](const httplib::Request& req, httplib::Response& res) {
      auto s = session_of(req, res);
      if (!s) return;
      auto p = console::parse_password_change(req.body);
      if (!p) return send_error(res, 400, p.error().message);
      std::string target = s->account;
      if (!p->account.empty()) {
        auto n = AccountStore::normalize_name(p->account);
        if (!n) return send_error(res, 400, n.error().message);
        if (*n != s->account && !s->admin) return send_error(res, 403, "only an administrator sets another account's password");
        target = *n;
      }
      auto cfg = deps.config();
      AccountStore store(cfg->mailbox_dir());
      if (target == s->account) {
        // One's own password: the current one first, checked as a login is
        // (the same penalty: a wrong one counts as a failed login).
        if (!p->current_password) return send_error(res, 400, "'current_password' is missing");
        if (checked_password(req, res, *cfg, s->account, *p->current_password, "console password change",
                             "the current password is wrong") != Check::ok)
          return;
      }
      if (auto st = store.set_password(target, p->password); !st) {
        int code = st.error().code == Errc::not_found ? 404 : st.error().code == Errc::invalid_argument ? 400 : 500;
        return send_error(res, code, st.error().message);
      }
      send_json(res, 200, json{{"password_changed", target}});
    });
    console_assets::register_routes(h);
    h.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      // Only the API speaks JSON; an unknown path is 404 and says nothing else.
      // cpp-httplib calls this for every answer >= 400, a handler's own
      // JSON error included: that one is kept.
      if (!res.body.empty()) return;
      if (res.status == 404 || res.status == 405 || res.status == 413 || res.status == 400)
        send_error(res, res.status, res.status == 404 ? "not found" : "bad request");
      (void)req;
    });
    h.set_post_routing_handler([](const httplib::Request& req, httplib::Response& res) {
      if (req.path.starts_with("/api/")) res.set_header("Cache-Control", "no-store");
    });
  }
};

ConsoleServer::ConsoleServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ConsoleServer::~ConsoleServer() { close(); }

std::uint16_t ConsoleServer::port() const noexcept { return impl_->service->port(); }
bool ConsoleServer::tls() const noexcept { return impl_->tls; }

void ConsoleServer::close() {
  if (!impl_ || !impl_->service) return;
  impl_->service->close();
  impl_->stop_sampler();
}

Result<std::unique_ptr<ConsoleServer>> ConsoleServer::open(const Config& cfg, Deps deps, bool ephemeral) {
  if (cfg.server.admin_port <= 0) return std::unique_ptr<ConsoleServer>();
  if (cfg.server.admin_bind_address.size() != 1)
    return fail(Errc::invalid_argument, "admin_bind_address: give exactly one address");
  auto impl = std::make_unique<Impl>();
  impl->deps = std::move(deps);
  impl->tls = cfg.server.admin_tls && cfg.tls_configured();
  auto service = impl->tls ? ops::HttpService::make(limits, cfg.server.tls_cert_file, cfg.server.tls_key_file)
                           : ops::HttpService::make(limits);
  if (!service) return fail(Errc::invalid_argument, "admin_port: cannot load tls_cert_file/tls_key_file");
  impl->service = std::move(*service);
  impl->http = &impl->service->http();
  auto& h = *impl->http;
  h.set_default_headers({
      {"Content-Security-Policy", "default-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'"},
      {"X-Content-Type-Options", "nosniff"},
      {"Referrer-Policy", "no-referrer"},
      {"X-Frame-Options", "DENY"},
  });
  impl->routes();
  const auto& address = cfg.server.admin_bind_address.front();
  auto port = static_cast<std::uint16_t>(ephemeral ? 0 : cfg.server.admin_port);
  if (auto st = impl->service->start(address, port, "admin_port"); !st) return unexpected(st.error());
  impl->start_sampler();
  return std::make_unique<ConsoleServer>(std::move(impl));
}

namespace console {

void send_json(httplib::Response& res, int status, const json& j) {
  res.status = status;
  // Invalid UTF-8 from a file (a log line, a header) is replaced, never a throw.
  res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

void send_error(httplib::Response& res, int status, std::string_view message) {
  send_json(res, status, json{{"error", message}});
}

int status_of(const Error& e) noexcept {
  switch (e.code) {
    case Errc::not_found: return 404;
    case Errc::invalid_argument:
    case Errc::parse: return 400;
    case Errc::already_exists:
    case Errc::busy: return 409;
    case Errc::permission_denied: return 403;
    default: return 500;
  }
}

ops::MinuteSeries::Totals series_totals(const ServerStats& s) noexcept {
  return {s.messages_received, s.messages_delivered, s.messages_relayed, s.messages_bounced};
}

}  // namespace console

}  // namespace wizmail::server
