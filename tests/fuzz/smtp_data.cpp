// Fuzz target: message data after DATA (smtp::DataReader: end of data,
// dot-unstuffing, the checks) and, the other way, POP3's DotStuffer.
//
// Input: byte 0 = chunk seed; byte 1: bits 0-1 size limit (1 GiB, 100,
// 1000, 0), bit 2 = POP3 mode; byte 2 = TOP's line count (POP3 mode); the
// rest is the data (SMTP mode) or a stored message (POP3 mode).
//
// SMTP mode, against a plain reference implementation of RFC 5321: only
// CR LF "." CR LF ends the data ("\n.\r\n", "\r\n.\n" … never do), at the
// same octet however the bytes are split; what follows is left untouched;
// bare CR / LF, lines over 1000 octets and Received: headers are counted
// exactly; an acceptable message is exactly the unstuffed data, in every
// chunking; the output
// never holds more CRs or LFs than the input, nor more than the size limit.
// POP3 mode: a message stuffed for RETR and read back by the SMTP reader
// ends exactly at the terminator, whatever the message holds, and gives the
// message back (line ends made CRLF); its length is what LIST reports
// (transmitted_size); TOP's answer is a prefix of RETR's.
#include <algorithm>

#include "../smtp/harness.hpp"
#include "fuzz.hpp"
#include "mime/dot_stuffer.hpp"
#include "smtp/body.hpp"

using namespace wizmail;
using wizmail::fuzz::show;

