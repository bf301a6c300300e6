#include "state/redis_state.hpp"

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <charconv>
#include <mutex>
#include <vector>

#include "util/strings.hpp"

namespace wizmail::state {

namespace {

// Lease renew and release only by the owner, atomically (Redis runs a
// script alone): compare, then expire or delete.
constexpr std::string_view renew_script =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";
constexpr std::string_view release_script =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "return redis.call('DEL', KEYS[1]) else return 0 end";
// INCR and its expiry in one step: a crash between them cannot leave a
// counter that never expires.
constexpr std::string_view increment_script =
    "local v = redis.call('INCR', KEYS[1]) "
    "if v == 1 or ARGV[2] == '1' then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end "
    "return v";

// max(current, floor) + 1, no expiry (a persisted key keeps no ttl: SET
// without PX clears it). tonumber() of a non-number is nil: an error reply,
// as INCR on a word.
constexpr std::string_view increment_from_script =
    "local c = redis.call('GET', KEYS[1]) "
    "local v = 0 "
    "if c then v = tonumber(c) if not v then return redis.error_reply('ERR not a counter') end end "
    "local f = tonumber(ARGV[1]) "
    "if f > v then v = f end "
    "v = v + 1 "
    "redis.call('SET', KEYS[1], string.format('%d', v)) "
    "return v";

timeval to_timeval(Millis ms) {
  return timeval{static_cast<time_t>(ms.count() / 1000),
                 static_cast<suseconds_t>((ms.count() % 1000) * 1000)};
}

struct ContextFree {
  void operator()(redisContext* c) const noexcept { redisFree(c); }
};
using Context = std::unique_ptr<redisContext, ContextFree>;

struct ReplyFree {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;

class RedisState final : public SharedState {
 public:
  explicit RedisState(RedisOptions o) : opt_(std::move(o)), where_(opt_.address.display()) {}

  Result<bool> acquire(std::string_view name, std::string_view owner, Millis ttl) override {
    auto ms = std::to_string(ttl.count());
    auto r = run({"SET", name, owner, "NX", "PX", ms});
    if (!r) return unexpected(r.error());
    if ((*r)->type == REDIS_REPLY_STATUS) return true;
    // Held: by us already (a re-take refreshes it) or by someone else.
    return renew(name, owner, ttl);
  }

  Result<bool> renew(std::string_view name, std::string_view owner, Millis ttl) override {
    auto ms = std::to_string(ttl.count());
    auto r = run({"EVAL", renew_script, "1", name, owner, ms});
    if (!r) return unexpected(r.error());
    return is_one(**r);
  }

  Result<bool> release(std::string_view name, std::string_view owner) override {
    auto r = run({"EVAL", release_script, "1", name, owner});
    if (!r) return unexpected(r.error());
    return is_one(**r);
  }

  Result<std::int64_t> increment(std::string_view name, Millis ttl, bool refresh) override {
    auto ms = std::to_string(ttl.count());
    auto r = run({"EVAL", increment_script, "1", name, ms, refresh ? "1" : "0"});
    if (!r) return unexpected(r.error());
    return integer(**r);
  }

  Result<std::int64_t> increment_from(std::string_view name, std::int64_t floor) override {
    auto f = std::to_string(floor);
    auto r = run({"EVAL", increment_from_script, "1", name, f});
    if (!r) return unexpected(r.error());
    return integer(**r);
  }

  Result<std::int64_t> counter(std::string_view name) override {
    auto r = run({"GET", name});
    if (!r) return unexpected(r.error());
    if ((*r)->type == REDIS_REPLY_NIL) return std::int64_t{0};
    if ((*r)->type != REDIS_REPLY_STRING) return unexpected(odd("GET"));
    std::int64_t v = 0;
    std::string_view s((*r)->str, (*r)->len);
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p != s.data() + s.size()) return unexpected(odd("GET of a counter"));
    return v;
  }

  Status put(std::string_view name, std::string_view value, Millis ttl) override {
    auto ms = std::to_string(ttl.count());
    auto r = run({"SET", name, value, "PX", ms});
    if (!r) return unexpected(r.error());
    return {};
  }

