#include "ops/minute_series.hpp"

namespace wizmail::ops {

namespace {
std::int64_t minute_of(std::int64_t t) { return t >= 0 ? t / 60 : (t - 59) / 60; }
std::size_t slot_of(std::int64_t minute) {
  auto m = static_cast<std::int64_t>(MinuteSeries::minutes);
  return static_cast<std::size_t>(((minute % m) + m) % m);
}
}  // namespace

void MinuteSeries::observe(std::int64_t now, const Totals& totals) {
  std::lock_guard lk(mu_);
  if (!based_) {
    last_ = totals;
    based_ = true;
    return;
  }
  const auto minute = minute_of(now);
  auto& b = ring_[slot_of(minute)];
  if (b.minute != minute) {
    // A slot last used an hour (or more) ago: its counts are no longer shown.
    if (b.minute > minute) return;  // the clock went back: keep the newer data
    b = Bucket{minute, {}};
  }
  for (std::size_t k = 0; k < kinds; ++k) {
    // Totals only grow; a lower one was read before the last one seen (two
    // observers racing) and is ignored, so nothing is counted twice.
    if (totals[k] > last_[k]) {
      b.counts[k] += totals[k] - last_[k];
      last_[k] = totals[k];
    }
  }
}

MinuteSeries::Snapshot MinuteSeries::snapshot(std::int64_t now) const {
  Snapshot s;
  const auto current = minute_of(now);
  s.minute_start.reserve(minutes);
  for (auto& c : s.counts) c.reserve(minutes);
  std::lock_guard lk(mu_);
  for (std::int64_t m = current - static_cast<std::int64_t>(minutes) + 1; m <= current; ++m) {
    s.minute_start.push_back(m * 60);
    const auto& b = ring_[slot_of(m)];
    for (std::size_t k = 0; k < kinds; ++k) s.counts[k].push_back(b.minute == m ? b.counts[k] : 0);
  }
  return s;
}

}  // namespace wizmail::ops
