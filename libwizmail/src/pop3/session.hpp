// One POP3 session (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 3206) as a
// pure state machine: bytes in, actions out. No sockets, no clocks, no files:
// storage is reached through pop3::Backend / pop3::Maildrop, time only as
// `delay` actions the connection carries out. Tested from transcripts.
//
// The connection's loop: send greeting(); then for every read, feed() the
// bytes and perform the actions in order — send text, stream a message
// through a DotStuffer, wait, start TLS (then tls_started()), close. While
// actions are pending it does not read, which is the back-pressure.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "pop3/maildrop.hpp"
#include "pop3/parser.hpp"

namespace wizmail::pop3 {

enum class State { authorization, transaction, update, closed };

struct Action {
  enum class Kind {
    send,       // write `text`
    stream,     // write `reader`'s content through DotStuffer(body_lines)
    delay,      // wait `delay` before the next action (throttle, uidl_interval)
    start_tls,  // TLS handshake now, then call Session::tls_started()
    close,      // shut the connection down after what was sent
  };
  Kind kind = Kind::send;
  std::string text;
  std::unique_ptr<MessageReader> reader;
  long body_lines = -1;
  std::chrono::milliseconds delay{0};
};

struct LogEvent {
  enum class Channel { pop, error };  // pop.log, error.log
  // What happened, for metrics: counters derive from this, never from the text.
  enum class What {
    other,
    auth_failure,  // a failed login (USER/PASS or APOP)
  };
  Channel channel = Channel::pop;
  std::string text;
  What what = What::other;
};

struct Output {
  std::vector<Action> actions;
  std::vector<LogEvent> logs;

  void send(std::string_view text);  // appends to the previous send when small
  void clear() {
    actions.clear();
    logs.clear();
  }
};

struct SessionOptions {
  std::string host = "localhost";      // popenv `host`, for the APOP banner
  std::string peer_ip;                 // for the ip file and the logs
  bool peer_loopback = false;          // exempt from auth_requires_tls
  bool tls_available = false;          // certificates configured: offer STLS
  bool tls_active = false;             // implicit TLS (pop3s_port)
  bool auth_requires_tls = false;
  int uidl_interval_ms = 0;            // popenv `uidl_interval`
  std::vector<std::string> local_domains;  // USER name@<local domain> accepted
  std::string apop_timestamp;          // empty: make_apop_timestamp(host)
  // The wait before a PASS/APOP is checked, by the failures of the session
  // or, when more, of its network: auth::auth_delay_for() (none without
  // failures; doubled per failure; at most max_failure_delay).
  std::chrono::milliseconds failure_delay{1000};
  std::chrono::milliseconds max_failure_delay{16000};
  int max_login_failures = 5;          // then the session is closed
};

// "<pid.seconds.counter@host>", unique per connection within this host.
std::string make_apop_timestamp(std::string_view host);

// A POP3 USER/APOP name to an account name: lower-cased, "@<local domain>"
// stripped; empty when it is not a valid account name (SPEC §3).
std::string account_from_login(std::string_view login,
                               const std::vector<std::string>& local_domains);

// Lower-case hex MD5 of `data` (OpenSSL EVP).
std::string md5_hex(std::string_view data);

// The UIDL unique-id (RFC 1939 §7: 1 to 70 octets in 0x21..0x7E) of the
// message whose store uid (Maildir base name) is `uid`: `uid` itself when it
// qualifies, else the 32 hex digits of its MD5 — a name that is too long
// (long host names, ",S=,W=" fields) or that a foreign program made with
// spaces or other bytes. Depends on the base name only, so it is the same
// in every session, after restarts and after the move from new/ to cur/.
std::string uidl_of(std::string_view uid);

class Session {
 public:
  Session(SessionOptions options, Backend& backend);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // The "+OK ... <timestamp>" greeting.
  void greeting(Output& out);

