// The SMTP server session (SPEC §4): a pure state machine. Bytes from the
// client go in; replies, actions and log events come out. No sockets, no
// Asio, no file I/O: the connection (server area) does all of that and asks
// the policy questions through smtp::Environment.
//
// How a connection drives a Session (every method appends to an Output the
// caller cleared):
//
//   Session s(options, env, sink);
//   s.start(out);                          // 220 banner
//   loop:
//     s.feed(bytes_read, out);             // every byte read, in order
//   act:
//     if out.lookup     -> s.proceed(out) where waiting for the disk is
//                          fine (the server's blocking pool); it clears
//                          out.lookup and appends to the same Output
//     write out.replies (one write: RFC 2920 batching)
//     if out.close      -> close the connection, stop
//     if out.start_tls  -> TLS handshake, then s.on_tls_started(out), goto act
//                          (a failed handshake: just close)
//     if out.commit     -> make the message durable (sink contents +
//                          s.transaction()), then s.on_commit(result, out),
//                          goto act
//     if out.delay was set (an AUTH attempt waits before it is checked:
//                          nothing else is set) -> wait it out; if the client
//                          has gone, close (the attempt is never checked);
//                          else s.resume(out), goto act
//     otherwise read more.
//
// Check, then proceed (OpenSMTPD's split): each command is parsed and
// checked (syntax, parameters, state, limits) as it arrives; what needs
// policy lookups that may wait — RCPT's account, config.def, quota,
// aliases, embedder directory, relay rules and daily limit, and the
// password check of an AUTH attempt — runs in proceed() when the session
// defers its lookups (SessionOptions::defer_lookups, as the server does),
// at once otherwise (tests, tools). A command refused by its checks is
// answered without that trip.
//
// While an action is pending (awaiting() is true) the session processes no
// input: bytes fed meanwhile are kept (bounded) and processed by
// on_commit()/resume(). Bytes buffered after a STARTTLS line are discarded
// (RFC 3207 §4; CVE-2011-0411 class of injection).
//
// Memory per session is bounded: a partial command line is at most
// max_command_line (AUTH lines max_auth_line); message data is streamed to the
// MessageSink in the spans it arrived in.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/penalty.hpp"
#include "wizmail/account_store.hpp"
#include "wizmail/config.hpp"
#include "wizmail/dsn.hpp"
#include "wizmail/error.hpp"

namespace wizmail::smtp {

// Which listener accepted the connection.
enum class Listener {
  smtp,        // port 25
  submission,  // submission_port (RFC 6409): MAIL requires AUTH
  smtps,       // smtps_port: implicit TLS, AUTH required like submission
};

enum class BodyType { seven_bit, eight_bit_mime };

struct Recipient {
  std::string address;       // forward path without <>, domain lower-cased
  std::string account;       // local account (lower case); empty = remote
  bool mailing_list = false;  // the local account is a mailing list
  // A target of an alias (def/aliases.def): `address` is the target,
  // `original` the address the client named (RCPT). Local for the relay
  // rules even when remote.
  bool via_alias = false;
  std::string original;
  DsnRequest dsn;            // NOTIFY / ORCPT (RFC 3461)

  bool local() const noexcept { return !account.empty(); }
  // The address a local copy is delivered to (its Delivered-To): the
  // address as it arrived — the alias for an alias's target.
  std::string_view delivered_to() const noexcept { return original.empty() ? address : original; }
};

// The mail transaction: MAIL, RCPTs, DATA. Reset by RSET, HELO/EHLO,
// STARTTLS and after each end of data (committed or refused).
struct Transaction {
  bool active = false;            // MAIL accepted
  std::string reverse_path;       // without <>; empty = null sender <>
  std::vector<Recipient> recipients;
  std::int64_t declared_size = -1;  // SIZE= parameter, -1 when absent
  BodyType body = BodyType::seven_bit;
  std::string auth_param;         // MAIL ... AUTH=<xtext>, decoded; "<>" kept
  DsnRet ret = DsnRet::unspecified;  // MAIL ... RET=
  std::string envid;              // MAIL ... ENVID=<xtext>, decoded
  bool smtputf8 = false;          // MAIL ... SMTPUTF8 (RFC 6531)
  std::size_t rcpt_count = 0;     // RCPT commands accepted (max_recipients)
  // Aliases with several targets whose RCPT asked NOTIFY=SUCCESS: their
  // "expanded" notice goes out with the commit (RFC 3461 §5.2.7.3).
  std::vector<Recipient> expanded;

