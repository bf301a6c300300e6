// Embedding wizmail: make the home, run the SMTP server inside your own
// asio::io_context with your own log routing, user directory and delivery
// callback, and stop it cleanly. docs/embedding.md explains each piece.
//
//   embed_server HOME [SECONDS]
//
// HOME is made (wizmail::make_home, as `wizmail setup`) when parts of it are
// missing; nothing existing is changed. The server runs for SECONDS (default
// 30) or until Ctrl-C. It
// - routes error and server log lines to stderr (log sink; the files under
//   HOME/var/log/ are written as well),
// - knows two addresses of its own at RCPT (recipient callback): info@<domain>
//   is delivered to postmaster; noreply@<domain> is refused,
// - refuses mail whose subject contains "[virus]", discards "[spam]",
//   redirects mail for "abuse" to postmaster and tags every delivered copy
//   (delivery callback).
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>

#include "wizmail/wizmail.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: embed_server HOME [SECONDS]\n";
    return 2;
  }
  // The data directory: made, or completed, by the library (never clobbered).
  auto home = wizmail::make_home(argv[1]);
  if (!home) {
    std::cerr << "embed_server: " << home.error().message << '\n';
    return 1;
  }
  for (const auto& a : home->accounts)
    if (a.created && !a.password.empty())
      std::cout << "created account " << a.name << " with password " << a.password << '\n';

  wizmail::ServerOptions options;
  // Every log line as a record, on the server's log thread (never a session's):
  // here the errors and server events go to stderr.
  options.log_sink = [](const wizmail::LogRecord& r) {
    if (r.facility == wizmail::LogFacility::error || r.facility == wizmail::LogFacility::server)
      std::clog << "[wizmail " << wizmail::to_string(r.facility) << "] "
                << (r.peer.empty() ? "" : r.peer + " ") << r.text << '\n';
  };
  // Our own user directory, asked at each RCPT on the session's thread: it
  // must answer at once (here: a map in memory). defer() leaves the address
  // to the built-in rules (accounts, aliases, relaying).
  auto cfg = wizmail::load_config(argv[1]);
  if (!cfg) {
    std::cerr << "embed_server: " << cfg.error().message << '\n';
    return 1;
  }
  const std::string domain = (*cfg)->server.domain;
  const std::map<std::string, std::string> directory = {{"info@" + domain, "postmaster"}};
  options.recipient_callback = [directory, domain](const wizmail::RecipientQuery& q) {
    std::string address = q.address;
    for (auto& c : address) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (address == "noreply@" + domain)
      return wizmail::RecipientDecision::reject(550, "5.1.1", "this address takes no mail");
    if (auto it = directory.find(address); it != directory.end())
      return wizmail::RecipientDecision::accept(it->second);  // into that account
    return wizmail::RecipientDecision::defer();
  };

  asio::io_context io;
  auto server = wizmail::Server::create(io, *cfg, options);
  if (!server) {
    std::cerr << "embed_server: " << server.error().message << '\n';
    return 1;
  }
  // Runs on the server's commit thread (never an I/O thread), once per local
  // copy, before the copy is visible in the mailbox.
  (*server)->add_delivery_callback([](const wizmail::Delivery& d) {
    for (const auto& [name, value] : d.headers) {
      if (name != "Subject") continue;
      // The client is told (one reply to DATA; see docs/embedding.md for
      // a message with several recipients).
      if (value.find("[virus]") != std::string::npos)
        return wizmail::DeliveryDecision::reject(554, "5.7.1", "message refused by content policy");
      if (value.find("[spam]") != std::string::npos) return wizmail::DeliveryDecision::discard();
    }
    // Mail for "abuse" lands in postmaster's mailbox.
    if (d.account == "abuse") return wizmail::DeliveryDecision::redirect("postmaster");
    std::cout << "delivering to " << d.account << " from <" << d.sender << ">\n";
    // Tag the copy: the callback may hand back a whole new message.
    std::ifstream in(d.message_file, std::ios::binary);
    std::ostringstream text;
    text << "X-Embedded-By: embed_server; rcpt=" << d.recipient << "\r\n" << in.rdbuf();
    if (!in) return wizmail::DeliveryDecision::accept();
    return wizmail::DeliveryDecision::rewrite(text.str());
  });
  if (auto st = (*server)->start(); !st) {
    std::cerr << "embed_server: " << st.error().message << '\n';
    return 1;
  }
  for (const auto& e : (*server)->endpoints())
    std::cout << wizmail::to_string(e.protocol) << " on " << e.address << ':' << e.port << '\n';

  asio::signal_set signals(io, SIGINT, SIGTERM);
  asio::steady_timer timer(io, std::chrono::seconds(argc > 2 ? std::atoi(argv[2]) : 30));
  // Once every session has ended, cancel our own waits so that run() returns.
  auto stop = [&] {
    (*server)->stop(std::chrono::seconds(5), [&] {
      signals.cancel();
      timer.cancel();
      std::cout << "stopped\n";
    });
  };
  signals.async_wait([&](std::error_code ec, int) {
    if (!ec) stop();
  });
  timer.async_wait([&](std::error_code ec) {
    if (!ec) stop();
  });
  io.run();  // add threads running io.run() for more cores
  return 0;
}
