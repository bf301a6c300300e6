#include "smtp/parser.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace wizmail::smtp;

namespace {

struct Item {
  LineReader::Status st;
  std::string line;
  bool operator==(const Item&) const = default;
};

// Feed `input` in chunks of `chunk` and collect every non-need_more result.
std::vector<Item> read_all(std::string_view input, std::size_t chunk,
                           std::size_t limit = 512, std::size_t auth_limit = 12288) {
  LineReader r;
  std::vector<Item> items;
  while (!input.empty()) {
    auto piece = input.substr(0, chunk);
    input.remove_prefix(piece.size());
    while (!piece.empty()) {
      std::string_view line;
      auto st = r.next(piece, line, limit, auth_limit, false);
      if (st == LineReader::Status::need_more) break;
      items.push_back({st, std::string(st == LineReader::Status::line ? line : "")});
    }
  }
  return items;
}

const std::size_t kChunks[] = {1, 2, 3, 4, 8, 16, 64, 512, 100000};

}  // namespace

TEST_CASE("LineReader: CRLF and bare LF lines at every chunk size") {
  std::string in = "EHLO a\r\nNOOP\nQUIT\r\n\r\npartial";
  std::vector<Item> want{{LineReader::Status::line, "EHLO a"},
                         {LineReader::Status::line, "NOOP"},
                         {LineReader::Status::line, "QUIT"},
                         {LineReader::Status::line, ""}};
  for (auto c : kChunks) {
    CAPTURE(c);
    CHECK(read_all(in, c) == want);
  }
}

TEST_CASE("LineReader: 512 octets incl. CRLF pass, 513 are refused and skipped") {
  std::string ok = "NOOP " + std::string(505, 'x') + "\r\n";
  REQUIRE(ok.size() == 512);
  std::string bad = "NOOP " + std::string(506, 'x') + "\r\n";
  std::string huge = "NOOP " + std::string(100000, 'y') + "\r\n";
  std::string in = ok + bad + "QUIT\r\n" + huge + "RSET\r\n";
  std::vector<Item> want{{LineReader::Status::line, ok.substr(0, 510)},
                         {LineReader::Status::too_long, ""},
                         {LineReader::Status::line, "QUIT"},
                         {LineReader::Status::too_long, ""},
                         {LineReader::Status::line, "RSET"}};
  for (auto c : kChunks) {
    CAPTURE(c);
    CHECK(read_all(in, c) == want);
  }
}

TEST_CASE("LineReader: AUTH lines may be longer, up to the AUTH limit") {
  std::string auth = "auth PLAIN " + std::string(5000, 'A');
  std::string over = "AUTH PLAIN " + std::string(13000, 'A');
  std::string notauth = "AUTHX " + std::string(600, 'A');
  std::string in = auth + "\r\n" + over + "\r\n" + notauth + "\r\nQUIT\r\n";
  std::vector<Item> want{{LineReader::Status::line, auth},
                         {LineReader::Status::too_long, ""},
                         {LineReader::Status::too_long, ""},
                         {LineReader::Status::line, "QUIT"}};
  for (auto c : kChunks) {
    CAPTURE(c);
    CHECK(read_all(in, c) == want);
  }
}

TEST_CASE("LineReader: SASL responses use the long limit") {
  LineReader r;
  std::string in = std::string(4000, 'Q') + "\r\n";
  std::string_view v = in, line;
  CHECK(r.next(v, line, 512, 12288, true) == LineReader::Status::line);
  CHECK(line.size() == 4000);
}

TEST_CASE("LineReader: NUL, controls, DEL and 8-bit bytes are bad; HT is allowed") {
  for (const std::string& bad : std::vector<std::string>{std::string("NOOP \0x\r\n", 9), std::string("NOOP \x01\r\n"),
                          std::string("NOOP \x7f\r\n"), std::string("NOOP \xc3\xa9\r\n"),
                          std::string("NOOP a\rb\r\n")}) {
    CAPTURE(bad);
    auto items = read_all(bad, 3);
    REQUIRE(items.size() == 1);
    CHECK(items[0].st == LineReader::Status::bad_bytes);
  }
  auto items = read_all("NOOP a\tb\r\n", 1);
  REQUIRE(items.size() == 1);
  CHECK(items[0] == Item{LineReader::Status::line, "NOOP a\tb"});
}

