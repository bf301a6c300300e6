// pop3_test_server HOME: serve POP3 for HOME on 127.0.0.1 ephemeral ports,
// print "pop3 PORT" (and "pop3s PORT") on stdout, run until stdin closes.
// The real-client tests (real_clients.py) drive it.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "test_server.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: pop3_test_server HOME\n");
    return 2;
  }
  auto s = pop3test::Server::start(argv[1]);
  if (!s) {
    std::fprintf(stderr, "pop3_test_server: %s\n", s.error().message.c_str());
    return 1;
  }
  std::printf("pop3 %u\n", (*s)->port());
  if ((*s)->pop3s_port()) std::printf("pop3s %u\n", (*s)->pop3s_port());
  std::fflush(stdout);
  char c;
  while (::read(0, &c, 1) > 0) {
  }
  (*s)->stop();
  return 0;
}
