// `wizmail exists` and `wizmail check-smtp`: one short SMTP session each on a
// private io_context. exists never sends DATA: MAIL, RCPT, then QUIT.
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>

#include "net/tls.hpp"
#include "outbound/smtp_client.hpp"
#include "util/strings.hpp"
#include "wizmail/relay.hpp"

// g++ 12 reports a false -Wmismatched-new-delete for some coroutine frames
// (Asio's awaitable_frame_base defines both its operator new and delete,
// so they always match): silence it for this file only.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace wizmail {

using outbound::SmtpClient;

namespace {

RelayTimeouts probe_timeouts(std::chrono::milliseconds t) {
  RelayTimeouts r;
  r.connect = r.greeting = r.command = r.data_init = r.data_block = r.data_end = t;
  return r;
}

template <class F>
void run_coroutine(F f) {
  asio::io_context io;
  asio::co_spawn(io, f(io.get_executor()), asio::detached);
  io.run();
}

}  // namespace

std::string_view to_string(AddressStatus s) noexcept {
  switch (s) {
    case AddressStatus::exists: return "exists";
    case AddressStatus::does_not_exist: return "does-not-exist";
    case AddressStatus::unknown: return "unknown";
  }
  return "unknown";
}

ExistsReport probe_address(std::string_view address, const ProbeOptions& opt) {
  ExistsReport rep;
  auto at = address.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == address.size()) {
    rep.status = AddressStatus::does_not_exist;
    rep.reason = "'" + std::string(address) + "' is not a mail address (local@domain)";
    return rep;
  }
  for (char c : address) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == '<' || c == '>' || static_cast<unsigned char>(c) == 0x7F) {
      rep.status = AddressStatus::does_not_exist;
      rep.reason = "'" + std::string(address) + "' contains characters a mail address cannot have";
      return rep;
    }
  }
  auto ropt = opt.route;
  ropt.smart_host.clear();  // the question is about the recipient's own MX
  auto hops = route(address.substr(at + 1), ropt);
  if (!hops) {
    bool permanent = hops.error().code == Errc::not_found || hops.error().code == Errc::invalid_argument ||
                     hops.error().code == Errc::refused;
    rep.status = permanent ? AddressStatus::does_not_exist : AddressStatus::unknown;
    rep.reason = hops.error().message;
    return rep;
  }
  std::string addr(address);
  run_coroutine([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    std::string last = "no mail exchanger answered";
    for (const auto& hop : *hops) {
      for (const auto& ip : hop.addresses) {
        auto client = std::make_shared<SmtpClient>(ex, probe_timeouts(opt.timeout));
        std::string where = hop.host + "[" + ip + "]:" + std::to_string(hop.port);
        auto g = co_await client->connect(ip, hop.port);
        if (!g || !g->positive()) {
          last = where + ": " + (g ? "greeting " + g->to_string() : g.error().message);
          client->close();
          continue;
        }
        auto h = co_await client->hello(opt.helo_name);
        if (!h || !h->positive()) {
          last = where + ": " + (h ? "EHLO/HELO " + h->to_string() : h.error().message);
          co_await client->quit();
          continue;
        }
        auto m = co_await client->command("MAIL FROM:<" + opt.mail_from + ">", opt.timeout);
        if (!m || !m->positive()) {
          last = where + ": " + (m ? "MAIL " + m->to_string() : m.error().message);
          co_await client->quit();
          continue;
        }
        auto r = co_await client->command("RCPT TO:<" + addr + ">", opt.timeout);
        co_await client->quit();
        if (!r) {
          last = where + ": " + r.error().message;
          continue;
        }
        rep.host = where;
        rep.reply = *r;
        if (r->positive()) {
          rep.status = AddressStatus::exists;
          rep.reason = "accepted by " + where;
        } else if (r->permanent()) {
          rep.status = AddressStatus::does_not_exist;
          rep.reason = "refused by " + where;
        } else {
          rep.status = AddressStatus::unknown;
          rep.reason = "temporary answer from " + where;
        }
        co_return;
      }
    }
    rep.status = AddressStatus::unknown;
    rep.reason = last;
  });
  return rep;
}

Result<SmtpCheckReport> check_smtp(std::string_view host_port, const ProbeOptions& opt) {
  auto hp = parse_host_port(host_port);
  if (!hp) return unexpected(hp.error());
  SmtpCheckReport rep;
  rep.host = hp->host;
  rep.port = hp->port ? hp->port : 25;
  auto addrs = lookup_addresses(hp->host, opt.route.resolver);
  if (!addrs) return unexpected(addrs.error());
  auto tls = net::make_client_tls_context(false);
  if (!tls) return unexpected(tls.error());
  Result<void> outcome = fail(Errc::unavailable, "no address of " + hp->host + " answered");
  run_coroutine([&](asio::any_io_executor ex) -> asio::awaitable<void> {
    for (const auto& ip : *addrs) {
      auto client = std::make_shared<SmtpClient>(ex, probe_timeouts(opt.timeout));
      auto g = co_await client->connect(ip, rep.port);
      if (!g) {
        outcome = fail(Errc::unavailable, ip + ": " + g.error().message);
        continue;
      }
      rep.address = ip;
      rep.banner = *g;
      outcome = {};
      if (!g->positive()) {
        co_await client->quit();
        co_return;
      }
      auto h = co_await client->hello(opt.helo_name);
      if (!h) {
        outcome = unexpected(h.error());
        co_return;
      }
      if (client->esmtp()) rep.ehlo = *h;
      rep.capabilities = client->capabilities();
      rep.starttls_offered = client->has("STARTTLS");
      if (rep.starttls_offered) {
        auto s = co_await client->starttls(*tls);
        if (!s) {
          rep.tls_error = s.error().message;
        } else if (s->code != 220) {
          rep.tls_error = "STARTTLS refused: " + s->to_string();
        } else {
          rep.tls_ok = true;
          rep.tls_protocol = client->tls_description();
          if (auto cert = client->peer_certificate()) {
            rep.cert_subject = cert->subject;
            rep.cert_issuer = cert->issuer;
            rep.cert_not_after = cert->not_after;
          }
          auto again = co_await client->hello(opt.helo_name);
          if (again && again->positive()) rep.capabilities_after_tls = client->capabilities();
        }
      }
      co_await client->quit();
      co_return;
    }
  });
  if (!outcome) return unexpected(outcome.error());
  return rep;
}

}  // namespace wizmail