  Result<std::optional<std::string>> get(std::string_view name) override {
    auto r = run({"GET", name});
    if (!r) return unexpected(r.error());
    if ((*r)->type == REDIS_REPLY_NIL) return std::optional<std::string>{};
    if ((*r)->type != REDIS_REPLY_STRING) return unexpected(odd("GET"));
    return std::optional<std::string>(std::string((*r)->str, (*r)->len));
  }

  Status erase(std::string_view name) override {
    auto r = run({"DEL", name});
    if (!r) return unexpected(r.error());
    return {};
  }

  std::string describe() const override { return where_; }

 private:
  Error down(std::string_view why) const {
    return Error(Errc::unavailable, util::cat("redis ", where_, ": ", why));
  }
  Error odd(std::string_view what) const {
    return Error(Errc::protocol, util::cat("redis ", where_, ": unexpected reply to ", what));
  }

  Result<bool> is_one(const redisReply& r) const {
    auto v = integer(r);
    if (!v) return unexpected(v.error());
    return *v == 1;
  }

  Result<std::int64_t> integer(const redisReply& r) const {
    if (r.type != REDIS_REPLY_INTEGER) return unexpected(odd("a script"));
    return static_cast<std::int64_t>(r.integer);
  }

  // One command on a pooled connection; an error reply from Redis is
  // Errc::temporary (e.g. OOM, LOADING), a broken connection unavailable.
  Result<Reply> run(std::initializer_list<std::string_view> args) {
    auto c = take();
    if (!c) return unexpected(c.error());
    auto r = command(c->get(), args);
    if (!r) return r;  // the connection is dropped
    give_back(std::move(*c));
    if ((*r)->type == REDIS_REPLY_ERROR)
      return unexpected(Error(Errc::temporary,
                              util::cat("redis ", where_, ": ", std::string_view((*r)->str, (*r)->len))));
    return r;
  }

  Result<Reply> command(redisContext* c, std::initializer_list<std::string_view> args) const {
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (auto a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* raw = static_cast<redisReply*>(
        redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
    if (!raw) return unexpected(down(c->errstr[0] ? c->errstr : "no reply"));
    return Reply(raw);
  }

  Result<Context> take() {
    {
      std::lock_guard lk(mu_);
      if (!idle_.empty()) {
        Context c = std::move(idle_.back());
        idle_.pop_back();
        return c;
      }
    }
    const auto& a = opt_.address;
    Context c(a.unix_socket()
                  ? redisConnectUnixWithTimeout(a.socket_path.c_str(), to_timeval(opt_.connect_timeout))
                  : redisConnectWithTimeout(a.host.c_str(), a.port, to_timeval(opt_.connect_timeout)));
    if (!c) return unexpected(down("cannot allocate a connection"));
    if (c->err) return unexpected(down(util::cat("connect: ", c->errstr)));
    if (redisSetTimeout(c.get(), to_timeval(opt_.command_timeout)) != REDIS_OK)
      return unexpected(down("cannot set the command timeout"));
    if (!a.password.empty()) {
      auto r = a.user.empty() ? command(c.get(), {"AUTH", a.password})
                              : command(c.get(), {"AUTH", a.user, a.password});
      if (!r) return unexpected(r.error());
      if ((*r)->type == REDIS_REPLY_ERROR)
        return unexpected(down(util::cat("AUTH: ", std::string_view((*r)->str, (*r)->len))));
    }
    if (a.db != 0) {
      auto db = std::to_string(a.db);
      auto r = command(c.get(), {"SELECT", db});
      if (!r) return unexpected(r.error());
      if ((*r)->type == REDIS_REPLY_ERROR)
        return unexpected(down(util::cat("SELECT: ", std::string_view((*r)->str, (*r)->len))));
    }
    return c;
  }

  void give_back(Context c) {
    std::lock_guard lk(mu_);
    if (idle_.size() < opt_.max_idle) idle_.push_back(std::move(c));
  }

  RedisOptions opt_;
  std::string where_;
  std::mutex mu_;
  std::vector<Context> idle_;
};

}  // namespace

std::shared_ptr<SharedState> make_redis_state(RedisOptions options) {
  return std::make_shared<RedisState>(std::move(options));
}

}  // namespace wizmail::state
