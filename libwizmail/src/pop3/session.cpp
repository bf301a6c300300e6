#include "pop3/session.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <ctime>

#include "util/strings.hpp"

namespace wizmail::pop3 {

namespace {

constexpr std::size_t merge_limit = 64 * 1024;

bool valid_account(std::string_view a) {
  if (a.empty() || a.size() > 64 || a.front() == '.') return false;
  return std::all_of(a.begin(), a.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  });
}

}  // namespace

void Output::send(std::string_view text) {
  if (!actions.empty() && actions.back().kind == Action::Kind::send &&
      actions.back().text.size() < merge_limit) {
    actions.back().text.append(text);
    return;
  }
  Action a;
  a.kind = Action::Kind::send;
  a.text = std::string(text);
  actions.push_back(std::move(a));
}

std::string make_apop_timestamp(std::string_view host) {
  static std::atomic<unsigned long> counter{0};
  return util::cat("<", std::to_string(::getpid()), ".", std::to_string(std::time(nullptr)), ".",
                   std::to_string(counter.fetch_add(1) + 1), "@", host, ">");
}

std::string account_from_login(std::string_view login,
                               const std::vector<std::string>& local_domains) {
  std::string name = util::to_lower(login);
  if (auto at = name.rfind('@'); at != std::string::npos) {
    std::string_view domain = std::string_view(name).substr(at + 1);
    bool local = std::any_of(local_domains.begin(), local_domains.end(),
                             [&](const std::string& d) { return util::iequals(d, domain); });
    if (!local) return {};
    name.resize(at);
  }
  return valid_account(name) ? name : std::string{};
}

std::string md5_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_md5(), nullptr) != 1) return {};
  static constexpr char hex[] = "0123456789abcdef";
  std::string s;
  s.reserve(len * 2);
  for (unsigned i = 0; i < len; ++i) {
    s += hex[md[i] >> 4];
    s += hex[md[i] & 15];
  }
  return s;
}

std::string uidl_of(std::string_view uid) {
  bool ok = !uid.empty() && uid.size() <= 70 &&
            std::all_of(uid.begin(), uid.end(), [](char c) {
              auto u = static_cast<unsigned char>(c);
              return u >= 0x21 && u <= 0x7E;
            });
  return ok ? std::string(uid) : md5_hex(uid);
}

// The command table: which states accept a verb and how many arguments it
// takes. -1 as max: PASS's argument is the rest of the line.
struct Session::Row {
  Verb verb;
  std::string_view name;
  bool in_authorization;
  bool in_transaction;
  int min_args;
  int max_args;
  void (Session::*handler)(const Command&, Output&);
};

namespace {
constexpr int rest = -1;
}

#define ROW(verb, name, a, t, mn, mx, fn) \
  Session::Row { Verb::verb, name, a, t, mn, mx, &Session::fn }

void Session::do_auth(const Command&, Output& out) {
  reply(out, false, "AUTH (SASL) is not offered; use USER/PASS or APOP");
}

Session::Session(SessionOptions options, Backend& backend)
    : opt_(std::move(options)), backend_(backend) {
  timestamp_ = opt_.apop_timestamp.empty() ? make_apop_timestamp(opt_.host)
                                           : opt_.apop_timestamp;
}

Session::~Session() { connection_lost(); }

void Session::greeting(Output& out) {
  out.send("+OK wizmail POP3 server ready " + timestamp_ + "\r\n");
}

void Session::reply(Output& out, bool ok, std::string_view text) {
  std::string line = ok ? "+OK" : "-ERR";
  if (!text.empty()) {
    line += ' ';
    line += text;
  }
  if (last_reply_.empty()) last_reply_ = line;
  line += "\r\n";
  out.send(line);
}

void Session::feed(std::string_view bytes, Output& out) {
  if (!backlog_.empty()) {
    backlog_.append(bytes);
    return;
  }
  streams_ = 0;
  process(bytes, out);
}

