#include "server/embedder_callbacks.hpp"

#include <exception>

#include "smtp/address.hpp"

namespace wizmail::server {

namespace {

constexpr std::size_t kMaxText = 200;

bool digits(std::string_view s, std::size_t min, std::size_t max) {
  if (s.size() < min || s.size() > max) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// RFC 3463: class "." subject "." detail, class 2, 4 or 5 (here the code's).
bool enhanced_ok(std::string_view e, int code) {
  auto d1 = e.find('.');
  if (d1 != 1 || e[0] != static_cast<char>('0' + code / 100)) return false;
  auto d2 = e.find('.', d1 + 1);
  if (d2 == std::string_view::npos) return false;
  return digits(e.substr(d1 + 1, d2 - d1 - 1), 1, 3) && digits(e.substr(d2 + 1), 1, 3);
}

Protocol protocol_of(const smtp::Environment::RecipientQuestion& q) {
  if (q.local_submit) return Protocol::local_submit;
  switch (q.listener) {
    case smtp::Listener::smtp: return Protocol::smtp;
    case smtp::Listener::submission: return Protocol::submission;
    case smtp::Listener::smtps: return Protocol::smtps;
  }
  return Protocol::smtp;
}

}  // namespace

std::string CheckedRefusal::line() const {
  std::string out = std::to_string(code);
  out.append(" ").append(enhanced).append(" ").append(text);
  return out;
}

CheckedRefusal check_refusal(const Refusal& r, std::string_view default_text) {
  CheckedRefusal c;
  if (r.code < 400 || r.code > 599) {
    c.code = 451;
    c.enhanced = "4.3.0";
    c.text = "Error: temporary local problem";
    c.problem = std::string("invalid reply code ").append(std::to_string(r.code));
    return c;
  }
  c.code = r.code;
  if (r.enhanced.empty() || enhanced_ok(r.enhanced, r.code)) {
    c.enhanced = r.enhanced.empty() ? std::string(r.code < 500 ? "4.7.1" : "5.7.1") : r.enhanced;
  } else {
    c.enhanced = r.code < 500 ? "4.7.1" : "5.7.1";
    c.problem = std::string("invalid enhanced status code '").append(r.enhanced.substr(0, 32)).append("'");
  }
  std::string_view text = r.text;
  if (text.empty()) text = default_text;
  for (char ch : text.substr(0, kMaxText)) {
    auto u = static_cast<unsigned char>(ch);
    c.text += (u < 0x20 || u >= 0x7F) ? '?' : ch;
  }
  return c;
}

smtp::Environment::RecipientAnswer ask_recipient_callback(const RecipientCallback& cb,
                                                          const smtp::Environment::RecipientQuestion& q) {
  using Answer = smtp::Environment::RecipientAnswer;
  Answer a;
  if (!cb) return a;
  RecipientQuery query;
  query.address = q.address;
  query.sender = q.sender;
  query.client_ip = q.client_ip;
  query.auth_user = q.auth_user;
  query.helo = q.helo;
  query.protocol = protocol_of(q);
  RecipientDecision d;
  try {
    d = cb(query);
  } catch (const std::exception& e) {
    a.kind = Answer::Kind::reject;
    a.reply = "451 4.3.0 Error: temporary local problem";
    a.reason = std::string("recipient callback failed: ") + e.what();
    return a;
  } catch (...) {
    a.kind = Answer::Kind::reject;
    a.reply = "451 4.3.0 Error: temporary local problem";
    a.reason = "recipient callback failed: unknown exception";
    return a;
  }
  switch (d.action) {
    case RecipientDecision::Action::defer: break;
    case RecipientDecision::Action::accept:
      if (!smtp::is_account_local_part(d.account)) {
        a.kind = Answer::Kind::reject;
        a.reply = "451 4.3.0 Error: temporary local problem";
        a.reason = std::string("recipient callback accepted into an invalid account name '")
                         .append(d.account.substr(0, 80))
                         .append("'");
        break;
      }
      a.kind = Answer::Kind::accept;
      a.account = d.account;
      for (auto& ch : a.account)
        if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
      break;
    case RecipientDecision::Action::reject: {
      auto c = check_refusal(d.reply, "Error: recipient address rejected");
      a.kind = Answer::Kind::reject;
      a.reply = c.line();
      if (!c.problem.empty()) a.reason = std::string("recipient callback gave an ").append(c.problem);
      break;
    }
  }
  return a;
}

}  // namespace wizmail::server