  // Process every complete command line in `bytes`. After a start_tls or
  // close action the rest of `bytes` is discarded (RFC 2595 §4: plaintext
  // pipelined after STLS must not be acted upon). At most
  // max_streams_per_batch RETR/TOP are answered per call (each holds an open
  // file until the connection has sent it); the rest of `bytes` is kept and
  // has_backlog() is true: perform the actions, then call resume().
  void feed(std::string_view bytes, Output& out);
  // Also true while a login attempt waits out its delay action: resume()
  // then checks it.
  bool has_backlog() const noexcept { return !backlog_.empty() || waiting_; }
  void resume(Output& out);
  static constexpr std::size_t max_streams_per_batch = 32;

  // Could feed(more) (or resume() when `more` is empty) touch the disk
  // beyond reading a message — a login (lock, ip file, new/ → cur/) or
  // QUIT's update (deletions, fsyncs)? Then the connection runs it off its
  // I/O thread. Conservative: in the authorization state always, in the
  // transaction state when a complete line may be QUIT.
  bool may_block(std::string_view more) const noexcept;

  // The TLS handshake after STLS succeeded.
  void tls_started();

  // The connection ended without QUIT (drop, timeout, shutdown): nothing is
  // deleted, the mailbox lock is released.
  void connection_lost();

  // Refresh the mailbox lock (the connection calls it every minute or so).
  void keep_alive();

  // A command line has begun and not ended (for the command deadline).
  bool mid_command() const noexcept { return parser_.partial(); }

  State state() const noexcept { return state_; }
  bool closed() const noexcept { return state_ == State::closed; }
  const std::string& account() const noexcept { return account_; }
  const std::string& apop_timestamp() const noexcept { return timestamp_; }
  bool tls_active() const noexcept { return opt_.tls_active; }

 private:
  struct Row;
  void process(std::string_view bytes, Output& out);
  void execute(std::string_view line, Output& out);
  void reply(Output& out, bool ok, std::string_view text);
  bool auth_allowed() const noexcept;
  // A PASS or APOP with complete credentials (see Backend::login_begin).
  struct Attempt {
    bool apop = false;
    std::string name;     // as the client wrote it (for the log)
    std::string account;  // empty: not a valid account name
    std::string secret;   // password, or the APOP digest (lower-case hex)
  };
  void admit(Attempt a, Output& out);
  void check_attempt(Output& out);
  void refuse_blocked(Output& out);
  void login_failed(Output& out, std::string_view account, std::string_view why);
  void login(Output& out, const std::string& account);
  // A message number argument: index or -1 after replying -ERR.
  long message_arg(Output& out, std::string_view arg);

  void do_user(const Command& c, Output& out);
  void do_pass(const Command& c, Output& out);
  void do_apop(const Command& c, Output& out);
  void do_stat(const Command& c, Output& out);
  void do_list(const Command& c, Output& out);
  void do_retr(const Command& c, Output& out);
  void do_top(const Command& c, Output& out);
  void do_dele(const Command& c, Output& out);
  void do_noop(const Command& c, Output& out);
  void do_rset(const Command& c, Output& out);
  void do_quit(const Command& c, Output& out);
  void do_uidl(const Command& c, Output& out);
  void do_capa(const Command& c, Output& out);
  void do_stls(const Command& c, Output& out);
  void do_auth(const Command& c, Output& out);

  SessionOptions opt_;
  Backend& backend_;
  LineParser parser_;
  State state_ = State::authorization;
  std::string timestamp_;
  std::string user_;          // from USER, waiting for PASS
  bool have_user_ = false;
  std::string account_;       // after login
  int failures_ = 0;
  std::unique_ptr<Attempt> attempt_;  // admitted, waiting for its check
  bool waiting_ = false;              // attempt_ waits out a delay action
  bool stop_input_ = false;   // after STLS until tls_started(), after close
  std::unique_ptr<Maildrop> drop_;
  std::vector<bool> deleted_;
  std::size_t deleted_count_ = 0;
  std::uint64_t deleted_bytes_ = 0;
  std::uint64_t total_bytes_ = 0;
  std::string backlog_;       // pipelined input not yet processed
  std::size_t streams_ = 0;   // stream actions in the current batch
  std::string last_reply_;    // first reply line of the current command, for the log
};

}  // namespace wizmail::pop3
