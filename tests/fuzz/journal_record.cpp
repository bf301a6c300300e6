// Fuzz target: the delivery journal's record parser (store/journal_record.hpp),
// which start-up recovery runs over whatever a crash left in the ring.
//
// Input: byte 0 bit 0 = give the record a correct CRC first (so the fuzzer
// reaches the fields behind it), byte 1 = the expected sequence number
// (1..256); the rest is the ring from the record's offset on.
// Properties: a record that parses lies within the bytes, has a length that
// is a multiple of 8, the expected sequence, a name that stays inside new/;
// encoded again it parses to the same record; any change of its payload or
// of its sequence is refused.
#include <cstring>

#include "fuzz.hpp"
#include "store/journal_record.hpp"

using namespace wizmail;
namespace journal = wizmail::store::journal;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  bool fix_crc = in.byte() & 1;
  std::uint64_t seq = std::uint64_t{in.byte()} + 1;
  std::string bytes(in.rest());
  if (fix_crc && bytes.size() >= sizeof(journal::RecordHead)) {
    journal::RecordHead h;
    std::memcpy(&h, bytes.data(), sizeof h);
    if (h.len >= sizeof h && h.len <= bytes.size())
      journal::seal_record(bytes.data(), h.seq, journal::payload_crc(bytes.data()));
  }
  auto r = journal::parse_record(bytes, seq);
  if (!r) return 0;
  FUZZ_CHECK(r->len >= sizeof(journal::RecordHead) && r->len <= bytes.size() && r->len % 8 == 0);
  FUZZ_CHECK(journal::record_length(bytes, seq, bytes.size()) == r->len);
  FUZZ_CHECK(!r->name.empty() && r->name[0] != '.' && r->name.find('/') == std::string::npos);
  FUZZ_CHECK(r->name.size() + r->data.size() <= r->len);
  // Another sequence number is another record.
  FUZZ_CHECK(!journal::parse_record(bytes, seq + 1));
  // Written again by the writer's code, it reads back the same.
  std::string again = journal::encode_record(r->name, r->maildirs, r->data, seq);
  FUZZ_CHECK(again.size() <= r->len);
  auto back = journal::parse_record(again, seq);
  FUZZ_CHECK(back && back->len == again.size() && back->name == r->name &&
             back->maildirs == r->maildirs && back->data == r->data);
  // A torn write (any octet of the payload changed) is refused.
  std::string torn = bytes.substr(0, static_cast<std::size_t>(r->len));
  std::size_t at = sizeof(journal::RecordHead) + (size % (torn.size() - sizeof(journal::RecordHead) + 1));
  if (at < torn.size()) {
    torn[at] = static_cast<char>(torn[at] ^ 0x5a);
    FUZZ_CHECK(!journal::parse_record(torn, seq));
  }
  return 0;
}