  bool has_remote() const noexcept;   // any remote recipient
  bool has_relayed() const noexcept;  // a remote recipient the client named
  void reset();
};

// Where message data goes. The session calls begin() when DATA is accepted
// (before the 354), then write() with the message bytes exactly as they are
// to be stored (dot-unstuffed, CRLF line ends, the session's own Received:
// header first), then either nothing more (end of data accepted: the
// connection sees Output::commit and commits what it received) or abort()
// (message refused by the session's checks). ~Session never calls the sink
// (the connection that is often the sink may be half destroyed by then): when
// a session ends in State::data or State::awaiting_commit, the connection
// discards the partial message itself.
class MessageSink {
 public:
  virtual ~MessageSink() = default;
  // An error (smtp_code set or not) refuses DATA with 451 4.3.0 or its code.
  virtual Status begin(const Transaction& txn) = 0;
  // An error makes the end of data fail with 451 4.3.0 (or its code); the
  // session stops writing after the first error and keeps reading to the end.
  virtual Status write(std::string_view bytes) = 0;
  virtual void abort() noexcept = 0;
};

// Policy questions, answered by the server over Config, AccountStore and
// Mailbox (tests use a fake). Names given are lower-cased by the session.
class Environment {
 public:
  virtual ~Environment() = default;

  // domain ∪ alias ∪ subhost, and the server's own IP literals. `domain` is
  // lower case; an IP literal comes with its brackets exactly as the client
  // wrote it after lower-casing, e.g. "[192.0.2.1]" or "[ipv6:2001:db8::1]"
  // (use smtp::parse_address_literal() in address.hpp to compare).
  virtual bool is_local_domain(std::string_view domain) = 0;

  // `account` is a valid account name ([a-z0-9._-], 1–64, not leading '.').
  // An error (the store cannot tell: EACCES, EIO …) → 451 4.3.0, never
  // "no such user" (AccountStore::lookup).
  virtual Result<AccountKind> lookup_account(std::string_view account) = 0;

  // The account's config.def view (reject lists, send_max_during_a_day).
  virtual Result<AccountSettings> account_settings(std::string_view account) = 0;

  // Would one more message of `incoming_size` bytes (0 when unknown) fit?
  // false → 452 4.2.2. An error → 451 4.3.0.
  virtual Result<bool> quota_allows(std::string_view account,
                                    std::int64_t incoming_size) = 0;

  // Room on the disk for one more message of `size` bytes (0 when no SIZE=
  // was declared), keeping queue_minfree free (Postfix's smtpd_check_size):
  // on the file system of the mailboxes (a local recipient), of the queue
  // (a remote one), or of either (at MAIL, before the recipients are
  // known). false → 452 4.3.1. The default: always room.
  enum class Storage { mailboxes, queue, any };
  virtual bool storage_allows(Storage where, std::int64_t size) {
    (void)where;
    (void)size;
    return true;
  }

  // Password check; `user` is the account name (the session strips a local
  // domain from user@domain and lower-cases). false = wrong user or password.
  // An error (store unreadable) → 454 4.7.0.
  virtual Result<bool> authenticate(std::string_view user,
                                    std::string_view password) = 0;
  // The penalty shared by every session from the client's network
  // (auth/penalty.hpp, Dovecot's auth_penalty):
  // - auth_begin() admits an attempt whose credentials are complete: the
  //   network's recent failures (the session waits by them, or by its own
  //   when more, *before* checking, right or wrong), or busy (too many of
  //   the network's attempts in progress: 454 4.7.0) or blocked (421 4.7.0,
  //   close). An admitted attempt ends with auth_end() once checked or
  //   abandoned (the session is destroyed while it waits); unavailable
  //   (the cluster's shared state cannot be asked: 454 4.7.0, no end()).
  // - auth_blocked(): is the network blocked (AUTH answered 421 at once)?
  // All four may wait for the cluster's shared state (docs/cluster.md):
  // the session asks them only in proceed() (check, then proceed).
  // - auth_failed() counts a failure (it may block the network) and returns
  //   the network's recent failures; auth_succeeded() clears them.
  // The defaults keep no shared state: no wait beyond the session's own
  // failures, never busy nor blocked.
  virtual auth::AuthAdmission auth_begin(std::string_view client_ip) {
    (void)client_ip;
    return {};
  }
  virtual void auth_end(std::string_view client_ip) { (void)client_ip; }
  virtual bool auth_blocked(std::string_view client_ip) {
    (void)client_ip;
    return false;
  }
  virtual int auth_failed(std::string_view client_ip) {
    (void)client_ip;
    return 0;
  }
  virtual void auth_succeeded(std::string_view client_ip) { (void)client_ip; }
  // The stored plain password for CRAM-MD5; nullopt when the account does not
  // exist or holds a hash (CRAM-MD5 then fails like a wrong password).
  virtual std::optional<std::string> plain_password(std::string_view user) = 0;

