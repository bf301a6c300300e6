// Fuzz target: the SMTP server session (smtp::Session) fed arbitrary client
// bytes in arbitrary chunks, with the fake Environment and MessageSink of the
// transcript tests (tests/smtp/harness.hpp).
//
// Input: 3 option bytes, then the client's bytes.
//   byte 0: bits 0-1 listener (smtp, submission, smtps, smtp), 2 STARTTLS
//           offered, 3 auth_requires_tls, 4 relay=1, 5
//           send_permits_only_smtp_auth, 6 pop_before_smtp, 7 commits fail
//   byte 1: bits 0-1 client address (outside, in address_permits_relay,
//           loopback, IPv6 outside), 2 max_mail_size 200 (else 10 MB),
//           3 max_recipients 3, 4 the sink fails at begin, 5 at write,
//           6 the TLS handshake fails, 7 max_errors 3
//   byte 2: seed of the chunk sizes (1..64 octets)
// Properties: every reply is whole CRLF lines "NNN-"/"NNN " with one code
// per reply; nothing is answered after the session closed; a committed
// message has only CRLF line ends and respects the size limit; it has at
// least one and at most max_recipients recipients; a submission session
// commits only after AUTH; remote recipients only when SPEC §4.3 allows
// relaying; without STARTTLS, the replies and messages do not depend on how
// the bytes were split, except that a DATA with bytes behind it in the same
// chunk ends the session with 554 5.5.0 (RFC 2920 §3.1): up to that reply
// the runs agree.
#include <algorithm>
#include <string>
#include <vector>

#include "../smtp/harness.hpp"
#include "fuzz.hpp"
#include "smtp/session.hpp"

using namespace wizmail;
using namespace wizmail::smtp;
using wizmail::fuzz::show;

