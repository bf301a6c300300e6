#include "mime/dot_stuffer.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace wizmail::mime;

namespace {

std::string stuff(const std::string& in, std::size_t chunk, long lines = -1) {
  DotStuffer d(lines);
  std::string out;
  for (std::size_t off = 0; off < in.size(); off += chunk)
    if (!d.feed(std::string_view(in).substr(off, chunk), out)) break;
  d.finish(out);
  return out;
}

void check_all_chunks(const std::string& in, const std::string& want, long lines = -1) {
  for (std::size_t chunk = 1; chunk <= 520; chunk = chunk < 8 ? chunk + 1 : chunk * 2) {
    CAPTURE(chunk);
    CHECK(stuff(in, chunk, lines) == want);
  }
  CHECK(stuff(in, in.size() + 1, lines) == want);
}

}  // namespace

TEST_CASE("CRLF message passes unchanged, terminator added") {
  check_all_chunks("Subject: a\r\n\r\nbody\r\n", "Subject: a\r\n\r\nbody\r\n.\r\n");
}

TEST_CASE("dots at line starts are doubled, elsewhere not") {
  check_all_chunks("S: x\r\n\r\n.\r\n..x\r\na.b\r\n.\r\n",
                   "S: x\r\n\r\n..\r\n...x\r\na.b\r\n..\r\n.\r\n");
  check_all_chunks(".first\r\n", "..first\r\n.\r\n");
}

TEST_CASE("bare LF becomes CRLF, bare CR is data") {
  check_all_chunks("a\nb\r\nc\n.\n", "a\r\nb\r\nc\r\n..\r\n.\r\n");
  check_all_chunks("a\rb\r\n", "a\rb\r\n.\r\n");
  check_all_chunks("a\r.b\r\n", "a\r.b\r\n.\r\n");
  check_all_chunks("x\r\r\n", "x\r\r\n.\r\n");
}

TEST_CASE("missing final line end is supplied") {
  check_all_chunks("no end", "no end\r\n.\r\n");
  check_all_chunks("cr end\r", "cr end\r\n.\r\n");
  check_all_chunks("", ".\r\n");
}

TEST_CASE("TOP: header, blank line, n body lines") {
  const std::string m = "A: 1\r\nB: 2\r\n\r\nl1\r\n.l2\r\nl3\r\n";
  check_all_chunks(m, "A: 1\r\nB: 2\r\n\r\n.\r\n", 0);
  check_all_chunks(m, "A: 1\r\nB: 2\r\n\r\nl1\r\n.\r\n", 1);
  check_all_chunks(m, "A: 1\r\nB: 2\r\n\r\nl1\r\n..l2\r\n.\r\n", 2);
  const std::string all = "A: 1\r\nB: 2\r\n\r\nl1\r\n..l2\r\nl3\r\n.\r\n";
  check_all_chunks(m, all, 3);
  check_all_chunks(m, all, 100);
  check_all_chunks(m, all, -1);
  // bare LF message
  check_all_chunks("A: 1\n\nb1\nb2\n", "A: 1\r\n\r\nb1\r\n.\r\n", 1);
  // header only, no body
  check_all_chunks("A: 1\r\n", "A: 1\r\n.\r\n", 0);
}

TEST_CASE("feed reports the TOP limit so the caller can stop reading") {
  DotStuffer d(0);
  std::string out;
  CHECK(d.feed("A: 1\r\n", out));
  CHECK_FALSE(d.feed("\r\nbody\r\n", out));
  CHECK(d.done());
  CHECK_FALSE(d.feed("more", out));
  d.finish(out);
  CHECK(out == "A: 1\r\n\r\n.\r\n");
}

TEST_CASE("transmitted size counts CRLF line ends, not dot-stuffing") {
  CHECK(transmitted_size("a\r\nb\r\n") == 6);
  CHECK(transmitted_size("a\nb\n") == 6);
  CHECK(transmitted_size(".\r\n..\r\n") == 7);
  CHECK(transmitted_size("") == 0);
  // The size equals what RETR sends minus stuffing and terminator.
  const std::string m = "X: y\n\n.dot\nplain\r\n";
  std::string sent = stuff(m, 3);
  CHECK(sent.size() - 1 /*stuffed dot*/ - 3 /*.CRLF*/ == transmitted_size(m));
}
