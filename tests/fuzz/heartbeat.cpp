// Fuzz target: a node's heartbeat file (wizmail/admin/cluster.hpp), which
// every node reads from the shared home's nodes/ folder.
//
// Input: the file's bytes.
// Properties: a heartbeat that parses formats to a text that parses to the
// same heartbeat, and formatting that again gives the same text (format is
// canonical); whatever parses has a valid node name, a pid > 0 and an
// interval of 1–300; the status of a parsed beat is alive exactly when its
// age is at most three intervals.
#include <chrono>

#include "fuzz.hpp"
#include "wizmail/admin/cluster.hpp"
#include "wizmail/config.hpp"

using namespace wizmail;

namespace {

bool same(const cluster::Heartbeat& a, const cluster::Heartbeat& b) {
  return a.node == b.node && a.pid == b.pid && a.host == b.host && a.listen == b.listen &&
         a.started == b.started && a.beat_ms == b.beat_ms && a.interval == b.interval &&
         a.sessions_smtp == b.sessions_smtp && a.sessions_pop3 == b.sessions_pop3 && a.queue_held == b.queue_held;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto beat = cluster::parse_heartbeat(text);
  if (!beat) {
    FUZZ_CHECK(!beat.error().message.empty());
    return 0;
  }
  FUZZ_CHECK(validate_node_name(beat->node));
  FUZZ_CHECK(beat->pid > 0);
  FUZZ_CHECK(beat->interval >= 1 && beat->interval <= 300);
  const std::string once = cluster::format_heartbeat(*beat);
  auto again = cluster::parse_heartbeat(once);
  FUZZ_CHECK_MSG(again, once);
  FUZZ_CHECK(same(*beat, *again));
  FUZZ_CHECK(cluster::format_heartbeat(*again) == once);
  const auto at = std::chrono::system_clock::time_point(std::chrono::milliseconds(beat->beat_ms)) +
                  std::chrono::seconds(3 * beat->interval);
  FUZZ_CHECK(cluster::node_status(beat->node, *beat, at).alive);
  FUZZ_CHECK(!cluster::node_status(beat->node, *beat, at + std::chrono::milliseconds(1)).alive);
  return 0;
}
