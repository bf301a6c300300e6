// Embedding wizmail: run the SMTP server inside your own asio::io_context,
// with an in-process delivery callback, and stop it cleanly.
//
//   embed_server HOME [SECONDS]
//
// HOME is a wizmail home (see `wizmail setup`). The server runs for SECONDS
// (default 30) or until Ctrl-C, tagging every delivered message and
// discarding mail whose subject contains "[spam]".
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>

#include <chrono>
#include <cstdlib>
#include <iostream>
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
  (*server)->add_delivery_callback([](const wizmail::Delivery& d) {
    for (const auto& [name, value] : d.headers)
      if (name == "Subject" && value.find("[spam]") != std::string::npos)
        return wizmail::DeliveryDecision::discard();
    std::cout << "delivering to " << d.account << " from <" << d.sender << ">\n";
    return wizmail::DeliveryDecision::accept();
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
