// Test harness for the SMTP session: a fake Environment, an in-memory
// MessageSink and a transcript runner that feeds a script at any chunk size.
//
// Script format (tests/smtp/transcripts/*.in, also used inline):
//   # comment
//   @config KEY=VALUE      smtpenv/wiz98msenv keys (see apply_config)
//   @option KEY=VALUE      SessionOptions: listener, tls_available, tls_active,
//                          client_ip, hostname, max_errors, max_auth_failures,
//                          local_submit
//   @account NAME [pass=P] [hashed] [list] [full] [send_max=N] [sent=N]
//                 [reject_domain=a,b] [reject_mailaddress=x,y]
//                 [broken]    (lookups of the account fail, as on EIO)
//   @ownip LITERAL         a local IP literal, e.g. [192.0.2.1]
//   @pop IP ACCOUNT        ACCOUNT logged into POP3 from IP recently
//   @pop_down              the POP-before-SMTP look-up fails (shared state down)
//   @penalty N             the client's network failed AUTH N times before
//   @penalty_state S       blocked: the network is blocked; busy: too many of
//                          its attempts in progress; unavailable: the
//                          penalty's shared state cannot be asked
//   @commit ok ID | @commit fail CODE ENH TEXT   results of the next commits
//   @sinkfail begin|write  the sink fails
//   @alias LINE            a line of def/aliases.def (escapes as for C:)
//   @show envelope         after "[commit]", the transaction's envelope:
//                          "[envelope] from=<…> [ret=] [envid=] [smtputf8]",
//                          "[rcpt] <…> account=…|remote [via <alias>]
//                          [notify=] [orcpt=]", "[expanded] <…> …"
//   C: TEXT                client line, CRLF appended (escapes: \r \n \t \0
//                          \\ \xHH)
//   c: TEXT                raw client bytes, nothing appended
//   T:                     barrier: bytes after it arrive after pending
//                          actions (TLS handshake) completed
// Output (the .ref): each server reply line, then markers after the replies
// of one Output: "[delay N]", "[commit]" followed by the stored message
// (without the Received: header) as "| line" rows, "[starttls]", "[tls up]",
// "[close]", "[sent ACCOUNT relayed|submitted]" (record_send).
// Transcripts run with TZ=JST-9, so a local Date: reads "+0900".
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "smtp/session.hpp"
#include "srs/srs.hpp"

namespace wizmail::smtp::test {

struct FakeAccount {
  bool exists = true;
  bool broken = false;  // the store cannot tell (EIO): lookups fail
  bool mailing_list = false;
  std::string password;
  bool hashed = false;
  bool full = false;
  AccountSettings settings;
  std::int64_t sent = 0;
};

class FakeEnv : public Environment {
 public:
  std::shared_ptr<Config> config = std::make_shared<Config>();
  std::map<std::string, FakeAccount> accounts;
  std::vector<std::string> own_literals;
  std::map<std::string, std::string> pop_logins;  // ip -> account
  // record_send calls: "account relayed" or "account submitted".
  std::vector<std::string> sends_recorded;
  std::int64_t now_seconds = 697170952;
  std::uint64_t random_value = 1896;
  std::vector<std::string> calls;  // log of policy calls, for assertions
  // The client network's earlier AUTH failures (@penalty N), as a shared
  // auth::AuthPenalty would count them.
  int network_failures = 0;
  // @penalty_state blocked|busy: the network is blocked, or has too many
  // attempts in progress; auth_in_progress: auth_begin() minus auth_end().
  bool network_blocked = false, network_busy = false, penalty_unavailable = false;
  bool pop_logins_down = false;  // @pop_down
  int auth_in_progress = 0;
  // Free bytes per file system (@disk mailboxes=N queue=M); missing: plenty.
  std::map<Storage, std::int64_t> free_bytes;
  // Check, then proceed: with `deferred` (the session defers its lookups),
  // a lookup that may wait outside Session::proceed() (`in_proceed`, set
  // by the driver around it) throws std::logic_error: it would have run on
  // the I/O thread.
  bool deferred = false;
  bool in_proceed = false;
  void waits(std::string_view what) const;
  // SRS (srs=1): the rewriter and its domain; none = off.
  std::optional<srs::Rewriter> srs_rewriter;
  std::string srs_domain;

  // Milters (Environment::filter_*): with `filters`, each call is logged
  // in `calls` ("filter helo c", "filter mail a@b SIZE=1 auth=", …) and
  // answered from `filter_replies` (key: "helo", "mail", "rcpt <addr>",
  // "data"; absent = go on). They wait like lookups (waits()).
  bool filters = false;
  std::map<std::string, std::string> filter_replies;
  bool filtering() override { return filters; }
  std::optional<std::string> filter_helo(std::string_view name) override;
  std::optional<std::string> filter_mail(std::string_view sender, std::string_view args,
                                         std::string_view auth_user) override;
  std::optional<std::string> filter_rcpt(std::string_view recipient, std::string_view args) override;
  std::optional<std::string> filter_data() override;

