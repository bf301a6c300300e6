// Fuzz target: the retry queue's envelope parser (wizmail/queue.hpp
// parse_queue_entry), which reads every file in resendmail/ at start and
// at each run.
// Properties: an envelope that parses has a valid id, a size and at least
// one recipient; written back (serialize_queue_entry, what every update
// writes) it parses to the same entry and writes the same text again — an
// entry the queue rewrote never turns into a corrupt one.
#include "fuzz.hpp"
#include "wizmail/queue.hpp"

using namespace wizmail;
using wizmail::fuzz::show;

namespace {

bool same(const QueueEntry& a, const QueueEntry& b) {
  if (a.id != b.id || a.sender != b.sender || a.created != b.created ||
      a.next_attempt != b.next_attempt || a.size != b.size || a.client_ip != b.client_ip ||
      a.auth_user != b.auth_user || a.recipients.size() != b.recipients.size() ||
      a.attempts.size() != b.attempts.size())
    return false;
  for (std::size_t i = 0; i < a.recipients.size(); ++i) {
    const auto &x = a.recipients[i], &y = b.recipients[i];
    if (x.address != y.address || x.state != y.state || x.attempts != y.attempts ||
        x.last_reply != y.last_reply)
      return false;
  }
  for (std::size_t i = 0; i < a.attempts.size(); ++i)
    if (a.attempts[i].time != b.attempts[i].time || a.attempts[i].text != b.attempts[i].text)
      return false;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto e = parse_queue_entry(text);
  if (!e) {
    FUZZ_CHECK(e.error().code == Errc::parse);
    return 0;
  }
  FUZZ_CHECK(RelayQueue::validate_id(e->id).has_value());
  FUZZ_CHECK(!e->recipients.empty());
  for (const auto& r : e->recipients) {
    FUZZ_CHECK(!r.address.empty());
    FUZZ_CHECK(r.attempts >= 0);
  }
  FUZZ_CHECK(e->created >= 0 && e->next_attempt >= 0);
  (void)e->finished();
  std::string written = serialize_queue_entry(*e);
  auto back = parse_queue_entry(written);
  FUZZ_CHECK_MSG(back.has_value(), show(written) + (back ? "" : " " + back.error().message));
  FUZZ_CHECK_MSG(same(*e, *back), show(written));
  FUZZ_CHECK(serialize_queue_entry(*back) == written);
  return 0;
}
