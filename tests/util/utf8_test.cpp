#include "util/utf8.hpp"

#include <doctest/doctest.h>

using namespace wizmail::util;

TEST_CASE("UTF-8: sequence lengths; overlong forms, surrogates, truncation and > U+10FFFF are invalid") {
  CHECK(utf8_sequence_length("a") == 1);
  CHECK(utf8_sequence_length("\xc3\xb6x") == 2);
  CHECK(utf8_sequence_length("\xe7\x94\xb0") == 3);
  CHECK(utf8_sequence_length("\xf0\x9f\x93\xa7") == 4);
  CHECK(utf8_sequence_length("\xf4\x8f\xbf\xbf") == 4);  // U+10FFFF
  for (std::string_view bad : {"", "\x80", "\xbf", "\xc0\xaf", "\xc1\xbf", "\xe0\x80\xaf", "\xf0\x80\x80\xaf",
                               "\xed\xa0\x80", "\xed\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xff",
                               "\xc3", "\xe7\x94", "\xc3x"}) {
    CAPTURE(bad);
    CHECK(utf8_sequence_length(bad) == 0);
  }
  CHECK(valid_utf8(""));
  CHECK(valid_utf8("J\xc3\xb6rg \xe7\x94\xb0\xe4\xb8\xad"));
  CHECK_FALSE(valid_utf8("J\xf6rg"));
  CHECK_FALSE(valid_utf8("ok\xc3"));
  CHECK(is_ascii("plain\x7f"));
  CHECK_FALSE(is_ascii("b\xc3\xbcro"));
}

TEST_CASE("UTF-8: repair replaces each octet that starts no valid sequence") {
  CHECK(repair_utf8("J\xc3\xb6rg", "?") == "J\xc3\xb6rg");
  CHECK(repair_utf8("J\xf6rg", "\xef\xbf\xbd") == "J\xef\xbf\xbdrg");
  CHECK(repair_utf8("a\xed\xa0\x80" "b", "_") == "a___b");  // a surrogate: three bad octets
  CHECK(repair_utf8("ok\xc3", "_") == "ok_");
  CHECK(repair_utf8("", "_") == "");
}
