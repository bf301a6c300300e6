#include "harness.hpp"

#include <cstdlib>
#include <ctime>
#include <deque>
#include <stdexcept>

#include "util/strings.hpp"
#include "wizmail/aliases.hpp"

namespace wizmail::smtp::test {

bool FakeEnv::is_local_domain(std::string_view domain) {
  calls.push_back("local " + std::string(domain));
  if (util::iequals(domain, config->server.domain)) return true;
  for (const auto* list : {&config->server.alias, &config->smtp.subhost})
    for (const auto& d : *list)
      if (util::iequals(d, domain)) return true;
  for (const auto& l : own_literals)
    if (util::iequals(l, domain)) return true;
  return false;
}

void FakeEnv::waits(std::string_view what) const {
  if (deferred && !in_proceed)
    throw std::logic_error(std::string(what) + " outside proceed(): it would run on the I/O thread");
}

namespace {
std::optional<std::string> filter_answer(const std::map<std::string, std::string>& replies, const std::string& key) {
  auto it = replies.find(key);
  if (it == replies.end()) return std::nullopt;
  return it->second;
}
}  // namespace

std::optional<std::string> FakeEnv::filter_helo(std::string_view name) {
  waits("filter_helo");
  calls.push_back("filter helo " + std::string(name));
  return filter_answer(filter_replies, "helo");
}

std::optional<std::string> FakeEnv::filter_mail(std::string_view sender, std::string_view args,
                                                std::string_view auth_user) {
  waits("filter_mail");
  calls.push_back(util::cat("filter mail ", sender, " ", args, " auth=", auth_user));
  return filter_answer(filter_replies, "mail");
}

std::optional<std::string> FakeEnv::filter_rcpt(std::string_view recipient, std::string_view args) {
  waits("filter_rcpt");
  calls.push_back(util::cat("filter rcpt ", recipient, " ", args));
  return filter_answer(filter_replies, util::cat("rcpt ", recipient));
}

std::optional<std::string> FakeEnv::filter_data() {
  waits("filter_data");
  calls.push_back("filter data");
  return filter_answer(filter_replies, "data");
}

Environment::ClientVerdict FakeEnv::check_client(std::string_view client_ip) {
  waits("check_client");
  calls.push_back(util::cat("check_client ", client_ip));
  return client_verdict.value_or(ClientVerdict{});
}

Result<AccountKind> FakeEnv::lookup_account(std::string_view account) {
  waits("lookup_account");
  calls.push_back("lookup " + std::string(account));
  auto it = accounts.find(std::string(account));
  if (it == accounts.end() || !it->second.exists) return AccountKind::none;
  if (it->second.broken) return fail(Errc::io, "stat mailbox/" + std::string(account) + ": Input/output error");
  return it->second.mailing_list ? AccountKind::mailing_list : AccountKind::mailbox;
}

Result<AccountSettings> FakeEnv::account_settings(std::string_view account) {
  waits("account_settings");
  auto it = accounts.find(std::string(account));
  if (it == accounts.end()) {
    AccountSettings s;
    s.send_max_during_a_day = config->smtp.send_max_during_a_day;
    return s;
  }
  return it->second.settings;
}

bool FakeEnv::storage_allows(Storage where, std::int64_t size) {
  static const char* const names[] = {"mailboxes", "queue", "any"};
  calls.push_back(std::string("storage ") + names[static_cast<int>(where)] + " " +
                  std::to_string(size));
  const auto need = effective_queue_minfree(config->smtp) + size;
  auto fits = [&](Storage w) {
    auto it = free_bytes.find(w);
    return it == free_bytes.end() || it->second >= need;
  };
  return where == Storage::any ? fits(Storage::mailboxes) || fits(Storage::queue) : fits(where);
}

Result<bool> FakeEnv::quota_allows(std::string_view account, std::int64_t size) {
  waits("quota_allows");
  calls.push_back("quota " + std::string(account) + " " + std::to_string(size));
  auto it = accounts.find(std::string(account));
  return it == accounts.end() || !it->second.full;
}

Result<bool> FakeEnv::authenticate(std::string_view user, std::string_view password) {
  waits("authenticate");
  calls.push_back("auth " + std::string(user));
  auto it = accounts.find(std::string(user));
  if (it == accounts.end()) return false;
  return it->second.password == password;
}

std::optional<std::string> FakeEnv::plain_password(std::string_view user) {
  waits("plain_password");
  auto it = accounts.find(std::string(user));
  if (it == accounts.end() || it->second.hashed) return std::nullopt;
  return it->second.password;
}

wizmail::auth::AuthAdmission FakeEnv::auth_begin(std::string_view client_ip) {
  waits("auth_begin");
  calls.push_back("auth_begin " + std::string(client_ip));
  using K = wizmail::auth::AuthAdmission::Kind;
  if (penalty_unavailable) return {K::unavailable, 0};
  if (network_blocked) return {K::blocked, 0};
  if (network_busy) return {K::busy, 0};
  ++auth_in_progress;
  return {K::check, network_failures};
}

void FakeEnv::auth_end(std::string_view client_ip) {
  calls.push_back("auth_end " + std::string(client_ip));
  --auth_in_progress;
}

bool FakeEnv::auth_blocked(std::string_view client_ip) {
  waits("auth_blocked");
  (void)client_ip;
  return network_blocked;
}

int FakeEnv::auth_failed(std::string_view client_ip) {
  waits("auth_failed");
  calls.push_back("auth_failed " + std::string(client_ip));
  return ++network_failures;
}

void FakeEnv::auth_succeeded(std::string_view client_ip) {
  waits("auth_succeeded");
  calls.push_back("auth_succeeded " + std::string(client_ip));
  network_failures = 0;
}

Result<std::optional<std::string>> FakeEnv::pop_login_account(std::string_view ip,
                                                              std::chrono::minutes ttl) {
  waits("pop_login_account");
  calls.push_back("pop " + std::string(ip) + " " + std::to_string(ttl.count()));
  if (pop_logins_down) return fail(Errc::unavailable, "redis test: connect: Connection refused");
  auto it = pop_logins.find(std::string(ip));
  if (it == pop_logins.end()) return std::optional<std::string>();
  return std::optional<std::string>(it->second);
}

Result<std::int64_t> FakeEnv::sends_today(std::string_view account) {
  waits("sends_today");
  auto it = accounts.find(std::string(account));
  if (it != accounts.end() && it->second.broken) return fail(Errc::io, "sendcount: Input/output error");
  return it == accounts.end() ? 0 : it->second.sent;
}

Status FakeEnv::record_send(std::string_view account, bool relayed) {
  waits("record_send");
  sends_recorded.push_back(std::string(account) + (relayed ? " relayed" : " submitted"));
  auto it = accounts.find(std::string(account));
  if (it != accounts.end() && it->second.broken) return fail(Errc::io, "counters: Input/output error");
  if (it != accounts.end() && relayed) ++it->second.sent;
  return {};
}

std::optional<Result<std::string>> FakeEnv::srs_reverse(std::string_view address) {
  if (!srs_rewriter) return std::nullopt;
  calls.push_back("srs " + std::string(address));
  return srs::reverse_recipient(*srs_rewriter, srs_domain, address, now_seconds);
}

std::chrono::system_clock::time_point FakeEnv::now() {
  return std::chrono::system_clock::time_point(std::chrono::seconds(now_seconds));
}

std::uint64_t FakeEnv::random() { return random_value; }

Status MemorySink::begin(const Transaction&) {
  ++begins;
  data.clear();
  if (fail_begin) return fail(Errc::io, "disk full (test)");
  return {};
}

Status MemorySink::write(std::string_view bytes) {
  ++writes;
  max_write = std::max(max_write, bytes.size());
  // The first write is the session's Received: header; fail the next.
  if (fail_write && writes > 1) return fail(Errc::io, "write failed (test)");
  data.append(bytes);
  return {};
}

void MemorySink::abort() noexcept {
  ++aborts;
  data.clear();
}

std::string unescape(std::string_view s) {
  std::string r;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\\' || i + 1 == s.size()) {
      r += s[i];
      continue;
    }
    char c = s[++i];
    switch (c) {
      case 'r': r += '\r'; break;
      case 'n': r += '\n'; break;
      case 't': r += '\t'; break;
      case '0': r += '\0'; break;
      case '\\': r += '\\'; break;
      case 'x': {
        if (i + 2 >= s.size()) throw std::runtime_error("bad \\x escape");
        r += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
        i += 2;
        break;
      }
      default: throw std::runtime_error("bad escape in script");
    }
  }
  return r;
}