namespace {

struct Read {
  bool done = false;
  std::size_t consumed = 0;
  std::string out;
  bool bare = false, too_long = false, too_big = false, acceptable = false;
  int received = 0;
  std::string describe() const {
    return "done=" + std::to_string(done) + " consumed=" + std::to_string(consumed) +
           " bare=" + std::to_string(bare) + " too_long=" + std::to_string(too_long) +
           " too_big=" + std::to_string(too_big) + " acceptable=" + std::to_string(acceptable) +
           " received=" + std::to_string(received) + " out=" + std::to_string(out.size());
  }
  // What was written before a refusal reason (bare CR or LF, long line,
  // size, loop) was seen depends on where the chunks ended; such a message
  // is refused whatever was written. Before the end of data, a line not
  // ended yet may or may not have been measured.
  bool operator==(const Read& o) const {
    if (!done || !o.done) return done == o.done && consumed == o.consumed;
    return consumed == o.consumed && bare == o.bare && too_long == o.too_long && too_big == o.too_big &&
           acceptable == o.acceptable && received == o.received && (!acceptable || out == o.out);
  }
};

Read read(std::string_view data, std::int64_t max, std::uint8_t seed, bool whole) {
  smtp::DataReader reader;
  smtp::test::MemorySink sink;
  reader.begin(max);
  Read r;
  fuzz::Chunker chunker(seed);
  std::string_view rest = data;
  while (!rest.empty() && !r.done) {
    std::string_view piece = rest.substr(0, whole ? rest.size() : chunker.next());
    rest.remove_prefix(piece.size());
    std::size_t before = piece.size();
    if (reader.consume(piece, sink)) {
      r.done = true;
      // What follows the end of data is handed back untouched.
      FUZZ_CHECK(piece.data() + piece.size() == rest.data());
      r.consumed = data.size() - rest.size() - piece.size();
    } else {
      FUZZ_CHECK(piece.empty() && before > 0);
    }
  }
  if (!r.done) r.consumed = data.size();
  r.out = sink.data;
  r.bare = reader.bare_newline();
  r.too_long = reader.line_too_long();
  r.too_big = reader.too_big();
  r.acceptable = reader.acceptable();
  r.received = reader.received_headers();
  return r;
}

// The reference: RFC 5321 §4.1.1.4 / §4.5.2 written the obvious way.
struct Reference {
  bool done = false;
  std::size_t end = 0;  // octets up to and including the final ".\r\n"
  std::string content;  // unstuffed, CRLF line ends as received
  bool bare = false, too_long = false;
  int received = 0;
};

Reference reference(std::string_view d) {
  Reference ref;
  for (std::size_t i = 0; i + 3 <= d.size(); ++i) {
    bool line_start = i == 0 || (i >= 2 && d[i - 2] == '\r' && d[i - 1] == '\n');
    if (line_start && d.substr(i, 3) == ".\r\n") {
      ref.done = true;
      ref.end = i + 3;
      break;
    }
  }
  std::string_view data = ref.done ? d.substr(0, ref.end - 3) : d;
  for (std::size_t i = 0; i < data.size(); ++i) {
    if (data[i] == '\r' && (i + 1 == data.size() || data[i + 1] != '\n')) ref.bare = true;
    if (data[i] == '\n' && (i == 0 || data[i - 1] != '\r')) ref.bare = true;
  }
  if (!ref.done || ref.bare) return ref;
  bool headers = true;
  while (!data.empty()) {
    auto nl = data.find("\r\n");
    std::string_view line = data.substr(0, nl);
    data.remove_prefix(nl + 2);
    if (line.starts_with('.')) line.remove_prefix(1);
    if (line.size() + 2 > 1000) ref.too_long = true;
    if (headers) {
      if (line.empty()) {
        headers = false;
      } else if (line.size() >= 9) {
        std::string head(line.substr(0, 9));
        for (auto& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (head == "received:") ++ref.received;
      }
    }
    ref.content.append(line);
    ref.content.append("\r\n");
  }
  return ref;
}

void smtp_mode(std::string_view data, std::int64_t max, std::uint8_t seed) {
  Read whole = read(data, max, seed, true);
  Read chunked = read(data, max, seed, false);
  FUZZ_CHECK_MSG(whole == chunked, whole.describe() + " / " + chunked.describe());
  Reference ref = reference(data);
  FUZZ_CHECK_MSG(whole.done == ref.done, show(data));
  if (ref.done) FUZZ_CHECK(whole.consumed == ref.end);
  FUZZ_CHECK(static_cast<std::int64_t>(whole.out.size()) <= max);
  FUZZ_CHECK(whole.out.size() <= whole.consumed);
  std::string_view in = data.substr(0, whole.consumed);
  FUZZ_CHECK(std::count(whole.out.begin(), whole.out.end(), '\r') <= std::count(in.begin(), in.end(), '\r'));
  FUZZ_CHECK(std::count(whole.out.begin(), whole.out.end(), '\n') <= std::count(in.begin(), in.end(), '\n'));
  if (!ref.done) return;
  FUZZ_CHECK(whole.bare == ref.bare);
  if (ref.bare) {
    FUZZ_CHECK(!whole.acceptable);
    return;
  }
  FUZZ_CHECK(whole.too_long == ref.too_long);
  FUZZ_CHECK(whole.received == ref.received);
  bool fits = static_cast<std::int64_t>(ref.content.size()) <= max;
  FUZZ_CHECK(whole.acceptable == (fits && !ref.too_long && ref.received <= smtp::DataReader::kMaxReceived));
  if (whole.acceptable) FUZZ_CHECK_MSG(whole.out == ref.content, show(whole.out) + " vs " + show(ref.content));
  FUZZ_CHECK(whole.too_big == !fits);
}

std::string stuff(std::string_view message, long lines, std::uint8_t seed) {
  mime::DotStuffer d(lines);
  std::string out;
  fuzz::Chunker chunker(seed);
  while (!message.empty()) {
    auto piece = message.substr(0, chunker.next());
    message.remove_prefix(piece.size());
    if (!d.feed(piece, out)) break;
  }
  d.finish(out);
  return out;
}

void pop3_mode(std::string_view message, long top_lines, std::uint8_t seed) {
  std::string retr = stuff(message, -1, seed);
  FUZZ_CHECK(retr.ends_with(".\r\n"));
  // The client's view: the response ends exactly at our terminator.
  Read r = read(retr, std::int64_t{1} << 40, seed, false);
  FUZZ_CHECK_MSG(r.done && r.consumed == retr.size(), show(message));
  // The message as RFC 1939 counts it: LF made CRLF, a last line ended.
  std::string normal;
  for (std::size_t i = 0; i < message.size(); ++i) {
    if (message[i] == '\n' && (i == 0 || message[i - 1] != '\r')) normal += '\r';
    normal += message[i];
  }
  std::size_t added = 0;
  if (!normal.empty() && !normal.ends_with("\r\n")) {
    added = normal.ends_with('\r') ? 1 : 2;
    normal += normal.ends_with('\r') ? "\n" : "\r\n";
  }
  FUZZ_CHECK(normal.size() == mime::transmitted_size(message) + added);
  bool bare_cr = false;
  for (std::size_t i = 0; i < normal.size(); ++i)
    if (normal[i] == '\r' && (i + 1 == normal.size() || normal[i + 1] != '\n')) bare_cr = true;
  FUZZ_CHECK(r.bare == bare_cr);
  if (!bare_cr && !r.too_long && r.received <= smtp::DataReader::kMaxReceived)
    FUZZ_CHECK_MSG(r.out == normal, show(r.out) + " vs " + show(normal));

  std::string top = stuff(message, top_lines, seed);
  FUZZ_CHECK(top.ends_with(".\r\n"));
  Read t = read(top, std::int64_t{1} << 40, seed, false);
  FUZZ_CHECK(t.done && t.consumed == top.size());
  FUZZ_CHECK_MSG(retr.starts_with(std::string_view(top).substr(0, top.size() - 3)),
                 show(top) + " vs " + show(retr));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  std::uint8_t seed = in.byte();
  std::uint8_t mode = in.byte();
  std::uint8_t top = in.byte();
  static constexpr std::int64_t kMax[] = {std::int64_t{1} << 30, 100, 1000, 0};
  if (mode & 4) pop3_mode(in.rest(), top % 8, seed);
  else smtp_mode(in.rest(), kMax[mode & 3], seed);
  return 0;
}
