// The milters of one SMTP session, in the order configured (Postfix's
// smtpd_milters / non_smtpd_milters): every event goes to each milter in
// turn; the first that rejects, tempfails or discards decides; at the end of
// the message each milter sees the message as the milters before it left it
// (their header, body, sender and recipient changes applied).
//
// Postfix's semantics (MILTER_README):
// - accept at connect or HELO: that milter sees nothing more of the
//   session; accept later: nothing more of the transaction;
// - reject / tempfail / custom reply at RCPT refuse that recipient only,
//   elsewhere the command (at connect: every later command);
// - discard: the transaction goes on and its message is dropped;
// - a milter that fails (cannot connect, times out, breaks the protocol)
//   is dropped for the session and milter_default_action answers for it
//   (tempfail: 451 4.7.1, reject: 550 5.7.1, accept: as if absent).
// Blocking I/O: call from a thread that may wait (docs/milter.md).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "milter/client.hpp"

namespace wizmail::milter {

enum class DefaultAction { tempfail, accept, reject };
// "tempfail", "accept", "reject" (any case); nullopt otherwise.
std::optional<DefaultAction> parse_default_action(std::string_view s) noexcept;

struct Verdict {
  enum class Kind { go_on, reply, discard };
  Kind kind = Kind::go_on;
  std::string reply;  // Kind::reply: the whole reply, lines joined by CRLF, no final CRLF
  bool go_on() const noexcept { return kind == Kind::go_on; }
};

// The session's facts, for the connect event and the macros.
struct SessionInfo {
  std::string hostname;       // j, and the HELO-less name
  std::string daemon_name = "wizmail";
  std::string client_addr;    // numeric
  std::uint16_t client_port = 0;
  std::string client_name;    // "unknown" when not resolved (Postfix)
  bool local = false;         // the local submit socket (family 'L')
};

// A message as the milters see and change it.
struct Header {
  std::string name;
  std::string value;  // what follows the colon (leading space kept), folds as CRLF, no final CRLF
};
struct Message {
  std::vector<Header> headers;
  std::string body;  // CRLF line ends
  std::string sender;        // envelope, without <>
  std::string sender_args;   // ESMTP arguments of a changed sender
  std::vector<std::string> recipients;  // envelope, without <>, as the milters saw them
  std::optional<std::string> quarantine;  // the reason, when a milter quarantined it
  bool headers_changed = false, body_changed = false, sender_changed = false, recipients_changed = false;

  // Split "headers CRLF CRLF body"; header lines are kept as written.
  static Message parse(std::string_view text);
  std::string serialize() const;
};

class Chain {
 public:
  // `log` hears every failure and decision worth a line in error.log.
  Chain(std::vector<Address> milters, Timeouts timeouts, DefaultAction on_failure, SessionInfo info,
        std::function<void(const std::string&)> log = {});
  ~Chain();
  Chain(const Chain&) = delete;
  Chain& operator=(const Chain&) = delete;

  bool empty() const noexcept { return members_.empty(); }

  // Every event: nothing to do → go_on. connect() runs once, before the
  // first HELO (helo() calls it when not done).
  Verdict connect();
  Verdict helo(std::string_view name);
  // The client's forward-confirmed name and its PTR name ("" = unknown),
  // for the connect event and {client_name}, {client_ptr} and _. Before
  // the first event only (the connect carries the name).
  void client_named(std::string name, std::string ptr);
  // TLS started (STARTTLS or implicit): the macros {tls_version}, {cipher}
  // and {cipher_bits}, sent from the next HELO on (Postfix's default).
  void tls_started(std::string version, std::string cipher, int bits);
  // A new transaction (an unfinished one is aborted first).
  Verdict mail(std::string_view sender, const std::vector<std::string>& args, std::string_view auth_user,
               std::string_view transaction_id);
  Verdict rcpt(std::string_view recipient, const std::vector<std::string>& args);
  Verdict data();
  Verdict unknown(std::string_view line);
  // Headers, end of headers, the body in chunks, end of message; the
  // changes each milter asks for are applied to `m` before the next one.
  // A discard decided earlier in the transaction (mail/rcpt/data) is
  // returned here too.
  Verdict end_of_message(Message& m);
  // The transaction ends without end_of_message (RSET, a refused DATA).
  void abort();
  // The session ends.
  void quit() noexcept;

 private:
  struct Member;
  enum class Scope { session, transaction };
  Verdict failed(Member& m, const std::string& why);
  Verdict event(Stage stage, char command, std::string_view payload, std::uint32_t skip_flag,
                std::uint32_t no_reply_flag, Scope scope, bool rcpt);
  Verdict decide(Member& m, const Reply& r, Scope scope, bool rcpt, std::string_view stage);
  Macros macros_for(const Member& m, Stage stage) const;
  Verdict content(Member& m, Message& msg);
  Status apply(Member& m, const Reply& r, Message& msg);

  std::vector<std::unique_ptr<Member>> members_;
  DefaultAction on_failure_;
  SessionInfo info_;
  std::function<void(const std::string&)> log_;
  bool connected_ = false;
  std::optional<Verdict> connect_verdict_;  // a refused connect answers every command
  bool in_transaction_ = false;
  bool discard_ = false;
  // Macro values known so far (name → value).
  std::vector<std::pair<std::string, std::string>> values_;
  void set(std::string_view name, std::string value);
};

}  // namespace wizmail::milter
