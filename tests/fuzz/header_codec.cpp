// Fuzz target: the RFC 2047 header codec (mime/header_codec.hpp):
// decode_header on any header value, encode_header on any text, the
// charset conversion.
//
// Input: byte 0 picks the charset for encoding, byte 1 the octets the field
// name already takes (0..79); the rest is a header value (decoded) and, when
// it is UTF-8, also the text to encode (else its decoded form is encoded).
// Properties: decoding always yields valid UTF-8; an encoded value holds no
// CR or LF except its folds (CRLF SP), no control character, words of at
// most 75 octets and lines of at most 76; decoding the encoded value gives
// the text back (for UTF-8 always, for another charset when the text
// survives that charset).
#include <string>

#include "fuzz.hpp"
#include "mime/header_codec.hpp"

using namespace wizmail;
using wizmail::fuzz::show;

namespace {

const char* const kCharsets[] = {"UTF-8",      "ISO-2022-JP", "Shift_JIS", "EUC-JP",
                                 "ISO-8859-1", "windows-1252", "GB2312",   "KOI8-R",
                                 "x-unknown",  "iso-2022-jp*ja", "",        "utf8"};

void check_encoded(std::string_view text, std::string_view enc, std::size_t used, const char* cs) {
  std::string ctx = std::string(cs) + " used=" + std::to_string(used) + ": " + show(text) +
                    " -> " + show(enc);
  if (enc == text) {
    // Returned as is: printable ASCII that fits and cannot be taken for a word.
    FUZZ_CHECK_MSG(text.find("=?") == std::string_view::npos, ctx);
    for (char c : text) FUZZ_CHECK_MSG(c >= 0x20 && c < 0x7f, ctx);
    FUZZ_CHECK_MSG(used + text.size() <= 998, ctx);
    return;
  }
  std::size_t start = 0;
  bool first = true;
  for (;;) {
    auto fold = enc.find("\r\n ", start);
    std::string_view line = enc.substr(start, fold == std::string_view::npos ? fold : fold - start);
    for (char c : line) FUZZ_CHECK_MSG(c >= 0x20 && c < 0x7f, ctx);
    // Each line is one encoded-word.
    FUZZ_CHECK_MSG(line.starts_with("=?") && line.ends_with("?="), ctx);
    FUZZ_CHECK_MSG(line.size() <= 75, ctx);
    FUZZ_CHECK_MSG((first && used < 40 ? used : 1) + line.size() <= 76, ctx);
    if (fold == std::string_view::npos) break;
    start = fold + 3;
    first = false;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  const char* cs = kCharsets[in.byte() % std::size(kCharsets)];
  std::size_t used = in.byte() % 80;
  std::string_view value = in.rest();

  auto d = mime::decode_header(value);
  FUZZ_CHECK_MSG(mime::is_utf8(d.utf8), show(value) + " -> " + show(d.utf8));
  for (char c : d.charset) FUZZ_CHECK(!(c >= 'A' && c <= 'Z'));
  if (!d.had_encoded_words) FUZZ_CHECK(d.charset.empty());

  std::string text = mime::is_utf8(value) ? std::string(value) : d.utf8;
  std::string enc = mime::encode_header(text, cs, used);
  check_encoded(text, enc, used, cs);
  auto back = mime::decode_header(enc);
  std::string_view label = cs;
  bool utf8 = label.empty() || label == "UTF-8" || label == "utf8" || label == "x-unknown";
  bool survives = utf8;
  if (!utf8) {
    auto there = mime::convert_charset(text, "UTF-8", cs);
    auto again = there ? mime::convert_charset(*there, cs, "UTF-8") : there;
    survives = !there || (again && *again == text);  // not representable: UTF-8 is used
  }
  if (survives) FUZZ_CHECK_MSG(back.utf8 == text, std::string(cs) + ": " + show(text) + " -> " + show(enc) + " -> " + show(back.utf8));
  return 0;
}