namespace {

bool to_bool(std::string_view v) { return v == "1" || v == "true" || v == "TRUE"; }

void apply_config(Config& c, std::string_view key, std::string_view v) {
  auto list = [&] { return util::split_list(v); };
  auto num = [&] {
    auto n = util::parse_int(v);
    if (!n) throw std::runtime_error("bad number for " + std::string(key));
    return *n;
  };
  if (key == "relay") c.smtp.relay = to_bool(v);
  else if (key == "pop_before_smtp") c.smtp.pop_before_smtp = to_bool(v);
  else if (key == "pop_befor_smtp_time_to_live") c.smtp.pop_befor_smtp_time_to_live = static_cast<int>(num());
  else if (key == "address_permits_relay") c.smtp.address_permits_relay = list();
  else if (key == "send_permits_only_smtp_auth") c.smtp.send_permits_only_smtp_auth = to_bool(v);
  else if (key == "send_max_during_a_day") c.smtp.send_max_during_a_day = static_cast<int>(num());
  else if (key == "reject_domain") c.smtp.reject_domain = list();
  else if (key == "reject_mailaddress") c.smtp.reject_mailaddress = list();
  else if (key == "max_mail_size") c.smtp.max_mail_size = num();
  else if (key == "queue_minfree") c.smtp.queue_minfree = num();
  else if (key == "max_recipients") c.smtp.max_recipients = static_cast<int>(num());
  else if (key == "auth_requires_tls") c.smtp.auth_requires_tls = to_bool(v);
  else if (key == "domain") c.server.domain = std::string(v);
  else if (key == "alias") c.server.alias = list();
  else if (key == "subhost") c.smtp.subhost = list();
  else throw std::runtime_error("unknown @config key " + std::string(key));
}

void apply_option(SessionOptions& o, std::string_view key, std::string_view v) {
  if (key == "listener") {
    if (v == "smtp") o.listener = Listener::smtp;
    else if (v == "submission") o.listener = Listener::submission;
    else if (v == "smtps") o.listener = Listener::smtps;
    else throw std::runtime_error("bad listener");
  } else if (key == "tls_available") o.tls_available = to_bool(v);
  else if (key == "tls_active") o.tls_active = to_bool(v);
  else if (key == "client_ip") o.client_ip = std::string(v);
  else if (key == "hostname") o.hostname = std::string(v);
  else if (key == "max_errors") o.max_errors = static_cast<int>(*util::parse_int(v));
  else if (key == "max_auth_failures") o.max_auth_failures = static_cast<int>(*util::parse_int(v));
  else if (key == "local_submit") o.local_submit = to_bool(v);
  else throw std::runtime_error("unknown @option key " + std::string(key));
}

std::pair<std::string_view, std::string_view> key_value(std::string_view kv) {
  auto eq = kv.find('=');
  if (eq == std::string_view::npos) return {kv, {}};
  return {kv.substr(0, eq), kv.substr(eq + 1)};
}

std::vector<std::string_view> words(std::string_view s) {
  std::vector<std::string_view> w;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ') ++i;
    std::size_t j = i;
    while (j < s.size() && s[j] != ' ') ++j;
    if (j > i) w.push_back(s.substr(i, j - i));
    i = j;
  }
  return w;
}