TEST_CASE("LineReader: MAIL and RCPT lines may hold valid UTF-8 (SMTPUTF8), nothing else may") {
  for (const std::string& good : {std::string("MAIL FROM:<j\xc3\xb6rg@example.com> SMTPUTF8\r\n"),
                                  std::string("rcpt TO:<\xe7\x94\xb0@\xe4\xbe\x8b.jp>\r\n")}) {
    for (auto chunk : kChunks) {
      CAPTURE(good);
      CAPTURE(chunk);
      auto items = read_all(good, chunk);
      REQUIRE(items.size() == 1);
      CHECK(items[0] == Item{LineReader::Status::line, good.substr(0, good.size() - 2)});
    }
  }
  for (const std::string& bad : {std::string("MAIL FROM:<j\xf6rg@example.com>\r\n"),   // Latin-1
                                 std::string("RCPT TO:<a@b\xed\xa0\x80>\r\n"),       // a surrogate
                                 std::string("MAIL FROM:<\xc0\xaf@b>\r\n"),           // overlong
                                 std::string("MAILX <\xc3\xb6>\r\n"), std::string("EHLO \xc3\xb6\r\n"),
                                 std::string("MAIL FROM:<\xc3\xb6\x7f>\r\n")}) {
    CAPTURE(bad);
    auto items = read_all(bad, 3);
    REQUIRE(items.size() == 1);
    CHECK(items[0].st == LineReader::Status::bad_bytes);
  }
}

TEST_CASE("xtext: encode and decode are inverse; every octet survives") {
  std::string all;
  for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
  auto enc = encode_xtext(all);
  for (char c : enc) CHECK((c >= 33 && c <= 126 && c != '='));
  CHECK(decode_xtext(enc) == std::optional<std::string>(all));
  CHECK(encode_xtext("a+b=c d") == "a+2Bb+3Dc+20d");
}

TEST_CASE("LineReader: memory stays bounded by the limit") {
  LineReader r;
  std::string chunk(4096, 'z');
  for (int i = 0; i < 1000; ++i) {
    std::string_view v = chunk, line;
    CHECK(r.next(v, line, 512, 12288, false) == LineReader::Status::need_more);
    CHECK(v.empty());
  }
  std::string_view end = "\r\nNOOP\r\n", line;
  CHECK(r.next(end, line, 512, 12288, false) == LineReader::Status::too_long);
  CHECK(r.next(end, line, 512, 12288, false) == LineReader::Status::line);
  CHECK(line == "NOOP");
}

TEST_CASE("split_command") {
  auto c = split_command("MAIL FROM:<a@b>  ");
  CHECK(c.verb == "MAIL");
  CHECK(c.args == "FROM:<a@b>");
  c = split_command("QUIT");
  CHECK(c.verb == "QUIT");
  CHECK(c.args.empty());
  c = split_command("");
  CHECK(c.verb.empty());
}

TEST_CASE("parse_params") {
  std::vector<EsmtpParam> p;
  REQUIRE(parse_params(" SIZE=100 BODY=8BITMIME  AUTH=<>", p));
  REQUIRE(p.size() == 3);
  CHECK(p[0].keyword == "SIZE");
  CHECK(p[0].value == "100");
  CHECK(p[2].value == "<>");
  REQUIRE(parse_params("", p));
  CHECK(p.empty());
  REQUIRE(parse_params(" SMTPUTF8", p));
  CHECK((p.size() == 1 && !p[0].has_value));
  CHECK_FALSE(parse_params(" SIZE=", p));
  CHECK_FALSE(parse_params(" =x", p));
  CHECK_FALSE(parse_params(" -X=1", p));
  CHECK_FALSE(parse_params(" A=b=c", p));
  CHECK_FALSE(parse_params(" A=\x01", p));
  std::string many;
  for (int i = 0; i < 17; ++i) many += " X" + std::to_string(i);
  CHECK_FALSE(parse_params(many, p));
}

TEST_CASE("decode_xtext") {
  CHECK(decode_xtext("a+2Bb") == std::optional<std::string>("a+b"));
  CHECK(decode_xtext("<>") == std::optional<std::string>("<>"));
  CHECK_FALSE(decode_xtext("a+2"));
  CHECK_FALSE(decode_xtext("a+zz"));
  CHECK_FALSE(decode_xtext("a+2b"));  // lower-case hex is not xtext
  CHECK_FALSE(decode_xtext("a=b"));
}

TEST_CASE("base64 round trip and strictness") {
  for (const std::string& s : std::vector<std::string>{"", "a", "ab", "abc", "abcd", std::string("\0user\0pass", 10)})
    CHECK(base64_decode(base64_encode(s)) == std::optional<std::string>(s));
  CHECK(base64_encode("tim") == "dGlt");
  CHECK(base64_encode("ab") == "YWI=");
  CHECK_FALSE(base64_decode("YWI"));      // no padding
  CHECK_FALSE(base64_decode("Y=I="));     // padding inside
  CHECK_FALSE(base64_decode("YW=="  "YQ=="));  // data after padding
  CHECK_FALSE(base64_decode("YW I"));
  CHECK_FALSE(base64_decode("Y==="));
  CHECK_FALSE(base64_decode("!!!!"));
}
