// The session threads of a server (ServerOptions::io_threads): one
// io_context per thread, each run by that thread alone. A session lives on
// one context from accept to close, so its handlers never hand over between
// threads — no scheduler lock shared by all threads, no waking a second
// thread for every completion (measured: ~30 context switches per SMTP
// message on one shared multi-threaded io_context, see docs/architecture.md).
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

namespace wizmail::server {

class IoPool {
 public:
  explicit IoPool(unsigned threads);
  ~IoPool();  // stop_now()
  IoPool(const IoPool&) = delete;
  IoPool& operator=(const IoPool&) = delete;

  std::size_t size() const noexcept { return slots_.size(); }
  asio::any_io_executor executor(std::size_t i) { return slots_[i]->ctx.get_executor(); }

  // Start one thread per context (idempotent).
  void start();
  // Let the threads return once their contexts have no more work, wait up
  // to `grace` for that, then abandon what is left and join. False when
  // something had to be abandoned.
  bool finish(std::chrono::milliseconds grace);
  // Abandon all pending work and join (destructor, failed start).
  void stop_now();

  // Where a new session goes: the context with the fewest live sessions,
  // the first one (which also runs the acceptors) on ties, so a lone client
  // never crosses threads. The lease counts the session until destroyed.
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& o) noexcept : count_(std::exchange(o.count_, nullptr)) {}
    Lease& operator=(Lease&& o) noexcept {
      if (this != &o) {
        release();
        count_ = std::exchange(o.count_, nullptr);
      }
      return *this;
    }
    ~Lease() { release(); }
    // Live sessions on this lease's thread now (this one included); null
    // for a default Lease.
    const std::atomic<int>* counter() const noexcept { return count_; }

   private:
    friend class IoPool;
    explicit Lease(std::atomic<int>* c) : count_(c) {}
    void release() noexcept {
      if (count_) count_->fetch_sub(1, std::memory_order_relaxed);
      count_ = nullptr;
    }
    std::atomic<int>* count_ = nullptr;
  };
  std::pair<asio::any_io_executor, Lease> place();

 private:
  struct Slot {
    asio::io_context ctx{1};
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard;
    std::atomic<int> sessions{0};
    std::thread thread;
  };
  std::vector<std::unique_ptr<Slot>> slots_;
  bool started_ = false;
};

}  // namespace wizmail::server
