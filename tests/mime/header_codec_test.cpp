#include "mime/header_codec.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace wizmail;

namespace {

// Every line of a folded header value, with the field name's room on line 1.
void check_lines(const std::string& v, std::size_t used) {
  std::size_t start = 0, lineno = 0;
  for (;;) {
    auto nl = v.find("\r\n", start);
    std::string line = v.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    CHECK(line.size() + (lineno == 0 ? used : 0) <= 76);
    if (nl == std::string::npos) break;
    start = nl + 2;
    ++lineno;
    REQUIRE(start < v.size());
    CHECK(v[start] == ' ');
  }
}

}  // namespace

TEST_CASE("decode: B and Q words, charsets, adjacent words") {
  CHECK(mime::decode_header("plain text").utf8 == "plain text");
  CHECK(!mime::decode_header("plain text").had_encoded_words);
  auto d = mime::decode_header("=?UTF-8?B?5pel5pys6Kqe?=");
  CHECK(d.utf8 == "日本語");
  CHECK(d.charset == "utf-8");
  CHECK(mime::decode_header("=?iso-8859-1?q?caf=E9_au_lait?=").utf8 == "café au lait");
  // Whitespace between adjacent encoded-words is dropped; around text it stays.
  CHECK(mime::decode_header("=?UTF-8?Q?a?= =?UTF-8?Q?b?=").utf8 == "ab");
  CHECK(mime::decode_header("=?UTF-8?Q?a?=\r\n =?UTF-8?Q?b?=").utf8 == "ab");
  CHECK(mime::decode_header("x =?UTF-8?Q?a?= y").utf8 == "x a y");
  // ISO-2022-JP "テスト" and Shift_JIS "テスト".
  auto j = mime::decode_header("=?ISO-2022-JP?B?GyRCJUYlOSVIGyhC?=");
  CHECK(j.utf8 == "テスト");
  CHECK(j.charset == "iso-2022-jp");
  CHECK(mime::decode_header("=?Shift_JIS?B?g2WDWINn?=").utf8 == "テスト");
  CHECK(mime::decode_header("Re: =?shift_jis?B?g2WDWINn?=").utf8 == "Re: テスト");
  // RFC 2231 language suffix.
  CHECK(mime::decode_header("=?UTF-8*ja?B?5pel?=").utf8 == "日");
}

TEST_CASE("decode: raw 8-bit, raw ISO-2022-JP and bad input never fail") {
  auto u = mime::decode_header("caf\xC3\xA9");
  CHECK(u.utf8 == "café");
  CHECK(u.had_raw_8bit);
  CHECK(mime::decode_header("\x83\x65\x83\x58\x83\x67").utf8 == "テスト");  // raw Shift_JIS
  CHECK(mime::decode_header("\x1b$B%F%9%H\x1b(B").utf8 == "テスト");        // raw ISO-2022-JP
  // Malformed words stay text; unknown charsets keep ASCII.
  CHECK(mime::decode_header("=?UTF-8?B?***?=").utf8 == "=?UTF-8?B?***?=");
  CHECK(mime::decode_header("=?UTF-8?X?abc?=").utf8 == "=?UTF-8?X?abc?=");
  CHECK(mime::decode_header("=?UTF-8?Q?a=Z1?=").utf8 == "=?UTF-8?Q?a=Z1?=");
  CHECK(mime::decode_header("=?UTF-8?B?").utf8 == "=?UTF-8?B?");
  CHECK(mime::decode_header("=?no-such-charset?Q?ab=FF?=").utf8 == "ab\xEF\xBF\xBD");
  // Invalid UTF-8 inside a UTF-8 word becomes U+FFFD, not garbage.
  CHECK(mime::is_utf8(mime::decode_header("=?UTF-8?Q?a=FF=FEb?=").utf8));
  CHECK(mime::decode_header("").utf8.empty());
}

TEST_CASE("is_utf8") {
  CHECK(mime::is_utf8("abc"));
  CHECK(mime::is_utf8("日本語"));
  CHECK(!mime::is_utf8("\xC0\x80"));          // overlong
  CHECK(!mime::is_utf8("\xED\xA0\x80"));      // surrogate
  CHECK(!mime::is_utf8("\xE6\x97"));          // truncated
  CHECK(!mime::is_utf8("\xFF"));
}

