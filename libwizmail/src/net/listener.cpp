#include "net/listener.hpp"

#include <asio/ip/v6_only.hpp>
#include <asio/steady_timer.hpp>

#include <atomic>
#include <mutex>

namespace wizmail::net {

using tcp = asio::ip::tcp;

// Acceptors are not thread-safe: close() runs on any thread while accept
// handlers run on the io threads, so every call on `acceptor`/`backoff`
// holds `mu` (a closed acceptor is never touched again).
struct Listener::Acceptor {
  std::mutex mu;
  tcp::acceptor acceptor;
  asio::steady_timer backoff;
  int tag;
  std::atomic<bool> closed{false};
  Acceptor(const asio::any_io_executor& ex, int t) : acceptor(ex), backoff(ex), tag(t) {}
};

Listener::~Listener() { close(); }

namespace {
Status bind_one(tcp::acceptor& a, const tcp::endpoint& ep, bool dual_stack) {
  std::error_code ec;
  a.open(ep.protocol(), ec);
  if (ec) return fail(Errc::io, "socket for " + ep.address().to_string() + ": " + ec.message());
  a.set_option(tcp::acceptor::reuse_address(true), ec);
  if (ep.protocol() == tcp::v6()) a.set_option(asio::ip::v6_only(!dual_stack), ec);
  a.bind(ep, ec);
  if (ec) {
    std::error_code ignored;
    a.close(ignored);
    auto where = ep.address().is_v6() ? "[" + ep.address().to_string() + "]"
                                      : ep.address().to_string();
    return fail(ec == asio::error::address_in_use ? Errc::busy : Errc::io,
                "cannot listen on " + where + ":" + std::to_string(ep.port()) + ": " +
                    ec.message());
  }
  a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail(Errc::io, "listen: " + ec.message());
  return {};
}
}  // namespace

Status Listener::open(const std::vector<ListenSpec>& specs) {
  for (const auto& spec : specs) {
    std::vector<std::pair<tcp::endpoint, bool>> eps;
    if (spec.addresses.empty()) {
      eps.emplace_back(tcp::endpoint(tcp::v6(), spec.port), true);
    } else {
      for (const auto& text : spec.addresses) {
        std::error_code ec;
        auto addr = asio::ip::make_address(text, ec);
        if (ec) {
          close();
          return fail(Errc::invalid_argument, "bind_address: not an IP address: '" + text + "'");
        }
        eps.emplace_back(tcp::endpoint(addr, spec.port), false);
      }
    }
    for (auto& [ep, dual] : eps) {
      auto acc = std::make_shared<Acceptor>(ex_, spec.tag);
      auto st = bind_one(acc->acceptor, ep, dual);
      if (!st && dual) {
        // No IPv6 on this host: fall back to IPv4 only.
        auto v4 = tcp::endpoint(tcp::v4(), ep.port());
        acc = std::make_shared<Acceptor>(ex_, spec.tag);
        st = bind_one(acc->acceptor, v4, false);
      }
      if (!st) {
        close();
        return st;
      }
      std::error_code ec;
      bound_.push_back({acc->acceptor.local_endpoint(ec), spec.tag});
      acceptors_.push_back(std::move(acc));
    }
  }
  return {};
}

void Listener::start(AcceptFn fn) {
  fn_ = std::move(fn);
  std::vector<std::shared_ptr<Acceptor>> all;
  {
    std::lock_guard lk(mu_);
    all = acceptors_;
  }
  for (auto& a : all) accept_next(a);
}

void Listener::accept_next(const std::shared_ptr<Acceptor>& a) {
  std::lock_guard lk(a->mu);
  if (a->closed) return;
  a->acceptor.async_accept([this, a](std::error_code ec, tcp::socket s) {
    if (a->closed || ec == asio::error::operation_aborted) return;
    if (ec) {
      // Out of descriptors or memory: wait a little instead of spinning.
      std::lock_guard lk(a->mu);
      if (a->closed) return;
      a->backoff.expires_after(std::chrono::milliseconds(50));
      a->backoff.async_wait([this, a](std::error_code e) {
        if (!e && !a->closed) accept_next(a);
      });
      return;
    }
    fn_(std::move(s), a->tag);
    accept_next(a);
  });
}

void Listener::close() {
  std::vector<std::shared_ptr<Acceptor>> all;
  {
    std::lock_guard lk(mu_);
    all.swap(acceptors_);
  }
  for (auto& a : all) {
    std::lock_guard lk(a->mu);
    a->closed = true;
    std::error_code ec;
    a->acceptor.close(ec);
    a->backoff.cancel();
  }
}

}  // namespace wizmail::net
