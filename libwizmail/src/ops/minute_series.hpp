// Private: per-minute counts over the last hour for the web console's
// dashboard (docs/console.md). Pure: the time is passed in (unix seconds),
// so tests need no clock and no sleeps.
//
// The server already counts every message received, delivered, relayed and
// bounced (ServerStats, the figures /metrics exports). Rather than a second
// counter at each of those places, the series is fed those running totals:
// observe() adds what each total grew since the previous observation to the
// minute of `now`. The console samples every two seconds, so an event lands
// at most that long after it happened, possibly in the next minute.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

namespace wizmail::ops {

class MinuteSeries {
 public:
  static constexpr std::size_t minutes = 60;
  enum Kind : std::size_t { received, delivered, relayed, bounced, kinds };
  using Totals = std::array<std::uint64_t, kinds>;

  // The running totals at `now`. The first observation only sets the base.
  // Totals only grow (the server's counters live as long as the series): a
  // total lower than the highest seen was read earlier by another observer
  // (the sampler and a dashboard request) and is ignored.
  void observe(std::int64_t now, const Totals& totals);

  struct Snapshot {
    std::vector<std::int64_t> minute_start;                   // 60, oldest first, now's minute last
    std::array<std::vector<std::uint64_t>, kinds> counts;     // 60 each, same order
  };
  Snapshot snapshot(std::int64_t now) const;

 private:
  struct Bucket {
    std::int64_t minute = -1;  // unix minute (now / 60); -1 = unused
    Totals counts{};
  };
  mutable std::mutex mu_;
  std::array<Bucket, minutes> ring_{};
  Totals last_{};
  bool based_ = false;
};

}  // namespace wizmail::ops
