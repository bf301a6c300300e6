// Fuzz target: SMTP command framing and arguments (smtp/parser.hpp): the
// LineReader, split_command, ESMTP parameters, xtext and SASL base64.
//
// Input: byte 0 = chunk seed, byte 1 bit 0 = every line is a SASL response
// (long limit); the rest is the client's byte stream.
// Properties: the lines, their kinds (line / too long / bad bytes) and their
// order do not depend on how the stream is split; a line holds no CR, LF,
// NUL, other control byte or 8-bit byte and respects its limit; a verb holds
// no space and arguments are trimmed; parameters follow RFC 5321's grammar;
// xtext and base64 round-trip.
#include <vector>

#include "fuzz.hpp"
#include "smtp/parser.hpp"

using namespace wizmail;
using namespace wizmail::smtp;
using wizmail::fuzz::show;

namespace {

constexpr std::size_t kLimit = 512, kAuthLimit = 2048;

struct Item {
  LineReader::Status status;
  std::string line;
  bool operator==(const Item&) const = default;
};

std::vector<Item> read_all(std::string_view bytes, bool sasl, std::uint8_t seed, bool whole) {
  LineReader reader;
  std::vector<Item> items;
  fuzz::Chunker chunker(seed);
  while (!bytes.empty()) {
    std::string_view piece = bytes.substr(0, whole ? bytes.size() : chunker.next());
    bytes.remove_prefix(piece.size());
    while (!piece.empty()) {
      std::string_view line;
      auto st = reader.next(piece, line, kLimit, kAuthLimit, sasl);
      if (st == LineReader::Status::need_more) {
        FUZZ_CHECK(piece.empty());
        break;
      }
      items.push_back({st, st == LineReader::Status::line ? std::string(line) : std::string()});
    }
  }
  return items;
}

void check_line(std::string_view line, bool sasl) {
  bool auth = sasl || (line.size() >= 5 && (line[0] | 0x20) == 'a' && (line[1] | 0x20) == 'u' &&
                       (line[2] | 0x20) == 't' && (line[3] | 0x20) == 'h' && line[4] == ' ');
  FUZZ_CHECK(line.size() + 1 <= (auth ? kAuthLimit : kLimit));
  for (char ch : line) {
    auto c = static_cast<unsigned char>(ch);
    FUZZ_CHECK_MSG((c >= 0x20 && c < 0x7f) || c == '\t', show(line));
  }
  auto cl = split_command(line);
  FUZZ_CHECK(cl.verb.find(' ') == std::string_view::npos);
  FUZZ_CHECK(!cl.args.starts_with(' '));
  FUZZ_CHECK(!cl.args.ends_with(' ') && !cl.args.ends_with('\t'));

  // "MAIL FROM:<x> PARAMS": whatever follows the first '>' as parameters.
  auto gt = cl.args.find('>');
  std::string_view params = gt == std::string_view::npos ? cl.args : cl.args.substr(gt + 1);
  std::vector<EsmtpParam> out;
  if (parse_params(params, out, 16)) {
    FUZZ_CHECK(out.size() <= 16);
    for (const auto& p : out) {
      FUZZ_CHECK(!p.keyword.empty());
      for (char c : p.keyword) FUZZ_CHECK(std::isalnum(static_cast<unsigned char>(c)) || c == '-');
      FUZZ_CHECK(p.has_value == !p.value.empty());
      for (char c : p.value) FUZZ_CHECK(c >= 33 && c <= 126 && c != '=');
      if (auto x = decode_xtext(p.value)) {
        auto again = decode_xtext(util::encode_xtext(*x));
        FUZZ_CHECK(again && *again == *x);
      }
    }
  }
  if (auto d = base64_decode(cl.args)) {
    auto again = base64_decode(base64_encode(*d));
    FUZZ_CHECK(again && *again == *d);
    FUZZ_CHECK(d->size() <= cl.args.size() / 4 * 3);
  }
  // Encoding then decoding gives back any bytes.
  auto enc = base64_encode(line);
  auto dec = base64_decode(enc);
  FUZZ_CHECK(dec && *dec == line);
  auto xt = decode_xtext(util::encode_xtext(line));
  FUZZ_CHECK(xt && *xt == line);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  std::uint8_t seed = in.byte();
  bool sasl = in.byte() & 1;
  std::string_view bytes = in.rest();
  auto whole = read_all(bytes, sasl, seed, true);
  auto chunked = read_all(bytes, sasl, seed, false);
  FUZZ_CHECK(whole == chunked);
  for (const auto& item : whole)
    if (item.status == LineReader::Status::line) check_line(item.line, sasl);
  return 0;
}