  // POP-before-SMTP: the account that logged into POP3 from `client_ip`
  // within `ttl`, if any. An error (the cluster's shared state is
  // unreachable) → the RCPT that needs it gets 451 4.3.0.
  virtual Result<std::optional<std::string>> pop_login_account(
      std::string_view client_ip, std::chrono::minutes ttl) = 0;

  // Daily send counter (send_max_during_a_day): messages relayed by the
  // account today (0 for a name that is no account). An error → 451 4.3.0.
  virtual Result<std::int64_t> sends_today(std::string_view account) = 0;
  // A committed message that `account` sent (docs/smtp.md, "What counts as
  // sent"): once per message that has remote recipients (`relayed`: it
  // counts toward send_max_during_a_day) or that came from a submission
  // (authenticated, or the local submit socket). Adds 1 to the account's
  // `sent` counter, and to today's sends when `relayed`; a name that is no
  // account is ignored. An error is logged; the message stays accepted.
  virtual Status record_send(std::string_view account, bool relayed) = 0;

  // The embedder's user directory (ServerOptions::recipient_callback),
  // asked first at each RCPT that passed the syntax and limit checks.
  // defer: the built-in rules; accept: a local recipient whose copy goes
  // into `account` (it must exist; the account's checks apply); reject:
  // refuse with `reply` (a whole reply line, no CRLF). The default defers.
  struct RecipientQuestion {
    std::string_view address;  // local domains in ASCII lower case
    std::string_view sender;
    std::string_view client_ip;
    std::string_view auth_user;
    std::string_view helo;
    Listener listener = Listener::smtp;
    bool local_submit = false;
  };
  struct RecipientAnswer {
    enum class Kind { defer, accept, reject };
    Kind kind = Kind::defer;
    std::string account;  // accept: a valid account name
    std::string reply;    // reject: e.g. "550 5.7.1 mailbox disabled"
    std::string reason;   // for error.log (a bad answer, an exception); may be empty
  };
  virtual RecipientAnswer check_recipient(const RecipientQuestion& q) {
    (void)q;
    return {};
  }

  // SRS (smtpenv srs=1, src/srs/srs.hpp): is `address` (local part as
  // given, domain lower-case ASCII) an SRS address at the SRS domain, i.e. a
  // bounce to mail this server forwarded? nullopt: no, the RCPT takes its
  // usual way; else the address it stands for (a recipient relayed there
  // without relay permission, like an alias's remote target) or the
  // refusal, whose Error holds the 550 reply and the reason for error.log.
  // The default: never.
  virtual std::optional<Result<std::string>> srs_reverse(std::string_view address) {
    (void)address;
    return std::nullopt;
  }

  // Authentication of inbound mail (docs/authentication.md): asked at MAIL
  // on port 25 from an unauthenticated client only (never on the submission
  // ports nor the local submit socket). wants_sender_check() does not wait:
  // whether check_sender() is to be asked. check_sender() runs in proceed()
  // (its DNS look-ups may wait), records the SPF results for the message
  // and returns a whole reply line (no CRLF) refusing the MAIL, or nullopt.
  // The defaults: never.
  struct SenderQuestion {
    std::string_view sender;  // reverse path, empty = null sender
    std::string_view helo;
    std::string_view client_ip;
  };
  virtual bool wants_sender_check() { return false; }
  virtual std::optional<std::string> check_sender(const SenderQuestion& q) {
    (void)q;
    return std::nullopt;
  }