namespace {
// A line in `text` (at its start or after a LF) that begins "QUIT", any case.
bool has_quit_line(std::string_view text) noexcept {
  for (std::size_t at = 0; at < text.size();) {
    auto line = text.substr(at, 4);
    if (line.size() == 4 && (line[0] | 0x20) == 'q' && (line[1] | 0x20) == 'u' &&
        (line[2] | 0x20) == 'i' && (line[3] | 0x20) == 't')
      return true;
    auto nl = text.find('\n', at);
    if (nl == std::string_view::npos) break;
    at = nl + 1;
  }
  return false;
}
}  // namespace

bool Session::may_block(std::string_view more) const noexcept {
  if (state_ == State::authorization) return true;
  if (state_ != State::transaction || stop_input_) return false;
  // A command split across reads: its start is in the parser, unseen here.
  if (parser_.partial() && more.find('\n') != std::string_view::npos) return true;
  return has_quit_line(backlog_) || has_quit_line(more);
}

void Session::resume(Output& out) {
  if (waiting_) {
    waiting_ = false;
    check_attempt(out);
  }
  std::string pending;
  pending.swap(backlog_);
  streams_ = 0;
  process(pending, out);
}

void Session::process(std::string_view bytes, Output& out) {
  while (!bytes.empty() && !stop_input_) {
    if (streams_ >= max_streams_per_batch || waiting_) {
      backlog_.assign(bytes);
      return;
    }
    auto r = parser_.parse(bytes);
    bytes.remove_prefix(r.used);
    if (r.status == LineParser::Status::too_long) {
      last_reply_.clear();
      reply(out, false, "line too long (at most 512 octets)");
      out.logs.push_back({LogEvent::Channel::pop, "(line too long) -> " + last_reply_});
    } else if (r.status == LineParser::Status::line) {
      execute(parser_.line(), out);
    }
  }
}

void Session::tls_started() {
  opt_.tls_active = true;
  stop_input_ = false;
  parser_.reset();
}

void Session::connection_lost() {
  backlog_.clear();
  if (attempt_) {
    // Abandoned while waiting (the client left): never checked.
    attempt_.reset();
    waiting_ = false;
    backend_.login_end(opt_.peer_ip);
  }
  drop_.reset();  // releases the lock; nothing is deleted
  if (state_ != State::closed) state_ = State::closed;
  stop_input_ = true;
}

void Session::keep_alive() {
  if (drop_) drop_->keep_alive();
}

bool Session::auth_allowed() const noexcept {
  return !opt_.auth_requires_tls || opt_.tls_active || opt_.peer_loopback;
}

void Session::execute(std::string_view line, Output& out) {
  static const Row table[] = {
      ROW(user, "USER", true, false, 1, 1, do_user),
      ROW(pass, "PASS", true, false, 1, rest, do_pass),
      ROW(apop, "APOP", true, false, 2, 2, do_apop),
      ROW(auth, "AUTH", true, false, 0, rest, do_auth),
      ROW(stls, "STLS", true, false, 0, 0, do_stls),
      ROW(capa, "CAPA", true, true, 0, 0, do_capa),
      ROW(quit, "QUIT", true, true, 0, 0, do_quit),
      ROW(noop, "NOOP", false, true, 0, 0, do_noop),
      ROW(stat, "STAT", false, true, 0, 0, do_stat),
      ROW(list, "LIST", false, true, 0, 1, do_list),
      ROW(retr, "RETR", false, true, 1, 1, do_retr),
      ROW(top, "TOP", false, true, 2, 2, do_top),
      ROW(dele, "DELE", false, true, 1, 1, do_dele),
      ROW(rset, "RSET", false, true, 0, 0, do_rset),
      ROW(uidl, "UIDL", false, true, 0, 1, do_uidl),
  };
  last_reply_.clear();
  Command cmd = parse_command(line);
  const Row* row = nullptr;
  for (const auto& r : table)
    if (r.verb == cmd.verb) row = &r;

  std::string shown = cmd.keyword;
  if (cmd.verb == Verb::pass) shown += " ****";
  else if (cmd.verb == Verb::apop && !cmd.args.empty()) shown += " " + cmd.args[0] + " ****";
  else if (!cmd.rest.empty()) shown += " " + cmd.rest.substr(0, 64);

  // A control character has no place in a command, and an argument is
  // echoed in replies ("invalid message number: …"): a CR there would break
  // the response into lines the client never asked for.
  bool control = std::any_of(line.begin(), line.end(), [](char ch) {
    auto c = static_cast<unsigned char>(ch);
    return (c < 0x20 && c != '\t') || c == 0x7f;
  });
  if (control) {
    reply(out, false, "invalid character in command");
  } else if (!row) {
    reply(out, false, cmd.keyword.empty() ? "empty command" : "unknown command");
  } else if (state_ == State::authorization && !row->in_authorization) {
    reply(out, false, std::string(row->name) + " is not allowed before login");
  } else if (state_ == State::transaction && !row->in_transaction) {
    reply(out, false, std::string(row->name) +
                          (row->verb == Verb::stls ? " is only allowed before login"
                                                   : " is not allowed after login"));
  } else if (static_cast<int>(cmd.args.size()) < row->min_args) {
    reply(out, false, std::string(row->name) + ": missing argument");
  } else if (row->max_args != rest && static_cast<int>(cmd.args.size()) > row->max_args) {
    reply(out, false, std::string(row->name) + ": too many arguments");
  } else {
    (this->*row->handler)(cmd, out);
  }
  out.logs.push_back({LogEvent::Channel::pop, shown + " -> " + last_reply_});
}

