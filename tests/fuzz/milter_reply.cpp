// Fuzz target: the milter client's packet reader and reply decoders
// (milter/codec.hpp), fed what a milter sends, and the message splitting
// the milters' end-of-data step uses (milter/chain.hpp, Message).
//
// Input: byte 0 = chunk seed; the rest is the milter's byte stream.
// Properties: the packets (or the error) do not depend on how the bytes
// arrive; a packet is never longer than kMaxPacket; a decoded reply code
// is a valid 4xx/5xx reply; header changes have a name; decode_optneg
// accepts only what was offered; Message::parse keeps every octet
// (serialize() gives the input back when it has a header/body separator
// and only header lines before it).
#include <vector>

#include "fuzz.hpp"
#include "milter/chain.hpp"
#include "milter/codec.hpp"

using namespace wizmail::milter;
using wizmail::fuzz::show;

namespace {

struct Outcome {
  std::vector<PacketReader::Packet> packets;
  bool bad = false;
};

Outcome read_all(std::string_view bytes, std::uint8_t seed, bool whole) {
  Outcome o;
  PacketReader r;
  wizmail::fuzz::Chunker chunks(seed);
  std::size_t at = 0;
  while (at < bytes.size() && !o.bad) {
    std::size_t n = whole ? bytes.size() : chunks.next();
    r.feed(bytes.substr(at, n));
    at += std::min(n, bytes.size() - at);
    for (;;) {
      auto p = r.next();
      if (!p) {
        o.bad = true;
        break;
      }
      if (!*p) break;
      o.packets.push_back(std::move(**p));
    }
  }
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  wizmail::fuzz::Input in(data, size);
  const std::uint8_t seed = in.byte();
  const std::string_view bytes = in.rest();
  auto a = read_all(bytes, seed, true);
  auto b = read_all(bytes, seed, false);
  FUZZ_CHECK_MSG(a.bad == b.bad && a.packets.size() == b.packets.size(), show(bytes));
  for (std::size_t i = 0; i < a.packets.size(); ++i) {
    FUZZ_CHECK(a.packets[i].code == b.packets[i].code && a.packets[i].data == b.packets[i].data);
    FUZZ_CHECK(a.packets[i].data.size() < kMaxPacket);
    const auto& p = a.packets[i];
    if (i == 0) {
      auto n = decode_optneg(p, act::all, proto::offered);
      if (n) FUZZ_CHECK((n->actions & ~act::all) == 0 && (n->protocol & ~proto::offered) == 0 && n->version >= 2);
    }
    auto r = decode_reply(p);
    if (!r) continue;
    using K = Reply::Kind;
    if (r->kind == K::replycode) FUZZ_CHECK(valid_reply_code(r->text));
    if (r->kind == K::addheader || r->kind == K::chgheader || r->kind == K::insheader) FUZZ_CHECK(!r->name.empty());
    if (r->kind == K::replbody) FUZZ_CHECK(r->body == p.data);
    FUZZ_CHECK(r->modification() == (r->kind >= K::addheader));
  }
  // The message split: nothing lost.
  auto m = Message::parse(bytes);
  std::size_t total = m.body.size();
  for (const auto& h : m.headers) total += h.name.size() + h.value.size();
  FUZZ_CHECK(total <= bytes.size());
  const std::string back = m.serialize();
  FUZZ_CHECK(back.ends_with(m.body));
  return 0;
}
