#include "smtp/session.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <ctime>
#include <functional>

#include "mime/date.hpp"
#include "smtp/address.hpp"
#include "smtp/body.hpp"
#include "smtp/missing_headers.hpp"
#include "smtp/parser.hpp"
#include "util/idna.hpp"
#include "util/strings.hpp"
#include "util/utf8.hpp"
#include "wizmail/aliases.hpp"

namespace wizmail::smtp {

bool Transaction::has_remote() const noexcept {
  return std::any_of(recipients.begin(), recipients.end(),
                     [](const Recipient& r) { return !r.local(); });
}

bool Transaction::has_relayed() const noexcept {
  return std::any_of(recipients.begin(), recipients.end(),
                     [](const Recipient& r) { return !r.local() && !r.via_alias; });
}

void Transaction::reset() {
  active = false;
  reverse_path.clear();
  recipients.clear();
  declared_size = -1;
  body = BodyType::seven_bit;
  auth_param.clear();
  ret = DsnRet::unspecified;
  envid.clear();
  smtputf8 = false;
  rcpt_count = 0;
  expanded.clear();
}

namespace {

enum StateBit : unsigned {
  kInitial = 1u << static_cast<unsigned>(State::initial),
  kReady = 1u << static_cast<unsigned>(State::ready),
  kMail = 1u << static_cast<unsigned>(State::mail),
  kRcpt = 1u << static_cast<unsigned>(State::rcpt),
  kAny = kInitial | kReady | kMail | kRcpt,
};

std::string hex(const unsigned char* p, std::size_t n) {
  static constexpr char d[] = "0123456789abcdef";
  std::string s;
  s.reserve(n * 2);
  for (std::size_t i = 0; i < n; ++i) {
    s += d[p[i] >> 4];
    s += d[p[i] & 15];
  }
  return s;
}

}  // namespace

// Everything the header keeps private: command table, parser, body reader,
// SASL exchange, per-transaction caches.
struct Session::Impl {
  using Handler = void (Impl::*)(std::string_view args, Output& out);
  // The reply to a command sent in a state where it is not allowed: the
  // first entry whose StateBit mask holds the session's state; without
  // one, "send HELO/EHLO first" before the greeting, else "bad sequence".
  struct WrongState {
    unsigned states = 0;
    std::string_view reply;
  };
  struct Command {
    std::string_view verb;
    unsigned states;        // StateBit mask where the command is allowed
    bool pre_tls;           // allowed before TLS when the policy wants TLS
    Handler handler;
    std::array<WrongState, 2> wrong_state{};  // replies when not allowed
    bool junk = false;  // counts towards junk_command_limit (NOOP, RSET, ...)
  };

  enum class Sasl { none, plain, login_user, login_pass, cram };

  Session& s;
  const Config& cfg;
  std::optional<IpAddress> client;
  bool loopback = false;
  LineReader lines;
  DataReader data;
  // Submissions only: adds a missing Date:/Message-ID: on the way to the sink.
  MissingHeaders fixer;
  bool fixing = false;
  std::uint64_t messages = 0;  // DATA commands accepted (for Message-ID)
  std::string stash;        // input kept while an action is pending
  bool paused = false;      // a delayed reply is pending: resume() needed
  bool esmtp = false;       // EHLO (not HELO) was used
  int errors = 0;
  int junk = 0;             // junk commands since the last accepted message
  bool greeted = false;     // the 220 greeting was sent (start())
  bool input_follows = false;  // bytes follow the line being handled
  bool more_pending = false;   // the connection has more bytes unread
  int auth_failures = 0;
  Sasl sasl = Sasl::none;
  std::string sasl_mech;
  std::string login_user;
  std::string cram_challenge;
  // Complete credentials admitted by auth_begin(), waiting out the penalty
  // delay before they are checked (resume()).
  struct Attempt {
    std::optional<std::string> account;  // nullopt: fails whatever the secret
    std::string user;                    // as the client wrote it, for the log
    std::string secret;                  // password, or the CRAM-MD5 digest
    bool cram = false;
    bool admitted = false;               // auth_begin() said check: auth_end() due
  };
  std::optional<Attempt> attempt;
  // Check, then proceed: a command that passed its checks and whose policy
  // needs lookups waits here (Output::lookup) for proceed(), when the
  // session defers its lookups (SessionOptions::defer_lookups).
  std::function<void(Output&)> pending;
  bool proceeding = false;  // inside proceed(): lookups run at once
  std::vector<EsmtpParam> params;
  // Per-transaction caches of policy answers.
  std::optional<bool> relay_ok;
  std::optional<std::string> send_account;  // "" = none known
  std::optional<std::optional<std::string>> pop_account_;  // POP-before-SMTP's answer
  std::optional<bool> over_daily_limit;

  Impl(Session& session)
      : s(session), cfg(*session.opt_.config) {
    client = IpAddress::parse(s.opt_.client_ip);
    loopback = client && client->loopback();
  }
  ~Impl() {
    // Abandoned while waiting (the client left): never checked.
    if (attempt && attempt->admitted) s.env_.auth_end(s.opt_.client_ip);
  }

  static const Command kCommands[];
  static const Command* find(std::string_view verb) noexcept;

  // --- output helpers ---
  void reply(Output& out, std::string_view text) {
    out.replies.append(text);
    out.replies.append("\r\n");
    if (s.opt_.log_protocol) {
      auto first = text.substr(0, text.find("\r\n"));
      out.events.push_back({LogEvent::Kind::reply, std::string(first)});
    }
  }
  // A refusal: counts towards max_errors.
  void refuse(Output& out, std::string_view text) {
    reply(out, text);
    out.events.push_back({LogEvent::Kind::fact, std::string(text.substr(0, text.find("\r\n"))),
                          LogEvent::What::refusal});
    ++errors;
  }
  void error_event(Output& out, std::string text, LogEvent::What what = LogEvent::What::other) {
    out.events.push_back({LogEvent::Kind::error, std::move(text), what});
  }

  // The milters' refusal of a command (Environment::filter_*): a 421
  // ends the session, as Postfix does.
  void filter_refuse(Output& out, const std::string& text) {
    refuse(out, text);
    if (text.starts_with("421")) {
      s.state_ = State::closed;
      out.close = true;
    }
  }
  // The milters' word on a recipient that passed every other check
  // (Postfix asks them last): false when they refused it.
  std::string filter_args;  // the ESMTP parameters of the RCPT being proceeded
  bool filters_accept_rcpt(std::string_view address, Output& out) {
    if (!s.env_.filtering()) return true;
    auto r = s.env_.filter_rcpt(address, filter_args);
    if (!r) return true;
    filter_refuse(out, *r);
    return false;
  }

  // DNS block and allow lists (docs/dnsbl.md): port 25, unauthenticated
  // clients only; asked at the first RCPT (in proceed(): DNS may wait),
  // the verdict holds for the session. True when it refused the RCPT.
  std::optional<Environment::ClientVerdict> client_verdict;
  bool client_listed(std::string_view rcpt, Output& out) {
    if (s.opt_.listener != Listener::smtp || !s.auth_user_.empty() || s.opt_.local_submit) return false;
    if (!client_verdict) {
      client_verdict = s.env_.wants_client_check() ? s.env_.check_client(s.opt_.client_ip)
                                                   : Environment::ClientVerdict{};
      for (auto& note : client_verdict->notes) error_event(out, std::move(note));
      client_verdict->notes.clear();
    }
    if (client_verdict->refusal.empty()) return false;
    error_event(out,
                util::cat(client_verdict->reason, ": <", s.txn_.reverse_path, "> -> <", rcpt, ">"),
                LogEvent::What::dnsbl_rejected);
    refuse(out, client_verdict->refusal);
    return true;
  }

  // Mail from this session is a submission by a local user or program
  // (RFC 6409), not mail relayed by another MTA.
  bool submission() const noexcept { return s.opt_.local_submit || !s.auth_user_.empty(); }
  MessageSink& data_sink() noexcept { return fixing ? static_cast<MessageSink&>(fixer) : s.sink_; }
  std::string new_message_id();

  bool auth_offered() const noexcept {
    return !(cfg.smtp.auth_requires_tls && !s.tls_active_ && !loopback);
  }
  bool auth_required() const noexcept { return s.opt_.listener != Listener::smtp; }

  void reset_transaction() {
    s.txn_.reset();
    relay_ok.reset();
    send_account.reset();
    pop_account_.reset();
    over_daily_limit.reset();
  }

  // --- input processing ---
  void process(std::string_view in, Output& out);
  void handle_line(std::string_view line, Output& out);
  void handle_sasl(std::string_view line, Output& out);
  void finish_data(Output& out);
  void check_error_limit(Output& out);