TEST_CASE("encode: ASCII stays, words are short, whole characters, round trip") {
  CHECK(mime::encode_header("hello") == "hello");
  CHECK(mime::encode_header("a =?b") != "a =?b");  // would be read as a word
  CHECK(mime::decode_header(mime::encode_header("a =?b")).utf8 == "a =?b");
  // A CR or LF can never start a field of its own; other controls and an
  // over-long line are encoded too.
  auto inj = mime::encode_header("hi\r\nBcc: victim@example.com");
  CHECK(inj.starts_with("=?UTF-8?B?"));
  for (std::size_t nl = inj.find('\n'); nl != std::string::npos; nl = inj.find('\n', nl + 1))
    CHECK(inj[nl + 1] == ' ');
  CHECK(mime::decode_header(inj).utf8 == "hi\r\nBcc: victim@example.com");
  CHECK(mime::encode_header("a\x01z").starts_with("=?UTF-8?B?"));
  CHECK(mime::encode_header(std::string(989, 'x'), "UTF-8", 9) == std::string(989, 'x'));
  CHECK(mime::encode_header(std::string(990, 'x'), "UTF-8", 9).starts_with("=?UTF-8?B?"));
  for (const char* charset : {"UTF-8", "ISO-2022-JP", "Shift_JIS"}) {
    CAPTURE(charset);
    for (std::string text : {std::string("[ml0001]テスト"), std::string("日本語の件名です。とても長い件名はいくつかの単語に分割されます。ですよね？"),
                             std::string("Re: [サンプルメール:0002]会議の件について (ご確認ください)")}) {
      auto enc = mime::encode_header(text, charset, 9);
      check_lines(enc, 9);
      auto dec = mime::decode_header(enc);
      CHECK(dec.utf8 == text);
      CHECK(dec.had_encoded_words);
    }
  }
  // ISO-2022-JP words each end in ASCII state, so every word decodes alone.
  auto enc = mime::encode_header(std::string(60, 'x') + "日本語日本語日本語日本語日本語", "ISO-2022-JP");
  std::size_t pos = 0;
  while ((pos = enc.find("=?ISO-2022-JP?B?", pos)) != std::string::npos) {
    auto end = enc.find("?=", pos + 16);
    REQUIRE(end != std::string::npos);
    auto one = mime::decode_header(enc.substr(pos, end + 2 - pos)).utf8;
    CHECK(one.find("\xEF\xBF\xBD") == std::string::npos);
    pos = end;
  }
  // Not representable in ISO-2022-JP: UTF-8 instead, still round-trips.
  auto emoji = mime::encode_header("テスト 😀", "ISO-2022-JP");
  CHECK(emoji.find("=?UTF-8?B?") != std::string::npos);
  CHECK(mime::decode_header(emoji).utf8 == "テスト 😀");
}

TEST_CASE("encode: every word decodes to its own text, or UTF-8 is used") {
  // Found by the header_codec fuzzer: ESC bytes pass through glibc's
  // ISO-2022-JP, so a run of them split over two words decoded to U+FFFD.
  std::string esc = "x" + std::string(60, '\x1b') + "-z \xe6\x97\xa5\xe6\x9c\xac";
  auto enc = mime::encode_header(esc, "ISO-2022-JP");
  check_lines(enc, 9);
  CHECK(mime::decode_header(enc).utf8 == esc);
  // WAVE DASH goes to CP932 and comes back as FULLWIDTH TILDE.
  std::string wave = "\xe3\x80\x9c \xe3\x83\x86\xe3\x82\xb9\xe3\x83\x88";
  auto sjis = mime::encode_header(wave, "Shift_JIS");
  CHECK(mime::decode_header(sjis).utf8 == wave);
  // Text the charset holds faithfully stays in it.
  CHECK(mime::encode_header("\xe6\x97\xa5\xe6\x9c\xac", "ISO-2022-JP").starts_with("=?ISO-2022-JP?B?"));
}

TEST_CASE("convert_charset errors are values") {
  CHECK(mime::convert_charset("abc", "UTF-8", "no-such").error().code == Errc::invalid_argument);
  CHECK(mime::convert_charset("\xFF", "UTF-8", "ISO-2022-JP").error().code == Errc::parse);
  CHECK(mime::convert_charset("テスト", "UTF-8", "ISO-2022-JP").value() == "\x1b$B%F%9%H\x1b(B");
}
