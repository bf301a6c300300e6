#include "server/console_model.hpp"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "util/strings.hpp"

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
  auto j = object_of_strings(body, {"password"}, {"account"});
  if (!j) return unexpected(j.error());
  PasswordChange p;
  p.password = (*j)["password"].get<std::string>();
  if (j->contains("account")) p.account = (*j)["account"].get<std::string>();
  return p;
}

}  // namespace wizmail::server::console