// The stored message without the session's Received: header, as "| " rows.
std::string show_message(const std::string& msg) {
  std::string_view m = msg;
  // Drop "Received: from ..." and its continuation lines.
  if (m.starts_with("Received: from ")) {
    std::size_t pos = 0;
    for (;;) {
      auto nl = m.find("\r\n", pos);
      if (nl == std::string_view::npos) break;
      pos = nl + 2;
      if (pos >= m.size() || m[pos] != '\t') break;
    }
    m.remove_prefix(pos);
  }
  std::string out;
  while (!m.empty()) {
    auto nl = m.find("\r\n");
    std::string_view line = m.substr(0, nl);
    out += "| ";
    for (char c : line) {
      if (c == '\r') out += "\\r";
      else if (c == '\n') out += "\\n";
      else out += c;
    }
    if (nl == std::string_view::npos) {
      out += " [no CRLF]\n";
      break;
    }
    out += "\n";
    m.remove_prefix(nl + 2);
  }
  return out;
}

// "@show envelope": what the commit would carry, one "[…]" row each.
std::string show_envelope(const Transaction& t) {
  std::string out = "[envelope] from=<" + t.reverse_path + ">";
  if (t.ret != DsnRet::unspecified) out += " ret=" + std::string(to_string(t.ret));
  if (!t.envid.empty()) out += " envid=" + t.envid;
  if (t.smtputf8) out += " smtputf8";
  out += "\n";
  auto dsn = [](const DsnRequest& d) {
    std::string o;
    if (d.notify) o += " notify=" + format_dsn_notify(d.notify);
    if (!d.orcpt.empty()) o += " orcpt=" + d.orcpt;
    return o;
  };
  for (const auto& r : t.recipients) {
    out += "[rcpt] <" + r.address + ">" + (r.local() ? " account=" + r.account : std::string(" remote"));
    if (r.via_alias) out += " via <" + r.original + ">";
    out += dsn(r.dsn) + "\n";
  }
  for (const auto& e : t.expanded) out += "[expanded] <" + e.address + ">" + dsn(e.dsn) + "\n";
  return out;
}

}  // namespace

