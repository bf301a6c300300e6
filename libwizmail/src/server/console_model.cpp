#include "server/console_model.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "util/strings.hpp"
#include "util/utf8.hpp"

namespace wizmail::server::console {

std::string random_token() {
  unsigned char b[32];
  if (RAND_bytes(b, sizeof b) != 1) throw std::runtime_error("RAND_bytes failed");
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (unsigned char c : b) {
    out.push_back(hex[c >> 4]);
    out.push_back(hex[c & 15]);
  }
  return out;
}

bool same_token(std::string_view a, std::string_view b) noexcept {
  if (a.empty() || a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

namespace {
std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}
}  // namespace

std::optional<std::string> cookie_value(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    auto semi = header.find(';');
    auto pair = trim(header.substr(0, semi));
    header = semi == std::string_view::npos ? std::string_view{} : header.substr(semi + 1);
    auto eq = pair.find('=');
    if (eq == std::string_view::npos) continue;
    if (trim(pair.substr(0, eq)) != name) continue;
    auto v = trim(pair.substr(eq + 1));
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
    return std::string(v);
  }
  return std::nullopt;
}

std::string session_cookie(std::string_view id, bool secure) {
  return util::cat(session_cookie_name, "=", id, "; HttpOnly; SameSite=Strict; Path=/",
                   secure ? "; Secure" : "");
}

std::string expired_session_cookie(bool secure) {
  return util::cat(session_cookie_name, "=; Max-Age=0; HttpOnly; SameSite=Strict; Path=/",
                   secure ? "; Secure" : "");
}

SessionStore::SessionStore(Options o, std::function<Clock::time_point()> now)
    : opt_(o), now_(std::move(now)) {}

bool SessionStore::expired(const Entry& e, Clock::time_point now) const {
  return now - e.last >= opt_.idle || now - e.created >= opt_.absolute;
}

WebSession SessionStore::create(std::string account, bool admin) {
  WebSession s{random_token(), random_token(), std::move(account), admin};
  auto now = now_();
  std::lock_guard lk(mu_);
  std::erase_if(map_, [&](const auto& kv) { return expired(kv.second, now); });
  if (opt_.max_sessions > 0 && map_.size() >= opt_.max_sessions) {
    auto oldest = std::min_element(map_.begin(), map_.end(), [](const auto& a, const auto& b) {
      return a.second.last < b.second.last;
    });
    map_.erase(oldest);
  }
  map_.emplace(s.id, Entry{s, now, now});
  return s;
}

std::optional<WebSession> SessionStore::find(std::string_view id) {
  auto now = now_();
  std::lock_guard lk(mu_);
  auto it = map_.find(std::string(id));
  if (it == map_.end()) return std::nullopt;
  if (expired(it->second, now)) {
    map_.erase(it);
    return std::nullopt;
  }
  it->second.last = now;
  return it->second.s;
}

void SessionStore::remove(std::string_view id) {
  std::lock_guard lk(mu_);
  map_.erase(std::string(id));
}

void SessionStore::remove_account(std::string_view account) {
  std::lock_guard lk(mu_);
  std::erase_if(map_, [&](const auto& kv) { return kv.second.s.account == account; });
}

std::size_t SessionStore::size() const {
  std::lock_guard lk(mu_);
  return map_.size();
}

namespace {
// The object's string members, exactly those of `required` and `optional`.
Result<nlohmann::json> object_of_strings(std::string_view body,
                                         std::initializer_list<std::string_view> required,
                                         std::initializer_list<std::string_view> optional) {
  auto j = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return fail(Errc::invalid_argument, "the body is not a JSON object");
  for (const auto& [k, v] : j.items()) {
    bool known = std::find(required.begin(), required.end(), k) != required.end() ||
                 std::find(optional.begin(), optional.end(), k) != optional.end();
    if (!known) return fail(Errc::invalid_argument, util::cat("unknown member '", k, "'"));
    if (!v.is_string()) return fail(Errc::invalid_argument, util::cat("'", k, "' must be a string"));
  }
  for (auto k : required)
    if (!j.contains(k)) return fail(Errc::invalid_argument, util::cat("'", k, "' is missing"));
  return j;
}
}  // namespace

Result<Credentials> parse_credentials(std::string_view body) {
  auto j = object_of_strings(body, {"account", "password"}, {});
  if (!j) return unexpected(j.error());
  return Credentials{(*j)["account"].get<std::string>(), (*j)["password"].get<std::string>()};
}

Result<PasswordChange> parse_password_change(std::string_view body) {
  auto j = object_of_strings(body, {"password"}, {"account", "current_password"});
  if (!j) return unexpected(j.error());
  PasswordChange p;
  p.password = (*j)["password"].get<std::string>();
  if (j->contains("account")) p.account = (*j)["account"].get<std::string>();
  if (j->contains("current_password")) p.current_password = (*j)["current_password"].get<std::string>();
  return p;
}

Result<SettingChange> parse_setting(std::string_view body) {
  auto j = object_of_strings(body, {"key", "value"}, {});
  if (!j) return unexpected(j.error());
  SettingChange c{(*j)["key"].get<std::string>(), (*j)["value"].get<std::string>()};
  if (c.key.empty() || c.key.size() > 64) return fail(Errc::invalid_argument, "'key' must be a key name");
  if (c.value.size() > 4096) return fail(Errc::invalid_argument, "'value' is too long (at most 4096 bytes)");
  return c;
}

namespace {
// A JSON object with exactly the members `allowed` (each present); what each
// holds is checked by the caller.
Result<nlohmann::json> object_with(std::string_view body, std::initializer_list<std::string_view> required) {
  auto j = nlohmann::json::parse(body.begin(), body.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return fail(Errc::invalid_argument, "the body is not a JSON object");
  for (const auto& [k, v] : j.items()) {
    (void)v;
    if (std::find(required.begin(), required.end(), k) == required.end())
      return fail(Errc::invalid_argument, util::cat("unknown member '", k, "'"));
  }
  for (auto k : required)
    if (!j.contains(k)) return fail(Errc::invalid_argument, util::cat("'", k, "' is missing"));
  return j;
}

Result<std::vector<std::string>> string_array(const nlohmann::json& v, std::string_view name, std::size_t max) {
  if (!v.is_array()) return fail(Errc::invalid_argument, util::cat("'", name, "' must be an array of strings"));
  if (v.size() > max)
    return fail(Errc::invalid_argument, util::cat("'", name, "' holds at most ", std::to_string(max), " entries"));
  std::vector<std::string> out;
  for (const auto& e : v) {
    if (!e.is_string()) return fail(Errc::invalid_argument, util::cat("'", name, "' must be an array of strings"));
    out.push_back(e.get<std::string>());
  }
  return out;
}

Result<std::string> string_member(const nlohmann::json& j, std::string_view name) {
  const auto& v = j[std::string(name)];
  if (!v.is_string()) return fail(Errc::invalid_argument, util::cat("'", name, "' must be a string"));
  return v.get<std::string>();
}
}  // namespace

Result<std::vector<std::string>> parse_members(std::string_view body) {
  auto j = object_with(body, {"members"});
  if (!j) return unexpected(j.error());
  return string_array((*j)["members"], "members", 10000);
}

Result<ForwardSettings> parse_forward(std::string_view body) {
  auto j = object_with(body, {"addresses", "keep_copy"});
  if (!j) return unexpected(j.error());
  ForwardSettings f;
  auto a = string_array((*j)["addresses"], "addresses", 20);
  if (!a) return unexpected(a.error());
  f.addresses = std::move(*a);
  if (!(*j)["keep_copy"].is_boolean()) return fail(Errc::invalid_argument, "'keep_copy' must be true or false");
  f.keep_copy = (*j)["keep_copy"].get<bool>();
  return f;
}

bool valid_date(std::string_view s) noexcept {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return false;
  for (std::size_t i : {0, 1, 2, 3, 5, 6, 8, 9})
    if (s[i] < '0' || s[i] > '9') return false;
  auto num = [&](std::size_t at, std::size_t n) {
    int v = 0;
    for (std::size_t i = at; i < at + n; ++i) v = v * 10 + (s[i] - '0');
    return v;
  };
  int y = num(0, 4), m = num(5, 2), d = num(8, 2);
  if (y < 1970 || m < 1 || m > 12 || d < 1) return false;
  static constexpr int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return d <= days[m - 1] + (m == 2 && leap ? 1 : 0);
}

Result<VacationSettings> parse_vacation(std::string_view body) {
  auto j = object_with(body, {"enabled", "subject", "text", "from", "until"});
  if (!j) return unexpected(j.error());
  VacationSettings v;
  if (!(*j)["enabled"].is_boolean()) return fail(Errc::invalid_argument, "'enabled' must be true or false");
  v.enabled = (*j)["enabled"].get<bool>();
  for (auto [name, out] : {std::pair{"subject", &v.subject}, {"text", &v.text}, {"from", &v.from}, {"until", &v.until}}) {
    auto s = string_member(*j, name);
    if (!s) return unexpected(s.error());
    *out = std::move(*s);
  }
  if (v.subject.size() > 200) return fail(Errc::invalid_argument, "'subject' is too long (at most 200 bytes)");
  if (v.subject.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos)
    return fail(Errc::invalid_argument, "'subject' is one line");
  if (v.text.size() > 8000) return fail(Errc::invalid_argument, "'text' is too long (at most 8000 bytes)");
  if (v.text.find('\0') != std::string::npos) return fail(Errc::invalid_argument, "'text' holds a NUL");
  if (!util::valid_utf8(v.subject) || !util::valid_utf8(v.text))
    return fail(Errc::invalid_argument, "'subject' and 'text' must be UTF-8");
  if (v.enabled && util::trim(v.subject).empty()) return fail(Errc::invalid_argument, "'subject' is empty");
  for (auto [name, d] : {std::pair{"from", &v.from}, {"until", &v.until}})
    if (!d->empty() && !valid_date(*d))
      return fail(Errc::invalid_argument, util::cat("'", name, "' must be a date YYYY-MM-DD or empty"));
  if (!v.from.empty() && !v.until.empty() && v.from > v.until)
    return fail(Errc::invalid_argument, "'from' is after 'until'");
  return v;
}

}  // namespace wizmail::server::console
