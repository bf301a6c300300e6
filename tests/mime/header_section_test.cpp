#include "mime/header_section.hpp"

#include <doctest/doctest.h>

#include <string>

#include "mime/message_head.hpp"

using namespace wizmail::mime;

using Pairs = std::vector<std::pair<std::string, std::string>>;

TEST_CASE("split_header_section: fields as they stand, offsets, the end of the head") {
  const std::string m = "From: a@b\r\nSubject: one\r\n\ttwo\r\nno field here\r\n:empty name\r\n\r\nbody\r\n";
  auto h = split_header_section(m);
  REQUIRE(h.fields.size() == 4);
  CHECK(h.fields[0].name == "From");
  CHECK(h.fields[0].text == "From: a@b\r\n");
  CHECK(h.fields[0].offset == 0);
  CHECK(h.fields[1].name == "Subject");
  CHECK(h.fields[1].text == "Subject: one\r\n\ttwo\r\n");
  CHECK(h.fields[1].offset == 11);
  CHECK(h.fields[2].name.empty());
  CHECK(h.fields[3].name.empty());
  CHECK(h.ended);
  CHECK(m.substr(h.head_size, 2) == "\r\n");
  CHECK(m.substr(h.body_offset) == "body\r\n");
}

TEST_CASE("split_header_section: LF line ends, no empty line, a last line without its end") {
  auto h = split_header_section("A: 1\nB: 2\n\nbody");
  CHECK(h.ended);
  CHECK(h.fields.size() == 2);
  CHECK(h.body_offset == 11);
  auto all = split_header_section("A: 1\r\nB: 2");
  CHECK_FALSE(all.ended);
  REQUIRE(all.fields.size() == 2);
  CHECK(all.fields[1].text == "B: 2");
  CHECK(all.head_size == 10);
  CHECK(all.body_offset == 10);
  auto empty_head = split_header_section("\r\nbody");
  CHECK(empty_head.ended);
  CHECK(empty_head.fields.empty());
  CHECK(empty_head.body_offset == 2);
}

TEST_CASE("split_header_section: a continuation line before any field is no field") {
  auto h = split_header_section(" X: y\r\nA: b\r\n\r\n");
  REQUIRE(h.fields.size() == 2);
  CHECK(h.fields[0].name.empty());
  CHECK(h.fields[1].name == "A");
}

TEST_CASE("unfolding is RFC 5322 §2.2.3: the line breaks go, the white space after them stays") {
  // The copies this parser replaced disagreed: two of them made every fold
  // a single space ("a b"), one kept trailing white space.
  CHECK(unfold_value("Subject: a\r\n\tb\r\n") == "a\tb");
  CHECK(unfold_value("Subject: a\r\n   b  \r\n") == "a   b");
  CHECK(unfold_value("Subject:\r\n x\r\n") == "x");
  CHECK(unfold_value("no colon\r\n").empty());
  CHECK(unfolded_fields("Subject: a\r\n\tb \r\n\r\n") == Pairs{{"Subject", "a\tb"}});
}

TEST_CASE("obsolete WSP before the colon (RFC 5322 §4.5.3) still names the field") {
  CHECK(split_header_section("Date : x\r\n\r\n").fields[0].name == "Date");
  MessageHead head("Subject\t: hello\r\n\r\nbody");
  CHECK(head.get("Subject") == "hello");
  CHECK(unfolded_fields("Subject : hi\r\n\r\n") == Pairs{{"Subject", "hi"}});
}

TEST_CASE("unfolded_fields: the first octets of a message leave out a cut last field") {
  CHECK(unfolded_fields("A: 1\r\nB: 2\r\nC: cut of") == Pairs{{"A", "1"}, {"B", "2"}});
  CHECK(unfolded_fields("A: 1\r\nB: 2\r\n cont") == Pairs{{"A", "1"}});
  CHECK(unfolded_fields("A: 1\r\n\r\nB: body") == Pairs{{"A", "1"}});
  CHECK(unfolded_fields("A: 1\r\nno field\r\n: none\r\n\r\n") == Pairs{{"A", "1"}});
}

TEST_CASE("MessageHead: every line end becomes CRLF; str() round-trips") {
  MessageHead head("A: 1\nB: 2\n more\r\r\n\nbody\n");
  REQUIRE(head.fields().size() == 2);
  CHECK(head.fields()[1].raw == "B: 2\r\n more\r\n");
  CHECK(head.get("b") == "2 more");
  CHECK(head.body() == "body\n");
  CHECK(head.str() == "A: 1\r\nB: 2\r\n more\r\n\r\nbody\n");
  CHECK(MessageHead(head.str()).str() == head.str());
}