void Session::do_user(const Command& c, Output& out) {
  if (!auth_allowed()) {
    reply(out, false, "[AUTH] Plaintext authentication disallowed before STLS");
    return;
  }
  if (backend_.login_blocked(opt_.peer_ip)) {
    refuse_blocked(out);
    return;
  }
  user_ = c.args[0];
  have_user_ = true;
  reply(out, true, "send PASS");
}

void Session::do_pass(const Command& c, Output& out) {
  if (!auth_allowed()) {
    reply(out, false, "[AUTH] Plaintext authentication disallowed before STLS");
    return;
  }
  if (!have_user_) {
    reply(out, false, "send USER first");
    return;
  }
  have_user_ = false;
  admit(Attempt{false, user_, account_from_login(user_, opt_.local_domains), c.rest}, out);
}

void Session::do_apop(const Command& c, Output& out) {
  if (!auth_allowed()) {
    reply(out, false, "[AUTH] Plaintext authentication disallowed before STLS");
    return;
  }
  std::string digest = util::to_lower(c.args[1]);
  if (digest.size() != 32 ||
      !std::all_of(digest.begin(), digest.end(), [](char ch) {
        return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
      })) {
    reply(out, false, "APOP digest must be 32 hexadecimal digits");
    return;
  }
  admit(Attempt{true, c.args[0], account_from_login(c.args[0], opt_.local_domains), digest}, out);
}

void Session::refuse_blocked(Output& out) {
  have_user_ = false;
  out.logs.push_back({LogEvent::Channel::error,
                      "pop3 login refused from " + opt_.peer_ip +
                          ": too many failures from the client's network"});
  reply(out, false, "[SYS/TEMP] too many failed logins from your network, try later");
  Action a;
  a.kind = Action::Kind::close;
  out.actions.push_back(std::move(a));
  stop_input_ = true;
  state_ = State::closed;
}

// Credentials are complete. Every attempt from a network with failures
// waits before it is checked, right or wrong (Dovecot's auth_penalty): the
// answer's timing tells nothing, and a client that leaves during the wait
// has its attempt never checked (nor a login made, nor POP-before-SMTP
// granted).
void Session::admit(Attempt a, Output& out) {
  auto adm = backend_.login_begin(opt_.peer_ip);
  if (adm.kind == auth::AuthAdmission::Kind::blocked) {
    refuse_blocked(out);
    return;
  }
  if (adm.kind == auth::AuthAdmission::Kind::busy) {
    out.logs.push_back({LogEvent::Channel::error,
                        "pop3 login refused from " + opt_.peer_ip +
                            ": too many attempts of the client's network in progress"});
    reply(out, false, "[SYS/TEMP] too many logins from your network in progress, try later");
    return;
  }
  if (adm.kind == auth::AuthAdmission::Kind::unavailable) {
    OPENSSL_cleanse(a.secret.data(), a.secret.size());
    have_user_ = false;
    out.logs.push_back({LogEvent::Channel::error,
                        util::cat("pop3 login refused from ", opt_.peer_ip,
                                  ": the auth penalty's shared state is unavailable")});
    reply(out, false, "[SYS/TEMP] cannot check the login now");
    return;
  }
  attempt_ = std::make_unique<Attempt>(std::move(a));
  auto d = auth::auth_delay_for(std::max(failures_, adm.failures), opt_.failure_delay,
                               opt_.max_failure_delay);
  if (d.count() > 0) {
    Action act;
    act.kind = Action::Kind::delay;
    act.delay = d;
    out.actions.push_back(std::move(act));
    waiting_ = true;  // process() stops; resume() checks
    return;
  }
  check_attempt(out);
}

