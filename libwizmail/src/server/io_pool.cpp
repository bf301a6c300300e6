#include "server/io_pool.hpp"

#include <asio/post.hpp>

namespace wizmail::server {

IoPool::IoPool(unsigned threads) {
  if (threads == 0) threads = 1;
  for (unsigned i = 0; i < threads; ++i) {
    auto s = std::make_unique<Slot>();
    s->guard.emplace(s->ctx.get_executor());
    slots_.push_back(std::move(s));
  }
}

IoPool::~IoPool() { stop_now(); }

void IoPool::start() {
  if (started_) return;
  started_ = true;
  for (auto& s : slots_) {
    Slot* p = s.get();
    p->thread = std::thread([p] { p->ctx.run(); });
  }
}

bool IoPool::finish(std::chrono::milliseconds grace) {
  if (!started_) return true;
  for (auto& s : slots_) s->guard.reset();
  // Each context returns from run() (and counts as stopped) once its last
  // handler ran; one that does not (a timer nobody cancelled) is stopped at
  // the deadline.
  for (auto& s : slots_) asio::post(s->ctx, [] {});  // wakes a context idle in epoll
  auto deadline = std::chrono::steady_clock::now() + grace;
  for (auto& s : slots_)
    while (!s->ctx.stopped() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
  bool drained = true;
  for (auto& s : slots_) drained = drained && s->ctx.stopped();
  stop_now();
  return drained;
}

void IoPool::stop_now() {
  for (auto& s : slots_) {
    s->guard.reset();
    s->ctx.stop();
  }
  for (auto& s : slots_)
    if (s->thread.joinable()) s->thread.join();
}

std::pair<asio::any_io_executor, IoPool::Lease> IoPool::place() {
  std::size_t best = 0;
  int least = slots_[0]->sessions.load(std::memory_order_relaxed);
  for (std::size_t i = 1; i < slots_.size() && least > 0; ++i) {
    int n = slots_[i]->sessions.load(std::memory_order_relaxed);
    if (n < least) {
      least = n;
      best = i;
    }
  }
  slots_[best]->sessions.fetch_add(1, std::memory_order_relaxed);
  return {slots_[best]->ctx.get_executor(), Lease(&slots_[best]->sessions)};
}

}  // namespace wizmail::server
