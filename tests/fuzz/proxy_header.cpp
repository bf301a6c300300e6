// Fuzz target: the PROXY protocol header parser (net/proxy_protocol.hpp),
// fed what a peer sends first.
//
// Input: byte 0 = chunk seed; the rest is the peer's byte stream.
// Properties: the outcome does not depend on how the bytes arrive (each
// arrival parsed with everything so far, as Stream::read_proxy_header
// does); a header is never longer than its version allows (v1 107 with its
// CRLF, v2 16 + 2048) nor than the input; bytes after a complete header do
// not change it; a bad prefix stays bad whatever follows (it is refused at
// the byte that is wrong); need_more only below the longest header; a
// header looks_like_header.
#include <string>

#include "fuzz.hpp"
#include "net/proxy_protocol.hpp"

using namespace wizmail::net::proxy;
using wizmail::fuzz::show;
using Status = ParseResult::Status;

namespace {

ParseResult chunked(std::string_view bytes, std::uint8_t seed) {
  wizmail::fuzz::Chunker chunks(seed);
  ParseResult r;
  for (std::size_t have = 0; have < bytes.size();) {
    have = std::min(bytes.size(), have + chunks.next());
    r = parse(bytes.substr(0, have));
    if (r.status != Status::need_more) return r;
  }
  return r;
}

bool same(const ParseResult& a, const ParseResult& b) {
  if (a.status != b.status) return false;
  if (a.status == Status::bad) return a.reason == b.reason;
  if (a.status == Status::need_more) return true;
  const auto &x = a.header, &y = b.header;
  return x.version == y.version && x.local == y.local && x.size == y.size && x.what == y.what &&
         x.source.address == y.source.address && x.source.port == y.source.port &&
         x.destination.address == y.destination.address && x.destination.port == y.destination.port;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  wizmail::fuzz::Input in(data, size);
  const std::uint8_t seed = in.byte();
  const std::string_view bytes = in.rest();
  const auto whole = parse(bytes);
  const auto pieces = chunked(bytes, seed);
  // A header or a refusal comes out the same whatever the chunks (the
  // whole input may be judged earlier than its last byte: only done/bad
  // from a prefix must agree with the whole).
  if (pieces.status != Status::need_more) FUZZ_CHECK_MSG(same(whole, pieces), show(bytes));
  else FUZZ_CHECK_MSG(whole.status == Status::need_more, show(bytes));
  if (whole.status == Status::need_more) FUZZ_CHECK(bytes.size() < kMaxHeaderSize);
  if (whole.status == Status::bad) {
    FUZZ_CHECK(!whole.reason.empty());
    FUZZ_CHECK(parse(std::string(bytes) + "\r\nPROXY TCP4 1.2.3.4 1.2.3.4 1 2\r\n").status == Status::bad);
  }
  if (whole.status == Status::done) {
    const auto& h = whole.header;
    FUZZ_CHECK(h.size <= bytes.size());
    FUZZ_CHECK(h.version == 1 || h.version == 2);
    if (h.version == 1) {
      FUZZ_CHECK(h.size <= kV1MaxSize);
      FUZZ_CHECK(bytes.substr(h.size - 2, 2) == "\r\n");
    } else {
      FUZZ_CHECK(h.size >= kV2FixedSize && h.size <= kMaxHeaderSize);
    }
    FUZZ_CHECK(!h.what.empty());
    FUZZ_CHECK(looks_like_header(bytes.substr(0, h.size)) || h.size < 6);
    // Exactly the header: the same without what follows, need_more one
    // byte short.
    FUZZ_CHECK(same(parse(bytes.substr(0, h.size)), whole));
    FUZZ_CHECK(parse(bytes.substr(0, h.size - 1)).status == Status::need_more);
  }
  return 0;
}