void Session::check_attempt(Output& out) {
  if (!attempt_) return;
  Attempt a = std::move(*attempt_);
  attempt_.reset();
  struct End {
    Session& s;
    ~End() { s.backend_.login_end(s.opt_.peer_ip); }
  };
  std::string account;
  {
    End end{*this};
    if (a.account.empty()) {
      login_failed(out, a.name, "invalid account name");
      return;
    }
    account = a.account;
    if (!a.apop) {
      auto ok = backend_.verify_password(account, a.secret);
      OPENSSL_cleanse(a.secret.data(), a.secret.size());
      if (!ok) {
        out.logs.push_back({LogEvent::Channel::error,
                            "pop3: password check for " + account + " failed: " + ok.error().message});
        reply(out, false, "[SYS/TEMP] cannot check the password now");
        return;
      }
      if (!*ok) {
        login_failed(out, account, "wrong password or unknown account");
        return;
      }
    } else {
      auto secret = backend_.apop_secret(account);
      if (!secret) {
        out.logs.push_back({LogEvent::Channel::error, "pop3: APOP secret for " + account +
                                                          " unavailable: " + secret.error().message});
        reply(out, false, "[SYS/TEMP] cannot check the password now");
        return;
      }
      if (!*secret) {
        login_failed(out, account, "APOP impossible (unknown account or hashed password)");
        return;
      }
      std::string expect = md5_hex(timestamp_ + **secret);
      OPENSSL_cleanse((*secret)->data(), (*secret)->size());
      if (expect.size() != 32 || CRYPTO_memcmp(expect.data(), a.secret.data(), 32) != 0) {
        login_failed(out, account, "wrong APOP digest");
        return;
      }
    }
  }
  login(out, account);
}

void Session::login_failed(Output& out, std::string_view account, std::string_view why) {
  ++failures_;
  out.logs.push_back({LogEvent::Channel::error,
                      "pop3 login failed for '" + std::string(account).substr(0, 64) + "' from " +
                          opt_.peer_ip + ": " + std::string(why),
                      LogEvent::What::auth_failure});
  backend_.login_failed(opt_.peer_ip);
  if (failures_ >= opt_.max_login_failures) {
    reply(out, false, "[AUTH] authentication failed; too many failures, closing");
    Action a;
    a.kind = Action::Kind::close;
    out.actions.push_back(std::move(a));
    stop_input_ = true;
    state_ = State::closed;
    return;
  }
  reply(out, false, "[AUTH] authentication failed");
}

void Session::login(Output& out, const std::string& account) {
  backend_.login_succeeded(opt_.peer_ip);  // the credentials were right
  auto drop = backend_.open_maildrop(account, opt_.peer_ip);
  if (!drop) {
    if (drop.error().code == Errc::busy) {
      reply(out, false, "[IN-USE] mailbox is locked by another POP3 session");
      out.logs.push_back({LogEvent::Channel::error,
                          "pop3: " + account + " from " + opt_.peer_ip + ": mailbox in use"});
    } else {
      reply(out, false, "[SYS/TEMP] cannot open the mailbox now");
      out.logs.push_back({LogEvent::Channel::error, "pop3: cannot open mailbox of " + account +
                                                        ": " + drop.error().message});
    }
    return;
  }
  drop_ = std::move(*drop);
  for (auto& note : drop_->login_notes())
    out.logs.push_back({LogEvent::Channel::error, "pop3: " + account + ": " + note});
  account_ = account;
  state_ = State::transaction;
  const auto& msgs = drop_->messages();
  deleted_.assign(msgs.size(), false);
  total_bytes_ = 0;
  for (const auto& m : msgs) total_bytes_ += m.size;
  out.logs.push_back({LogEvent::Channel::pop, "login " + account + " from " + opt_.peer_ip});
  reply(out, true, "logged in; " + std::to_string(msgs.size()) + " messages (" +
                       std::to_string(total_bytes_) + " octets)");
}

