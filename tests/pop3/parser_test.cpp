#include "pop3/parser.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace wizmail::pop3;

namespace {

// Feed `in` at `chunk` octets a time; lines out, "<too long>" for refusals.
std::vector<std::string> split(const std::string& in, std::size_t chunk) {
  LineParser p;
  std::vector<std::string> out;
  for (std::size_t off = 0; off < in.size(); off += chunk) {
    std::string_view piece = std::string_view(in).substr(off, chunk);
    while (!piece.empty()) {
      auto r = p.parse(piece);
      piece.remove_prefix(r.used);
      if (r.status == LineParser::Status::line) out.emplace_back(p.line());
      if (r.status == LineParser::Status::too_long) out.emplace_back("<too long>");
    }
  }
  return out;
}

}  // namespace

TEST_CASE("lines split identically at every chunk size") {
  std::string in = "USER a\r\nPASS b c\r\n\r\nNOOP\nstat\r\r\n";
  in += std::string(10000, 'x') + "\r\nQUIT\r\n";
  in += "LIST " + std::string(600, '1') + "\n";
  in += std::string(max_line_octets, 'y') + "\n";            // exactly at the limit
  in += std::string(max_line_octets + 1, 'z') + "\n";        // one over
  in += "partial";                                           // never completed
  std::vector<std::string> want = {"USER a", "PASS b c", "", "NOOP", "stat\r",
                                   "<too long>", "QUIT", "<too long>",
                                   std::string(max_line_octets, 'y'), "<too long>"};
  for (std::size_t chunk : {1, 2, 3, 4, 7, 8, 16, 32, 64, 128, 256, 512, 100000}) {
    CAPTURE(chunk);
    CHECK(split(in, chunk) == want);
  }
}

TEST_CASE("a too-long line is reported once and its tail never becomes a command") {
  std::string in = std::string(5000, 'a') + "QUIT\r\nNOOP\r\n";
  for (std::size_t chunk : {1, 5, 512, 6000})
    CHECK(split(in, chunk) == std::vector<std::string>{"<too long>", "NOOP"});
}

TEST_CASE("reset forgets a partial line") {
  LineParser p;
  auto r = p.parse("CAPA");
  CHECK(r.status == LineParser::Status::need_more);
  p.reset();
  r = p.parse("NOOP\r\n");
  REQUIRE(r.status == LineParser::Status::line);
  CHECK(p.line() == "NOOP");
}

TEST_CASE("commands: keywords case-insensitive, arguments split") {
  auto c = parse_command("uSeR alice");
  CHECK(c.verb == Verb::user);
  CHECK(c.args == std::vector<std::string>{"alice"});
  c = parse_command("PASS  two  words ");
  CHECK(c.verb == Verb::pass);
  CHECK(c.rest == " two  words ");
  CHECK(c.args == std::vector<std::string>{"two", "words"});
  CHECK(parse_command("top 1 10").verb == Verb::top);
  CHECK(parse_command("XTND").verb == Verb::unknown);
  CHECK(parse_command("").verb == Verb::unknown);
  CHECK(parse_command("RETRX 1").verb == Verb::unknown);
  CHECK(parse_command("STAT").args.empty());
}

TEST_CASE("message numbers and line counts") {
  CHECK(parse_msg_number("1") == 1);
  CHECK(parse_msg_number("0042") == 42);
  CHECK(parse_msg_number("0") == 0);
  CHECK(parse_msg_number("-1") == 0);
  CHECK(parse_msg_number("+1") == 0);
  CHECK(parse_msg_number("1a") == 0);
  CHECK(parse_msg_number("") == 0);
  CHECK(parse_msg_number("99999999999") == 0);
  CHECK(parse_msg_number("4294967297") == 0);
  CHECK(parse_line_count("0") == 0);
  CHECK(parse_line_count("10") == 10);
  CHECK(parse_line_count("-1") == -1);
  CHECK(parse_line_count("x") == -1);
  CHECK(parse_line_count("") == -1);
}