  // --- commands ---
  void cmd_helo(std::string_view args, Output& out) { greet(args, out, false); }
  void cmd_ehlo(std::string_view args, Output& out) { greet(args, out, true); }
  void greet(std::string_view args, Output& out, bool extended);
  void greeted_as(std::string_view name, bool extended, Output& out);
  void open_data(Output& out);
  void cmd_mail(std::string_view args, Output& out);
  void cmd_rcpt(std::string_view args, Output& out);
  void cmd_data(std::string_view args, Output& out);
  void cmd_rset(std::string_view args, Output& out);
  void cmd_noop(std::string_view args, Output& out);
  void cmd_quit(std::string_view args, Output& out);
  void cmd_vrfy(std::string_view args, Output& out);
  void cmd_help(std::string_view args, Output& out);
  void cmd_starttls(std::string_view args, Output& out);
  void cmd_auth(std::string_view args, Output& out);
  void cmd_not_implemented(std::string_view args, Output& out);

  // --- AUTH ---
  void auth_plain(std::string_view b64, Output& out);
  void auth_login_user(std::string_view b64, Output& out);
  void auth_login_pass(std::string_view b64, Output& out);
  void auth_cram(std::string_view b64, Output& out);
  std::optional<std::string> account_from_user(std::string_view user);
  void admit(Attempt a, Output& out);
  void admit_now(Output& out);
  void check_attempt(Output& out);
  void start_auth(std::string_view args, Output& out);
  void refuse_blocked(Output& out);
  void auth_result(std::optional<std::string> account, Result<bool> ok,
                   std::string_view user, Output& out);

  // --- policy ---
  bool storage_allows(Environment::Storage where, std::int64_t size, Output& out);
  bool sender_domain_local();
  Result<std::optional<std::string>> pop_account();
  Result<bool> relay_allowed();
  const std::string& daily_account();
  bool rejected_by(const std::vector<std::string>& domains,
                   const std::vector<std::string>& addresses);
  std::string received_header();

  // A message committed as `queue_id`: counted for its sender's account
  // when `record` (`relayed`: toward the daily limit too), answered 250,
  // and the transaction ends.
  void accepted(const std::string& queue_id, bool relayed, bool record, Output& out) {
    if (record) {
      const std::string& acct = daily_account();
      if (!acct.empty())
        if (auto st = s.env_.record_send(acct, relayed); !st)
          error_event(out, "send counters of " + acct + ": " + st.error().message);
    }
    reply(out, "250 2.0.0 Ok: queued as " + queue_id);
    out.events.push_back({LogEvent::Kind::fact, queue_id, LogEvent::What::accepted});
    junk = 0;  // as Postfix: an accepted message forgives junk commands
    end_transaction();
  }
  void end_transaction() {
    reset_transaction();
    s.written_ = 0;
    s.state_ = State::ready;
  }

  // Runs `work` now, or (deferring lookups, outside proceed()) leaves it
  // for proceed() and asks for it with Output::lookup.
  void proceed_with(Output& out, std::function<void(Output&)> work) {
    if (!s.opt_.defer_lookups || proceeding) {
      work(out);
      return;
    }
    pending = std::move(work);
    out.lookup = true;
  }