long Session::message_arg(Output& out, std::string_view arg) {
  std::size_t n = parse_msg_number(arg);
  if (n == 0) {
    reply(out, false, "invalid message number: " + std::string(arg.substr(0, 20)));
    return -1;
  }
  if (n > deleted_.size()) {
    reply(out, false, "no such message: " + std::to_string(n) + " (maildrop has " +
                          std::to_string(deleted_.size()) + ")");
    return -1;
  }
  if (deleted_[n - 1]) {
    reply(out, false, "message " + std::to_string(n) + " is deleted");
    return -1;
  }
  return static_cast<long>(n - 1);
}

void Session::do_stat(const Command&, Output& out) {
  reply(out, true, std::to_string(deleted_.size() - deleted_count_) + " " +
                       std::to_string(total_bytes_ - deleted_bytes_));
}

void Session::do_list(const Command& c, Output& out) {
  const auto& msgs = drop_->messages();
  if (!c.args.empty()) {
    long i = message_arg(out, c.args[0]);
    if (i < 0) return;
    reply(out, true, std::to_string(i + 1) + " " + std::to_string(msgs[i].size));
    return;
  }
  reply(out, true, std::to_string(deleted_.size() - deleted_count_) + " messages (" +
                       std::to_string(total_bytes_ - deleted_bytes_) + " octets)");
  std::string chunk;
  for (std::size_t i = 0; i < msgs.size(); ++i) {
    if (deleted_[i]) continue;
    chunk += std::to_string(i + 1);
    chunk += ' ';
    chunk += std::to_string(msgs[i].size);
    chunk += "\r\n";
    if (chunk.size() >= merge_limit) {
      out.send(chunk);
      chunk.clear();
    }
  }
  chunk += ".\r\n";
  out.send(chunk);
}

void Session::do_retr(const Command& c, Output& out) {
  long i = message_arg(out, c.args[0]);
  if (i < 0) return;
  auto reader = drop_->open(static_cast<std::size_t>(i));
  if (!reader) {
    reply(out, false, "[SYS/TEMP] cannot read message " + std::to_string(i + 1));
    out.logs.push_back({LogEvent::Channel::error, "pop3: " + account_ + ": " +
                                                      reader.error().message});
    return;
  }
  reply(out, true, std::to_string(drop_->messages()[i].size) + " octets");
  Action a;
  a.kind = Action::Kind::stream;
  a.reader = std::move(*reader);
  out.actions.push_back(std::move(a));
  ++streams_;
}

void Session::do_top(const Command& c, Output& out) {
  long i = message_arg(out, c.args[0]);
  if (i < 0) return;
  long lines = parse_line_count(c.args[1]);
  if (lines < 0) {
    reply(out, false, "invalid line count: " + c.args[1].substr(0, 20));
    return;
  }
  auto reader = drop_->open(static_cast<std::size_t>(i));
  if (!reader) {
    reply(out, false, "[SYS/TEMP] cannot read message " + std::to_string(i + 1));
    out.logs.push_back({LogEvent::Channel::error, "pop3: " + account_ + ": " +
                                                      reader.error().message});
    return;
  }
  reply(out, true, "top of message follows");
  Action a;
  a.kind = Action::Kind::stream;
  a.reader = std::move(*reader);
  a.body_lines = lines;
  out.actions.push_back(std::move(a));
  ++streams_;
}

