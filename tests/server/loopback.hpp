// A running Server on loopback and clients for it (embedding_test.cpp,
// home_test.cpp): a blocking line client, and Python's smtplib as a real
// client (python3 from PATH, as the other tests use).
#pragma once

#include <doctest/doctest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "line_client.hpp"
#include "running_server.hpp"
#include "wait_until.hpp"
#include "wizmail/server.hpp"

namespace wizmail::test {

using namespace std::chrono_literals;

// One message over a fresh connection: the reply to the final dot (without
// CRLF), or which command was refused and how.
inline std::string send_message(std::uint16_t port, const std::string& from, const std::vector<std::string>& to,
                                const std::string& body) {
  SmtpClient c(port);
  c.reply();
  c.cmd("EHLO client.example");
  if (auto r = c.cmd("MAIL FROM:<" + from + ">"); r.substr(0, 3) != "250") return "MAIL refused: " + r;
  for (const auto& rcpt : to)
    if (auto r = c.cmd("RCPT TO:<" + rcpt + ">"); r.substr(0, 3) != "250") return "RCPT refused: " + r;
  if (auto r = c.cmd("DATA"); r.substr(0, 3) != "354") return "DATA refused: " + r;
  c.send(body + "\r\n.\r\n");
  auto r = c.reply();
  c.cmd("QUIT");
  if (r.size() >= 2) r.resize(r.size() - 2);
  return r;
}

// Python's smtplib against the server: EHLO, MAIL FROM:<from>, RCPT TO each
// of `to`, DATA with `body` (when any recipient was accepted), QUIT. Its
// output, one line per reply: "RCPT <addr> <code> <text>", "DATA <code> <text>".
inline std::string smtplib_send(std::uint16_t port, const std::string& from, const std::vector<std::string>& to,
                                const std::string& body) {
  static const char* script = R"PY(
import smtplib, sys
port, sender, rcpts, body = int(sys.argv[1]), sys.argv[2], sys.argv[3].split(","), sys.argv[4]
s = smtplib.SMTP("127.0.0.1", port, timeout=20)
s.ehlo("client.example")
code, text = s.mail(sender)
print("MAIL", code, text.decode())
ok = 0
for r in rcpts:
    code, text = s.rcpt(r)
    print("RCPT", r, code, text.decode())
    ok += code == 250
if ok:
    code, text = s.docmd("DATA")
    if code == 354:
        s.send(body.replace("\n", "\r\n").encode() + b"\r\n.\r\n")
        code, text = s.getreply()
    print("DATA", code, text.decode())
s.quit()
)PY";
  std::string to_list;
  for (const auto& r : to) to_list += (to_list.empty() ? "" : ",") + r;
  int out[2];
  REQUIRE(::pipe(out) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::close(out[0]);
    ::close(out[1]);
    const std::string p = std::to_string(port);
    ::execlp("python3", "python3", "-c", script, p.c_str(), from.c_str(), to_list.c_str(), body.c_str(),
             static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(out[1]);
  std::string text;
  char buf[4096];
  for (;;) {
    auto n = ::read(out[0], buf, sizeof buf);
    if (n <= 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(out[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  REQUIRE_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0), "python3 smtplib failed: " << text);
  return text;
}

}  // namespace wizmail::test