  // DNS block lists (Environment::check_client): with a `client_verdict`
  // the session asks (logged in `calls` as "check_client IP"; it waits like
  // a lookup); none = never asked.
  std::optional<ClientVerdict> client_verdict;
  bool wants_client_check() override { return client_verdict.has_value(); }
  ClientVerdict check_client(std::string_view client_ip) override;

  bool is_local_domain(std::string_view domain) override;
  Result<AccountKind> lookup_account(std::string_view account) override;
  Result<AccountSettings> account_settings(std::string_view account) override;
  Result<bool> quota_allows(std::string_view account, std::int64_t size) override;
  bool storage_allows(Storage where, std::int64_t size) override;
  Result<bool> authenticate(std::string_view user, std::string_view password) override;
  wizmail::auth::AuthAdmission auth_begin(std::string_view client_ip) override;
  void auth_end(std::string_view client_ip) override;
  bool auth_blocked(std::string_view client_ip) override;
  int auth_failed(std::string_view client_ip) override;
  void auth_succeeded(std::string_view client_ip) override;
  std::optional<std::string> plain_password(std::string_view user) override;
  Result<std::optional<std::string>> pop_login_account(std::string_view ip,
                                                      std::chrono::minutes ttl) override;
  Result<std::int64_t> sends_today(std::string_view account) override;
  Status record_send(std::string_view account, bool relayed) override;
  std::optional<Result<std::string>> srs_reverse(std::string_view address) override;
  std::chrono::system_clock::time_point now() override;
  std::uint64_t random() override;
};

class MemorySink : public MessageSink {
 public:
  std::string data;
  int begins = 0, aborts = 0, writes = 0;
  bool fail_begin = false, fail_write = false;
  std::size_t max_write = 0;  // largest single write

  Status begin(const Transaction& txn) override;
  Status write(std::string_view bytes) override;
  void abort() noexcept override;
};

// Decode the \-escapes of a script line.
std::string unescape(std::string_view s);

struct RunResult {
  std::string output;   // the .ref text
  std::vector<LogEvent> events;
  std::vector<std::string> messages;  // committed messages, Received: included
  int aborts = 0;
};

// Where a client that follows RFC 2920 stops to wait for a reply: just
// after each line (LF-terminated) whose verb is DATA, the last command of a
// pipelined group. run_script() never feeds bytes past such a point together
// with the line before it (the session refuses that, 554 5.5.0), so that
// transcripts give the same output at every chunk size.
std::vector<std::size_t> client_waits(std::string_view bytes);

// Run `script` feeding client bytes in chunks of `chunk` octets.
// `defer_lookups`: the session runs its policy lookups only in proceed()
// (as the server's does); the output must be the same either way.
RunResult run_script(std::string_view script, std::size_t chunk, bool defer_lookups = false);

// The chunk sizes every transcript is run at.
const std::vector<std::size_t>& chunk_sizes();

// One session over a FakeEnv and a MemorySink, for tests that drive it by
// hand: domain example.org, account alice/secret, client 198.51.100.7.
struct SessionRig {
  FakeEnv env;
  MemorySink sink;
  SessionOptions opt;
  std::unique_ptr<Session> s;
  Output out;

  explicit SessionRig(Listener l = Listener::smtp, bool tls = false) {
    env.config->server.domain = "example.org";
    env.accounts["alice"].password = "secret";
    opt.hostname = "mx.example.org";
    opt.session_id = "S1";
    opt.client_ip = "198.51.100.7";
    opt.listener = l;
    opt.tls_available = tls;
  }
  // The session, not started (for checks before the greeting).
  Session& make() {
    opt.config = env.config;
    s = std::make_unique<Session>(opt, env, sink);
    return *s;
  }
  Session& start() {
    make();
    s->start(out);
    out.clear();
    return *s;
  }
  // Bytes as a client that follows RFC 2920 sends them: it waits for the
  // reply to DATA before it sends more.
  std::string feed(std::string_view in) {
    out.clear();
    std::size_t from = 0;
    for (auto at : client_waits(in)) {
      s->feed(in.substr(from, at - from), out);
      from = at;
    }
    if (from < in.size()) s->feed(in.substr(from), out);
    return out.replies;
  }
  // Bytes in one piece, whatever they are.
  std::string feed_raw(std::string_view in, bool more_pending = false) {
    out.clear();
    s->feed(in, out, more_pending);
    return out.replies;
  }
};

}  // namespace wizmail::smtp::test