  // DNS block and allow lists (docs/dnsbl.md): asked at the first RCPT of
  // the session on port 25 from an unauthenticated client only (never on
  // the submission ports nor the local submit socket), in proceed() (the
  // DNS may wait — the server's environment started the look-ups at
  // connect, so it rarely does); the answer holds for the session. wants_client_check()
  // does not wait. `refusal`: the whole reply line refusing every RCPT
  // ("554 5.7.1 ..."), empty = go on; `reason`: for error.log with each
  // refusal; `notes`: for error.log once (failed look-ups). The defaults:
  // never.
  struct ClientVerdict {
    std::string refusal;
    std::string reason;
    std::vector<std::string> notes;
  };
  virtual bool wants_client_check() { return false; }
  virtual ClientVerdict check_client(std::string_view client_ip) {
    (void)client_ip;
    return {};
  }

  // Milters (docs/milter.md): when filtering(), HELO/EHLO, MAIL, each
  // accepted RCPT, DATA and unknown commands are shown to the session's milters after the
  // session's own checks passed — a lookup that may wait, so it runs in
  // proceed(). Each answer is nullopt (go on) or the whole reply that
  // refuses the command (lines joined by CRLF, no final CRLF; a 421 also
  // closes the session). The end of data is filtered by the connection's
  // commit. `args`: the ESMTP parameters as the client wrote them.
  virtual bool filtering() { return false; }
  virtual std::optional<std::string> filter_helo(std::string_view name) {
    (void)name;
    return std::nullopt;
  }
  virtual std::optional<std::string> filter_mail(std::string_view sender, std::string_view args,
                                                 std::string_view auth_user) {
    (void)sender;
    (void)args;
    (void)auth_user;
    return std::nullopt;
  }
  virtual std::optional<std::string> filter_rcpt(std::string_view recipient, std::string_view args) {
    (void)recipient;
    (void)args;
    return std::nullopt;
  }
  virtual std::optional<std::string> filter_data() { return std::nullopt; }
  // A command the session does not know (Postfix's SMFIC_UNKNOWN): the
  // milters may answer it with their own refusal; otherwise the session's
  // "500 command not recognized" stands.
  virtual std::optional<std::string> filter_unknown(std::string_view line) {
    (void)line;
    return std::nullopt;
  }

  virtual std::chrono::system_clock::time_point now() = 0;
  // Randomness for the CRAM-MD5 challenge.
  virtual std::uint64_t random() = 0;
};

struct SessionOptions {
  std::shared_ptr<const Config> config;  // snapshot kept for the session
  Listener listener = Listener::smtp;
  std::string hostname;      // our name: banner, EHLO, Received, CRAM-MD5
  std::string session_id;    // appears in Received: "id <session_id>"
  std::string client_ip;     // numeric, e.g. "192.0.2.7" or "2001:db8::7"
  bool tls_available = false;  // a TLS context exists (STARTTLS offered)
  bool tls_active = false;     // implicit TLS (smtps) already running
  // The negotiated TLS, for the Received: field ("TLSv1.3 with cipher
  // TLS_AES_256_GCM_SHA384 (256/256 bits)"); empty = not said.
  std::string tls_cipher{};
  // The trusted local submit socket (wizmail-sendmail): like an
  // authenticated session, its messages are submissions — missing Date: and
  // Message-ID: are added (RFC 6409 §8) and they count as sent.
  bool local_submit = false;
  bool log_protocol = true;    // emit command/reply events for smtp.log
  // Environment lookups that may wait (see "Check, then proceed" above)
  // run only inside proceed(), which the connection calls off its I/O
  // thread when Output::lookup asks for it.
  bool defer_lookups = false;

  // Limits (defaults documented in docs; tests shrink the delays).
  std::size_t max_command_line = 512;    // octets incl. CRLF (RFC 5321)
  std::size_t max_auth_line = 12288;     // AUTH lines and SASL responses
  int max_errors = 20;                   // then 421 4.7.0 and close
  int max_auth_failures = 3;             // the next failure: 421 4.7.0, close
  // The wait before an AUTH attempt is checked, by the failures of the
  // session or, when more, of its network: auth::auth_delay_for() (none
  // without failures; doubled per failure; at most auth_max_delay).
  std::chrono::milliseconds auth_fail_delay{1000};
  std::chrono::milliseconds auth_max_delay{16000};
};

// What the session tells its connection: a log line to write (it adds time,
// session id, peer and session.account()), or a typed fact only. Counters
// and metrics derive from `what`, never from the text.
struct LogEvent {
  enum class Kind {
    command,  // smtp.log: a client command (AUTH secrets masked)
    reply,    // smtp.log: the first line of a reply
    error,    // error.log: auth failure, relay denied, reject hit, refusal
    fact,     // no log line: a typed event (what) with its detail (text)
  };
  enum class What {
    other,
    auth_failure,  // error: a failed AUTH attempt (wrong user or password)
    relay_denied,  // error: RCPT to a remote address refused by the relay rules
    accepted,      // fact: a message committed; text = its queue id
    refusal,       // fact: a command refused (counts toward max_errors);
                   // text = the reply's first line ("550 5.1.1 ...")
    dnsbl_rejected,  // error: a RCPT refused because dnsbl_sites list the client
  };
  Kind kind = Kind::command;
  std::string text;
  What what = What::other;
};

struct Output {
  std::string replies;                    // bytes to write, in order
  std::chrono::milliseconds delay{0};     // after writing: wait, then resume()
  bool lookup = false;     // before writing: proceed(), where waiting is fine
  bool start_tls = false;  // after writing: TLS handshake, on_tls_started()
  bool commit = false;     // after writing: commit, then on_commit()
  bool close = false;      // after writing: close the connection
  std::vector<LogEvent> events;