void Session::do_dele(const Command& c, Output& out) {
  long i = message_arg(out, c.args[0]);
  if (i < 0) return;
  deleted_[i] = true;
  ++deleted_count_;
  deleted_bytes_ += drop_->messages()[i].size;
  reply(out, true, "message " + std::to_string(i + 1) + " deleted");
}

void Session::do_noop(const Command&, Output& out) { reply(out, true, ""); }

void Session::do_rset(const Command&, Output& out) {
  std::fill(deleted_.begin(), deleted_.end(), false);
  deleted_count_ = 0;
  deleted_bytes_ = 0;
  reply(out, true, "maildrop has " + std::to_string(deleted_.size()) + " messages (" +
                       std::to_string(total_bytes_) + " octets)");
}

void Session::do_quit(const Command&, Output& out) {
  if (state_ == State::transaction) {
    state_ = State::update;
    std::vector<std::size_t> idx;
    idx.reserve(deleted_count_);
    for (std::size_t i = 0; i < deleted_.size(); ++i)
      if (deleted_[i]) idx.push_back(i);
    Status st = idx.empty() ? Status{} : drop_->commit(idx);
    if (st) {
      reply(out, true, "wizmail POP3 server signing off (" + std::to_string(idx.size()) +
                           " messages deleted)");
      if (!idx.empty())
        out.logs.push_back({LogEvent::Channel::pop, account_ + ": deleted " +
                                                        std::to_string(idx.size()) + " messages"});
    } else {
      reply(out, false, "[SYS/TEMP] some deleted messages were not removed");
      out.logs.push_back({LogEvent::Channel::error,
                          "pop3: " + account_ + ": UPDATE failed: " + st.error().message});
    }
    // Free across nodes before the +OK: a client that logs in again at
    // once (on another node) finds the mailbox free.
    drop_->release();
    drop_.reset();
  } else {
    reply(out, true, "wizmail POP3 server signing off");
  }
  state_ = State::closed;
  stop_input_ = true;
  Action a;
  a.kind = Action::Kind::close;
  out.actions.push_back(std::move(a));
}

void Session::do_uidl(const Command& c, Output& out) {
  const auto& msgs = drop_->messages();
  if (!c.args.empty()) {
    long i = message_arg(out, c.args[0]);
    if (i < 0) return;
    reply(out, true, std::to_string(i + 1) + " " + uidl_of(msgs[i].uid));
    return;
  }
  reply(out, true, "unique-id listing follows");
  std::string chunk;
  bool paced = opt_.uidl_interval_ms > 0;
  for (std::size_t i = 0; i < msgs.size(); ++i) {
    if (deleted_[i]) continue;
    chunk += std::to_string(i + 1);
    chunk += ' ';
    chunk += uidl_of(msgs[i].uid);
    chunk += "\r\n";
    if (paced) {
      out.send(chunk);
      chunk.clear();
      Action a;
      a.kind = Action::Kind::delay;
      a.delay = std::chrono::milliseconds(opt_.uidl_interval_ms);
      out.actions.push_back(std::move(a));
    } else if (chunk.size() >= merge_limit) {
      out.send(chunk);
      chunk.clear();
    }
  }
  chunk += ".\r\n";
  out.send(chunk);
}

void Session::do_capa(const Command&, Output& out) {
  reply(out, true, "capability list follows");
  std::string s = "TOP\r\nUIDL\r\n";
  if (state_ == State::authorization && auth_allowed()) s += "USER\r\n";
  s += "RESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\n";
  if (state_ == State::authorization && opt_.tls_available && !opt_.tls_active)
    s += "STLS\r\n";
  s += "IMPLEMENTATION wizmail\r\n.\r\n";
  out.send(s);
}

void Session::do_stls(const Command&, Output& out) {
  if (!opt_.tls_available) {
    reply(out, false, "STLS is not available (no certificate configured)");
    return;
  }
  if (opt_.tls_active) {
    reply(out, false, "TLS is already active");
    return;
  }
  reply(out, true, "begin TLS negotiation");
  have_user_ = false;
  user_.clear();
  stop_input_ = true;
  parser_.reset();
  Action a;
  a.kind = Action::Kind::start_tls;
  out.actions.push_back(std::move(a));
}

}  // namespace wizmail::pop3
