// Embedding wizmail: run the SMTP server inside your own asio::io_context,
// with an in-process delivery callback, and stop it cleanly.
//
//   embed_server HOME [SECONDS]
//
// HOME is a wizmail home (see `wizmail setup`). The server runs for SECONDS
// (default 30) or until Ctrl-C, tagging every delivered message (rewrite),
// redirecting mail for "abuse" to postmaster and discarding mail whose
// subject contains "[spam]".
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "wizmail/wizmail.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: embed_server HOME [SECONDS]\n";
    return 2;
  }
  asio::io_context io;
  auto server = wizmail::Server::create(io, argv[1]);
  if (!server) {
    std::cerr << "embed_server: " << server.error().message << '\n';
    return 1;
  }
  // Runs on the server's commit thread (never an I/O thread), once per local
  // copy, before the copy is visible in the mailbox.
  (*server)->add_delivery_callback([](const wizmail::Delivery& d) {
    for (const auto& [name, value] : d.headers)
      if (name == "Subject" && value.find("[spam]") != std::string::npos)
        return wizmail::DeliveryDecision::discard();
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
