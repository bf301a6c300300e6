#include "milter/chain.hpp"

#include <algorithm>

#include "util/strings.hpp"

namespace wizmail::milter {

namespace {

constexpr std::string_view kTempfail = "451 4.7.1 Service unavailable - try again later";
constexpr std::string_view kReject = "550 5.7.1 Command rejected";

// The macros sent at each stage when a milter names none (Postfix's
// milter_*_macros defaults, as far as wizmail knows their values).
const std::vector<std::string_view>& default_macros(Stage s) {
  static const std::vector<std::string_view> by_stage[kStages] = {
      {"j", "{daemon_name}", "v", "_", "{client_addr}", "{client_name}", "{client_port}", "{client_ptr}"},
      {"{tls_version}", "{cipher}", "{cipher_bits}"},
      {"i", "{auth_type}", "{auth_authen}", "{auth_author}", "{mail_addr}", "{mail_host}", "{mail_mailer}"},
      {"i", "{rcpt_addr}", "{rcpt_host}", "{rcpt_mailer}"},
      {"i"},
      {"i"},
      {"i"},
  };
  return by_stage[static_cast<int>(s)];
}

std::string strip_brackets(std::string_view a) {
  a = util::trim(a);
  if (a.size() >= 2 && a.front() == '<' && a.back() == '>') a = a.substr(1, a.size() - 2);
  return std::string(a);
}

std::string domain_of(std::string_view addr) {
  auto at = addr.rfind('@');
  return at == std::string_view::npos ? std::string() : std::string(addr.substr(at + 1));
}

// Header text from a milter: every line end CRLF, nothing after the last line.
std::string fold_crlf(std::string_view v) {
  std::string out = util::to_crlf(v);
  while (out.ends_with("\r\n")) out.resize(out.size() - 2);
  return out;
}

}  // namespace

std::optional<DefaultAction> parse_default_action(std::string_view s) noexcept {
  s = util::trim(s);
  if (util::iequals(s, "tempfail")) return DefaultAction::tempfail;
  if (util::iequals(s, "accept")) return DefaultAction::accept;
  if (util::iequals(s, "reject")) return DefaultAction::reject;
  return std::nullopt;
}

Message Message::parse(std::string_view text) {
  Message m;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto eol = text.find("\r\n", pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    const std::size_t next = std::min(text.size(), eol + 2);
    if (line.empty()) {  // the blank line: the body follows
      pos = next;
      m.body.assign(text.substr(pos));
      return m;
    }
    if ((line.front() == ' ' || line.front() == '\t') && !m.headers.empty()) {
      m.headers.back().value.append("\r\n").append(line);
    } else {
      auto colon = line.find(':');
      if (colon == std::string_view::npos) {  // not a header: the body starts here
        m.body.assign(text.substr(pos));
        return m;
      }
      m.headers.push_back({std::string(line.substr(0, colon)), std::string(line.substr(colon + 1))});
    }
    pos = next;
  }
  return m;
}

std::string Message::serialize() const {
  std::string out;
  std::size_t n = body.size() + 2;
  for (const auto& h : headers) n += h.name.size() + h.value.size() + 3;
  out.reserve(n);
  for (const auto& h : headers) out.append(h.name).append(":").append(h.value).append("\r\n");
  out.append("\r\n");
  out.append(body);
  return out;
}

struct Chain::Member {
  Client client;
  bool failed = false;        // dropped for the session (on_failure_ answers)
  bool session_done = false;  // accepted the session
  bool txn_done = false;      // accepted the transaction
  bool opened = false;        // an open() was tried
  Member(Address a, Timeouts t) : client(std::move(a), t) {}
  const std::string& name() const { return client.address().spec; }
  bool has(std::uint32_t flag) const { return (client.negotiated().protocol & flag) != 0; }
};

Chain::Chain(std::vector<Address> milters, Timeouts timeouts, DefaultAction on_failure, SessionInfo info,
             std::function<void(const std::string&)> log)
    : on_failure_(on_failure), info_(std::move(info)), log_(std::move(log)) {
  for (auto& a : milters) members_.push_back(std::make_unique<Member>(std::move(a), timeouts));
  set("j", info_.hostname);
  set("{daemon_name}", info_.daemon_name);
  set("v", "wizmail");
  set("{client_addr}", info_.client_addr);
  set("{client_port}", std::to_string(info_.client_port));
  set("{client_name}", info_.client_name.empty() ? std::string("unknown") : info_.client_name);
  set("{client_ptr}", info_.client_name.empty() ? std::string("unknown") : info_.client_name);
  set("_", util::cat(info_.client_name.empty() ? std::string_view("unknown") : std::string_view(info_.client_name),
                     " [", info_.client_addr, "]"));
}

Chain::~Chain() { quit(); }

void Chain::client_named(std::string name, std::string ptr) {
  info_.client_name = std::move(name);
  const std::string shown = info_.client_name.empty() ? std::string("unknown") : info_.client_name;
  set("{client_name}", shown);
  set("{client_ptr}", ptr.empty() ? std::string("unknown") : std::move(ptr));
  set("_", util::cat(shown, " [", info_.client_addr, "]"));
}

void Chain::tls_started(std::string version, std::string cipher, int bits) {
  set("{tls_version}", std::move(version));
  set("{cipher}", std::move(cipher));
  set("{cipher_bits}", std::to_string(bits));
}

void Chain::set(std::string_view name, std::string value) {
  for (auto& [n, v] : values_)
    if (n == name) {
      v = std::move(value);
      return;
    }
  values_.emplace_back(std::string(name), std::move(value));
}

Macros Chain::macros_for(const Member& m, Stage stage) const {
  Macros out;
  const auto& wanted = m.client.negotiated().symlist[static_cast<int>(stage)];
  auto add = [&](std::string_view name) {
    for (const auto& [n, v] : values_)
      if (n == name && !v.empty()) out.emplace_back(n, v);
  };
  if (wanted) {
    for (const auto& n : *wanted) add(n);
  } else {
    for (auto n : default_macros(stage)) add(n);
  }
  return out;
}

Verdict Chain::failed(Member& m, const std::string& why) {
  m.failed = true;
  m.client.close();
  const char* act = on_failure_ == DefaultAction::accept ? "accept" : on_failure_ == DefaultAction::reject ? "reject" : "tempfail";
  if (log_) log_(util::cat("milter ", m.name(), ": ", why, " (milter_default_action=", act, ")"));
  switch (on_failure_) {
    case DefaultAction::accept: return {};
    case DefaultAction::reject: return {Verdict::Kind::reply, std::string(kReject)};
    case DefaultAction::tempfail: break;
  }
  return {Verdict::Kind::reply, std::string(kTempfail)};
}

// A failed milter keeps answering with the default action for the rest of
// the session (Postfix: a milter in error state); with `accept` it is gone.
Verdict Chain::decide(Member& m, const Reply& r, Scope scope, bool rcpt, std::string_view stage) {
  using K = Reply::Kind;
  auto note = [&](std::string_view what) {
    if (log_) log_(util::cat("milter ", m.name(), ": ", what, " at ", stage));
  };
  switch (r.kind) {
    case K::cont: return {};
    case K::accept:
      (scope == Scope::session ? m.session_done : m.txn_done) = true;
      return {};
    case K::reject: note("reject"); return {Verdict::Kind::reply, std::string(kReject)};
    case K::tempfail: note("tempfail"); return {Verdict::Kind::reply, std::string(kTempfail)};
    case K::replycode: note(util::cat("reply \"", r.text.substr(0, r.text.find('\r')), "\""));
      return {Verdict::Kind::reply, r.text};
    case K::discard:
      if (scope == Scope::session) {  // nothing to discard yet: Postfix ignores it
        note("discard (ignored: no transaction)");
        return {};
      }
      note("discard");
      discard_ = true;
      return {Verdict::Kind::discard, {}};
    case K::shutdown:
    case K::conn_fail: return failed(m, util::cat("closed the connection at ", stage));
    default: break;
  }
  (void)rcpt;
  return failed(m, util::cat("unexpected reply at ", stage));
}

Verdict Chain::event(Stage stage, char command, std::string_view payload, std::uint32_t skip_flag,
                     std::uint32_t no_reply_flag, Scope scope, bool rcpt) {
  static constexpr std::string_view names[] = {"connect", "helo", "mail", "rcpt", "data", "end of message", "end of headers"};
  const std::string_view stage_name = command == cmd::unknown ? std::string_view("unknown command") : names[static_cast<int>(stage)];
  for (auto& mp : members_) {
    Member& m = *mp;
    if (m.session_done || (scope == Scope::transaction && m.txn_done)) continue;
    if (m.failed) {
      if (on_failure_ == DefaultAction::accept) continue;
      return {Verdict::Kind::reply, std::string(on_failure_ == DefaultAction::reject ? kReject : kTempfail)};
    }
    if (!m.client.is_open()) {
      if (m.opened) return failed(m, "connection lost");
      m.opened = true;
      if (auto st = m.client.open(); !st) {
        Verdict v = failed(m, util::cat("cannot connect: ", st.error().message));
        if (!v.go_on()) return v;
        continue;
      }
    }
    if (m.has(skip_flag)) continue;
    std::string out;
    auto macros = macros_for(m, stage);
    if (!macros.empty()) out = encode_macros(command, macros);
    out.append(payload);
    const auto timeout = m.client.timeouts().command;
    if (auto st = m.client.send(out, timeout); !st) {
      Verdict v = failed(m, util::cat("sending ", stage_name, ": ", st.error().message));
      if (!v.go_on()) return v;
      continue;
    }
    if (m.has(no_reply_flag)) continue;
    auto r = m.client.receive(timeout);
    if (!r) {
      Verdict v = failed(m, util::cat(stage_name, ": ", r.error().message));
      if (!v.go_on()) return v;
      continue;
    }
    if (r->modification() || r->kind == Reply::Kind::skip) {
      Verdict v = failed(m, util::cat("reply not allowed at ", stage_name));
      if (!v.go_on()) return v;
      continue;
    }
    Verdict v = decide(m, *r, scope, rcpt, stage_name);
    if (v.kind == Verdict::Kind::discard) return v;
    if (!v.go_on()) return v;
  }
  return {};
}

Verdict Chain::connect() {
  if (connected_) return connect_verdict_.value_or(Verdict{});
  connected_ = true;
  char family = info_.local ? 'L' : info_.client_addr.find(':') != std::string::npos ? '6' : '4';
  std::string payload = info_.local
      ? encode_connect("localhost", '4', 0, "127.0.0.1")
      : encode_connect(info_.client_name.empty() ? std::string_view("unknown") : std::string_view(info_.client_name),
                       family, info_.client_port, info_.client_addr);
  Verdict v = event(Stage::connect, cmd::connect, payload, proto::noconnect, proto::nr_conn, Scope::session, false);
  if (v.kind == Verdict::Kind::discard) v = {};
  if (!v.go_on()) connect_verdict_ = v;
  return v;
}

Verdict Chain::helo(std::string_view name) {
  if (auto v = connect(); !v.go_on()) return v;
  if (in_transaction_) abort();
  return event(Stage::helo, cmd::helo, encode_helo(name), proto::nohelo, proto::nr_helo, Scope::session, false);
}

Verdict Chain::mail(std::string_view sender, const std::vector<std::string>& args, std::string_view auth_user,
                    std::string_view transaction_id) {
  if (auto v = connect(); !v.go_on()) return v;
  if (in_transaction_) abort();
  in_transaction_ = true;
  discard_ = false;
  for (auto& m : members_) m->txn_done = false;
  set("i", std::string(transaction_id));
  set("{auth_authen}", std::string(auth_user));
  set("{auth_type}", auth_user.empty() ? std::string() : std::string("LOGIN"));
  set("{auth_author}", std::string());
  set("{mail_addr}", std::string(sender));
  set("{mail_host}", domain_of(sender));
  set("{mail_mailer}", sender.empty() ? std::string() : std::string("smtp"));
  Verdict v = event(Stage::mail, cmd::mail, encode_envelope(cmd::mail, sender, args), proto::nomail, proto::nr_mail,
                    Scope::transaction, false);
  if (v.kind == Verdict::Kind::discard) return {};  // the message is dropped at its end
  if (!v.go_on()) abort();
  return v;
}

Verdict Chain::rcpt(std::string_view recipient, const std::vector<std::string>& args) {
  if (discard_) return {};
  set("{rcpt_addr}", std::string(recipient));
  set("{rcpt_host}", domain_of(recipient));
  set("{rcpt_mailer}", "smtp");
  Verdict v = event(Stage::rcpt, cmd::rcpt, encode_envelope(cmd::rcpt, recipient, args), proto::norcpt, proto::nr_rcpt,
                    Scope::transaction, true);
  if (v.kind == Verdict::Kind::discard) return {};
  return v;
}

Verdict Chain::data() {
  if (discard_) return {};
  Verdict v = event(Stage::data, cmd::data, encode_simple(cmd::data), proto::nodata, proto::nr_data, Scope::transaction, false);
  if (v.kind == Verdict::Kind::discard) return {};
  return v;
}

Verdict Chain::unknown(std::string_view line) {
  if (auto v = connect(); !v.go_on()) return v;
  Verdict v = event(Stage::mail, cmd::unknown, encode_unknown(line), proto::nounknown, proto::nr_unkn,
                    Scope::transaction, false);
  if (v.kind == Verdict::Kind::discard) return {};
  return v;
}

Verdict Chain::end_of_message(Message& msg) {
  in_transaction_ = false;
  if (discard_) {
    discard_ = false;
    return {Verdict::Kind::discard, {}};
  }
  for (auto& mp : members_) {
    Member& m = *mp;
    if (m.session_done || m.txn_done) continue;
    if (m.failed || !m.client.is_open()) {
      if (on_failure_ == DefaultAction::accept) continue;
      return {Verdict::Kind::reply, std::string(on_failure_ == DefaultAction::reject ? kReject : kTempfail)};
    }
    Verdict v = content(m, msg);
    if (v.kind == Verdict::Kind::discard) {
      discard_ = false;
      return v;
    }
    if (!v.go_on()) return v;
  }
  return {};
}

// One milter's look at the message: headers, end of headers, body chunks,
// end of message with its changes, applied to `msg` when it continues or
// accepts.
Verdict Chain::content(Member& m, Message& msg) {
  const auto timeout = m.client.timeouts().content;
  auto exchange = [&](std::string bytes, bool reply, std::string_view what) -> std::optional<Result<Reply>> {
    if (auto st = m.client.send(bytes, timeout); !st) return Result<Reply>(unexpected(st.error()));
    if (!reply) return std::nullopt;
    auto r = m.client.receive(timeout);
    (void)what;
    return r;
  };
  // The answer to a header, end of headers or body chunk.
  auto early = [&](const Result<Reply>& r, std::string_view what, bool skip_ok, bool& skipped) -> std::optional<Verdict> {
    if (!r) return failed(m, util::cat(what, ": ", r.error().message));
    if (r->kind == Reply::Kind::skip && skip_ok) {
      skipped = true;
      return std::nullopt;
    }
    if (r->modification() || r->kind == Reply::Kind::skip) return failed(m, util::cat("reply not allowed at ", what));
    if (r->kind == Reply::Kind::cont) return std::nullopt;
    Verdict v = decide(m, *r, Scope::transaction, false, what);
    if (r->kind == Reply::Kind::accept) return Verdict{};  // accepted: no more of this message
    return v;
  };
  bool skipped = false;
  if (!m.has(proto::nohdrs)) {
    const bool leadspc = m.has(proto::hdr_leadspc);
    for (const auto& h : msg.headers) {
      std::string_view value = h.value;
      if (!leadspc && value.starts_with(' ')) value.remove_prefix(1);
      // Folded lines as LF (Postfix sends the header as stored, LF line ends).
      std::string v;
      v.reserve(value.size());
      for (std::size_t i = 0; i < value.size(); ++i)
        if (!(value[i] == '\r' && i + 1 < value.size() && value[i + 1] == '\n')) v.push_back(value[i]);
      auto r = exchange(encode_header(h.name, v), !m.has(proto::nr_hdr), "header");
      if (r)
        if (auto v2 = early(*r, "header", false, skipped)) return m.txn_done ? Verdict{} : *v2;
      if (!r && !m.client.is_open()) return failed(m, "header: connection lost");
    }
  }
  if (!m.has(proto::noeoh)) {
    std::string out;
    auto macros = macros_for(m, Stage::eoh);
    if (!macros.empty()) out = encode_macros(cmd::eoh, macros);
    out += encode_simple(cmd::eoh);
    auto r = exchange(out, !m.has(proto::nr_eoh), "end of headers");
    if (r)
      if (auto v = early(*r, "end of headers", false, skipped)) return m.txn_done ? Verdict{} : *v;
  }
  if (!m.has(proto::nobody)) {
    std::string_view body = msg.body;
    while (!body.empty() && !skipped) {
      auto chunk = body.substr(0, kChunk);
      body.remove_prefix(chunk.size());
      auto r = exchange(encode_body(chunk), !m.has(proto::nr_body), "body");
      if (r)
        if (auto v = early(*r, "body", m.has(proto::skip), skipped)) return m.txn_done ? Verdict{} : *v;
    }
  }
  std::string out;
  auto macros = macros_for(m, Stage::eom);
  if (!macros.empty()) out = encode_macros(cmd::eom, macros);
  out += encode_simple(cmd::eom);
  if (auto st = m.client.send(out, timeout); !st) return failed(m, util::cat("end of message: ", st.error().message));
  std::vector<Reply> changes;
  for (;;) {
    auto r = m.client.receive(timeout);
    if (!r) return failed(m, util::cat("end of message: ", r.error().message));
    if (r->modification()) {
      if (changes.size() >= 100000) return failed(m, "too many changes");
      changes.push_back(std::move(*r));
      continue;
    }
    if (r->kind == Reply::Kind::skip) return failed(m, "reply not allowed at end of message");
    if (r->kind == Reply::Kind::accept || r->kind == Reply::Kind::cont) {
      // Changes are applied together, in the order given; a bad one drops
      // the milter (its default action answers).
      Message copy = msg;
      std::string newbody;
      bool replaced = false;
      for (const auto& c : changes) {
        if (c.kind == Reply::Kind::replbody) {
          if (!(m.client.negotiated().actions & act::chgbody)) return failed(m, "body replaced without the action negotiated");
          newbody.append(c.body);
          replaced = true;
          continue;
        }
        if (auto st = apply(m, c, copy); !st) return failed(m, st.error().message);
      }
      if (replaced) {
        copy.body = util::to_crlf(newbody);
        copy.body_changed = true;
      }
      msg = std::move(copy);
      m.txn_done = false;
      return {};
    }
    return decide(m, *r, Scope::transaction, false, "end of message");
  }
}

Status Chain::apply(Member& m, const Reply& c, Message& msg) {
  using K = Reply::Kind;
  const auto actions = m.client.negotiated().actions;
  const bool leadspc = m.has(proto::hdr_leadspc);
  auto needs = [&](std::uint32_t a, std::string_view what) -> Status {
    if (actions & a) return {};
    return fail(Errc::protocol, util::cat(what, " without the action negotiated"));
  };
  auto value_of = [&](std::string_view v) {
    std::string s = fold_crlf(v);
    return leadspc ? s : util::cat(" ", s);
  };
  switch (c.kind) {
    case K::addheader:
      if (auto st = needs(act::addhdrs, "header added"); !st) return st;
      msg.headers.push_back({c.name, value_of(c.value)});
      msg.headers_changed = true;
      return {};
    case K::insheader: {
      if (auto st = needs(act::addhdrs, "header inserted"); !st) return st;
      auto at = std::min<std::size_t>(c.index, msg.headers.size());
      msg.headers.insert(msg.headers.begin() + static_cast<std::ptrdiff_t>(at), Header{c.name, value_of(c.value)});
      msg.headers_changed = true;
      return {};
    }
    case K::chgheader: {
      if (auto st = needs(act::chghdrs, "header changed"); !st) return st;
      // The index-th field of that name (1-based; 0 counts as 1); an empty
      // value deletes it; a field that is not there is added.
      std::uint32_t want = c.index == 0 ? 1 : c.index, seen = 0;
      for (auto it = msg.headers.begin(); it != msg.headers.end(); ++it) {
        if (!util::iequals(it->name, c.name) || ++seen != want) continue;
        if (c.value.empty())
          msg.headers.erase(it);
        else
          it->value = value_of(c.value);
        msg.headers_changed = true;
        return {};
      }
      if (!c.value.empty()) {
        msg.headers.push_back({c.name, value_of(c.value)});
        msg.headers_changed = true;
      }
      return {};
    }
    case K::chgfrom:
      if (auto st = needs(act::chgfrom, "sender changed"); !st) return st;
      msg.sender = strip_brackets(c.value);
      msg.sender_args = c.args;
      msg.sender_changed = true;
      return {};
    case K::addrcpt:
    case K::addrcpt_par: {
      if (auto st = needs(c.kind == K::addrcpt ? act::addrcpt : act::addrcpt_par, "recipient added"); !st) return st;
      std::string a = strip_brackets(c.value);
      if (a.empty()) return fail(Errc::protocol, "empty recipient added");
      if (std::none_of(msg.recipients.begin(), msg.recipients.end(), [&](const std::string& r) { return util::iequals(r, a); }))
        msg.recipients.push_back(std::move(a));
      msg.recipients_changed = true;
      return {};
    }
    case K::delrcpt: {
      if (auto st = needs(act::delrcpt, "recipient deleted"); !st) return st;
      std::string a = strip_brackets(c.value);
      std::erase_if(msg.recipients, [&](const std::string& r) { return util::iequals(r, a); });
      msg.recipients_changed = true;
      return {};
    }
    case K::quarantine:
      if (auto st = needs(act::quarantine, "quarantine"); !st) return st;
      msg.quarantine = c.text;
      return {};
    default: break;
  }
  return fail(Errc::protocol, "unexpected change");
}

void Chain::abort() {
  if (!in_transaction_) return;
  in_transaction_ = false;
  discard_ = false;
  for (auto& m : members_) {
    if (m->failed || !m->client.is_open() || m->session_done) continue;
    // No reply to an abort.
    if (auto st = m->client.send(encode_simple(cmd::abort), m->client.timeouts().command); !st) {
      m->failed = true;
      m->client.close();
    }
  }
}

void Chain::quit() noexcept {
  for (auto& m : members_) {
    if (!m->client.is_open()) continue;
    if (in_transaction_) (void)m->client.send(encode_simple(cmd::abort), std::chrono::milliseconds(100));
    m->client.quit();
  }
  in_transaction_ = false;
}

}  // namespace wizmail::milter