const std::vector<std::size_t>& chunk_sizes() {
  static const std::vector<std::size_t> sizes{1, 2, 3, 4, 5, 7, 8, 13, 16, 32, 64, 128, 256, 512, 1 << 20};
  return sizes;
}

std::vector<std::size_t> client_waits(std::string_view bytes) {
  std::vector<std::size_t> at;
  std::size_t start = 0;
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (bytes[i] != '\n') continue;
    auto line = bytes.substr(start, i - start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    auto verb = line.substr(0, line.find(' '));
    if (verb.size() == 4 && (verb[0] | 0x20) == 'd' && (verb[1] | 0x20) == 'a' &&
        (verb[2] | 0x20) == 't' && (verb[3] | 0x20) == 'a')
      at.push_back(i + 1);
    start = i + 1;
  }
  return at;
}

RunResult run_script(std::string_view script, std::size_t chunk, bool defer_lookups) {
  // Date: fields added to submissions are local time: a fixed zone.
  ::setenv("TZ", "JST-9", 1);
  ::tzset();
  FakeEnv env;
  MemorySink sink;
  SessionOptions opt;
  opt.hostname = "mx.example.org";
  opt.session_id = "S1";
  opt.client_ip = "198.51.100.7";
  opt.auth_fail_delay = std::chrono::milliseconds(1000);
  opt.defer_lookups = defer_lookups;
  env.deferred = defer_lookups;
  env.config->server.domain = "example.org";
  std::vector<std::string> segments(1);
  std::deque<Result<std::string>> commits;
  bool envelope = false;
  std::string aliases;

  std::size_t pos = 0;
  while (pos < script.size()) {
    auto nl = script.find('\n', pos);
    std::string_view line = script.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? script.size() : nl + 1;
    if (line.empty() || line[0] == '#') continue;
    if (line.starts_with("C: ") || line == "C:") {
      segments.back() += unescape(line.substr(std::min<std::size_t>(3, line.size())));
      segments.back() += "\r\n";
    } else if (line.starts_with("c: ")) {
      segments.back() += unescape(line.substr(3));
    } else if (line == "T:") {
      segments.emplace_back();
    } else if (line.starts_with("@config ")) {
      auto [k, v] = key_value(line.substr(8));
      apply_config(*env.config, k, v);
    } else if (line.starts_with("@option ")) {
      auto [k, v] = key_value(line.substr(8));
      apply_option(opt, k, v);
    } else if (line.starts_with("@account ")) {
      auto w = words(line.substr(9));
      FakeAccount a;
      a.settings.send_max_during_a_day = env.config->smtp.send_max_during_a_day;
      for (std::size_t i = 1; i < w.size(); ++i) {
        auto [k, v] = key_value(w[i]);
        if (k == "pass") a.password = unescape(v);
        else if (k == "hashed") a.hashed = true;
        else if (k == "list") a.mailing_list = true;
        else if (k == "full") a.full = true;
        else if (k == "broken") a.broken = true;
        else if (k == "send_max") a.settings.send_max_during_a_day = static_cast<int>(*util::parse_int(v));
        else if (k == "sent") a.sent = *util::parse_int(v);
        else if (k == "reject_domain") a.settings.reject_domain = util::split_list(v);
        else if (k == "reject_mailaddress") a.settings.reject_mailaddress = util::split_list(v);
        else throw std::runtime_error("bad @account word");
      }
      env.accounts[std::string(w.at(0))] = a;
    } else if (line.starts_with("@disk ")) {
      for (auto w : words(line.substr(6))) {
        auto [k, v] = key_value(w);
        auto n = *util::parse_int(v);
        if (k == "mailboxes") env.free_bytes[Environment::Storage::mailboxes] = n;
        else if (k == "queue") env.free_bytes[Environment::Storage::queue] = n;
        else throw std::runtime_error("bad @disk word");
      }
    } else if (line.starts_with("@ownip ")) {
      env.own_literals.emplace_back(line.substr(7));
    } else if (line.starts_with("@penalty ")) {
      env.network_failures = static_cast<int>(*util::parse_int(line.substr(9)));
    } else if (line.starts_with("@penalty_state ")) {
      auto v = line.substr(15);
      if (v == "blocked") env.network_blocked = true;
      else if (v == "busy") env.network_busy = true;
      else if (v == "unavailable") env.penalty_unavailable = true;
      else throw std::runtime_error("bad @penalty_state");
    } else if (line == "@pop_down") {
      env.pop_logins_down = true;
    } else if (line.starts_with("@pop ")) {
      auto w = words(line.substr(5));
      env.pop_logins[std::string(w.at(0))] = std::string(w.at(1));
    } else if (line.starts_with("@commit ")) {
      auto w = words(line.substr(8));
      if (w.at(0) == "ok") {
        commits.emplace_back(std::string(w.at(1)));
      } else {
        auto rest = line.substr(line.find(w.at(2)) + w.at(2).size() + 1);
        commits.emplace_back(unexpected<Error>(Error::smtp(
            static_cast<int>(*util::parse_int(w.at(1))), std::string(w.at(2)), std::string(rest))));
      }
    } else if (line == "@show envelope") {
      envelope = true;
    } else if (line.starts_with("@alias ")) {
      aliases += unescape(line.substr(7));
      aliases += "\n";
    } else if (line.starts_with("@sinkfail ")) {
      if (line.substr(10) == "begin") sink.fail_begin = true;
      else sink.fail_write = true;
    } else {
      throw std::runtime_error("bad script line: " + std::string(line));
    }
  }

  if (!aliases.empty()) {
    std::vector<ConfigDiagnostic> diags;
    auto map = AliasMap::parse(aliases, "aliases.def", env.config->local_domains(), env.config->server.domain, diags);
    for (const auto& d : diags)
      if (d.severity == ConfigDiagnostic::Severity::error) throw std::runtime_error("@alias: " + d.to_string());
    env.config->aliases = std::make_shared<const AliasMap>(std::move(map));
  }
  RunResult r;
  opt.config = env.config;
  Session session(opt, env, sink);
  Output out;
  bool closed = false, tls_pending = false;
  int commit_no = 0;
  auto drain = [&] {
    for (;;) {
      if (out.lookup) {
        // As the connection does: before writing, on "another thread".
        const auto sends = env.sends_recorded.size();
        env.in_proceed = true;
        session.proceed(out);
        env.in_proceed = false;
        // After a commit, the 250 comes from proceed(): shown as inline.
        for (auto i = sends; i < env.sends_recorded.size(); ++i)
          out.replies.insert(0, "[sent " + env.sends_recorded[i] + "]\r\n");
        if (out.lookup) throw std::runtime_error("proceed() left Output::lookup set");
      }
      // Every reply batch is whole lines ending in CRLF, never a bare LF.
      if (!out.replies.empty() && !out.replies.ends_with("\r\n"))
        throw std::runtime_error("reply batch not ending in CRLF");
      for (std::size_t i = 0; i < out.replies.size(); ++i)
        if (out.replies[i] == '\n' && (i == 0 || out.replies[i - 1] != '\r'))
          throw std::runtime_error("bare LF in replies");
      r.output.append(out.replies.data(), out.replies.size());
      // Replies end in CRLF; the .ref uses LF.
      for (auto& e : out.events) r.events.push_back(std::move(e));
      bool again = false;
      Output next;
      if (out.delay.count()) r.output += "[delay " + std::to_string(out.delay.count()) + "]\r\n";
      if (out.close) {
        r.output += "[close]\r\n";
        closed = true;
      } else if (out.start_tls) {
        r.output += "[starttls]\r\n";
        tls_pending = true;
      } else if (out.commit) {
        ++commit_no;
        r.messages.push_back(sink.data);
        std::string shown = show_message(sink.data);
        r.output += "[commit]\r\n";
        if (envelope) {
          for (char c : show_envelope(session.transaction())) {
            if (c == '\n') r.output += "\r\n";
            else r.output += c;
          }
        }
        for (std::size_t i = 0; i < shown.size(); ++i) {
          if (shown[i] == '\n') r.output += "\r\n";
          else r.output += shown[i];
        }
        Result<std::string> res = std::string("Q") + std::to_string(commit_no);
        if (!commits.empty()) {
          res = std::move(commits.front());
          commits.pop_front();
        }
        const auto sends = env.sends_recorded.size();
        session.on_commit(std::move(res), next);
        for (auto i = sends; i < env.sends_recorded.size(); ++i)
          next.replies.insert(0, "[sent " + env.sends_recorded[i] + "]\r\n");
        again = true;
      } else if (out.delay.count()) {
        session.resume(next);
        again = true;
      }
      out = std::move(next);
      if (!again) break;
    }
    out.clear();
  };
  session.start(out);
  drain();
  for (const auto& seg : segments) {
    if (closed) break;
    if (tls_pending) {
      session.on_tls_started(out);
      r.output += "[tls up]\r\n";
      tls_pending = false;
      drain();
    }
    std::string_view rest = seg;
    const auto waits = client_waits(seg);
    auto wait = waits.begin();
    while (!rest.empty() && !closed) {
      const std::size_t at = seg.size() - rest.size();
      while (wait != waits.end() && *wait <= at) ++wait;
      std::size_t n = chunk;
      if (wait != waits.end()) n = std::min(n, *wait - at);
      auto piece = rest.substr(0, n);
      rest.remove_prefix(piece.size());
      session.feed(piece, out);
      drain();
    }
  }
  r.aborts = sink.aborts;
  // CRLF -> LF for comparison with .ref files.
  std::string lf;
  lf.reserve(r.output.size());
  for (std::size_t i = 0; i < r.output.size(); ++i) {
    if (r.output[i] == '\r' && i + 1 < r.output.size() && r.output[i + 1] == '\n') continue;
    lf += r.output[i];
  }
  r.output = std::move(lf);
  return r;
}

}  // namespace wizmail::smtp::test
