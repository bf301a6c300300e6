// Private: what the console's route files (console_api_admin.cpp,
// console_api_self.cpp) share with ConsoleServer (console_http.cpp): the
// dependencies, the session checks, the minute series, and JSON answers.
#pragma once

#include <httplib.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>

#include "ops/minute_series.hpp"
#include "server/console_http.hpp"
#include "server/console_model.hpp"

namespace wizmail::server::console {

struct Api {
  const ConsoleServer::Deps* deps = nullptr;
  // The request's session (else 401/403 answered and nullopt); admin():
  // an administrator's only (else 403).
  std::function<std::optional<WebSession>(const httplib::Request&, httplib::Response&)> session;
  std::function<std::optional<WebSession>(const httplib::Request&, httplib::Response&)> admin;
  SessionStore* sessions = nullptr;
  ops::MinuteSeries* series = nullptr;
};

void send_json(httplib::Response& res, int status, const nlohmann::json& j);
void send_error(httplib::Response& res, int status, std::string_view message);
// The HTTP status for a library error: not_found 404, invalid_argument and
// parse 400, already_exists 409, busy 409, permission_denied 403, else 500.
int status_of(const Error& e) noexcept;
// The running totals the minute series is fed (ServerStats).
ops::MinuteSeries::Totals series_totals(const ServerStats& s) noexcept;

// The administrator's requests (dashboard, accounts' settings, lists, queue,
// logs, configuration, DKIM) and the account holder's (mailbox, forwarding,
// vacation).
void add_admin_routes(httplib::Server& http, const Api& api);
void add_self_routes(httplib::Server& http, const Api& api);

}  // namespace wizmail::server::console
