#include "util/strings.hpp"

#include <doctest/doctest.h>

using namespace wizmail::util;

TEST_CASE("trim and lists") {
  CHECK(trim("  a b \t") == "a b");
  CHECK(trim("") == "");
  CHECK(split_list(" a, b ,,c ") == std::vector<std::string>{"a", "b", "c"});
  CHECK(split_list("").empty());
}

TEST_CASE("case-insensitive helpers") {
  CHECK(iequals("PostMaster", "postmaster"));
  CHECK_FALSE(iequals("post", "postmaster"));
  CHECK(istarts_with("MAIL FROM:<a>", "mail from:"));
  CHECK(to_lower("AbC") == "abc");
}

TEST_CASE("strict integers") {
  CHECK(parse_int("25") == 25);
  CHECK(parse_int("-1") == -1);
  CHECK_FALSE(parse_int("").has_value());
  CHECK_FALSE(parse_int("+1").has_value());
  CHECK_FALSE(parse_int("12x").has_value());
  CHECK_FALSE(parse_int(" 1").has_value());
  CHECK_FALSE(parse_int("99999999999999999999").has_value());
}

TEST_CASE("edit distance") {
  CHECK(edit_distance("port", "port") == 0);
  CHECK(edit_distance("prot", "port") == 2);
  CHECK(edit_distance("relya", "relay") == 2);
  CHECK(edit_distance("", "abc") == 3);
}

TEST_CASE("to_crlf: CRLF, bare LF and lone CR all become CRLF") {
  CHECK(to_crlf("a\r\nb\nc\rd") == "a\r\nb\r\nc\r\nd");
  CHECK(to_crlf("\r\r\n\n") == "\r\n\r\n\r\n");
  CHECK(to_crlf("") == "");
  CHECK(to_crlf("no end") == "no end");
}

TEST_CASE("is_atext: RFC 5322 atext") {
  for (char c : std::string_view("azAZ09!#$%&'*+-/=?^_`{|}~")) {
    CAPTURE(c);
    CHECK(is_atext(c));
  }
  for (char c : std::string_view(" .\"(),:;<>@[\\]\x7f\x01")) {
    CAPTURE(c);
    CHECK_FALSE(is_atext(c));
  }
  CHECK_FALSE(is_atext('\xc3'));
}