  void clear() {
    replies.clear();
    delay = std::chrono::milliseconds{0};
    lookup = start_tls = commit = close = false;
    events.clear();
  }
};

enum class State {
  initial,          // banner sent, waiting for HELO/EHLO
  ready,            // HELO/EHLO done, no transaction
  mail,             // MAIL accepted, no recipient yet
  rcpt,             // at least one recipient accepted
  data,             // reading message data
  awaiting_commit,  // end of data accepted, waiting for on_commit()
  auth,             // inside an AUTH exchange (334 sent)
  tls_pending,      // 220 to STARTTLS sent, waiting for on_tls_started()
  closed,           // QUIT or fatal error: nothing more is processed
};

class Session {
 public:
  Session(SessionOptions options, Environment& env, MessageSink& sink);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // The 220 greeting. A connection may wait before it (the pregreet test,
  // docs/smtp.md): bytes fed before start() are refused with 554 and close.
  void start(Output& out);
  // Bytes from the client, in order. Processes every complete command
  // (pipelining) unless an action stops it. `more_pending`: the connection
  // knows of more bytes already received and not yet fed (they, too, were
  // sent before any reply to these): a DATA line followed by anything is
  // refused (RFC 2920 §3.1, docs/smtp.md).
  void feed(std::string_view bytes, Output& out, bool more_pending = false);
  // The result of committing the message: the queue id, or the error whose
  // smtp_code/enhanced/client_text become the reply (451 4.3.0 without).
  // Then goes on with buffered input.
  void on_commit(Result<std::string> queue_id, Output& out);
  // The TLS handshake after STARTTLS succeeded: the session is back in its
  // initial state (EHLO needed again), with tls_active() true.
  // `cipher` is what the Received: field says of it (SessionOptions::tls_cipher).
  void on_tls_started(Output& out, std::string cipher = {});
  // Continue after a delay: check the AUTH attempt that waited, then the
  // buffered input.
  void resume(Output& out);
  // Output::lookup: apply the policy of the command that waits for it (its
  // lookups run here, on the caller's thread), then go on with the
  // buffered input, whose lookups run here too. Clears out.lookup and
  // appends to `out` (the Output that asked).
  void proceed(Output& out);
  // A command line has begun and not ended (for the command deadline).
  bool mid_command() const noexcept;

  // Texts for the connection's own 421s (CRLF included).
  std::string timeout_reply() const;   // session_timeout expired
  std::string shutdown_reply() const;  // server stopping

  State state() const noexcept { return state_; }
  bool awaiting() const noexcept;      // an action is pending
  bool tls_active() const noexcept { return tls_active_; }
  // The authenticated account; empty when not authenticated.
  const std::string& account() const noexcept { return auth_user_; }
  const std::string& helo() const noexcept { return helo_; }
  const Transaction& transaction() const noexcept { return txn_; }
  // Unstuffed message bytes written to the sink for the current message
  // (Received: header included).
  std::int64_t message_size() const noexcept { return written_; }

 private:
  struct Impl;
  friend struct Impl;

  SessionOptions opt_;
  Environment& env_;
  MessageSink& sink_;
  State state_ = State::initial;
  bool tls_active_ = false;
  std::string tls_cipher_;
  std::string auth_user_;
  std::string helo_;
  Transaction txn_;
  std::int64_t written_ = 0;
  std::unique_ptr<Impl> impl_;  // parser, body scanner, auth exchange
};

}  // namespace wizmail::smtp
