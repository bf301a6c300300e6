// Private: the web console's pure parts (docs/console.md) — the session
// store, the CSRF comparison, the Cookie header, the JSON requests. No I/O,
// no HTTP library: the clock is passed in, so tests need no sleeps.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "wizmail/error.hpp"

namespace wizmail::server::console {

// 32 random bytes (OpenSSL's RAND_bytes) as 64 hex digits.
std::string random_token();

// Constant-time equality (CRYPTO_memcmp); false when the sizes differ or
// either is empty.
bool same_token(std::string_view a, std::string_view b) noexcept;

// The value of cookie `name` in a Cookie request header
// ("a=1; wizmail_session=...; b=2"); nullopt when absent. Names compare
// exactly, surrounding spaces are dropped, a value in quotes is unquoted.
std::optional<std::string> cookie_value(std::string_view header, std::string_view name);

inline constexpr std::string_view session_cookie_name = "wizmail_session";
// The Set-Cookie value that gives the browser session `id`, and the one that
// takes it back (logout): HttpOnly; SameSite=Strict; Path=/, plus Secure
// under TLS.
std::string session_cookie(std::string_view id, bool secure);
std::string expired_session_cookie(bool secure);

struct WebSession {
  std::string id;    // 256 random bits: the cookie
  std::string csrf;  // 256 random bits: X-CSRF-Token of every POST/PUT/DELETE
  std::string account;
  bool admin = false;
};

// Sessions held in memory by the server: each ends `idle` after its last
// use, `absolute` after its login, at logout, or when its account is
// deleted. At most `max_sessions`: beyond, the one idle longest goes.
class SessionStore {
 public:
  using Clock = std::chrono::steady_clock;
  struct Options {
    std::chrono::seconds idle{std::chrono::minutes(30)};
    std::chrono::seconds absolute{std::chrono::hours(8)};
    std::size_t max_sessions = 1024;
  };
  explicit SessionStore(Options o, std::function<Clock::time_point()> now = &Clock::now);

  WebSession create(std::string account, bool admin);
  // The live session of `id` (its idle time restarts); nullopt when unknown
  // or expired (an expired one is forgotten).
  std::optional<WebSession> find(std::string_view id);
  void remove(std::string_view id);
  void remove_account(std::string_view account);
  std::size_t size() const;

 private:
  struct Entry {
    WebSession s;
    Clock::time_point created, last;
  };
  bool expired(const Entry& e, Clock::time_point now) const;
  Options opt_;
  std::function<Clock::time_point()> now_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> map_;
};

// The JSON bodies the API accepts. Each is an object with exactly the named
// string members (an unknown member, a missing one, a wrong type or bad
// JSON: Errc::invalid_argument with a message for the client).
struct Credentials {
  std::string account, password;
};
Result<Credentials> parse_credentials(std::string_view body);  // {"account","password"}
struct PasswordChange {
  std::string account;  // empty = one's own
  std::string password;
  std::optional<std::string> current_password;  // required for one's own
};
// {"password"[,"account"][,"current_password"]}
Result<PasswordChange> parse_password_change(std::string_view body);

}  // namespace wizmail::server::console

namespace wizmail::server::console {

// {"key","value"}: one setting to change (PUT .../settings, PUT /api/config).
// An empty value removes the key from its file (its default applies).
struct SettingChange {
  std::string key, value;
};
Result<SettingChange> parse_setting(std::string_view body);

// {"members":["a@x",...]}: at most 10000 strings (each checked later as an
// address).
Result<std::vector<std::string>> parse_members(std::string_view body);

// {"addresses":[...],"keep_copy":bool}: at most 20 addresses.
struct ForwardSettings {
  std::vector<std::string> addresses;
  bool keep_copy = true;
};
Result<ForwardSettings> parse_forward(std::string_view body);

// {"enabled":bool,"subject":"...","text":"...","from":"YYYY-MM-DD"|"","until":"YYYY-MM-DD"|""}:
// the subject one line of at most 200 bytes, the text at most 8000 bytes,
// both UTF-8; dates real calendar dates, from <= until.
struct VacationSettings {
  bool enabled = false;
  std::string subject, text, from, until;
};
Result<VacationSettings> parse_vacation(std::string_view body);

// "YYYY-MM-DD" naming a real date.
bool valid_date(std::string_view s) noexcept;

}  // namespace wizmail::server::console