  // --- recipients ---
  // A RCPT that passed its checks (syntax, parameters, limits), for its
  // policy.
  struct RcptRequest {
    Recipient recipient;
    Mailbox mailbox;     // as parsed
    std::string domain;  // the ASCII form
    bool local_domain = false;
    bool bare_postmaster = false;
  };
  void apply_rcpt(RcptRequest req, Output& out);
  bool local_recipient_ok(Recipient& r, std::string_view shown, Output& out);
  bool directory_answered(Recipient& r, Output& out);
  void accept_alias(Recipient r, AliasMap::Resolution res, Output& out);
  void add_recipient(Recipient r);
};

// The command table (STYLE.md point 3): verb, states, pre-TLS, handler,
// and what a command sent in the wrong state is told.

const Session::Impl::Command Session::Impl::kCommands[] = {
    {"EHLO", kAny, true, &Session::Impl::cmd_ehlo, {}, true},
    {"HELO", kAny, true, &Session::Impl::cmd_helo, {}, true},
    {"MAIL", kReady, true, &Session::Impl::cmd_mail, {{{kMail | kRcpt, "503 5.5.1 Error: nested MAIL command"}}}},
    {"RCPT", kMail | kRcpt, true, &Session::Impl::cmd_rcpt, {{{kAny, "503 5.5.1 Error: need MAIL command"}}}},
    {"DATA", kRcpt, true, &Session::Impl::cmd_data,
     {{{kMail, "554 5.5.1 Error: no valid recipients"}, {kReady, "503 5.5.1 Error: need RCPT command"}}}},
    {"RSET", kAny, true, &Session::Impl::cmd_rset, {}, true},
    {"NOOP", kAny, true, &Session::Impl::cmd_noop, {}, true},
    {"QUIT", kAny, true, &Session::Impl::cmd_quit, {}},
    {"VRFY", kAny, true, &Session::Impl::cmd_vrfy, {}, true},
    {"HELP", kAny, true, &Session::Impl::cmd_help, {}, true},
    {"STARTTLS", kInitial | kReady, true, &Session::Impl::cmd_starttls,
     {{{kAny, "503 5.5.1 Error: STARTTLS not allowed during a mail transaction"}}}},
    {"AUTH", kReady, false, &Session::Impl::cmd_auth, {{{kMail | kRcpt, "503 5.5.1 Error: MAIL transaction in progress"}}}},
    // RFC 3030 CHUNKING is not offered: a known command, not implemented.
    {"BDAT", kAny, true, &Session::Impl::cmd_not_implemented, {}},
};

const Session::Impl::Command* Session::Impl::find(std::string_view verb) noexcept {
  for (const auto& c : kCommands)
    if (util::iequals(c.verb, verb)) return &c;
  return nullptr;
}

void Session::Impl::process(std::string_view in, Output& out) {
  while (!in.empty()) {
    if (s.awaiting() || s.state_ == State::closed) break;
    if (s.state_ == State::data) {
      if (data.consume(in, data_sink())) finish_data(out);
      continue;
    }
    std::string_view line;
    auto st = lines.next(in, line, s.opt_.max_command_line, s.opt_.max_auth_line,
                         s.state_ == State::auth);
    switch (st) {
      case LineReader::Status::need_more:
        break;
      case LineReader::Status::too_long:
        if (s.state_ == State::auth) {
          sasl = Sasl::none;
          s.state_ = State::ready;
        }
        if (s.opt_.log_protocol)
          out.events.push_back({LogEvent::Kind::command, "(line too long)"});
        refuse(out, "500 5.5.2 Error: line too long");
        check_error_limit(out);
        continue;
      case LineReader::Status::bad_bytes:
        if (s.state_ == State::auth) {
          sasl = Sasl::none;
          s.state_ = State::ready;
        }
        if (s.opt_.log_protocol)
          out.events.push_back({LogEvent::Kind::command, "(invalid characters)"});
        refuse(out, "500 5.5.2 Error: invalid characters in command");
        error_event(out, "command with NUL, control or 8-bit characters refused");
        check_error_limit(out);
        continue;
      case LineReader::Status::line:
        input_follows = !in.empty() || more_pending;
        if (s.state_ == State::auth)
          handle_sasl(line, out);
        else
          handle_line(line, out);
        continue;
    }
    break;
  }
  if (in.empty()) return;
  // Stopped by an action: keep the rest for on_commit()/resume(), except
  // after STARTTLS (plaintext injected before the handshake is discarded) or
  // when the session is over.
  if (s.state_ == State::tls_pending || s.state_ == State::closed) return;
  stash.append(in);
}

void Session::Impl::check_error_limit(Output& out) {
  if (errors >= s.opt_.max_errors && s.state_ != State::closed) {
    reply(out, "421 4.7.0 " + s.opt_.hostname + " Error: too many errors");
    error_event(out, "too many errors, disconnected");
    s.state_ = State::closed;
    out.close = true;
  }
}

void Session::Impl::handle_line(std::string_view line, Output& out) {
  auto cl = split_command(line);
  const Command* c = find(cl.verb);
  if (s.opt_.log_protocol) {
    if (c && c->handler == &Impl::cmd_auth) {
      // Never log secrets: keep the mechanism only.
      auto mech = cl.args.substr(0, cl.args.find(' '));
      out.events.push_back({LogEvent::Kind::command, "AUTH " + std::string(mech)});
    } else {
      out.events.push_back({LogEvent::Kind::command, std::string(line)});
    }
  }
  if (!c) {
    if (!line.empty() && s.env_.filtering()) {
      // The milters hear it (a lookup that may wait: in proceed()); their
      // refusal replaces ours. Either way it counts as an error.
      proceed_with(out, [this, l = std::string(line)](Output& o) {
        if (auto r = s.env_.filter_unknown(l)) {
          filter_refuse(o, *r);
        } else {
          refuse(o, "500 5.5.2 Error: command not recognized");
        }
        check_error_limit(o);
      });
      return;
    }
    refuse(out, line.empty() ? "500 5.5.2 Error: bad syntax"
                             : "500 5.5.2 Error: command not recognized");
    check_error_limit(out);
    return;
  }
  if (c->handler == &Impl::cmd_data && input_follows) {
    // RFC 2920 §3.1: DATA ends a pipelined group; the client must wait for
    // the 354. Bytes already behind it were sent blind (a message that may
    // be taken for commands, or commands for a message): refuse and close,
    // as Postfix does (smtpd_forbid_unauth_pipelining).
    reply(out, "554 5.5.0 Error: SMTP protocol synchronization");
    error_event(out, "improper command pipelining after DATA, disconnected");
    s.state_ = State::closed;
    out.close = true;
    return;
  }
  if (c->junk && cfg.smtp.junk_command_limit > 0 && ++junk > cfg.smtp.junk_command_limit) {
    // Postfix's smtpd_junk_command_limit: NOOP, RSET, VRFY, HELP, HELO and
    // EHLO cannot hold a session open for ever.
    reply(out, "421 4.7.0 " + s.opt_.hostname + " Error: too many junk commands");
    error_event(out, "too many junk commands, disconnected");
    s.state_ = State::closed;
    out.close = true;
    return;
  }
  unsigned bit = 1u << static_cast<unsigned>(s.state_);
  if (!(c->states & bit)) {
    auto w = std::find_if(c->wrong_state.begin(), c->wrong_state.end(),
                          [bit](const WrongState& e) { return (e.states & bit) != 0; });
    if (w != c->wrong_state.end())
      refuse(out, w->reply);
    else if (s.state_ == State::initial)
      refuse(out, "503 5.5.1 Error: send HELO/EHLO first");
    else
      refuse(out, "503 5.5.1 Error: bad sequence of commands");
    check_error_limit(out);
    return;
  }
  if (!c->pre_tls && !s.tls_active_ && !auth_offered()) {
    refuse(out, "538 5.7.11 Encryption required for requested authentication mechanism");
    check_error_limit(out);
    return;
  }
  (this->*(c->handler))(cl.args, out);
  check_error_limit(out);
}

void Session::Impl::greet(std::string_view args, Output& out, bool extended) {
  auto name = args.substr(0, args.find(' '));
  if (name.empty()) {
    refuse(out, extended ? "501 5.5.4 Syntax: EHLO hostname"
                         : "501 5.5.4 Syntax: HELO hostname");
    return;
  }
  if (s.env_.filtering()) {
    proceed_with(out, [this, n = std::string(name), extended](Output& o) {
      if (auto r = s.env_.filter_helo(n)) {
        filter_refuse(o, *r);
        return;
      }
      greeted_as(n, extended, o);
    });
    return;
  }
  greeted_as(name, extended, out);
}

void Session::Impl::greeted_as(std::string_view name, bool extended, Output& out) {
  reset_transaction();
  s.helo_.assign(name);
  esmtp = extended;
  s.state_ = State::ready;
  if (!extended) {
    reply(out, "250 " + s.opt_.hostname);
    return;
  }
  std::string r;
  r.reserve(160);
  r += "250-" + s.opt_.hostname + "\r\n250-PIPELINING\r\n250-SIZE ";
  r += std::to_string(cfg.smtp.max_mail_size);
  r += "\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n";
  if (s.opt_.tls_available && !s.tls_active_) r += "250-STARTTLS\r\n";
  if (auth_offered() && s.auth_user_.empty()) r += "250-AUTH PLAIN LOGIN CRAM-MD5\r\n";
  r += "250 ENHANCEDSTATUSCODES";
  reply(out, r);
}

bool Session::Impl::rejected_by(const std::vector<std::string>& domains,
                                const std::vector<std::string>& addresses) {
  const auto& mb = s.txn_.reverse_path;
  if (mb.empty()) return false;
  for (const auto& a : addresses)
    if (util::iequals(util::trim(a), mb)) return true;
  auto at = mb.rfind('@');
  if (at == std::string::npos) return false;
  // A U-label domain matches its A-label form (reject_domain lists hostnames).
  const std::string ascii = util::domain_to_ascii(std::string_view(mb).substr(at + 1))
                                .value_or(std::string(std::string_view(mb).substr(at + 1)));
  std::string_view dom = ascii;
  std::optional<IpAddress> lit;
  if (!dom.empty() && dom.front() == '[') lit = parse_address_literal(dom);
  for (const auto& d0 : domains) {
    std::string_view d = util::trim(d0);
    if (d.empty()) continue;
    if (lit) {
      auto ip = parse_address_literal(d);
      if (ip && *ip == *lit) return true;
      continue;
    }
    if (util::iequals(d, dom)) return true;
    // Subdomains of a listed domain are refused too.
    if (dom.size() > d.size() && dom[dom.size() - d.size() - 1] == '.' &&
        util::iequals(dom.substr(dom.size() - d.size()), d))
      return true;
  }
  return false;
}

void Session::Impl::cmd_mail(std::string_view args, Output& out) {
  if (auth_required() && s.auth_user_.empty()) {
    refuse(out, "530 5.7.0 Error: authentication required");
    return;
  }
  if (!util::istarts_with(args, "FROM:")) {
    refuse(out, "501 5.5.4 Syntax: MAIL FROM:<address>");
    return;
  }
  std::string_view rest = args.substr(5);
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  auto pr = parse_path(rest, true, false, true);
  if (!pr.path || (pr.consumed < rest.size() && rest[pr.consumed] != ' ') ||
      (pr.path->utf8 && !util::domain_to_ascii(pr.path->mailbox.domain))) {
    refuse(out, pr.path || pr.error != PathError::too_long
                    ? "501 5.1.7 Bad sender address syntax"
                    : "501 5.1.7 Sender address too long");
    return;
  }
  if (!parse_params(rest.substr(pr.consumed), params)) {
    refuse(out, "501 5.5.4 Error: bad MAIL parameters");
    return;
  }
  std::int64_t size = -1;
  BodyType body = BodyType::seven_bit;
  std::string auth_param;
  DsnRet ret = DsnRet::unspecified;
  std::optional<std::string> envid;
  bool smtputf8 = false;
  bool seen_size = false, seen_body = false, seen_auth = false;
  for (const auto& p : params) {
    // DSN and SMTPUTF8 are offered to EHLO only.
    if (!esmtp && (util::iequals(p.keyword, "RET") || util::iequals(p.keyword, "ENVID") ||
                   util::iequals(p.keyword, "SMTPUTF8"))) {
      refuse(out, "555 5.5.4 Error: unsupported MAIL parameter");
      return;
    }
    if (util::iequals(p.keyword, "SIZE")) {
      if (seen_size || !p.has_value || p.value.size() > 18) {
        refuse(out, "501 5.5.4 Error: bad SIZE parameter");
        return;
      }
      std::int64_t v = 0;
      for (char c : p.value) {
        if (c < '0' || c > '9') {
          refuse(out, "501 5.5.4 Error: bad SIZE parameter");
          return;
        }
        v = v * 10 + (c - '0');
      }
      size = v;
      seen_size = true;
    } else if (util::iequals(p.keyword, "BODY")) {
      if (seen_body || !p.has_value) {
        refuse(out, "501 5.5.4 Error: bad BODY parameter");
        return;
      }
      if (util::iequals(p.value, "7BIT")) {
        body = BodyType::seven_bit;
      } else if (util::iequals(p.value, "8BITMIME")) {
        body = BodyType::eight_bit_mime;
      } else {
        refuse(out, "501 5.5.4 Error: bad BODY parameter");
        return;
      }
      seen_body = true;
    } else if (util::iequals(p.keyword, "AUTH")) {
      auto v = p.has_value ? decode_xtext(p.value) : std::nullopt;
      if (seen_auth || !v) {
        refuse(out, "501 5.5.4 Error: bad AUTH parameter");
        return;
      }
      // RFC 4954 §5: only trusted for authenticated sessions.
      auth_param = s.auth_user_.empty() ? std::string("<>") : std::move(*v);
      seen_auth = true;
    } else if (util::iequals(p.keyword, "RET")) {
      auto v = p.has_value ? parse_dsn_ret(p.value) : std::nullopt;
      if (ret != DsnRet::unspecified || !v) {
        refuse(out, "501 5.5.4 Error: bad RET parameter");
        return;
      }
      ret = *v;
    } else if (util::iequals(p.keyword, "ENVID")) {
      auto v = p.has_value ? parse_dsn_envid(p.value) : std::nullopt;
      if (envid || !v) {
        refuse(out, "501 5.5.4 Error: bad ENVID parameter");
        return;
      }
      envid = std::move(v);
    } else if (util::iequals(p.keyword, "SMTPUTF8")) {
      if (smtputf8 || p.has_value) {
        refuse(out, "501 5.5.4 Error: bad SMTPUTF8 parameter");
        return;
      }
      smtputf8 = true;
    } else {
      refuse(out, "555 5.5.4 Error: unsupported MAIL parameter");
      return;
    }
  }
  if (pr.path->utf8 && !smtputf8) {
    refuse(out, "553 5.6.7 Error: a UTF-8 address needs the SMTPUTF8 parameter");
    return;
  }
  if (size > cfg.smtp.max_mail_size) {
    refuse(out, "552 5.3.4 Error: message size exceeds fixed maximum message size");
    return;
  }
  if (!storage_allows(Environment::Storage::any, size, out)) return;
  reset_transaction();
  s.txn_.reverse_path = pr.path->null ? std::string() : pr.path->mailbox.str();
  if (rejected_by(cfg.smtp.reject_domain, cfg.smtp.reject_mailaddress)) {
    error_event(out, "sender rejected by reject_domain/reject_mailaddress: <" +
                         s.txn_.reverse_path + ">");
    s.txn_.reverse_path.clear();
    refuse(out, "550 5.7.1 Error: sender address rejected");
    return;
  }
  auto accept = [this, size, body, auth_param = std::move(auth_param), ret, envid = envid.value_or(std::string()),
                 smtputf8](Output& o) mutable {
    s.txn_.active = true;
    s.txn_.declared_size = size;
    s.txn_.body = body;
    s.txn_.auth_param = std::move(auth_param);
    s.txn_.ret = ret;
    s.txn_.envid = std::move(envid);
    s.txn_.smtputf8 = smtputf8;
    s.state_ = State::mail;
    reply(o, "250 2.1.0 Ok");
  };
  // SPF (docs/authentication.md): port 25, unauthenticated clients only;
  // then the milters (docs/milter.md). Both may wait: proceed().
  const bool spf = s.opt_.listener == Listener::smtp && s.auth_user_.empty() && !s.opt_.local_submit &&
                   s.env_.wants_sender_check();
  const bool milters = s.env_.filtering();
  if (spf || milters) {
    proceed_with(out, [this, spf, milters, accept = std::move(accept),
                       args = std::string(util::trim(rest.substr(pr.consumed)))](Output& o) mutable {
      if (spf) {
        if (auto refusal = s.env_.check_sender({s.txn_.reverse_path, s.helo_, s.opt_.client_ip})) {
          error_event(o, "sender refused by SPF: <" + s.txn_.reverse_path + ">: " + *refusal);
          s.txn_.reverse_path.clear();
          refuse(o, *refusal);
          return;
        }
      }
      if (milters) {
        if (auto r = s.env_.filter_mail(s.txn_.reverse_path, args, s.auth_user_)) {
          reset_transaction();
          filter_refuse(o, *r);
          return;
        }
      }
      accept(o);
    });
    return;
  }
  accept(out);
}

// Too little free space: 452 4.3.1 now, not a 451 after the whole DATA.
bool Session::Impl::storage_allows(Environment::Storage where, std::int64_t size, Output& out) {
  if (s.env_.storage_allows(where, std::max<std::int64_t>(size, 0))) return true;
  error_event(out, std::string("insufficient storage for ") +
                       (where == Environment::Storage::mailboxes ? "the mailboxes"
                        : where == Environment::Storage::queue   ? "the queue"
                                                                 : "any message") +
                       (size > 0 ? " (SIZE=" + std::to_string(size) + ")" : std::string()));
  refuse(out, "452 4.3.1 Insufficient system storage");
  return false;
}

bool Session::Impl::sender_domain_local() {
  const auto& rp = s.txn_.reverse_path;
  auto at = rp.rfind('@');
  if (rp.empty() || at == std::string::npos) return false;
  auto dom = util::domain_to_ascii(std::string_view(rp).substr(at + 1));
  return dom && s.env_.is_local_domain(*dom);
}

// SPEC §4.3, in its order.
Result<bool> Session::Impl::relay_allowed() {
  if (relay_ok) return *relay_ok;
  bool ok = false;
  if (cfg.smtp.relay) {
    ok = true;
  } else if (client && cidr_list_contains(cfg.smtp.address_permits_relay, *client)) {
    ok = true;
  } else if (!s.auth_user_.empty()) {
    ok = true;
  } else if (!cfg.smtp.send_permits_only_smtp_auth && sender_domain_local()) {
    if (cfg.smtp.pop_before_smtp) {
      auto pop = pop_account();
      if (!pop) return unexpected(pop.error());  // not cached: the next RCPT asks again
      ok = pop->has_value();
    } else {
      ok = true;
    }
  }
  relay_ok = ok;
  return ok;
}

// POP-before-SMTP's account of the client, asked once per transaction
// (an error is not kept: the next RCPT asks again).
Result<std::optional<std::string>> Session::Impl::pop_account() {
  if (pop_account_) return *pop_account_;
  auto a = s.env_.pop_login_account(s.opt_.client_ip,
                                    std::chrono::minutes(cfg.smtp.pop_befor_smtp_time_to_live));
  if (a) pop_account_ = *a;
  return a;
}

// SPEC §4.4: the AUTH user, else the POP-before-SMTP user, else the local
// part of a local sender. "" when none.
const std::string& Session::Impl::daily_account() {
  if (send_account) return *send_account;
  std::string acct = s.auth_user_;
  if (acct.empty() && cfg.smtp.pop_before_smtp) {
    auto a = pop_account();  // an error: none known (RCPT answered 451 for it)
    if (a && *a) acct = **a;
  }
  if (acct.empty() && sender_domain_local()) {
    const auto& rp = s.txn_.reverse_path;
    auto local = std::string_view(rp).substr(0, rp.rfind('@'));
    if (is_account_local_part(local)) acct = util::to_lower(local);
  }
  send_account = std::move(acct);
  return *send_account;
}

void Session::Impl::cmd_rcpt(std::string_view args, Output& out) {
  if (!util::istarts_with(args, "TO:")) {
    refuse(out, "501 5.5.4 Syntax: RCPT TO:<address>");
    return;
  }
  std::string_view rest = args.substr(3);
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  auto pr = parse_path(rest, false, true, true);
  // The domain in its ASCII form: U-labels (SMTPUTF8) become A-labels, so
  // every spelling of a local domain is recognised.
  std::optional<std::string> domain;
  if (pr.path) {
    auto d = util::domain_to_ascii(pr.path->mailbox.domain);
    if (d) domain = std::move(*d);
  }
  if (!pr.path || !domain || (pr.consumed < rest.size() && rest[pr.consumed] != ' ')) {
    refuse(out, pr.path || pr.error != PathError::too_long
                    ? "501 5.1.3 Bad recipient address syntax"
                    : "501 5.1.3 Recipient address too long");
    return;
  }
  if (!parse_params(rest.substr(pr.consumed), params)) {
    refuse(out, "501 5.5.4 Error: bad RCPT parameters");
    return;
  }
  filter_args.assign(util::trim(rest.substr(pr.consumed)));
  DsnRequest dsn;
  bool seen_notify = false;
  for (const auto& p : params) {
    if (esmtp && util::iequals(p.keyword, "NOTIFY")) {
      auto v = p.has_value ? parse_dsn_notify(p.value) : std::nullopt;
      if (seen_notify || !v) {
        refuse(out, "501 5.5.4 Error: bad NOTIFY parameter");
        return;
      }
      dsn.notify = *v;
      seen_notify = true;
    } else if (esmtp && util::iequals(p.keyword, "ORCPT")) {
      auto v = p.has_value ? parse_dsn_orcpt(p.value) : std::nullopt;
      if (!dsn.orcpt.empty() || !v) {
        refuse(out, "501 5.5.4 Error: bad ORCPT parameter");
        return;
      }
      dsn.orcpt = std::move(*v);
    } else {
      refuse(out, "555 5.5.4 Error: unsupported RCPT parameter");
      return;
    }
  }
  if (pr.path->utf8 && !s.txn_.smtputf8) {
    refuse(out, "553 5.6.7 Error: a UTF-8 address needs the SMTPUTF8 parameter with MAIL");
    return;
  }
  // RCPT commands count (an alias with several targets is one).
  if (s.txn_.rcpt_count >= static_cast<std::size_t>(std::max(cfg.smtp.max_recipients, 0))) {
    // Not an error (RFC 5321 §4.5.3.1.10): the client delivers to the
    // recipients accepted so far and sends the rest in another transaction.
    reply(out, "452 4.5.3 Error: too many recipients");
    return;
  }
  const Mailbox& mb = pr.path->mailbox;
  Recipient r;
  r.address = pr.path->bare_postmaster ? std::string("postmaster") : mb.str();
  r.dsn = std::move(dsn);
  // SRS (smtpenv srs=1): a bounce to mail this server forwarded. A check,
  // not policy: the hash and the time stamp are arithmetic, nothing waits.
  if (!pr.path->bare_postmaster && !mb.quoted) {
    const std::string srs_address = mb.local + "@" + *domain;
    if (auto back = s.env_.srs_reverse(srs_address)) {
      if (!*back) {
        const Error& e = back->error();
        error_event(out, "SRS: " + e.message);
        refuse(out, std::to_string(e.smtp_code) + " " + e.enhanced + " <" + srs_address + ">: " + e.client_text);
        return;
      }
      // The sender it stands for, relayed like an alias's remote target:
      // the client named our address (no relay rules, no daily count).
      Recipient t;
      t.address = std::move(**back);
      t.via_alias = true;
      t.original = srs_address;
      t.dsn = std::move(r.dsn);
      if (t.dsn.orcpt.empty()) t.dsn.orcpt = dsn_orcpt_for(srs_address);
      proceed_with(out, [this, t = std::move(t)](Output& o) mutable {
        if (client_listed(t.original, o)) return;
        if (!storage_allows(Environment::Storage::queue, s.txn_.declared_size, o)) return;
        if (!filters_accept_rcpt(t.original, o)) return;
        add_recipient(std::move(t));
        ++s.txn_.rcpt_count;
        s.state_ = State::rcpt;
        reply(o, "250 2.1.5 Ok");
      });
      return;
    }
  }
  bool local_domain = pr.path->bare_postmaster || s.env_.is_local_domain(*domain);
  // One spelling of a local address: its domain in ASCII form (so that
  // alice@MÜNCHEN.example and alice@xn--mnchen-3ya.example are one).
  if (local_domain && !pr.path->bare_postmaster && !mb.quoted) r.address = mb.local + "@" + *domain;
  // Checked: the rest is policy, which may wait for the disk or the
  // embedder's directory.
  proceed_with(out, [this, req = RcptRequest{std::move(r), mb, *domain, local_domain,
                                             pr.path->bare_postmaster}](Output& o) mutable {
    apply_rcpt(std::move(req), o);
  });
}

// RCPT's policy (check, then proceed): the embedder's directory, the
// aliases, the account checks for a local recipient; the relay rules and the
// daily limit for a remote one.
void Session::Impl::apply_rcpt(RcptRequest req, Output& out) {
  Recipient& r = req.recipient;
  const Mailbox& mb = req.mailbox;
  const std::string* domain = &req.domain;
  const bool local_domain = req.local_domain;
  const bool bare_postmaster = req.bare_postmaster;
  if (client_listed(r.address, out)) return;
  if (directory_answered(r, out)) return;
  if (local_domain) {
    // def/aliases.def first: an alias applies before the account of its
    // name, a catch-all when there is no account (wizmail/aliases.hpp).
    if (cfg.aliases && !cfg.aliases->empty() && !mb.quoted) {
      std::string alias_domain = *domain;
      if (bare_postmaster) alias_domain = util::domain_to_ascii(cfg.server.domain).value_or(cfg.server.domain);
      AliasMap::Directory dir{
          [this](std::string_view d) { return s.env_.is_local_domain(d); },
          [this](std::string_view a) -> Result<bool> {
            auto kind = s.env_.lookup_account(a);
            if (!kind) return unexpected(kind.error());
            return *kind != AccountKind::none;
          }};
      auto res = cfg.aliases->resolve(bare_postmaster ? "postmaster" : mb.local, alias_domain, dir);
      if (!res) {
        // A loop or limit of the aliases (Errc::limit), or a store fault
        // while looking up a target: temporary either way, never 550.
        const bool store_fault = res.error().code != Errc::limit;
        error_event(out, (store_fault ? "account lookup for the aliases of <" : "aliases for <") + r.address +
                             ">: " + res.error().message);
        refuse(out, store_fault ? "451 4.3.0 <" + r.address + ">: Error: temporary local problem, try again later"
                                : std::string("451 4.3.0 Error: temporary local problem"));
        return;
      }
      if (res->aliased) {
        accept_alias(std::move(r), std::move(*res), out);
        return;
      }
    }
    // Only plain account names are accounts: %-hacks, bang paths, quoted or
    // @-bearing local parts at a local domain never reach anybody (and are
    // never relayed onwards).
    if (mb.quoted || !is_account_local_part(mb.local)) {
      error_event(out, "relay trick refused: <" + r.address + ">");
      refuse(out, "550 5.1.1 <" + r.address + ">: Recipient address rejected: no such user");
      return;
    }
    r.account = util::to_lower(mb.local);
    const std::string shown = r.address;
    if (!local_recipient_ok(r, shown, out)) return;
    if (!storage_allows(Environment::Storage::mailboxes, s.txn_.declared_size, out)) return;
  } else {
    // POP-before-SMTP may be what allows this relay and names the account
    // of the daily limit: a look-up that fails (the cluster's shared state
    // unreachable) is a 451, never a refusal nor a relay without the check.
    auto pop_failed = [&](const Error& e) {
      error_event(out, util::cat("POP-before-SMTP look-up failed: ", e.message));
      refuse(out, util::cat("451 4.3.0 <", r.address, ">: Error: temporary local problem, try again later"));
    };
    auto relay = relay_allowed();
    if (!relay) {
      pop_failed(relay.error());
      return;
    }
    if (!*relay) {
      error_event(out, "relay denied: <" + s.txn_.reverse_path + "> -> <" + r.address + ">",
                  LogEvent::What::relay_denied);
      refuse(out, "554 5.7.1 <" + r.address + ">: Relay access denied");
      return;
    }
    if (!over_daily_limit && cfg.smtp.pop_before_smtp && s.auth_user_.empty()) {
      if (auto pop = pop_account(); !pop) {
        pop_failed(pop.error());
        return;
      }
    }
    if (!over_daily_limit) {
      bool over = false;
      const std::string& acct = daily_account();
      if (!acct.empty()) {
        int limit = cfg.smtp.send_max_during_a_day;
        auto st = s.env_.account_settings(acct);
        if (st) limit = st->send_max_during_a_day;
        if (limit >= 0) {
          auto sent = s.env_.sends_today(acct);
          if (!sent) {
            error_event(out, "daily send count of " + acct + ": " + sent.error().message);
            refuse(out, "451 4.3.0 <" + r.address + ">: Error: temporary local problem, try again later");
            return;
          }
          over = *sent >= limit;
        }
      }
      over_daily_limit = over;
    }
    if (*over_daily_limit) {
      error_event(out, "daily send limit reached by " + daily_account());
      refuse(out, "450 4.7.1 Error: daily sending limit reached, try again tomorrow");
      return;
    }
    if (!storage_allows(Environment::Storage::queue, s.txn_.declared_size, out)) return;
  }
  if (!filters_accept_rcpt(r.address, out)) return;
  add_recipient(std::move(r));
  ++s.txn_.rcpt_count;
  s.state_ = State::rcpt;
  reply(out, "250 2.1.5 Ok");
}

// The embedder's directory (Environment::check_recipient) first: true when
// it answered the RCPT (accepted into a local account, or refused).
bool Session::Impl::directory_answered(Recipient& r, Output& out) {
  using Answer = Environment::RecipientAnswer;
  auto a = s.env_.check_recipient({r.address, s.txn_.reverse_path, s.opt_.client_ip, s.auth_user_, s.helo_,
                                   s.opt_.listener, s.opt_.local_submit});
  if (a.kind == Answer::Kind::defer) return false;
  if (!a.reason.empty()) error_event(out, "<" + r.address + ">: " + a.reason);
  if (a.kind == Answer::Kind::reject) {
    error_event(out, "recipient <" + r.address + "> refused by the embedder's directory: " + a.reply);
    refuse(out, a.reply);
    return true;
  }
  auto found = s.env_.lookup_account(a.account);
  if (!found || *found == AccountKind::none) {
    error_event(out, "the embedder's directory put <" + r.address + "> into account " + a.account + ": " +
                         (found ? std::string("no such account") : found.error().message));
    refuse(out, "451 4.3.0 <" + r.address + ">: Error: temporary local problem, try again later");
    return true;
  }
  r.account = std::move(a.account);
  if (!local_recipient_ok(r, r.address, out)) return true;
  if (!storage_allows(Environment::Storage::mailboxes, s.txn_.declared_size, out)) return true;
  if (!filters_accept_rcpt(r.address, out)) return true;
  add_recipient(std::move(r));
  ++s.txn_.rcpt_count;
  s.state_ = State::rcpt;
  reply(out, "250 2.1.5 Ok");
  return true;
}

// The checks for a local account (r.account): it exists, its reject lists
// let the sender through, its quota has room. Refuses (naming `shown`, the
// address the client gave) and returns false otherwise.
bool Session::Impl::local_recipient_ok(Recipient& r, std::string_view shown, Output& out) {
  const std::string addr(shown);
  auto found = s.env_.lookup_account(r.account);
  if (!found) {
    error_event(out, "account lookup of " + r.account + ": " + found.error().message);
    refuse(out, "451 4.3.0 <" + addr + ">: Error: temporary local problem, try again later");
    return false;
  }
  const bool exists = *found != AccountKind::none;
  if (!exists && r.account != "postmaster") {
    refuse(out, "550 5.1.1 <" + addr + ">: Recipient address rejected: no such user");
    return false;
  }
  r.mailing_list = *found == AccountKind::mailing_list;
  if (!exists) return true;
  auto settings = s.env_.account_settings(r.account);
  if (!settings) {
    error_event(out, "account settings of " + r.account + ": " + settings.error().message);
    refuse(out, "451 4.3.0 Error: temporary local problem");
    return false;
  }
  if (rejected_by(settings->reject_domain, settings->reject_mailaddress)) {
    error_event(out, "sender <" + s.txn_.reverse_path + "> rejected by " + r.account + "'s reject list");
    refuse(out, "550 5.7.1 <" + addr + ">: Recipient refuses mail from this sender");
    return false;
  }
  auto q = s.env_.quota_allows(r.account, std::max<std::int64_t>(s.txn_.declared_size, 0));
  if (!q) {
    error_event(out, "quota check of " + r.account + ": " + q.error().message);
    refuse(out, "451 4.3.0 Error: temporary local problem");
    return false;
  }
  if (!*q) {
    refuse(out, "452 4.2.2 <" + addr + ">: Mailbox full");
    return false;
  }
  return true;
}

// An alias (or catch-all) applied to the RCPT address `r`: every local
// target passes the account checks (one refusal refuses the RCPT, naming
// the alias, never its targets); remote targets are not relaying (the
// client named a local address). DSN (RFC 3461 §5.2.7): one target keeps
// NOTIFY; several targets get an "expanded" notice when SUCCESS was asked
// and the rest of NOTIFY (NEVER when SUCCESS was all). Each target's ORCPT
// is the client's, else the alias address.
void Session::Impl::accept_alias(Recipient r, AliasMap::Resolution res, Output& out) {
  for (const auto& u : res.unknown)
    error_event(out, "alias <" + r.address + ">: target <" + u + "> names no account (skipped)");
  if (res.targets.empty()) {
    refuse(out, "550 5.1.1 <" + r.address + ">: Recipient address rejected: no such user");
    return;
  }
  DsnRequest target_dsn = r.dsn;
  if (target_dsn.orcpt.empty()) target_dsn.orcpt = dsn_orcpt_for(r.address);
  const bool expanded = res.targets.size() > 1 && wants_success_notice(r.dsn.notify);
  if (expanded) {
    auto rest = static_cast<std::uint8_t>(r.dsn.notify & ~dsn_notify::success);
    target_dsn.notify = rest ? rest : dsn_notify::never;
  }
  std::vector<Recipient> targets;
  for (auto& t : res.targets) {
    Recipient x;
    x.address = std::move(t.address);
    x.account = std::move(t.account);
    x.via_alias = true;
    x.original = r.address;
    x.dsn = target_dsn;
    if (x.local() && !local_recipient_ok(x, r.address, out)) return;
    targets.push_back(std::move(x));
  }
  // queue_minfree: the targets' storage has room, as for a plain RCPT.
  const bool any_local = std::any_of(targets.begin(), targets.end(), [](const Recipient& x) { return x.local(); });
  const bool any_remote = std::any_of(targets.begin(), targets.end(), [](const Recipient& x) { return !x.local(); });
  if (any_local && !storage_allows(Environment::Storage::mailboxes, s.txn_.declared_size, out)) return;
  if (any_remote && !storage_allows(Environment::Storage::queue, s.txn_.declared_size, out)) return;
  if (!filters_accept_rcpt(r.address, out)) return;
  for (auto& x : targets) add_recipient(std::move(x));
  if (expanded) s.txn_.expanded.push_back(std::move(r));
  ++s.txn_.rcpt_count;
  s.state_ = State::rcpt;
  reply(out, "250 2.1.5 Ok");
}

// Duplicates are kept once: the same address, or (for alias targets) the
// same account or remote address reached another way.
void Session::Impl::add_recipient(Recipient r) {
  auto& all = s.txn_.recipients;
  bool dup = std::any_of(all.begin(), all.end(), [&](const Recipient& x) {
    if (util::iequals(x.address, r.address)) return true;
    return r.via_alias && r.local() && x.account == r.account;
  });
  if (!dup) all.push_back(std::move(r));
}

std::string Session::Impl::received_header() {
  std::string h;
  h.reserve(256);
  h += "Received: from ";
  h += s.helo_;
  h += " (";
  if (client && client->v6)
    h += "[IPv6:" + s.opt_.client_ip + "]";
  else
    h += "[" + s.opt_.client_ip + "]";
  h += ")\r\n\t";
  // As Postfix: "(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))".
  if (s.tls_active_ && !s.tls_cipher_.empty()) {
    h += "(using ";
    h += s.tls_cipher_;
    h += ")\r\n\t";
  }
  h += "by ";
  h += s.opt_.hostname;
  h += " (wizmail) with ";
  // RFC 3848 and, with SMTPUTF8, RFC 6531 §4.3 protocol names.
  h += !esmtp ? "SMTP" : s.txn_.smtputf8 ? "UTF8SMTP" : "ESMTP";
  if (esmtp && s.tls_active_) h += 'S';
  if (esmtp && !s.auth_user_.empty()) h += 'A';
  h += " id ";
  h += s.opt_.session_id;
  h += "\r\n\t";
  // Our own header stays ASCII (so an SMTPUTF8 message with ASCII header
  // fields may still go to a peer without SMTPUTF8): a U-label domain as
  // its A-label, no "for" for a UTF-8 local part.
  if (s.txn_.recipients.size() == 1 && !s.txn_.recipients.front().via_alias) {
    auto a = util::address_domain_to_ascii(s.txn_.recipients.front().address);
    if (a && util::is_ascii(*a)) h += "for <" + *a + ">; ";
  }
  h += mime::rfc5322_date(s.env_.now(), mime::DateZone::utc);
  h += "\r\n";
  return h;
}

void Session::Impl::cmd_data(std::string_view args, Output& out) {
  if (!args.empty()) {
    refuse(out, "501 5.5.4 Syntax: DATA");
    return;
  }
  if (s.env_.filtering()) {
    proceed_with(out, [this](Output& o) {
      if (auto r = s.env_.filter_data()) {
        filter_refuse(o, *r);
        return;
      }
      open_data(o);
    });
    return;
  }
  open_data(out);
}

void Session::Impl::open_data(Output& out) {
  auto st = s.sink_.begin(s.txn_);
  if (st) {
    auto h = received_header();
    st = s.sink_.write(h);
    if (st) s.written_ = static_cast<std::int64_t>(h.size());
  }
  if (!st) {
    s.sink_.abort();
    error_event(out, "cannot open message: " + st.error().message);
    const auto& e = st.error();
    if (e.smtp_code)
      refuse(out, std::to_string(e.smtp_code) + " " + e.enhanced + " " +
                      (e.client_text.empty() ? e.message : e.client_text));
    else
      refuse(out, "451 4.3.0 Error: temporary local problem");
    return;
  }
  std::int64_t max = cfg.smtp.max_mail_size;
  if (s.txn_.declared_size >= 0) max = std::min(max, s.txn_.declared_size);
  data.begin(max);
  ++messages;
  fixing = submission();
  if (fixing) fixer.start(s.sink_, mime::rfc5322_date(s.env_.now()), new_message_id());
  s.state_ = State::data;
  reply(out, "354 End data with <CR><LF>.<CR><LF>");
}

void Session::Impl::finish_data(Output& out) {
  s.written_ += data.size();
  if (s.opt_.log_protocol)
    out.events.push_back({LogEvent::Kind::command, "(end of data)"});
  Status completed;
  if (fixing) {
    fixing = false;
    if (data.acceptable()) completed = fixer.finish();
    s.written_ += fixer.added();
  }
  std::string_view refusal;
  if (!data.sink_status() || !completed) {
    const auto& e = !data.sink_status() ? data.sink_status().error() : completed.error();
    error_event(out, "writing message failed: " + e.message);
    refusal = "451 4.3.0 Error: temporary local problem";
  } else if (data.bare_newline()) {
    error_event(out, "message refused: bare LF or CR in data");
    refusal = "550 5.5.2 Error: bare <CR> or <LF> received in message data; use <CR><LF>";
  } else if (data.line_too_long()) {
    error_event(out, "message refused: line longer than 1000 octets");
    refusal = "552 5.3.4 Error: message line longer than 1000 octets";
  } else if (data.too_big()) {
    error_event(out, "message refused: over the size limit");
    refusal = (s.txn_.declared_size >= 0 && s.txn_.declared_size < cfg.smtp.max_mail_size)
                  ? "552 5.3.4 Error: message larger than its declared SIZE"
                  : "552 5.3.4 Error: message size exceeds fixed maximum message size";
  } else if (data.loop()) {
    error_event(out, "message refused: more than 50 Received headers (mail loop)");
    refusal = "554 5.4.6 Error: too many Received headers: mail loop";
  }
  if (!refusal.empty()) {
    s.sink_.abort();
    reset_transaction();
    s.state_ = State::ready;
    refuse(out, refusal);
    return;
  }
  s.state_ = State::awaiting_commit;
  out.commit = true;
}

// "<20250304090507.0123abcd4567.2.8e1f0a2b3c4d5e6f@host>": time, session,
// message number and 64 random bits, as unique as Postfix's
// <time.queue-id@host>.
std::string Session::Impl::new_message_id() {
  std::time_t t = std::chrono::system_clock::to_time_t(s.env_.now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char stamp[32];
  std::size_t n = std::strftime(stamp, sizeof stamp, "%Y%m%d%H%M%S", &tm);
  std::uint64_t r = s.env_.random();
  unsigned char bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<unsigned char>(r >> (56 - 8 * i));
  std::string id = "<" + std::string(stamp, n) + ".";
  if (!s.opt_.session_id.empty()) id += s.opt_.session_id + ".";
  id += std::to_string(messages) + "." + hex(bytes, sizeof bytes) + "@" + s.opt_.hostname + ">";
  return id;
}

void Session::Impl::cmd_rset(std::string_view, Output& out) {
  reset_transaction();
  if (s.state_ != State::initial) s.state_ = State::ready;
  reply(out, "250 2.0.0 Ok");
}

void Session::Impl::cmd_noop(std::string_view, Output& out) { reply(out, "250 2.0.0 Ok"); }

void Session::Impl::cmd_quit(std::string_view, Output& out) {
  reply(out, "221 2.0.0 Bye");
  s.state_ = State::closed;
  out.close = true;
}

void Session::Impl::cmd_vrfy(std::string_view args, Output& out) {
  if (args.empty()) {
    refuse(out, "501 5.5.4 Syntax: VRFY address");
    return;
  }
  reply(out, "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery");
}

void Session::Impl::cmd_help(std::string_view, Output& out) {
  reply(out,
        "214-2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP\r\n"
        "214 2.0.0 STARTTLS AUTH; see RFC 5321");
}

void Session::Impl::cmd_not_implemented(std::string_view, Output& out) {
  refuse(out, "502 5.5.1 Error: command not implemented");
}

void Session::Impl::cmd_starttls(std::string_view args, Output& out) {
  if (!args.empty()) {
    refuse(out, "501 5.5.4 Syntax: STARTTLS");
    return;
  }
  if (s.tls_active_) {
    refuse(out, "503 5.5.1 Error: TLS already active");
    return;
  }
  if (!s.opt_.tls_available) {
    refuse(out, "502 5.5.1 Error: command not implemented");
    return;
  }
  reply(out, "220 2.0.0 Ready to start TLS");
  lines.reset();
  s.state_ = State::tls_pending;
  out.start_tls = true;
}

// --- AUTH -------------------------------------------------------------------

void Session::Impl::cmd_auth(std::string_view args, Output& out) {
  if (!s.auth_user_.empty()) {
    refuse(out, "503 5.5.1 Error: already authenticated");
    return;
  }
  // The penalty may live in the cluster's shared state: asked in proceed().
  proceed_with(out, [this, a = std::string(args)](Output& o) {
    if (s.env_.auth_blocked(s.opt_.client_ip)) {
      refuse_blocked(o);
      return;
    }
    start_auth(a, o);
  });
}

void Session::Impl::start_auth(std::string_view args, Output& out) {
  auto sp = args.find(' ');
  std::string_view mech = args.substr(0, sp);
  std::string_view initial = sp == std::string_view::npos ? std::string_view() : args.substr(sp + 1);
  if (mech.empty()) {
    refuse(out, "501 5.5.4 Syntax: AUTH mechanism");
    return;
  }
  if (initial.find(' ') != std::string_view::npos) {
    refuse(out, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
    return;
  }
  if (util::iequals(mech, "PLAIN")) {
    sasl_mech = "PLAIN";
    if (initial.empty()) {
      sasl = Sasl::plain;
      s.state_ = State::auth;
      reply(out, "334 ");
      return;
    }
    auth_plain(initial, out);
  } else if (util::iequals(mech, "LOGIN")) {
    sasl_mech = "LOGIN";
    s.state_ = State::auth;
    if (initial.empty()) {
      sasl = Sasl::login_user;
      reply(out, "334 VXNlcm5hbWU6");
      return;
    }
    auth_login_user(initial, out);
  } else if (util::iequals(mech, "CRAM-MD5")) {
    sasl_mech = "CRAM-MD5";
    if (!initial.empty()) {
      refuse(out, "501 5.5.4 Error: CRAM-MD5 takes no initial response");
      return;
    }
    auto secs = std::chrono::duration_cast<std::chrono::seconds>(
                    s.env_.now().time_since_epoch())
                    .count();
    cram_challenge = "<" + std::to_string(s.env_.random()) + "." + std::to_string(secs) +
                     "@" + s.opt_.hostname + ">";
    sasl = Sasl::cram;
    s.state_ = State::auth;
    reply(out, "334 " + base64_encode(cram_challenge));
  } else {
    refuse(out, "504 5.5.4 Error: unrecognized authentication mechanism");
  }
}

void Session::Impl::handle_sasl(std::string_view line, Output& out) {
  if (s.opt_.log_protocol)
    out.events.push_back({LogEvent::Kind::command, "(SASL response)"});
  if (line == "*") {
    sasl = Sasl::none;
    s.state_ = State::ready;
    refuse(out, "501 5.7.0 Error: authentication cancelled");
    check_error_limit(out);
    return;
  }
  switch (sasl) {
    case Sasl::plain: auth_plain(line, out); break;
    case Sasl::login_user: auth_login_user(line, out); break;
    case Sasl::login_pass: auth_login_pass(line, out); break;
    case Sasl::cram: auth_cram(line, out); break;
    case Sasl::none: break;
  }
  check_error_limit(out);
}

std::optional<std::string> Session::Impl::account_from_user(std::string_view user) {
  auto at = user.rfind('@');
  std::string_view local = user;
  if (at != std::string_view::npos) {
    if (!s.env_.is_local_domain(util::to_lower(user.substr(at + 1)))) return std::nullopt;
    local = user.substr(0, at);
  }
  if (!is_account_local_part(local)) return std::nullopt;
  return util::to_lower(local);
}

void Session::Impl::refuse_blocked(Output& out) {
  sasl = Sasl::none;
  login_user.clear();
  error_event(out, "authentication refused: too many failures from the client's network");
  reply(out, "421 4.7.0 " + s.opt_.hostname +
                 " Error: too many authentication failures from your network, try later");
  s.state_ = State::closed;
  out.close = true;
}

// Credentials are complete. Every attempt from a network with failures
// waits before it is checked, right or wrong (Dovecot's auth_penalty): the
// answer's timing tells nothing, and a client that leaves during the wait
// has its attempt never checked.
void Session::Impl::admit(Attempt a, Output& out) {
  attempt = std::move(a);
  // The admission may ask the cluster's shared state: in proceed().
  proceed_with(out, [this](Output& o) { admit_now(o); });
}

void Session::Impl::admit_now(Output& out) {
  auto adm = s.env_.auth_begin(s.opt_.client_ip);
  if (adm.kind != auth::AuthAdmission::Kind::check) {
    OPENSSL_cleanse(attempt->secret.data(), attempt->secret.size());
    attempt.reset();
  }
  switch (adm.kind) {
    case auth::AuthAdmission::Kind::check: break;
    case auth::AuthAdmission::Kind::blocked: refuse_blocked(out); return;
    case auth::AuthAdmission::Kind::busy:
      sasl = Sasl::none;
      s.state_ = State::ready;
      login_user.clear();
      error_event(out, "authentication refused: too many attempts of the client's network in progress");
      refuse(out, "454 4.7.0 Error: too many authentication attempts from your network, try later");
      return;
    case auth::AuthAdmission::Kind::unavailable:
      sasl = Sasl::none;
      s.state_ = State::ready;
      login_user.clear();
      error_event(out, "authentication refused: the auth penalty's shared state is unavailable");
      refuse(out, "454 4.7.0 Error: temporary authentication failure");
      return;
  }
  attempt->admitted = true;
  auto delay = auth::auth_delay_for(std::max(auth_failures, adm.failures), s.opt_.auth_fail_delay,
                                   s.opt_.auth_max_delay);
  if (delay.count() > 0) {
    out.delay = delay;
    paused = true;
    return;
  }
  proceed_with(out, [this](Output& o) { check_attempt(o); });
}

void Session::Impl::check_attempt(Output& out) {
  Attempt a = std::move(*attempt);
  attempt.reset();
  Result<bool> ok = false;
  if (a.account && !a.cram) {
    ok = s.env_.authenticate(*a.account, a.secret);
  } else if (a.account) {
    bool match = false;
    auto pw = s.env_.plain_password(*a.account);
    if (pw) {
      unsigned char mac[EVP_MAX_MD_SIZE];
      unsigned int len = 0;
      if (HMAC(EVP_md5(), pw->data(), static_cast<int>(pw->size()),
               reinterpret_cast<const unsigned char*>(cram_challenge.data()),
               cram_challenge.size(), mac, &len)) {
        std::string expect = hex(mac, len);
        match = expect.size() == a.secret.size() &&
                CRYPTO_memcmp(expect.data(), a.secret.data(), expect.size()) == 0;
      }
      OPENSSL_cleanse(pw->data(), pw->size());
    }
    ok = match;
  }
  OPENSSL_cleanse(a.secret.data(), a.secret.size());
  s.env_.auth_end(s.opt_.client_ip);
  auth_result(std::move(a.account), std::move(ok), a.user, out);
}

void Session::Impl::auth_result(std::optional<std::string> account, Result<bool> ok,
                                std::string_view user, Output& out) {
  sasl = Sasl::none;
  s.state_ = State::ready;
  login_user.clear();
  if (!ok) {
    error_event(out, "authentication backend failure: " + ok.error().message);
    refuse(out, "454 4.7.0 Error: temporary authentication failure");
    return;
  }
  if (account && *ok) {
    s.auth_user_ = std::move(*account);
    s.env_.auth_succeeded(s.opt_.client_ip);
    reply(out, "235 2.7.0 Authentication successful");
    return;
  }
  ++auth_failures;
  s.env_.auth_failed(s.opt_.client_ip);
  std::string u(user.substr(0, 64));
  for (auto& c : u)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  error_event(out, sasl_mech + " authentication failed for user \"" + u + "\"",
              LogEvent::What::auth_failure);
  if (auth_failures >= s.opt_.max_auth_failures) {
    reply(out, "421 4.7.0 " + s.opt_.hostname + " Error: too many authentication failures");
    s.state_ = State::closed;
    out.close = true;
    return;
  }
  refuse(out, "535 5.7.8 Error: authentication failed");
}

void Session::Impl::auth_plain(std::string_view b64, Output& out) {
  auto raw = b64 == "=" ? std::optional<std::string>(std::string()) : base64_decode(b64);
  if (!raw) {
    sasl = Sasl::none;
    s.state_ = State::ready;
    refuse(out, "501 5.5.2 Error: invalid base64 data");
    return;
  }
  // authzid NUL authcid NUL passwd (RFC 4616)
  auto n1 = raw->find('\0');
  auto n2 = n1 == std::string::npos ? n1 : raw->find('\0', n1 + 1);
  if (n2 == std::string::npos || raw->find('\0', n2 + 1) != std::string::npos) {
    sasl = Sasl::none;
    s.state_ = State::ready;
    refuse(out, "501 5.5.2 Error: malformed PLAIN response");
    return;
  }
  std::string_view authz = std::string_view(*raw).substr(0, n1);
  std::string_view user = std::string_view(*raw).substr(n1 + 1, n2 - n1 - 1);
  std::string_view pass = std::string_view(*raw).substr(n2 + 1);
  auto account = account_from_user(user);
  if (account && !authz.empty()) {
    auto az = account_from_user(authz);
    if (!az || *az != *account) account.reset();  // no proxy authorization
  }
  admit(Attempt{std::move(account), std::string(user), std::string(pass), false}, out);
}

void Session::Impl::auth_login_user(std::string_view b64, Output& out) {
  auto raw = base64_decode(b64);
  if (!raw) {
    sasl = Sasl::none;
    s.state_ = State::ready;
    refuse(out, "501 5.5.2 Error: invalid base64 data");
    return;
  }
  login_user = std::move(*raw);
  sasl = Sasl::login_pass;
  s.state_ = State::auth;
  reply(out, "334 UGFzc3dvcmQ6");
}

void Session::Impl::auth_login_pass(std::string_view b64, Output& out) {
  auto raw = base64_decode(b64);
  if (!raw) {
    sasl = Sasl::none;
    s.state_ = State::ready;
    login_user.clear();
    refuse(out, "501 5.5.2 Error: invalid base64 data");
    return;
  }
  std::string user = std::move(login_user);
  login_user.clear();
  auto account = account_from_user(user);
  admit(Attempt{std::move(account), std::move(user), std::move(*raw), false}, out);
}

void Session::Impl::auth_cram(std::string_view b64, Output& out) {
  auto raw = base64_decode(b64);
  if (!raw) {
    sasl = Sasl::none;
    s.state_ = State::ready;
    refuse(out, "501 5.5.2 Error: invalid base64 data");
    return;
  }
  auto sp = raw->rfind(' ');
  if (sp == std::string::npos || raw->size() - sp - 1 != 32) {
    // Malformed: fails whatever it holds, after the same wait.
    admit(Attempt{std::nullopt, raw->substr(0, std::min<std::size_t>(sp, 64)), {}, true}, out);
    return;
  }
  std::string user = raw->substr(0, sp);
  std::string digest = util::to_lower(std::string_view(*raw).substr(sp + 1));
  auto account = account_from_user(user);
  admit(Attempt{std::move(account), std::move(user), std::move(digest), true}, out);
}

// --- Session ----------------------------------------------------------------

Session::Session(SessionOptions options, Environment& env, MessageSink& sink)
    : opt_(std::move(options)), env_(env), sink_(sink) {
  tls_active_ = opt_.tls_active;
  tls_cipher_ = opt_.tls_cipher;
  impl_ = std::make_unique<Impl>(*this);
}

Session::~Session() = default;

bool Session::awaiting() const noexcept {
  return state_ == State::awaiting_commit || state_ == State::tls_pending || impl_->paused ||
         impl_->pending != nullptr;
}

void Session::start(Output& out) {
  if (state_ == State::closed || impl_->greeted) return;
  impl_->greeted = true;
  impl_->reply(out, "220 " + opt_.hostname + " ESMTP wizmail");
}

void Session::feed(std::string_view bytes, Output& out, bool more_pending) {
  if (state_ == State::closed || state_ == State::tls_pending) return;
  if (!impl_->greeted) {
    // The client talked before the 220 (postscreen's pregreet test): a
    // client that follows the protocol waits for the greeting.
    if (bytes.empty()) return;
    impl_->reply(out, "554 5.5.1 Error: SMTP protocol synchronization: talked before the greeting");
    impl_->error_event(out, "pregreet: client talked before the greeting, disconnected");
    state_ = State::closed;
    out.close = true;
    return;
  }
  impl_->more_pending = more_pending;
  if (awaiting() || !impl_->stash.empty()) {
    // Bounded: a connection reads again only after acting on the output.
    if (impl_->stash.size() + bytes.size() > 1024 * 1024) {
      impl_->reply(out, "421 4.7.0 " + opt_.hostname + " Error: too much pipelined input");
      state_ = State::closed;
      out.close = true;
      return;
    }
    impl_->stash.append(bytes);
    if (awaiting()) return;
    std::string buf = std::move(impl_->stash);
    impl_->stash.clear();
    impl_->process(buf, out);
    return;
  }
  impl_->process(bytes, out);
}

void Session::resume(Output& out) {
  impl_->paused = false;
  impl_->more_pending = false;  // what the connection saw then is in the stash now
  if (impl_->attempt && !impl_->pending)
    impl_->proceed_with(out, [this](Output& o) { impl_->check_attempt(o); });
  if (impl_->stash.empty() || awaiting()) return;
  std::string buf = std::move(impl_->stash);
  impl_->stash.clear();
  impl_->process(buf, out);
}

void Session::proceed(Output& out) {
  out.lookup = false;
  if (!impl_->pending) return;
  auto work = std::move(impl_->pending);
  impl_->pending = nullptr;
  // The rest of a pipelined group is processed here too, its lookups at
  // once: one trip to where waiting is allowed serves every RCPT in it.
  impl_->proceeding = true;
  work(out);
  impl_->check_error_limit(out);
  if (!impl_->stash.empty() && !awaiting() && state_ != State::closed) {
    std::string buf = std::move(impl_->stash);
    impl_->stash.clear();
    impl_->process(buf, out);
  }
  impl_->proceeding = false;
}

void Session::on_commit(Result<std::string> queue_id, Output& out) {
  if (state_ != State::awaiting_commit) return;
  // As resume(): what the connection saw then is in the stash now (also
  // when the 250 waits for proceed()).
  impl_->more_pending = false;
  if (queue_id) {
    // A message sent by an account counts in its send counters (a file
    // each): a look-up that may wait, before the 250.
    const bool relayed = txn_.has_relayed();  // an alias's remote targets are not the client's relaying
    if (relayed || impl_->submission()) {
      impl_->proceed_with(out, [this, relayed, id = std::move(*queue_id)](Output& o) {
        impl_->accepted(id, relayed, true, o);
      });
      if (!impl_->pending) resume(out);
      return;
    }
    impl_->accepted(*queue_id, false, false, out);
  } else {
    const auto& e = queue_id.error();
    impl_->error_event(out, "commit failed: " + e.message);
    if (!e.reply.empty())
      impl_->refuse(out, e.reply);
    else if (e.smtp_code)
      impl_->refuse(out, std::to_string(e.smtp_code) + " " + e.enhanced + " " +
                             (e.client_text.empty() ? e.message : e.client_text));
    else
      impl_->refuse(out, "451 4.3.0 Error: queue file write error");
    impl_->end_transaction();
    if (e.smtp_code == 421) {
      // RFC 5321 §3.8: 421 closes the channel (a milter's 421 at the end
      // of data, as Postfix does).
      state_ = State::closed;
      out.close = true;
      impl_->paused = false;
      impl_->stash.clear();
      return;
    }
  }
  resume(out);
}

void Session::on_tls_started(Output& out, std::string cipher) {
  (void)out;
  if (state_ != State::tls_pending) return;
  // RFC 3207 §4.2: forget everything learned before TLS.
  tls_active_ = true;
  tls_cipher_ = std::move(cipher);
  impl_->reset_transaction();
  impl_->lines.reset();
  impl_->stash.clear();
  impl_->esmtp = false;
  helo_.clear();
  auth_user_.clear();
  state_ = State::initial;
}

bool Session::mid_command() const noexcept { return impl_->lines.mid_line(); }

std::string Session::timeout_reply() const {
  return "421 4.4.2 " + opt_.hostname + " Error: timeout exceeded\r\n";
}

std::string Session::shutdown_reply() const {
  return "421 4.3.2 " + opt_.hostname + " Service shutting down\r\n";
}

}  // namespace wizmail::smtp