namespace {

struct Options {
  std::uint8_t a = 0, b = 0;
  Listener listener() const {
    switch (a & 3) {
      case 1: return Listener::submission;
      case 2: return Listener::smtps;
      default: return Listener::smtp;
    }
  }
};

const char* const kClientIps[] = {"203.0.113.9", "198.51.100.7", "127.0.0.1", "2001:db8:99::9"};

// The reply to DATA with bytes already behind it (smtp/session.cpp).
constexpr std::string_view kPipelinedData = "554 5.5.0 Error: SMTP protocol synchronization\r\n";

struct Run {
  std::string replies;
  std::vector<std::string> messages;
  bool tls = false;  // a STARTTLS handshake happened
};

void check_replies(std::string_view r) {
  FUZZ_CHECK_MSG(r.ends_with("\r\n"), show(r));
  int code = -1;
  while (!r.empty()) {
    auto nl = r.find("\r\n");
    std::string_view line = r.substr(0, nl);
    r.remove_prefix(nl + 2);
    FUZZ_CHECK_MSG(line.find_first_of("\r\n") == std::string_view::npos, show(line));
    FUZZ_CHECK_MSG(line.size() + 2 <= 512, show(line));
    FUZZ_CHECK_MSG(line.size() >= 4 && line[0] >= '2' && line[0] <= '5' && line[1] >= '0' &&
                       line[1] <= '9' && line[2] >= '0' && line[2] <= '9' &&
                       (line[3] == ' ' || line[3] == '-'),
                   show(line));
    int c = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (code >= 0) FUZZ_CHECK_MSG(c == code, show(line));  // one code per reply
    code = line[3] == '-' ? c : -1;
  }
  FUZZ_CHECK(code == -1);  // the last line of a batch ends its reply
}

void check_message(const std::string& m, const Config& cfg) {
  FUZZ_CHECK(m.ends_with("\r\n"));
  for (std::size_t i = 0; i < m.size(); ++i) {
    if (m[i] == '\r') FUZZ_CHECK_MSG(i + 1 < m.size() && m[i + 1] == '\n', show(m));
    if (m[i] == '\n') FUZZ_CHECK_MSG(i > 0 && m[i - 1] == '\r', show(m));
  }
  // The data is limited; the session's own Received: header comes on top.
  FUZZ_CHECK(static_cast<std::int64_t>(m.size()) <= cfg.smtp.max_mail_size + 1200);
}

bool sender_local(test::FakeEnv& env, const std::string& rp) {
  auto at = rp.rfind('@');
  return at != std::string::npos && env.is_local_domain(std::string_view(rp).substr(at + 1));
}

Run run(const Options& o, std::string_view bytes, std::uint8_t chunk_seed, bool whole) {
  test::FakeEnv env;
  auto& cfg = *env.config;
  cfg.server.domain = "example.org";
  cfg.server.alias = {"alias.example"};
  cfg.smtp.auth_requires_tls = o.a & 8;
  cfg.smtp.relay = o.a & 16;
  cfg.smtp.send_permits_only_smtp_auth = o.a & 32;
  cfg.smtp.pop_before_smtp = o.a & 64;
  cfg.smtp.address_permits_relay = {"198.51.100.0/24", "2001:db8:1::/48", "junk"};
  cfg.smtp.reject_domain = {"spam.example", "[203.0.113.5]"};
  cfg.smtp.reject_mailaddress = {"news@example.net"};
  cfg.smtp.max_mail_size = (o.b & 4) ? 200 : 10'000'000;
  cfg.smtp.max_recipients = (o.b & 8) ? 3 : 100;
  env.own_literals = {"[192.0.2.1]"};
  auto account = [&](const char* name, std::string pass = {}) -> test::FakeAccount& {
    auto& a = env.accounts[name];
    a.password = std::move(pass);
    a.settings.send_max_during_a_day = cfg.smtp.send_max_during_a_day;
    return a;
  };
  account("alice", "secret");
  account("tim", "tanstaaftanstaaf");
  account("bob");
  account("ml").mailing_list = true;
  account("hashed", "x").hashed = true;
  account("full").full = true;
  auto& carol = account("carol", "pw");
  carol.settings.send_max_during_a_day = 2;
  carol.sent = 1;
  env.pop_logins["203.0.113.9"] = "alice";

  test::MemorySink sink;
  sink.fail_begin = o.b & 16;
  sink.fail_write = o.b & 32;

  SessionOptions opt;
  opt.config = env.config;
  opt.listener = o.listener();
  opt.hostname = "mx.example.org";
  opt.session_id = "S1";
  opt.client_ip = kClientIps[o.b & 3];
  opt.tls_available = o.a & 4;
  opt.tls_active = opt.listener == Listener::smtps;
  opt.max_errors = (o.b & 128) ? 3 : 20;
  const bool permitted = (o.b & 3) == 1;  // in address_permits_relay

  Run r;
  Session s(opt, env, sink);
  Output out;
  bool closed = false;
  int commits = 0;
  auto drain = [&] {
    for (;;) {
      if (!out.replies.empty()) check_replies(out.replies);
      r.replies += out.replies;
      Output next;
      bool again = false;
      if (out.close) {
        closed = true;
      } else if (out.start_tls) {
        r.tls = true;
        if (o.b & 64) {
          closed = true;  // a failed handshake: the connection just closes
        } else {
          s.on_tls_started(next);
          again = true;
        }
      } else if (out.commit) {
        const auto& txn = s.transaction();
        FUZZ_CHECK(s.state() == State::awaiting_commit);
        FUZZ_CHECK(!txn.recipients.empty());
        FUZZ_CHECK(txn.recipients.size() <= static_cast<std::size_t>(cfg.smtp.max_recipients));
        if (opt.listener != Listener::smtp) FUZZ_CHECK(!s.account().empty());
        if (txn.has_remote()) {
          // SPEC §4.3: relay=1, a permitted network, AUTH, or a local sender
          // (unless only AUTH may send).
          bool may = cfg.smtp.relay || permitted || !s.account().empty() ||
                     (!cfg.smtp.send_permits_only_smtp_auth &&
                      sender_local(env, txn.reverse_path));
          FUZZ_CHECK_MSG(may, "relayed for " + txn.reverse_path);
        }
        check_message(sink.data, cfg);
        r.messages.push_back(sink.data);
        ++commits;
        std::string id = "Q";
        id.append(std::to_string(commits));  // appends: GCC 12 -O3 -Wrestrict false positive on operator+
        Result<std::string> res = std::move(id);
        if (o.a & 128) res = unexpected<Error>(Error::smtp(452, "4.3.1", "Insufficient system storage"));
        s.on_commit(std::move(res), next);
        again = true;
      } else if (out.delay.count()) {
        s.resume(next);
        again = true;
      }
      out = std::move(next);
      if (!again) break;
    }
    out.clear();
  };
  s.start(out);
  drain();
  fuzz::Chunker chunker(chunk_seed);
  while (!bytes.empty() && !closed) {
    auto piece = bytes.substr(0, whole ? bytes.size() : chunker.next());
    bytes.remove_prefix(piece.size());
    s.feed(piece, out);
    drain();
  }
  if (closed) {
    // Nothing is processed after the end of the session.
    s.feed("NOOP\r\nQUIT\r\n", out);
    FUZZ_CHECK(out.replies.empty() && !out.commit && !out.start_tls);
  }
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  Options o;
  o.a = in.byte();
  o.b = in.byte();
  std::uint8_t seed = in.byte();
  std::string_view bytes = in.rest();
  Run chunked = run(o, bytes, seed, false);
  // The fake sink's write failure hits its N-th write, and how many writes
  // a message takes depends on the chunks (so does the reply: 451 for the
  // failed write, or 552 when the size or a long line was seen first).
  if (!chunked.tls && !(o.b & 32)) {
    Run whole = run(o, bytes, seed, true);
    // One reply depends on the split by design: bytes already behind a
    // DATA line (RFC 2920 §3.1) end the session with 554 5.5.0. A run that
    // met it stopped there, with that reply last; up to that point the two
    // runs agree, and it committed a prefix of the other run's messages.
    std::string_view wr = whole.replies, cr = chunked.replies;
    std::size_t cut = std::string_view::npos;
    for (std::string_view r : {wr, cr}) {
      auto sync = r.find(kPipelinedData);
      if (sync == std::string_view::npos) continue;
      FUZZ_CHECK_MSG(sync + kPipelinedData.size() == r.size(), show(r.substr(sync)));
      cut = std::min(cut, sync);
    }
    wr = wr.substr(0, std::min(cut, wr.size()));
    cr = cr.substr(0, std::min(cut, cr.size()));
    std::size_t at = 0;
    while (at < wr.size() && at < cr.size() && wr[at] == cr[at]) ++at;
    at = wr.rfind('\n', at) + 1;  // from the line that differs (npos + 1 = 0)
    FUZZ_CHECK_MSG(wr == cr, "whole: " + show(wr.substr(at)) + "\nchunked: " + show(cr.substr(at)));
    if (cut == std::string_view::npos) {
      FUZZ_CHECK(whole.messages == chunked.messages);
    } else {
      const auto& fewer = whole.messages.size() <= chunked.messages.size() ? whole.messages
                                                                            : chunked.messages;
      const auto& more = &fewer == &whole.messages ? chunked.messages : whole.messages;
      FUZZ_CHECK(std::equal(fewer.begin(), fewer.end(), more.begin()));
    }
  }
  return 0;
}
