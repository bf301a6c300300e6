// Acceptors for every (bind address × port) of a server. An empty address
// list listens on all addresses: "::" dual-stack when IPv6 is available,
// else 0.0.0.0. Ports are bound in open() so a port in use is an error value
// before anything is accepted.
#pragma once

#include <asio/ip/tcp.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "wizmail/error.hpp"

namespace wizmail::net {

struct ListenSpec {
  std::vector<std::string> addresses;  // empty = all
  std::uint16_t port = 0;              // 0 = any free port (tests)
  int tag = 0;                         // what the caller serves there
};

class Listener {
 public:
  using AcceptFn = std::function<void(asio::ip::tcp::socket, int tag)>;

  explicit Listener(asio::any_io_executor ex) : ex_(std::move(ex)) {}
  ~Listener();

  // Bind every spec. On failure nothing stays bound.
  Status open(const std::vector<ListenSpec>& specs);
  // Start accepting; `fn` runs on the acceptor's executor for each socket.
  void start(AcceptFn fn);
  // Stop accepting and close every acceptor (idempotent). Safe from any
  // thread, concurrently with the accept handlers and with another close().
  void close();

  struct Bound {
    asio::ip::tcp::endpoint endpoint;
    int tag;
  };
  const std::vector<Bound>& bound() const noexcept { return bound_; }

 private:
  struct Acceptor;
  void accept_next(const std::shared_ptr<Acceptor>& a);

  asio::any_io_executor ex_;
  std::mutex mu_;  // acceptors_
  std::vector<std::shared_ptr<Acceptor>> acceptors_;
  std::vector<Bound> bound_;
  AcceptFn fn_;
};

}  // namespace wizmail::net
