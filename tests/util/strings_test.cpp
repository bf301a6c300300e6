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

TEST_CASE("UTF-8: sequence lengths; overlong forms, surrogates, truncation and > U+10FFFF are invalid") {
  CHECK(wizmail::util::utf8_sequence_length("a") == 1);
  CHECK(wizmail::util::utf8_sequence_length("\xc3\xb6x") == 2);
  CHECK(wizmail::util::utf8_sequence_length("\xe7\x94\xb0") == 3);
  CHECK(wizmail::util::utf8_sequence_length("\xf0\x9f\x93\xa7") == 4);
  CHECK(wizmail::util::utf8_sequence_length("\xf4\x8f\xbf\xbf") == 4);  // U+10FFFF
  for (std::string_view bad : {"", "\x80", "\xbf", "\xc0\xaf", "\xc1\xbf", "\xe0\x80\xaf", "\xf0\x80\x80\xaf",
                               "\xed\xa0\x80", "\xed\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xff",
                               "\xc3", "\xe7\x94", "\xc3x"}) {
    CAPTURE(bad);
    CHECK(wizmail::util::utf8_sequence_length(bad) == 0);
  }
  CHECK(wizmail::util::valid_utf8(""));
  CHECK(wizmail::util::valid_utf8("J\xc3\xb6rg \xe7\x94\xb0\xe4\xb8\xad"));
  CHECK_FALSE(wizmail::util::valid_utf8("J\xf6rg"));
  CHECK_FALSE(wizmail::util::valid_utf8("ok\xc3"));
  CHECK(wizmail::util::is_ascii("plain\x7f"));
  CHECK_FALSE(wizmail::util::is_ascii("b\xc3\xbcro"));
}
