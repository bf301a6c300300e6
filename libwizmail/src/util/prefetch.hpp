#pragma once
// A value worked out once, by whoever asks first: a task started early
// (run(), e.g. on the blocking pool when a client connects) or the first
// reader (get(), which then works it out itself instead of waiting for a
// task that has not started — so a reader on a full pool never waits for
// work queued behind it). A reader that finds the work under way waits
// for it. Used for the DNS block lists: asked at connect, read at RCPT
// (docs/dnsbl.md). T must be default-constructible: when the work throws,
// the readers get T{} (and the thrower's caller the exception), so nobody
// waits for ever.
#include <condition_variable>
#include <mutex>
#include <optional>
#include <utility>

namespace wizmail::util {

template <class T>
class Prefetch {
 public:
  // Works the value out with `fn` unless someone already did or is doing it.
  template <class Fn>
  void run(Fn&& fn) {
    if (!claim()) return;
    try {
      finish(std::forward<Fn>(fn)());
    } catch (...) {
      finish(T{});  // a task has nobody to tell; the readers go on
    }
  }

  // The value: worked out here with `fn` when nobody started, waited for
  // when somebody is working it out, at once when it is there.
  template <class Fn>
  const T& get(Fn&& fn) {
    if (claim()) {
      try {
        finish(std::forward<Fn>(fn)());
      } catch (...) {
        finish(T{});
        throw;
      }
    } else {
      std::unique_lock lock(m_);
      cv_.wait(lock, [&] { return value_.has_value(); });
    }
    return *value_;
  }

  // True when the value is there (no waiting).
  bool ready() const {
    std::lock_guard lock(m_);
    return value_.has_value();
  }

 private:
  bool claim() {
    std::lock_guard lock(m_);
    if (claimed_) return false;
    claimed_ = true;
    return true;
  }
  void finish(T v) {
    {
      std::lock_guard lock(m_);
      value_.emplace(std::move(v));
    }
    cv_.notify_all();
  }

  mutable std::mutex m_;
  std::condition_variable cv_;
  bool claimed_ = false;
  std::optional<T> value_;
};

}  // namespace wizmail::util
