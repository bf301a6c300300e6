// Fuzz target: the SMTP client's reply parser (outbound/reply_parser.hpp)
// and the EHLO capability helpers, fed a peer's bytes.
//
// Input: byte 0 = chunk seed; the rest is what the peer sends.
// Properties: the replies (or the error) do not depend on how the bytes
// arrive; a parser only ever takes whole lines; a reply has a code 200-599,
// at most kMaxLines lines each at most kMaxLine octets and without LF, and
// an enhanced code only of the form class.subject.detail; the bytes held
// back between reads stay under one line; capabilities are upper-case
// keywords whose lookup finds them again.
#include <algorithm>
#include <vector>

#include "fuzz.hpp"
#include "outbound/reply_parser.hpp"

using namespace wizmail;
using namespace wizmail::outbound;
using wizmail::fuzz::show;

namespace {

struct Outcome {
  std::vector<SmtpReply> replies;
  bool bad = false;
  bool operator==(const Outcome& o) const {
    if (bad != o.bad || replies.size() != o.replies.size()) return false;
    for (std::size_t i = 0; i < replies.size(); ++i)
      if (replies[i].code != o.replies[i].code || replies[i].enhanced != o.replies[i].enhanced ||
          replies[i].lines != o.replies[i].lines)
        return false;
    return true;
  }
};

// As SmtpClient::read_reply does: keep what was not used, append, parse.
Outcome parse_all(std::string_view bytes, std::uint8_t seed, bool whole) {
  Outcome o;
  ReplyParser parser;
  std::string buffer;
  fuzz::Chunker chunker(seed);
  while (!bytes.empty() && !o.bad) {
    auto piece = bytes.substr(0, whole ? bytes.size() : chunker.next());
    bytes.remove_prefix(piece.size());
    buffer.append(piece);
    for (;;) {
      auto step = parser.parse(buffer);
      FUZZ_CHECK(step.used <= buffer.size());
      if (step.used > 0) FUZZ_CHECK(buffer[step.used - 1] == '\n');  // whole lines only
      buffer.erase(0, step.used);
      if (step.status == ReplyParser::Status::bad) {
        FUZZ_CHECK(!parser.error().empty());
        o.bad = true;
        break;
      }
      if (step.status == ReplyParser::Status::need_more) break;
      o.replies.push_back(parser.take());
    }
    if (!o.bad) FUZZ_CHECK(buffer.size() <= ReplyParser::kMaxLine + 1);
  }
  return o;
}

void check_reply(const SmtpReply& r) {
  FUZZ_CHECK(r.code >= 200 && r.code <= 599);
  FUZZ_CHECK(!r.lines.empty() && r.lines.size() <= ReplyParser::kMaxLines);
  for (const auto& l : r.lines) {
    FUZZ_CHECK(l.size() <= ReplyParser::kMaxLine);
    FUZZ_CHECK(l.find('\n') == std::string::npos);
  }
  if (!r.enhanced.empty()) {
    const auto& e = r.enhanced;
    FUZZ_CHECK_MSG(e[0] == '2' || e[0] == '4' || e[0] == '5', e);
    FUZZ_CHECK_MSG(e.size() >= 5 && e.size() <= 9 && e[1] == '.', e);
    FUZZ_CHECK_MSG(std::count(e.begin(), e.end(), '.') == 2, e);
    FUZZ_CHECK_MSG(e.find_first_not_of("0123456789.") == std::string::npos, e);
    FUZZ_CHECK(r.lines.front().starts_with(e));
  }
  (void)r.to_string();
  auto caps = ehlo_capabilities(r);
  FUZZ_CHECK(caps.size() < r.lines.size());  // the greeting line is not one
  for (const auto& c : caps) {
    auto kw = std::string_view(c).substr(0, c.find(' '));
    FUZZ_CHECK(!kw.empty());
    for (char ch : kw) FUZZ_CHECK_MSG(!(ch >= 'a' && ch <= 'z'), c);
    FUZZ_CHECK(find_capability(caps, kw).has_value());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  std::uint8_t seed = in.byte();
  std::string_view bytes = in.rest();
  Outcome whole = parse_all(bytes, seed, true);
  Outcome chunked = parse_all(bytes, seed, false);
  FUZZ_CHECK_MSG(whole == chunked, show(bytes));
  for (const auto& r : whole.replies) check_reply(r);
  return 0;
}
